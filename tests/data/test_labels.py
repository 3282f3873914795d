"""Several comparisons per record, "not compared", continuous labels and their margins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rmcore.core.formats import MappingOptions, PreferenceOptions
from rmcore.data.adapters.mapping import convert_mapping
from rmcore.data.adapters.transcripts import convert_preference
from rmcore.data.io import read_split
from rmcore.data.records import RecordError
from tests.data.helpers import ingest, source, write_jsonl

THREE = {"q": "Which?", "r": ["a", "b", "c"]}
ORDER = [[0, 1], [1, 2], [0, 2]]


def _opts(**options: Any) -> MappingOptions:
    return MappingOptions.model_validate({"prompt": "q", **options})


def _shape(groups: list) -> list[tuple[list[str], list[int]]]:
    return [(g.completions, g.ranks) for g in groups]


def test_labels_in_a_stated_pair_order_make_one_ranking() -> None:
    options = _opts(responses="r", label="l", pairs=ORDER)
    [group] = convert_mapping({**THREE, "l": [1, 1, 1]}, options)
    assert (group.completions, group.ranks) == (["a", "b", "c"], [0, 1, 2])
    assert group.implied_pairs() == 0  # every pair judged directly


def test_not_compared_is_not_a_tie() -> None:
    """a > b, b > c and (a, c) not compared: a ranking with one implied pair. Read as a tie,
    (a, c) would contradict a > c and break the ranking into pairs."""
    options = _opts(responses="r", label="l", pairs=ORDER, label_none=["n/a"])
    [group] = convert_mapping({**THREE, "l": [1, 1, "N/A"]}, options)
    assert (group.ranks, group.implied_pairs()) == ([0, 1, 2], 1)
    assert group.notes["pairs_not_compared"] == 1
    as_tie = _opts(responses="r", label="l", pairs=ORDER, label_tie=["n/a"])
    assert len(convert_mapping({**THREE, "l": [1, 1, "N/A"]}, as_tie)) == 3  # cyclic: pairs
    direct = _opts(responses="r", label="l", pairs=ORDER, label_none=["n/a"], merge_implied=False)
    pairs = convert_mapping({**THREE, "l": [1, 1, "N/A"]}, direct)
    assert _shape(pairs) == [(["a", "b"], [0, 1]), (["b", "c"], [0, 1])]
    with pytest.raises(RecordError) as err:
        convert_mapping({**THREE, "l": ["n/a"] * 3}, options)
    assert err.value.rejection.reason == "not_compared"


def test_explicit_comparisons_as_objects_or_lists() -> None:
    options = _opts(responses="r", comparisons="c", comparison_keys=["x", "y", "win"])
    record: dict[str, Any] = {
        **THREE,
        "c": [{"x": 2, "y": 0, "win": 1}, {"x": 1, "y": 2, "win": 2}],
    }
    [group] = convert_mapping(record, options)  # c > a, c > b: a and b share rank 1, no pair
    assert (group.completions, group.ranks) == (["c", "a", "b"], [0, 1, 1])
    record = {**THREE, "c": [[0, 1, 1], [1, 2, 0], [0, 2, 1]]}  # a > b, b = c, a > c
    [group] = convert_mapping(record, _opts(responses="r", comparisons="c"))
    assert (group.completions, group.ranks) == (["a", "b", "c"], [0, 1, 1])
    with pytest.raises(RecordError) as err:
        convert_mapping({**THREE, "c": [[0, 3, 1]]}, _opts(responses="r", comparisons="c"))
    assert (err.value.rejection.field, err.value.rejection.reason) == ("c[0][1]", "invalid_value")


@pytest.mark.parametrize(
    ("scale", "band", "value", "ranks", "margin"),
    [
        ((1, 2), 0.0, 1.2, [0, 1], 0.3),  # a probability-like 1..2: 1 = first better
        ((1, 2), 0.0, 1.9, [1, 0], 0.4),
        ((-3, 3), 0.0, 2, [1, 0], 2.0),  # HelpSteer-style strength: -3 first ... 3 second
        ((-3, 3), 0.5, -0.5, [0, 0], None),  # inside the tie band
        ((1, 0), 0.1, 0.8, [0, 1], 0.3),  # P(first better), reversed ends
    ],
)
def test_continuous_labels_give_direction_tie_and_margin(
    scale: tuple, band: float, value: float, ranks: list[int], margin: float | None
) -> None:
    options = _opts(responses=["a", "b"], label="p", label_scale=scale, tie_band=band)
    [group] = convert_mapping({"q": "?", "a": "x", "b": "y", "p": value}, options)
    assert group.ranks == ranks
    if margin is None:
        assert group.margins is None
    else:
        [(better, worse, got)] = group.margins or []
        assert (better, worse) == ((0, 1) if ranks == [0, 1] else (1, 0))
        assert got == pytest.approx(margin)
    with pytest.raises(RecordError, match="outside the scale"):
        convert_mapping({"q": "?", "a": "x", "b": "y", "p": 7}, options)


def test_margins_reach_the_splits_and_merged_groups_keep_them(tmp_path: Path) -> None:
    rows = [
        {"q": "P?", "a": "x", "b": "y", "p": -2},  # x > y, margin 2
        {"q": "P?", "a": "y", "b": "z", "p": -1},  # y > z, margin 1
        {"q": "Q?", "a": "u", "b": "v", "p": 3},  # v > u, margin 3
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    opts: dict[str, Any] = {
        "prompt": "q",
        "responses": ["a", "b"],
        "label": "p",
        "label_scale": [-3, 3],
    }
    result = ingest(
        tmp_path,
        [source("in.jsonl", **opts, merge_pairs=True)],
        split={"train": 1, "validation": 0, "test": 0},
    )
    rows_out = {
        r["prompt"][0]["content"]: r for r in read_split(result.layout, "train").to_pylist()
    }
    merged = rows_out["P?"]
    assert (merged["completions"], merged["ranks"]) == (["x", "y", "z"], [0, 1, 2])
    assert merged["margins"] == [
        {"better": 0, "worse": 1, "margin": 2.0},
        {"better": 1, "worse": 2, "margin": 1.0},
    ]
    assert rows_out["Q?"]["margins"] == [{"better": 1, "worse": 0, "margin": 3.0}]
    section = result.source()
    assert (section["pairs_kept"], section["pairs_kept_direct"], section["pairs_kept_implied"]) == (
        4,
        3,
        1,  # x > z is implied by x > y > z
    )


def test_merge_implied_false_keeps_only_direct_comparisons(tmp_path: Path) -> None:
    rows = [{"q": "P?", "a": "x", "b": "y", "l": 1}, {"q": "P?", "a": "y", "b": "z", "l": 1}]
    write_jsonl(tmp_path / "in.jsonl", rows)
    opts: dict[str, Any] = {"prompt": "q", "responses": ["a", "b"], "label": "l"}
    result = ingest(tmp_path, [source("in.jsonl", **opts, merge_pairs=True, merge_implied=False)])
    section = result.source()
    assert section["groups"]["kept_by_k"] == {"2": 2}
    assert (section["pairs_kept_direct"], section["pairs_kept_implied"]) == (2, 0)
    assert section["notes"] == {"transitive_pairs": 2}


def test_preference_keeps_trl_margin_and_scores() -> None:
    row = {"prompt": "2+2?", "chosen": "4", "rejected": "5", "margin": 1.5}
    [group] = convert_preference(row, PreferenceOptions(margin="margin"))
    assert group.margins == [(0, 1, 1.5)]
    options = PreferenceOptions(scores=("score_chosen", "score_rejected"))
    base = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}
    [group] = convert_preference({**base, "score_chosen": 8, "score_rejected": 3}, options)
    assert (group.ranks, group.scores) == ([0, 1], [8.0, 3.0])
    [group] = convert_preference({**base, "score_chosen": 5, "score_rejected": 5}, options)
    assert group.ranks == [0, 0]  # a tie: quarantined as all_tied by the ingest
    with pytest.raises(RecordError, match="below the rejected one"):
        convert_preference({**base, "score_chosen": 2, "score_rejected": 5}, options)
