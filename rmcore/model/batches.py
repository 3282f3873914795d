"""Batches of ranked groups: packed token arrays, length-grouped step plans, collate, scoring.

A tokenised split is held as flat numpy arrays (values + offsets, straight from Arrow), so
collating a batch is a few numpy slices per sequence, never per-token Python. All k
completions of every group in a batch go through the model in one forward pass, in one of
four layouts (`BatchLayout`):

- padded: one row per completion (prompt + completion), [sum k, T], right-padded to a
  multiple of 8, with a 2-D padding mask;
- packed: the same sequences end to end in one row [1, S], position ids restarting at each,
  attention confined to each by `rmcore.packing` (no padding at all);
- shared prefix (causal models): one row per group, the prompt once and then its k
  completions, position ids restarting after the prompt for each completion, and a block
  mask by which a completion sees the prompt and itself only; padded ([G, 1, T, T] 4-D
  mask) or packed (one [L, L] mask per group). For a causal model every completion token
  sees exactly what it would see in its own row, so rewards are the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from rmcore.model.packing import Segments

PAD_MULTIPLE = 8


def _list_parts(array: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(values, offsets from 0) of an Arrow list array, honouring slices."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    offsets = array.offsets.to_numpy().astype(np.int64)
    return array.flatten(), offsets - offsets[0]


def pair_keys(better: np.ndarray, worse: np.ndarray, completions: int) -> np.ndarray:
    """One int64 key per pair of completion indices, better * completions + worse."""
    return better.astype(np.int64) * completions + worse


def _margin_arrays(
    column: pa.ChunkedArray | None, group_offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(sorted keys better * C + worse, margins) from a `margins` column of groups with
    `group_offsets`; empty when there is none."""
    empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    if column is None or column.null_count == len(column):
        return empty
    array = column.combine_chunks()
    counts = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
    entries = array.flatten()  # null groups add no entries
    group = np.repeat(np.arange(len(counts)), counts)
    k = np.diff(group_offsets)[group]
    local = [entries.field(f).to_numpy(zero_copy_only=False) for f in ("better", "worse")]
    values = entries.field("margin").to_numpy(zero_copy_only=False).astype(np.float64)
    for name, index in zip(("better", "worse"), local, strict=True):
        bad = np.flatnonzero((index < 0) | (index >= k))
        if len(bad):
            g = int(group[bad[0]])
            raise ValueError(
                f"group {g}: margin {name} index {int(index[bad[0]])} is not one "
                f"of its {int(k[bad[0]])} completions; re-run ingest"
            )
    nonfinite = np.flatnonzero(~np.isfinite(values))
    if len(nonfinite):
        raise ValueError(
            f"group {int(group[nonfinite[0]])}: margin {values[nonfinite[0]]} is not a finite "
            "number; fix the source's margin field and re-run ingest"
        )
    start = group_offsets[group]
    keys = pair_keys(start + local[0], start + local[1], int(group_offsets[-1]))
    order = np.argsort(keys, kind="stable")
    return keys[order].astype(np.int64), values[order]


