"""Packed groups, collate, step plans and micro-batches."""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np
import pytest

from rmcore.model.batches import PackedGroups, collate, pad_sequences
from rmcore.text.tokenize import FEATURES
from rmcore.train.plan import micro_batches, plan_epoch, step_batches

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


MARGINS = [
    [{"better": 1, "worse": 0, "margin": 2.0}],  # a: ranks [1, 0]
    [{"better": 2, "worse": 1, "margin": 0.5}, {"better": 1, "worse": 0, "margin": 9.0}],
    None,  # c: no margins
]


def with_margins(margins: list[Any]) -> datasets.Dataset:
    rows = {**ROWS, "margins": margins}
    return datasets.Dataset.from_dict(
        rows, features=datasets.Features({k: FEATURES[k] for k in rows})
    )


def test_collate_gives_each_pair_its_data_margin() -> None:
    """Margins follow their pairs through selection and batch order; a pair without one gets
    0, and a margin for a pair the ranks do not make (b: 1 is ranked below 0) is not used."""
    packed = PackedGroups.from_dataset(with_margins(MARGINS).select([2, 1, 0]))
    batch = collate(packed, np.array([2, 1]), pad_id=0)  # a (rows 0-1), then b (rows 2-4)
    assert batch.margins is not None
    pairs = zip(batch.better.tolist(), batch.worse.tolist(), strict=True)
    got = dict(zip(pairs, batch.margins.tolist(), strict=True))
    # a: 1 > 0; b (ranks 0, 2, 1): 0 > 1, 0 > 2, 2 > 1
    assert got == {(1, 0): 2.0, (2, 3): 0.0, (2, 4): 0.0, (4, 3): 0.5}
    only_c = collate(packed, np.array([0]), pad_id=0).margins
    assert only_c is not None and only_c.tolist() == [0.0, 0.0]


def test_no_margins_in_the_data_gives_none() -> None:
    for data in (dataset(), with_margins([None, None, None])):
        packed = PackedGroups.from_dataset(data)
        assert collate(packed, np.array([0, 1, 2]), pad_id=0).margins is None


def test_margin_of_a_completion_a_group_lacks_is_refused() -> None:
    bad = [None, [{"better": 0, "worse": 3, "margin": 1.0}], None]  # b has 3 completions
    with pytest.raises(ValueError, match="group 1: margin worse index 3 is not one of its 3"):
        PackedGroups.from_dataset(with_margins(bad))


def test_margin_that_is_not_a_number_is_refused() -> None:
    bad = [None, None, [{"better": 0, "worse": 2, "margin": float("nan")}]]
    with pytest.raises(ValueError, match="group 2: margin nan is not a finite number; fix"):
        PackedGroups.from_dataset(with_margins(bad))


def test_pad_sequences_multiple_of_eight() -> None:
    ids, mask = pad_sequences([[1, 2, 3], list(range(9))], pad_id=7)
    assert ids.shape == (2, 16) and ids[0, 3] == 7 and mask.sum() == 12


@pytest.mark.parametrize("grouping", [True, False])
def test_plan_has_every_group_once_and_is_seeded(grouping: bool) -> None:
    lengths = np.arange(37) % 11
    plan = plan_epoch(lengths, 8, seed=3, epoch=0, length_grouping=grouping)
    assert sorted(len(step) for step in plan) == [5, 8, 8, 8, 8]  # the last step is smaller
    assert sorted(np.concatenate(plan).tolist()) == list(range(37))  # each group exactly once
    again = plan_epoch(lengths, 8, seed=3, epoch=0, length_grouping=grouping)
    assert all(np.array_equal(a, b) for a, b in zip(plan, again, strict=True))
    other = plan_epoch(lengths, 8, seed=3, epoch=1, length_grouping=grouping)
    assert not all(np.array_equal(a, b) for a, b in zip(plan, other, strict=True))
    if grouping:
        spread = [np.ptp(lengths[step]) for step in plan]
        assert np.mean(spread) < np.ptp(lengths)  # length grouping keeps steps homogeneous


def test_plan_of_a_multiple_of_the_batch_has_equal_steps() -> None:
    plan = plan_epoch(np.arange(32) % 5, 8, seed=0, epoch=0)
    assert [len(step) for step in plan] == [8, 8, 8, 8]
    assert sorted(np.concatenate(plan).tolist()) == list(range(32))


def test_micro_batches_partition_a_step_across_processes() -> None:
    lengths = np.arange(16)
    step = np.arange(16)
    parts = [micro_batches(step, lengths, world=2, rank=r, accum=2) for r in range(2)]
    every = np.concatenate([p for rank in parts for p in rank])
    assert sorted(every.tolist()) == list(range(16))
    assert all(len(p) == 4 for rank in parts for p in rank)


@pytest.mark.parametrize(("n", "world", "accum"), [(3, 2, 2), (1, 2, 1), (5, 2, 4), (2, 1, 3)])
def test_a_short_step_still_gives_every_process_accum_parts(n: int, world: int, accum: int) -> None:
    lengths = np.array([5, 3, 8, 1, 4, 2, 7])
    step = np.arange(n)
    parts = [micro_batches(step, lengths, world, r, accum) for r in range(world)]
    assert all(len(rank) == accum for rank in parts)
    every = np.concatenate([p for rank in parts for p in rank])
    assert sorted(every.tolist()) == list(range(n))  # each group once, none repeated
    if n >= world:  # while there is a group per process, each has one
        assert all(len(rank[0]) for rank in parts)


def test_empty_parts_become_uncounted_filler() -> None:
    packed = PackedGroups.from_dataset(dataset())
    step = np.array([0, 1])  # 2 groups, 2 processes x 2 micro-batches
    batches = [step_batches(packed, step, 2, r, 2, pad_id=0) for r in range(2)]
    assert [[b.counted for b in rank] for rank in batches] == [[True, False], [True, False]]
    shortest = collate(packed, np.array([0]), pad_id=0)  # group a: 6 tokens, b: 6, first wins
    for rank in batches:
        assert rank[0].n_groups == 1 and rank[1].n_groups == 1
        assert rank[1].input_ids.tolist() == shortest.input_ids.tolist()
    one = step_batches(packed, np.array([2]), 2, 1, 1, pad_id=0)  # rank 1 has no group at all
    assert [b.counted for b in one] == [False] and one[0].groups_with_pairs == 1
