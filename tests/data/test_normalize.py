from __future__ import annotations

import pytest

from rmcore.data.merge import merge_pairs
from rmcore.data.normalize import TiePolicy, clean, finalize, normalize_text
from rmcore.data.records import Candidate, RecordRef, Rejection

PROMPT = [{"role": "user", "content": "Q?"}]


def _cand(completions: list[str], ranks: list[int], prompt: list | None = None) -> Candidate:
    return Candidate(prompt or PROMPT, completions, ranks, refs=[RecordRef("f", 0, 1)])


def test_whitespace_is_normalised_but_indentation_kept() -> None:
    text = "  Hello   world  \r\n\r\n\r\n\r\n    code()\t\n"
    assert normalize_text(text) == "Hello world\n\n    code()"


def test_clean_removes_empty_and_duplicate_completions_and_renumbers() -> None:
    result = clean(_cand(["a", " ", "a ", "b", "c"], [0, 1, 0, 4, 4]), 100)
    assert isinstance(result, Candidate)
    assert (result.completions, result.ranks) == (["a", "b", "c"], [0, 1, 1])
    assert result.removed == {"empty_completion": 1, "duplicate_completion": 1}


def test_clean_keeps_scores_aligned() -> None:
    cand = _cand(["a", "", "b"], [0, 1, 2])
    cand.scores = [3.0, 2.0, 1.0]
    result = clean(cand, 100)
    assert isinstance(result, Candidate)
    assert result.scores == [3.0, 1.0]


def test_clean_reasons() -> None:
    assert clean(_cand(["a", "a"], [0, 1]), 100) == Rejection(
        "conflicting_duplicate",
        "completions[1]",
        "identical to completions[0] but ranked differently",
    )
    too_long = clean(_cand(["a" * 11, "b"], [0, 1]), 10)
    assert isinstance(too_long, Rejection)
    assert (too_long.reason, too_long.field) == ("text_too_long", "completions[0]")
    single = clean(_cand(["a"], [0]), 100)
    assert isinstance(single, Rejection)
    assert single.reason == "single_completion"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("keep", ([0, 1, 1], 3)), ("drop", ([0, 1], 2)), ("quarantine", "tie")],
)
def test_tie_policy(policy: TiePolicy, expected: object) -> None:
    result = finalize(_cand(["a", "b", "c"], [0, 1, 1]), policy)
    if isinstance(expected, str):
        assert isinstance(result, Rejection)
        assert result.reason == expected
    else:
        assert isinstance(result, Candidate)
        assert (result.ranks, len(result.completions)) == expected


def test_all_tied_is_always_quarantined() -> None:
    result = finalize(_cand(["a", "b"], [0, 0]), "keep")
    assert isinstance(result, Rejection)
    assert result.reason == "all_tied"


def _pairs(*judgements: tuple[str, str, str]) -> list[Candidate]:
    """(a, b, '>' | '<' | '=') pairs of one prompt."""
    ranks = {">": [0, 1], "<": [1, 0], "=": [0, 0]}
    return [_cand([a, b], ranks[op]) for a, op, b in judgements]


def _ranking(group: Candidate) -> dict[str, int]:
    return dict(zip(group.completions, group.ranks, strict=True))


def test_consistent_pairs_merge_into_one_ranking_with_ties() -> None:
    [group] = merge_pairs(
        _pairs(("a", ">", "b"), ("b", "=", "c"), ("a", ">", "c"), ("c", ">", "d"))
    )
    assert _ranking(group) == {"a": 0, "b": 1, "c": 1, "d": 2}
    assert group.notes["merged_groups"] == 1
    assert len(group.refs) == 4


def test_transitive_chain_merges() -> None:
    [group] = merge_pairs(_pairs(("a", ">", "b"), ("c", "<", "b")))
    assert _ranking(group) == {"a": 0, "b": 1, "c": 2}


def test_cycle_stays_separate_pairs() -> None:
    out = merge_pairs(_pairs(("a", ">", "b"), ("b", ">", "c"), ("c", ">", "a")))
    assert len(out) == 3
    assert all(c.notes["cyclic_pairs"] == 1 for c in out)


def test_tie_contradicting_a_preference_is_inconsistent() -> None:
    out = merge_pairs(_pairs(("a", "=", "b"), ("a", ">", "b")))
    assert [c.notes["cyclic_pairs"] for c in out] == [1, 1]


def test_unordered_completions_share_a_level_only_without_invented_preferences() -> None:
    # a > b, c > b: a and c are unordered and tie in the ranking (a tie adds no pair)
    [group] = merge_pairs(_pairs(("a", ">", "b"), ("c", ">", "b")))
    assert _ranking(group) == {"a": 0, "b": 1, "c": 0}
    # a > b = c > d: every preference of the ranking follows from the judgements
    [group] = merge_pairs(_pairs(("a", ">", "b"), ("c", ">", "d"), ("b", "=", "c")))
    assert _ranking(group) == {"a": 0, "b": 1, "c": 1, "d": 2}


@pytest.mark.parametrize(
    "judgements",
    [
        (("a", ">", "b"), ("c", ">", "b"), ("c", ">", "d")),  # levels would invent a > d
        (("a", ">", "b"), ("b", "=", "e"), ("c", ">", "d"), ("e", ">", "d")),  # c > b invented
    ],
)
def test_partial_order_is_not_forced_into_a_ranking(judgements: tuple) -> None:
    out = merge_pairs(_pairs(*judgements))
    assert len(out) == len(judgements)
    assert all(c.notes["partial_order_pairs"] == 1 for c in out)


def test_other_prompts_and_groups_pass_through_in_order() -> None:
    other = _cand(["x", "y", "z"], [0, 1, 2])
    pairs = _pairs(("a", ">", "b"), ("b", ">", "c"))
    p2 = _cand(["m", "n"], [0, 1], [{"role": "user", "content": "other"}])
    out = merge_pairs([pairs[0], other, p2, pairs[1]])
    assert [c.completions for c in out] == [["a", "b", "c"], ["x", "y", "z"], ["m", "n"]]