def _concat(arrays: list[Any]) -> np.ndarray:
    parts = [np.asarray(a, dtype=np.int64) for a in arrays]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _offsets(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


@dataclass(frozen=True)
class PackedGroups:
    """A tokenised split as flat arrays: G groups, C completions."""

    prompt_values: np.ndarray  # [sum prompt tokens] int64
    prompt_offsets: np.ndarray  # [G+1]
    comp_values: np.ndarray  # [sum completion tokens] int64
    comp_offsets: np.ndarray  # [C+1]
    group_offsets: np.ndarray  # [G+1] into completions
    ranks: np.ndarray  # [C] int64
    # the data's per-pair margins, keyed by `pair_keys` of completion indices, sorted
    margin_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    margin_values: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))

    @classmethod
    def from_dataset(cls, ds: datasets.Dataset) -> PackedGroups:
        table = ds.with_format("arrow")[:] if len(ds) else ds.data.table
        prompt_values, prompt_offsets = _list_parts(table.column("prompt_ids"))
        comps, group_offsets = _list_parts(table.column("completion_ids"))
        comp_values, comp_offsets = _list_parts(comps)
        ranks, rank_offsets = _list_parts(table.column("ranks"))
        if not np.array_equal(rank_offsets, group_offsets):
            raise ValueError("each group needs exactly one rank per completion")
        margins = table.column("margins") if "margins" in table.column_names else None
        keys, values = _margin_arrays(margins, group_offsets)
        return cls(
            prompt_values.to_numpy().astype(np.int64),
            prompt_offsets,
            comp_values.to_numpy().astype(np.int64),
            comp_offsets,
            group_offsets,
            ranks.to_numpy().astype(np.int64),
            keys,
            values,
        )

    @classmethod
    def from_sequences(
        cls,
        prompts: list[list[int]],
        completions: list[list[int]] | list[list[list[int]]],
        ranks: list[list[int]] | None = None,
    ) -> PackedGroups:
        """Groups from token ids: one prompt each, and either one completion each (k = 1,
        for scoring rows) or a list of completions; ranks default to 0."""
        groups = [c if c and isinstance(c[0], list) else [c] for c in completions]
        flat = [np.asarray(c, dtype=np.int64) for group in groups for c in group]
        k = [len(group) for group in groups]
        rank_values = [r for rs in ranks for r in rs] if ranks is not None else [0] * sum(k)
        return cls(
            prompt_values=_concat(prompts),
            prompt_offsets=_offsets([len(p) for p in prompts]),
            comp_values=_concat(flat),
            comp_offsets=_offsets([len(c) for c in flat]),
            group_offsets=_offsets(k),
            ranks=np.asarray(rank_values, dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.group_offsets) - 1

    def pair_margins(self, better: np.ndarray, worse: np.ndarray) -> np.ndarray | None:
        """The data margin of each pair (completion indices), 0 where the data gives none;
        None when the split has no margins at all."""
        if not len(self.margin_keys):
            return None
        keys = pair_keys(better, worse, len(self.ranks))
        at = np.searchsorted(self.margin_keys, keys).clip(max=len(self.margin_keys) - 1)
        return np.where(self.margin_keys[at] == keys, self.margin_values[at], 0.0)

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


@dataclass(frozen=True)
class BatchLayout:
    """How a batch's sequences become model rows.

    packed: all sequences end to end in one row [1, S] (no padding; needs the packed
    attention of `rmcore.packing`). share_prefix (causal models only): a group's prompt once,
    followed by its k completions, each seeing the prompt and itself only.
    """

    packed: bool = False
    share_prefix: bool = False


@dataclass
class Batch:
    """Rewards come out one per completion, group by group (rows of `row_group`)."""

    input_ids: torch.Tensor  # [R, T] padded rows, or [1, S] one packed row
    attention_mask: torch.Tensor  # [R, T]; [R, 1, T, T] bool (shared, padded); [1, S] ones
    row_group: torch.Tensor  # [N] group of each completion, 0..n_groups-1
    better: torch.Tensor  # [P] completion index of the better completion of each pair
    worse: torch.Tensor  # [P] completion index of the worse completion
    n_groups: int
    margins: torch.Tensor | None = None  # [P] the data's margin of each pair (0: none given)
    position_ids: torch.Tensor | None = None  # like input_ids; restarts per sequence/completion
    score_index: torch.Tensor | None = None  # [N] flat token index of each scored token
    segments: Segments | None = None  # packed row: the sequences (or groups) and their masks
    n_tokens: int = 0  # real tokens fed to the model
    # False: filler a process runs only to take part in the step's collectives (a step with
    # fewer groups than micro-batches); it adds nothing to the gradient or the statistics
    counted: bool = True

    def to(self, device: torch.device | str) -> Batch:
        moved: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            movable = isinstance(value, torch.Tensor | Segments)
            moved[f.name] = value.to(device) if movable else value
        return Batch(**moved)

    def model_inputs(self) -> dict[str, Any]:
        """Keyword arguments of `RewardModel.forward`."""
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "position_ids": self.position_ids,
            "score_index": self.score_index,
            "segments": self.segments,
        }

    @property
    def pair_group(self) -> torch.Tensor:
        return self.row_group[self.better]  # [P]

    @property
    def groups_with_pairs(self) -> int:
        """Groups with at least one pair (read before moving to a device: no sync)."""
        return int(torch.unique(self.pair_group).numel())


def _width(lengths: np.ndarray, multiple: int) -> int:
    return int(math.ceil(max(int(lengths.max(initial=1)), 1) / multiple) * multiple)


