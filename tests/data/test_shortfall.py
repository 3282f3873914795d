"""A source that keeps nothing (or too little) stops the ingest with one line per source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rmcore.data.records import IngestError
from tests.conftest import REPO_ROOT
from tests.data.helpers import ingest, pair, source, write_jsonl

WRONG_FIELDS: dict[str, Any] = {"prompt": "question", "responses": ["a", "b"], "label": "label"}


def test_a_source_that_keeps_nothing_stops_with_reasons_first_record_and_fix(
    tmp_path: Path,
) -> None:
    write_jsonl(tmp_path / "good.jsonl", [pair("Hi?", "Hello.", "Go away.")])
    write_jsonl(tmp_path / "bad.jsonl", [pair("A?", "x", "y"), pair("B?", "x", "y")])
    sources = [source("good.jsonl", name="good"), source("bad.jsonl", name="bad", **WRONG_FIELDS)]
    with pytest.raises(IngestError) as err:
        ingest(tmp_path, sources)
    lines = str(err.value).splitlines()
    assert len(lines) == 2, lines  # the headline, then one line for the one failing source
    assert "source `bad` kept no record: kept 0 of 2" in lines[1]
    assert "top reasons: missing_field 2" in lines[1]
    assert "first: bad.jsonl:1 field `question`" in lines[1]
    assert "fix: add the field, or point the source options at its name" in lines[1]
    normalized = tmp_path / "data" / "normalized"
    assert not list(normalized.glob("*.parquet"))  # no split for the next stage
    report = json.loads((normalized / "report.json").read_text())
    assert report["sources"]["bad"]["records"]["quarantined"] == 2  # the report is there to read
    assert len((normalized / "quarantine.jsonl").read_text().splitlines()) == 2


def test_more_than_the_fraction_quarantined_stops_unless_raised(tmp_path: Path) -> None:
    rows = [pair("A?", "x", "y"), pair("B?", "x", "y", 0), pair("C?", "x", "y", 0)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    with pytest.raises(IngestError, match=r"quarantined more than 0.5 of its records: kept 1 of 3"):
        ingest(tmp_path, [source("in.jsonl")])
    result = ingest(tmp_path, [source("in.jsonl")], max_quarantined_fraction=0.7)
    assert result.source()["records"] == {
        "read": 3, "kept": 1, "quarantined": 2, "quarantined_by_reason": {"all_tied": 2}
    }  # fmt: skip
    with pytest.raises(IngestError, match="kept no record"):  # 1.0 still stops an empty source
        write_jsonl(tmp_path / "in.jsonl", rows[1:])
        ingest(tmp_path, [source("in.jsonl")], max_quarantined_fraction=1.0)


def test_the_cli_exits_2_with_one_line_per_source(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [pair("A?", "x", "y", 0)])
    write_jsonl(tmp_path / "b.jsonl", [{"q": "B?", "a": "x", "b": None, "label": 1}])
    write_jsonl(tmp_path / "c.jsonl", [pair("C?", "x", "y")])
    sources = [source(f"{n}.jsonl", name=n) for n in "abc"]
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"sources": sources}}))
    command = [sys.executable, "-m", "rmcore", "ingest", "--params", str(params)]
    done = subprocess.run(
        [*command, "--root", str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    failing = [line for line in done.stderr.splitlines() if line.startswith("  source `")]
    assert [line.split("`")[1] for line in failing] == ["a", "b"]
    assert "all_tied 1; first: a.jsonl:1" in failing[0]
    assert "first: b.jsonl:1 field `b`" in failing[1]


def test_records_left_out_by_where_are_quarantined_but_not_held_against_the_source(
    tmp_path: Path,
) -> None:
    rows = [pair(f"Q{n}?", "x", "y") | {"turn": 1 if n == 0 else 2} for n in range(4)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    opts: dict[str, Any] = {
        "prompt": "q",
        "responses": ["a", "b"],
        "label": "label",
        "where": {"turn": 1},
    }
    result = ingest(tmp_path, [source("in.jsonl", **opts)])
    assert result.source()["records"]["quarantined_by_reason"] == {"excluded": 3}
    entry = result.quarantine[0]
    assert (entry["reason"], entry["field"], entry["detail"]) == (
        "excluded",
        "turn",
        "options.where: 2, not 1",
    )
    with pytest.raises(IngestError, match="kept no record"):
        ingest(tmp_path, [source("in.jsonl", **{**opts, "where": {"turn": [3, 4]}})])
