"""Batches of ranked groups: packed token arrays, length-grouped step plans, collate, scoring.

A tokenised split is held as flat numpy arrays (values + offsets, straight from Arrow), so
collating a batch is a few numpy slices per sequence, never per-token Python. All k
completions of every group in a batch become rows of one [sum k, T] tensor, padded on the
right to a multiple of 8, so the model runs one forward pass per batch.

Seam for prefix sharing (decoders): a collate variant would put one copy of the prompt per row
followed by its completions, with a 4-D block mask and restarted position ids;
`RewardModel.forward(position_ids=..., score_index=...)` already accepts that layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cached_property
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
import pyarrow as pa
import torch

if TYPE_CHECKING:
    from rmcore.model import RewardModel

PAD_MULTIPLE = 8


def _list_parts(array: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(values, offsets from 0) of an Arrow list array, honouring slices."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    offsets = array.offsets.to_numpy().astype(np.int64)
    return array.flatten(), offsets - offsets[0]


@dataclass(frozen=True)
class PackedGroups:
    """A tokenised split as flat arrays: G groups, C completions."""

    prompt_values: np.ndarray  # [sum prompt tokens] int64
    prompt_offsets: np.ndarray  # [G+1]
    comp_values: np.ndarray  # [sum completion tokens] int64
    comp_offsets: np.ndarray  # [C+1]
    group_offsets: np.ndarray  # [G+1] into completions
    ranks: np.ndarray  # [C] int64

    @classmethod
    def from_dataset(cls, ds: datasets.Dataset) -> PackedGroups:
        table = ds.with_format("arrow")[:] if len(ds) else ds.data.table
        prompt_values, prompt_offsets = _list_parts(table.column("prompt_ids"))
        comps, group_offsets = _list_parts(table.column("completion_ids"))
        comp_values, comp_offsets = _list_parts(comps)
        ranks, rank_offsets = _list_parts(table.column("ranks"))
        if not np.array_equal(rank_offsets, group_offsets):
            raise ValueError("each group needs exactly one rank per completion")
        return cls(
            prompt_values.to_numpy().astype(np.int64),
            prompt_offsets,
            comp_values.to_numpy().astype(np.int64),
            comp_offsets,
            group_offsets,
            ranks.to_numpy().astype(np.int64),
        )

    def __len__(self) -> int:
        return len(self.group_offsets) - 1

    @cached_property
    def k(self) -> np.ndarray:
        return np.diff(self.group_offsets)  # [G]

    @cached_property
    def seq_lengths(self) -> np.ndarray:
        """Tokens of each completion's full sequence (prompt + completion), [C]."""
        return np.repeat(np.diff(self.prompt_offsets), self.k) + np.diff(self.comp_offsets)

    @cached_property
    def group_lengths(self) -> np.ndarray:
        """Longest sequence of each group, [G]."""
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.maximum.reduceat(self.seq_lengths, self.group_offsets[:-1])


@dataclass
class Batch:
    """Rows are all completions of the batch's groups, group by group."""

    input_ids: torch.Tensor  # [N, T] int64
    attention_mask: torch.Tensor  # [N, T] int64
    row_group: torch.Tensor  # [N] group of each row, 0..n_groups-1
    better: torch.Tensor  # [P] row of the better completion of each pair
    worse: torch.Tensor  # [P] row of the worse completion
    n_groups: int

    def to(self, device: torch.device | str) -> Batch:
        moved: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            moved[f.name] = value.to(device) if isinstance(value, torch.Tensor) else value
        return Batch(**moved)

    @property
    def pair_group(self) -> torch.Tensor:
        return self.row_group[self.better]  # [P]