def pad_sequences(
    sequences: list[list[int]], pad_id: int, multiple: int = PAD_MULTIPLE
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to the longest length rounded up to `multiple`: ids, mask [N, T] int64."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    width = _width(lengths, multiple)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    return ids, mask


@dataclass
class _Rows:
    """The rows of a batch before padding or packing (numpy)."""

    tokens: list[np.ndarray]  # per row [L]
    positions: list[np.ndarray]  # per row [L]
    # shared prefix: per row, its prompt length and completion lengths; else None
    shared: list[tuple[int, list[int]]] | None = None

    def scored(self) -> list[np.ndarray]:
        """Shared rows: offsets in each row of its completions' last tokens."""
        assert self.shared is not None
        return [p + np.cumsum(c, dtype=np.int64) - 1 for p, c in self.shared]


def _plain_rows(packed: PackedGroups, groups: np.ndarray) -> _Rows:
    """One row per completion: prompt + completion."""
    tokens = []
    for g in groups:
        prompt = packed.prompt_values[packed.prompt_offsets[g] : packed.prompt_offsets[g + 1]]
        for c in range(packed.group_offsets[g], packed.group_offsets[g + 1]):
            comp = packed.comp_values[packed.comp_offsets[c] : packed.comp_offsets[c + 1]]
            tokens.append(np.concatenate([prompt, comp]))
    return _Rows(tokens, [np.arange(len(t)) for t in tokens])


def _shared_rows(packed: PackedGroups, groups: np.ndarray) -> _Rows:
    """One row per group: prompt, then each completion at positions restarting after it."""
    tokens, positions, shared = [], [], []
    for g in groups:
        prompt = packed.prompt_values[packed.prompt_offsets[g] : packed.prompt_offsets[g + 1]]
        comps = [
            packed.comp_values[packed.comp_offsets[c] : packed.comp_offsets[c + 1]]
            for c in range(packed.group_offsets[g], packed.group_offsets[g + 1])
        ]
        n_prompt, comp_lengths = len(prompt), [len(c) for c in comps]
        tokens.append(np.concatenate([prompt, *comps]))
        comp_positions = (np.arange(n_prompt, n_prompt + n) for n in comp_lengths)
        positions.append(np.concatenate([np.arange(n_prompt), *comp_positions]))
        shared.append((n_prompt, comp_lengths))
    return _Rows(tokens, positions, shared)


def _shared_mask(n_prompt: int, comp_lengths: list[int]) -> np.ndarray:
    """[L, L] bool: the prompt sees the prompt causally; a completion's tokens see the whole
    prompt and their own completion causally, never another completion."""
    total = n_prompt + sum(comp_lengths)
    mask = np.zeros((total, total), dtype=bool)
    mask[:n_prompt, :n_prompt] = np.tri(n_prompt, dtype=bool)
    start = n_prompt
    for n in comp_lengths:
        mask[start : start + n, :n_prompt] = True
        mask[start : start + n, start : start + n] = np.tri(n, dtype=bool)
        start += n
    return mask


def _prompt_views(n_prompt: int, comp_lengths: list[int]) -> list[np.ndarray]:
    """Offsets in a shared row of the prompt followed by each completion, one per completion."""
    starts = n_prompt + np.concatenate([[0], np.cumsum(comp_lengths)[:-1]]).astype(np.int64)
    prompt = np.arange(n_prompt)
    pairs = zip(starts, comp_lengths, strict=True)
    return [np.concatenate([prompt, np.arange(s, s + n)]) for s, n in pairs]


def _pad_rows(rows: _Rows, pad_id: int, multiple: int) -> dict[str, Any]:
    lengths = np.array([len(t) for t in rows.tokens], dtype=np.int64)
    width = _width(lengths, multiple)
    ids = np.full((len(lengths), width), pad_id, dtype=np.int64)
    positions = np.zeros((len(lengths), width), dtype=np.int64)
    for r, (tok, pos) in enumerate(zip(rows.tokens, rows.positions, strict=True)):
        ids[r, : len(tok)], positions[r, : len(pos)] = tok, pos
    out: dict[str, Any] = {"input_ids": torch.from_numpy(ids)}
    if rows.shared is None:  # plain rows: a 2-D padding mask; positions are the default ones
        mask = np.arange(width)[None, :] < lengths[:, None]
        out["attention_mask"] = torch.from_numpy(mask.astype(np.int64))
        return out
    # [R, 1, T, T]; padding rows attend to themselves only, so no softmax row is empty
    full = np.broadcast_to(np.eye(width, dtype=bool), (len(lengths), width, width)).copy()
    for r, (n_prompt, comp_lengths) in enumerate(rows.shared):
        length = n_prompt + sum(comp_lengths)
        full[r, :length, :length] = _shared_mask(n_prompt, comp_lengths)
    index = np.concatenate([r * width + s for r, s in enumerate(rows.scored())])
    out.update(
        attention_mask=torch.from_numpy(full[:, None]),
        position_ids=torch.from_numpy(positions),
        score_index=torch.from_numpy(index),
    )
    return out


def _shared_segments(rows: _Rows, multiple: int) -> Segments:
    """Packed shared rows as whichever costs less attention: one sequence per group with a
    block mask (long prompts, few completions), or one causal sequence per completion that
    reads the prompt again (many or long completions). Both are exact."""
    assert rows.shared is not None
    lengths = [len(t) for t in rows.tokens]
    by_group = len(lengths) * _width(np.asarray(lengths), multiple) ** 2
    view_lengths = np.array([p + n for p, comps in rows.shared for n in comps])
    by_completion = len(view_lengths) * _width(view_lengths, multiple) ** 2
    if by_group <= by_completion:
        masks = [_shared_mask(p, comps) for p, comps in rows.shared]
        return Segments.build(lengths, masks, multiple)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    bounds = [(int(s), int(s + n)) for s, n in zip(offsets, lengths, strict=True)]
    views = [
        offset + view
        for offset, (p, comps) in zip(offsets, rows.shared, strict=True)
        for view in _prompt_views(p, comps)
    ]
    return Segments.from_views(views, bounds, multiple)


def _pack_rows(rows: _Rows, multiple: int) -> dict[str, Any]:
    if rows.shared is None:
        segments = Segments.build([len(t) for t in rows.tokens], None, multiple)
    else:
        segments = _shared_segments(rows, multiple)
    segments = segments.chunked(multiple)
    ids = torch.from_numpy(np.concatenate(rows.tokens))[None]  # [1, S]
    out: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "position_ids": torch.from_numpy(np.concatenate(rows.positions))[None],  # [1, S]
        "segments": segments,
    }
    if rows.shared is not None:
        starts = [start for start, _ in segments.bounds]
        index = np.concatenate([s + o for s, o in zip(starts, rows.scored(), strict=True)])
        out["score_index"] = torch.from_numpy(index)
    return out


