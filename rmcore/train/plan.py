"""The data order of a run: optimiser steps of groups, split into processes and micro-batches.

Seeded by (seed, epoch) alone, so the order is the same for any number of processes and after
a resume; each group is trained exactly once per epoch (the last step may be smaller).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from accelerate import Accelerator

from rmcore.core.config import TrainConfig
from rmcore.model.batches import Batch, BatchLayout, PackedGroups, collate

PADDED = BatchLayout()


@dataclass
class Plan:
    """Step counts of a run."""

    global_batch: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int


def make_plan(cfg: TrainConfig, n_groups: int, world: int) -> Plan:
    global_batch = cfg.batch_size * cfg.grad_accum * world
    per_epoch = max(1, math.ceil(n_groups / global_batch))
    total = max(1, math.ceil(cfg.epochs * per_epoch))
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    return Plan(global_batch, per_epoch, total, round(cfg.warmup_ratio * total))


def plan_epoch(
    lengths: np.ndarray, global_batch: int, seed: int, epoch: int, length_grouping: bool = True
) -> list[np.ndarray]:
    """The epoch's optimiser steps, each an array of up to `global_batch` group indices.

    Every group is in exactly one step; when the groups do not fill the last step, that step
    is smaller. Seeded by (seed, epoch) only, so the plan is the same for any number of
    processes and after a resume. Length grouping sorts windows of 50 steps by length, then
    shuffles the step order.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if not length_grouping:
        return _split(order, global_batch)
    window = global_batch * 50
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        order[start : start + window] = chunk[np.argsort(-lengths[chunk], kind="stable")]
    steps = _split(order, global_batch)
    return [steps[i] for i in rng.permutation(len(steps))]


def _split(order: np.ndarray, size: int) -> list[np.ndarray]:
    """Consecutive steps of `size` groups, the last one smaller if they do not divide."""
    return [order[i : i + size] for i in range(0, len(order), size)]


def micro_batches(
    step_groups: np.ndarray, lengths: np.ndarray, world: int, rank: int, accum: int
) -> list[np.ndarray]:
    """This process's `accum` micro-batches of one step, similar lengths together.

    A step of fewer than `world * accum` groups (an epoch's last) leaves some parts empty;
    every process still gets `accum` parts, the first of them non-empty while the step has
    a group per process.
    """
    ordered = step_groups[np.argsort(-lengths[step_groups], kind="stable")]
    chunks = np.array_split(ordered, world * accum)
    return [chunks[m * world + rank] for m in range(accum)]


def step_batches(
    packed: PackedGroups,
    step_groups: np.ndarray,
    world: int,
    rank: int,
    accum: int,
    pad_id: int,
    layout: BatchLayout = PADDED,
) -> list[Batch]:
    """This process's collated micro-batches of one step, always `accum` of them.

    Every process must run as many forward and backward passes as the others (DDP's
    collectives), so an empty part becomes filler: the step's shortest group, not counted.
    """
    lengths = packed.group_lengths
    parts = micro_batches(step_groups, lengths, world, rank, accum)
    filler = step_groups[np.argsort(lengths[step_groups], kind="stable")[:1]]
    batches = []
    for part in parts:
        batch = collate(packed, part if len(part) else filler, pad_id, layout=layout)
        batch.counted = len(part) > 0
        batches.append(batch)
    return batches


class StepBatches(torch.utils.data.Dataset):
    """Item i: this process's collated micro-batches of step `start + i` of an epoch plan."""

    def __init__(
        self,
        data: PackedGroups,
        plan: list[np.ndarray],
        start: int,
        acc: Accelerator,
        cfg: TrainConfig,
        pad_id: int,
        layout: BatchLayout,
    ) -> None:
        self.data, self.plan, self.start, self.pad_id = data, plan, start, pad_id
        self.world, self.rank, self.accum = acc.num_processes, acc.process_index, cfg.grad_accum
        self.layout = layout

    def __len__(self) -> int:
        return len(self.plan) - self.start

    def __getitem__(self, i: int) -> list[Batch]:
        groups = self.plan[self.start + i]
        return step_batches(
            self.data, groups, self.world, self.rank, self.accum, self.pad_id, self.layout
        )


def data_hash(*packs: PackedGroups) -> str:
    """Identity of the training data, so a checkpoint of other data is never resumed."""
    digest = hashlib.sha256()
    for pack in packs:
        for array in (pack.prompt_values, pack.comp_values, pack.group_offsets, pack.ranks):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]