def pad_sequences(
    sequences: list[list[int]], pad_id: int, multiple: int = PAD_MULTIPLE
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to the longest length rounded up to `multiple`: ids, mask [N, T] int64."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    width = int(math.ceil(max(lengths.max(initial=1), 1) / multiple) * multiple)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    return ids, mask


def collate(
    packed: PackedGroups, groups: np.ndarray, pad_id: int, multiple: int = PAD_MULTIPLE
) -> Batch:
    """One [sum k, T] batch of the given groups, with every pair of different rank."""
    k = packed.k[groups]
    comp_rows = np.concatenate(
        [np.arange(packed.group_offsets[g], packed.group_offsets[g + 1]) for g in groups]
    )  # [N] completion index of each row
    lengths = packed.seq_lengths[comp_rows]
    width = int(math.ceil(max(int(lengths.max(initial=1)), 1) / multiple) * multiple)
    ids = np.full((len(comp_rows), width), pad_id, dtype=np.int64)
    row = 0
    for g in groups:
        prompt = packed.prompt_values[packed.prompt_offsets[g] : packed.prompt_offsets[g + 1]]
        for c in range(packed.group_offsets[g], packed.group_offsets[g + 1]):
            comp = packed.comp_values[packed.comp_offsets[c] : packed.comp_offsets[c + 1]]
            ids[row, : len(prompt)] = prompt
            ids[row, len(prompt) : len(prompt) + len(comp)] = comp
            row += 1
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    row_group = np.repeat(np.arange(len(groups)), k)  # [N]
    ranks = packed.ranks[comp_rows]
    # pair (i, j): same group, i ranked strictly better (lower rank) than j; ties give none
    pairs = (row_group[:, None] == row_group[None, :]) & (ranks[:, None] < ranks[None, :])
    better, worse = np.nonzero(pairs)
    return Batch(
        torch.from_numpy(ids),
        torch.from_numpy(mask),
        torch.from_numpy(row_group),
        torch.from_numpy(better.astype(np.int64)),
        torch.from_numpy(worse.astype(np.int64)),
        len(groups),
    )


def plan_epoch(
    lengths: np.ndarray, global_batch: int, seed: int, epoch: int, length_grouping: bool = True
) -> np.ndarray:
    """The epoch's optimiser steps as [steps, global_batch] group indices.

    Seeded by (seed, epoch) only, so the plan is the same for any number of processes and
    after a resume. The last step is filled by wrapping around to the epoch's first groups.
    Length grouping sorts windows of 50 steps by length, then shuffles the step order.
    """
    rng = np.random.default_rng([seed, epoch])
    n_steps = max(1, math.ceil(len(lengths) / global_batch))
    order = np.resize(rng.permutation(len(lengths)), n_steps * global_batch)
    if length_grouping:
        window = global_batch * 50
        for start in range(0, len(order), window):
            chunk = order[start : start + window]
            order[start : start + window] = chunk[np.argsort(-lengths[chunk], kind="stable")]
        steps = order.reshape(n_steps, global_batch)
        return steps[rng.permutation(n_steps)]
    return order.reshape(n_steps, global_batch)


def micro_batches(
    step_groups: np.ndarray, lengths: np.ndarray, world: int, rank: int, accum: int
) -> list[np.ndarray]:
    """This process's `accum` micro-batches of one step, similar lengths together."""
    ordered = step_groups[np.argsort(-lengths[step_groups], kind="stable")]
    chunks = np.array_split(ordered, world * accum)
    return [chunks[m * world + rank] for m in range(accum)]


@torch.no_grad()
def score_groups(
    model: RewardModel,
    dataset: datasets.Dataset | PackedGroups,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> list[np.ndarray]:
    """Reward of every completion of every group ([k] float32 each), in dataset row order.

    Groups are batched by length; padding is masked, so results do not depend on batch size.
    """
    packed = dataset if isinstance(dataset, PackedGroups) else PackedGroups.from_dataset(dataset)
    pad_id = int(model.tokenizer.pad_token_id)
    order = np.argsort(-packed.group_lengths, kind="stable")
    out: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(packed)
    was_training = model.training
    model.to(device).eval()
    for start in range(0, len(order), batch_size):
        groups = order[start : start + batch_size]
        batch = collate(packed, groups, pad_id).to(device)
        rewards = model(batch.input_ids, batch.attention_mask).float().cpu().numpy()
        for g, chunk in zip(
            groups, np.split(rewards, np.cumsum(packed.k[groups])[:-1]), strict=True
        ):
            out[g] = chunk
    model.train(was_training)
    return out