def collate(
    packed: PackedGroups,
    groups: np.ndarray,
    pad_id: int,
    multiple: int = PAD_MULTIPLE,
    layout: BatchLayout = BatchLayout(),
) -> Batch:
    """One batch of the given groups (all k completions each), with every pair of different
    rank. Padded rows are right-padded to a multiple of `multiple`."""
    k = packed.k[groups]
    rows = _shared_rows(packed, groups) if layout.share_prefix else _plain_rows(packed, groups)
    tensors = _pack_rows(rows, multiple) if layout.packed else _pad_rows(rows, pad_id, multiple)
    comp_rows = np.concatenate(
        [np.arange(packed.group_offsets[g], packed.group_offsets[g + 1]) for g in groups]
    )  # [N] completion index of each reward
    row_group = np.repeat(np.arange(len(groups)), k)  # [N]
    ranks = packed.ranks[comp_rows]
    # pair (i, j): same group, i ranked strictly better (lower rank) than j; ties give none
    pairs = (row_group[:, None] == row_group[None, :]) & (ranks[:, None] < ranks[None, :])
    better, worse = np.nonzero(pairs)
    margins = packed.pair_margins(comp_rows[better], comp_rows[worse])
    return Batch(
        row_group=torch.from_numpy(row_group),
        better=torch.from_numpy(better.astype(np.int64)),
        worse=torch.from_numpy(worse.astype(np.int64)),
        n_groups=len(groups),
        margins=None if margins is None else torch.from_numpy(margins.astype(np.float32)),
        n_tokens=int(sum(len(t) for t in rows.tokens)),
        **tensors,
    )
