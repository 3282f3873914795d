"""Packed groups, collate, step plans and micro-batches."""

from __future__ import annotations

import datasets
import numpy as np

from rmcore.batching import PackedGroups, collate, micro_batches, pad_sequences, plan_epoch
from rmcore.tokenize import FEATURES

ROWS = {
    "group_id": ["a", "b", "c"],
    "source": ["s", "s", "s"],
    "ranks": [[1, 0], [0, 2, 1], [0, 0, 1]],
    "prompt_ids": [[101, 5, 6], [101, 7], [101]],
    "completion_ids": [
        [[8, 102], [9, 9, 102]],
        [[10, 102], [11, 102], [12, 12, 12, 102]],
        [[13, 102], [14, 102], [15, 102]],
    ],
}


def dataset() -> datasets.Dataset:
    features = datasets.Features({k: FEATURES[k] for k in ROWS})
    return datasets.Dataset.from_dict(ROWS, features=features)


def test_packed_lengths_and_selection() -> None:
    packed = PackedGroups.from_dataset(dataset().select([2, 0, 1]))
    assert list(packed.k) == [3, 2, 3]
    assert list(packed.group_lengths) == [3, 6, 6]
    assert list(packed.seq_lengths) == [3, 3, 3, 5, 6, 4, 4, 6]


def test_collate_rows_mask_and_pairs() -> None:
    packed = PackedGroups.from_dataset(dataset())
    batch = collate(packed, np.array([1, 2]), pad_id=0)
    assert batch.input_ids.shape == (6, 8)  # longest 6, padded to a multiple of 8
    assert batch.input_ids[2, :6].tolist() == [101, 7, 12, 12, 12, 102]
    assert batch.attention_mask.sum(1).tolist() == [4, 4, 6, 3, 3, 3]
    assert batch.input_ids[3].tolist() == [101, 13, 102, 0, 0, 0, 0, 0]
    pairs = sorted(zip(batch.better.tolist(), batch.worse.tolist(), strict=True))
    # group b (rows 0-2, ranks 0,2,1): 0>2, 0>1, 2>1; group c (rows 3-5, ranks 0,0,1): 3>5, 4>5
    assert pairs == [(0, 1), (0, 2), (2, 1), (3, 5), (4, 5)]
    assert batch.row_group.tolist() == [0, 0, 0, 1, 1, 1]


def test_pad_sequences_multiple_of_eight() -> None:
    ids, mask = pad_sequences([[1, 2, 3], list(range(9))], pad_id=7)
    assert ids.shape == (2, 16) and ids[0, 3] == 7 and mask.sum() == 12


def test_plan_covers_every_group_and_is_seeded() -> None:
    lengths = np.arange(37) % 11
    plan = plan_epoch(lengths, 8, seed=3, epoch=0)
    assert plan.shape == (5, 8)
    assert set(plan.reshape(-1)) == set(range(37))  # 3 wrap-around repeats fill the last step
    assert np.array_equal(plan, plan_epoch(lengths, 8, seed=3, epoch=0))
    assert not np.array_equal(plan, plan_epoch(lengths, 8, seed=3, epoch=1))
    spread = [np.ptp(lengths[step]) for step in plan]
    assert np.mean(spread) < np.ptp(lengths)  # length grouping keeps steps homogeneous


def test_micro_batches_partition_a_step_across_processes() -> None:
    lengths = np.arange(16)
    step = np.arange(16)
    parts = [micro_batches(step, lengths, world=2, rank=r, accum=2) for r in range(2)]
    every = np.concatenate([p for rank in parts for p in rank])
    assert sorted(every.tolist()) == list(range(16))
    assert all(len(p) == 4 for rank in parts for p in rank)
