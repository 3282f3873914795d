"""Long format: one row per completion, grouped by key fields into ranked groups."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmcore.core.config import ConfigError, parse_params
from rmcore.data.io import read_split
from rmcore.data.schema import SPLITS
from tests.data.helpers import Result, ingest, source, write_jsonl

ALL_TRAIN = {"train": 1, "validation": 0, "test": 0}


def _rows(result: Result) -> list[dict]:
    return [row for split in SPLITS for row in read_split(result.layout, split).to_pylist()]


def test_rows_with_the_same_prompt_form_a_group_equal_scores_tie(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Q1?", "response": "a", "score": 3},
        {"prompt": "Q2?", "response": "x", "score": 1},
        {"prompt": "Q1?", "response": "b", "score": 4},
        {"prompt": "Q1?", "response": "c", "score": 3},
        {"prompt": "Q2?", "response": "y", "score": 2},
        {"prompt": "Q3?", "response": "alone", "score": 2},
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    opts = {"prompt": "prompt", "response": "response", "score": "score"}
    result = ingest(tmp_path, [source("in.jsonl", "long", **opts)], split=ALL_TRAIN)
    records = result.source()["records"]
    assert records == {
        "read": 6, "kept": 5, "quarantined": 1,
        "quarantined_by_reason": {"single_completion": 1},
    }  # fmt: skip
    groups = {r["prompt"][0]["content"]: r for r in _rows(result)}
    assert (groups["Q1?"]["completions"], groups["Q1?"]["ranks"]) == (["a", "b", "c"], [1, 0, 1])
    assert groups["Q1?"]["scores"] == [3.0, 4.0, 3.0]
    assert (groups["Q2?"]["completions"], groups["Q2?"]["ranks"]) == (["x", "y"], [1, 0])
    [entry] = result.quarantine
    assert (entry["line"], entry["reason"]) == (6, "single_completion")


def test_group_by_key_fields_and_ranks(tmp_path: Path) -> None:
    rows = [
        {"item": {"id": 7}, "q": "Name a colour.", "r": "Red.", "rank": 1},
        {"item": {"id": 7}, "q": "Name a colour!", "r": "Blue.", "rank": 2},
        {"item": {"id": 8}, "q": "Name a colour.", "r": "Banana.", "rank": 2},
        {"item": {"id": 8}, "q": "Name a colour.", "r": "Green.", "rank": 1},
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    opts = {"prompt": "q", "response": "r", "rank": "rank", "group_by": "item.id"}
    result = ingest(tmp_path, [source("in.jsonl", "long", **opts)], split=ALL_TRAIN)
    got = sorted((r["completions"], r["ranks"]) for r in _rows(result))
    assert got == [(["Banana.", "Green."], [1, 0]), (["Red.", "Blue."], [0, 1])]
    assert result.source()["notes"] == {"groups_with_differing_prompts": 1}


def test_a_bad_row_is_quarantined_alone_and_its_group_keeps_the_rest(tmp_path: Path) -> None:
    rows = [
        {"q": "Q?", "r": "a", "s": 1},
        {"q": "Q?", "r": "b", "s": None},
        {"q": "Q?", "r": "c", "s": 2},
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    opts = {"prompt": "q", "response": "r", "score": "s"}
    result = ingest(tmp_path, [source("in.jsonl", "long", **opts)], split=ALL_TRAIN)
    assert result.reasons() == {"null_field": 1}
    [group] = _rows(result)
    assert (group["completions"], group["ranks"]) == (["a", "c"], [1, 0])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prompt": "q", "response": "r"}, "exactly one of `score` or `rank`"),
        ({"prompt": "q", "response": "r", "score": "s", "rank": "k"}, "exactly one of"),
        ({"prompt": "q", "score": "s"}, "options.response"),
    ],
)
def test_long_options_are_checked(options: dict, message: str) -> None:
    raw = {"data": {"sources": [{"path": "x.jsonl", "format": "long", "options": options}]}}
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)
