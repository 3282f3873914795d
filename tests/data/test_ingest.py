from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from rmcore import stages
from rmcore.core.config import ConfigError, load_params, parse_params
from rmcore.core.paths import Layout
from rmcore.data.io import read_split
from rmcore.data.records import IngestError
from rmcore.data.schema import GROUP_SCHEMA, SPLITS
from tests.conftest import REPO_ROOT
from tests.data.helpers import ingest, pair, source, write_jsonl


def test_ingest_stage_on_default_params(tmp_path: Path) -> None:
    """The repository's params and sample: Parquet splits, report and quarantine."""
    shutil.copytree(REPO_ROOT / "data" / "sample", tmp_path / "data" / "sample")
    layout = Layout(tmp_path)
    summary = stages.ingest(load_params(REPO_ROOT / "params.yaml"), layout)
    report = json.loads(layout.ingest_report.read_text())
    sample = report["sources"]["sample"]
    assert sample["records"]["read"] == summary["totals"]["records_read"] > 1000
    assert sample["records"]["kept"] + sample["records"]["quarantined"] == sample["records"]["read"]
    assert set(sample["groups"]["kept_by_k"]) == {"2", "3", "4"}
    total = 0
    for split in SPLITS:
        table = read_split(layout, split)
        assert table.schema.equals(GROUP_SCHEMA)
        assert pq.read_schema(layout.split_file(split)).equals(GROUP_SCHEMA)
        assert set(table.column("split").to_pylist()) <= {split}
        total += table.num_rows
        assert report["splits"][split]["groups"] == table.num_rows
    assert total == sample["groups"]["kept"]
    assert layout.quarantine.exists()
    assert json.loads(json.dumps(summary)) == summary  # JSON-able


def test_read_split_without_ingest_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="run the ingest stage first"):
        read_split(Layout(tmp_path), "train")


def test_rows_round_trip(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"q": "Hi?", "r": ["a", "b", "c"], "s": [0.1, 0.9, 0.1]}])
    options = {"prompt": "q", "responses": "r", "scores": "s"}
    result = ingest(
        tmp_path, [source("in.jsonl", **options)], split={"train": 1, "validation": 0, "test": 0}
    )
    [row] = read_split(result.layout, "train").to_pylist()
    assert row["prompt"] == [{"role": "user", "content": "Hi?"}]
    assert (row["completions"], row["ranks"], row["scores"]) == (
        ["a", "b", "c"],
        [1, 0, 1],
        [0.1, 0.9, 0.1],
    )
    assert row["source"] == "src" and len(row["group_id"]) == 24


def test_group_entries_for_rejected_groups_of_kept_records(tmp_path: Path) -> None:
    tree = {
        "prompt": {
            "text": "Hi",
            "role": "prompter",
            "replies": [
                {"text": "A", "role": "assistant", "rank": 0, "replies": [
                    {"text": "More?", "role": "prompter", "replies": [
                        {"text": "only", "role": "assistant", "rank": None, "replies": []}]}]},
                {"text": "B", "role": "assistant", "rank": 1, "replies": []},
            ],
        }
    }  # fmt: skip
    write_jsonl(
        tmp_path / "t.jsonl", [tree, {"prompt": {"text": "x", "role": "prompter", "replies": []}}]
    )
    result = ingest(tmp_path, [source("t.jsonl", "oasst")])
    assert result.source()["records"] == {
        "read": 2, "kept": 1, "quarantined": 1, "quarantined_by_reason": {"no_reply_groups": 1}
    }  # fmt: skip
    assert result.source()["groups"]["quarantined_by_reason"] == {"single_completion": 1}
    units = [(e["unit"], e["reason"], e["line"]) for e in result.quarantine]
    assert units == [("group", "single_completion", 1), ("record", "no_reply_groups", 2)]
    assert result.quarantine[0]["data"]["location"] == "prompt.replies[0].replies[0].replies"


def test_merged_records_are_counted_one_by_one(tmp_path: Path) -> None:
    rows = [pair("P", "a", "b"), pair("P", "b", "c"), pair("P", "a", "c"), pair("Q", "x", "y", 0)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    options: dict[str, Any] = {
        "prompt": "q",
        "responses": ["a", "b"],
        "label": "label",
        "merge_pairs": True,
    }
    result = ingest(tmp_path, [source("in.jsonl", **options)])
    assert result.source()["records"]["kept"] == 3
    assert result.reasons() == {"all_tied": 1}
    assert result.source()["groups"]["kept_by_k"] == {"3": 1}
    assert result.source()["pairs_kept"] == 3


def test_tie_policy_drop_and_quarantine(tmp_path: Path) -> None:
    rows = [
        {"q": "Hi?", "r": ["a", "b", "c"], "k": [0, 1, 1]},
        {"q": "Yo?", "r": ["a", "b"], "k": [0, 1]},
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    options = {"prompt": "q", "responses": "r", "ranks": "k"}
    dropped = ingest(tmp_path, [source("in.jsonl", **options)], tie_policy="drop")
    assert dropped.source()["completions_removed_from_kept_groups"] == {"tie_dropped": 1}
    quarantined = ingest(tmp_path, [source("in.jsonl", **options)], tie_policy="quarantine")
    assert quarantined.reasons() == {"tie": 1}


def test_several_sources_and_globs(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a" / "1.jsonl", [pair("A?", "x", "y")])
    write_jsonl(tmp_path / "a" / "2.jsonl.gz", [pair("B?", "x", "y"), "{bad"], gz=True)
    (tmp_path / "b.csv").write_text("q,a,b,label\nC?,x,y,2\n")
    result = ingest(tmp_path, [source("a/*.jsonl*", name="one"), source("b.csv", name="two")])
    assert result.source("one")["files"] == ["a/1.jsonl", "a/2.jsonl.gz"]
    assert result.report["totals"] == {
        "records_read": 4, "records_kept": 3, "records_quarantined": 1,
        "groups_kept": 3, "pairs_kept": 3,
    }  # fmt: skip
    assert result.quarantine[0]["file"] == "a/2.jsonl.gz"


def test_wrong_option_name_fails_at_load_with_the_key(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["data"]["sources"][0]["options"]["respones"] = "completions"
    with pytest.raises(ConfigError, match=r"data\.sources\.0.*options\.respones: unknown option"):
        parse_params(raw)
    raw["data"]["sources"][0]["format"] = "csvish"
    with pytest.raises(ConfigError, match=r"unknown format `csvish`"):
        parse_params(raw)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prompt": "q", "messages": "m", "responses": "r", "ranks": "k"}, "not both"),
        (
            {"prompt": "q", "responses": "r"},
            "exactly one of `label`, `ranks`, `scores` or `comparisons`",
        ),
        (
            {"prompt": "q", "responses": ["a", "b", "c"], "label": "l"},
            "exactly two response fields",
        ),
        ({"prompt": "q", "responses": ["a", "b"], "ranks": "k"}, "both be single list fields"),
        (
            {"prompt": "q", "responses": ["a", "b"], "label": "l", "label_first": [0]},
            "label value 0 is in both `label_first` and `label_tie`",
        ),
        (
            {"prompt": "q", "responses": "r", "ranks": "k", "higher_is_better": "maybe"},
            "options.higher_is_better",
        ),
    ],
)
def test_mapping_options_are_checked(options: dict, message: str) -> None:
    raw = {"data": {"sources": [{"path": "x.jsonl", "format": "mapping", "options": options}]}}
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


def test_source_names_must_be_unique() -> None:
    src = {"path": "x.jsonl", "format": "hh_rlhf"}
    with pytest.raises(ConfigError, match="source names must be unique"):
        parse_params({"data": {"sources": [src, src]}})
