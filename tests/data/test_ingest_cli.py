"""The bad-input corpus end to end: `python -m rmcore ingest` on a params file listing it.

One run over six sources that mix good records with every kind of bad one; the test reads
what the CLI wrote (report.json, quarantine.jsonl, the Parquet splits) and checks each record's
fate and the accounting kept + quarantined = read, per source and in total. Inputs that cannot
be used at all stop the CLI with exit status 2 and one line naming the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.data.helpers import PAIR_OPTIONS, pair, write_jsonl
from tests.data.test_bad_inputs import HH_GOOD, HH_MISMATCH, LIST_OPTIONS, SCORE_OPTIONS

GOOD = pair("What is two plus two?", "Four.", "Five.")
ONE_MB = "x" * 1_000_000

# source name -> (file, format, options, rows); a bytes/str row is written as it is
CORPUS: dict[str, tuple[str, str, dict[str, Any], list[Any]]] = {
    "pairs": ("in/pairs.jsonl", "mapping", PAIR_OPTIONS, [
        GOOD,
        '{"q": "x", "a": ',
        "[1, 2]",
        pair("Name a colour.", "Red.", "Banana.") | {"a": True},
        {"q": "Hi?", "a": "Hello."},
        pair("Hi?", "", "Hello."),
        pair("Yo?", " \n\t ", "Hello."),
        pair("   ", "A.", "B."),
        b'{"q": "caf\xe9", "a": "x", "b": "y", "label": 1}',
        pair("Long?", ONE_MB, "short"),
        GOOD,
        pair("Tie?", "A.", "B.", 0),
        pair("Name a primary colour.", "Red.", "Banana."),
    ]),
    "lists": ("in/lists.jsonl", "mapping", LIST_OPTIONS, [
        {"q": "Pick one.", "r": ["A.", "B.", "C."], "k": [0, 1, 2]},
        {"q": "Only one?", "r": ["A."], "k": [0]},
    ]),
    "scores": ("in/scores.jsonl", "mapping", SCORE_OPTIONS, [
        {"q": "Rate these.", "r": ["A.", "B."], "s": [1.0, 0.5]},
        '{"q": "NaN?", "r": ["A.", "B."], "s": [NaN, 1]}',
        '{"q": "Inf?", "r": ["A.", "B."], "s": [1, Infinity]}',
    ]),
    "hh": ("in/hh.jsonl", "hh_rlhf", {}, [
        HH_GOOD,
        HH_MISMATCH,
        {"chosen": "hello", "rejected": "bye"},
    ]),
    "csv": ("in/rows.csv", "mapping", PAIR_OPTIONS, [
        "q,a,b,label",
        "Hi there?,Hello.,Go away.,1",
        "Yo?,A.,B.,1,extra",
    ]),
    "cycle": ("in/cycle.jsonl", "mapping", {**PAIR_OPTIONS, "merge_pairs": True}, [
        pair("P?", "a", "b"),
        pair("P?", "b", "c"),
        pair("P?", "c", "a"),
    ]),
}  # fmt: skip

# (source, line) -> (reason, field) of every record expected in the quarantine
QUARANTINED = {
    ("pairs", 2): ("malformed_json", None),
    ("pairs", 3): ("not_an_object", None),
    ("pairs", 4): ("wrong_type", "a"),
    ("pairs", 5): ("missing_field", "b"),
    ("pairs", 6): ("empty_completion", "completions"),
    ("pairs", 7): ("empty_completion", "completions"),
    ("pairs", 8): ("empty_prompt", "prompt"),
    ("pairs", 9): ("not_utf8", None),
    ("pairs", 10): ("text_too_long", "completions[0]"),
    ("pairs", 11): ("duplicate_group", None),
    ("pairs", 12): ("all_tied", "ranks"),
    ("lists", 2): ("single_completion", "completions"),
    ("scores", 2): ("invalid_score", "s[0]"),
    ("scores", 3): ("invalid_score", "s[1]"),
    ("hh", 2): ("prompt_mismatch", "rejected"),
    ("hh", 3): ("bad_transcript", "chosen"),
    ("csv", 3): ("wrong_field_count", None),
}
READ = {"pairs": 13, "lists": 2, "scores": 3, "hh": 3, "csv": 2, "cycle": 3}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def _write_corpus(root: Path, names: list[str] | None = None) -> Path:
    sources = []
    for name in names or list(CORPUS):
        path, fmt, options, rows = CORPUS[name]
        if path.endswith(".csv"):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text("\n".join(rows) + "\n", encoding="utf-8")
        else:
            write_jsonl(root / path, rows)
        sources.append({"path": path, "format": fmt, "name": name, "options": options})
    params = root / "params.yaml"
    data = {"sources": sources, "max_quarantined_fraction": 1.0}  # the corpus is mostly bad
    params.write_text(yaml.safe_dump({"data": data}), encoding="utf-8")
    return params


def _ingest(root: Path, params: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rmcore", "ingest", "--params", str(params)]
    return subprocess.run(
        [*command, "--root", str(root)], env=_env(), capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad-corpus")
    done = _ingest(root, _write_corpus(root))
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "data" / "normalized"


def test_every_record_is_kept_or_quarantined_with_its_reason(ingested: Path) -> None:
    report = json.loads((ingested / "report.json").read_text())
    entries = [
        json.loads(line) for line in (ingested / "quarantine.jsonl").read_text().splitlines()
    ]
    records = [e for e in entries if e["unit"] == "record"]
    files = {name: CORPUS[name][0] for name in CORPUS}
    got = {(e["source"], e["line"]): (e["reason"], e["field"]) for e in records}
    assert got == QUARANTINED
    for entry in records:
        assert entry["file"] == files[entry["source"]] and entry["fix"], entry
    for name, read in READ.items():
        counts = report["sources"][name]["records"]
        quarantined = sum(1 for source, _ in QUARANTINED if source == name)
        assert counts["read"] == read, name
        assert counts["quarantined"] == quarantined, name
        assert counts["kept"] + counts["quarantined"] == counts["read"], name
    assert report["sources"]["cycle"]["notes"]["cyclic_pairs"] == 3  # kept, and counted
    totals = report["totals"]
    assert totals["records_read"] == sum(READ.values()) == 26
    assert totals["records_quarantined"] == len(QUARANTINED) == 17
    assert totals["records_kept"] + totals["records_quarantined"] == totals["records_read"]


def test_the_splits_hold_the_kept_groups_and_the_quarantine_stays_small(ingested: Path) -> None:
    report = json.loads((ingested / "report.json").read_text())
    rows = sum(pq.read_metadata(ingested / f"{s}.parquet").num_rows for s in report["splits"])
    assert rows == report["totals"]["groups_kept"] == 9  # 2 + 1 + 1 + 1 + 1 + 3 merged pairs
    assert (ingested / "quarantine.jsonl").stat().st_size < 50_000  # the 1 MB text is cut
    assert not list(ingested.glob(".*"))  # no temporary file left


@pytest.mark.parametrize(
    ("kind", "name", "content", "message"),
    [
        ("empty file", "in/empty.jsonl", b"", "in/empty.jsonl contains no records"),
        ("no column", "in/cols.csv", b"q,a,label\nHi?,A.,1\n", "in/cols.csv: no column 'b'"),
        ("not gzip", "in/x.jsonl.gz", b'{"q": 1}\n', "in/x.jsonl.gz: not gzip-compressed"),
    ],
)  # fmt: skip
def test_unusable_file_stops_the_cli_naming_it(
    kind: str, name: str, content: bytes, message: str, tmp_path: Path
) -> None:
    params = _write_corpus(tmp_path, ["pairs"])
    raw = yaml.safe_load(params.read_text())
    raw["data"]["sources"].append({"path": name, "format": "mapping", "options": PAIR_OPTIONS})
    params.write_text(yaml.safe_dump(raw))
    (tmp_path / name).write_bytes(content)
    done = _ingest(tmp_path, params)
    assert done.returncode == 2, done.stderr[-3000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and message in error[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # nothing written


def test_strict_stops_at_the_first_malformed_record_with_file_line_and_field(
    tmp_path: Path,
) -> None:
    params = _write_corpus(tmp_path, ["pairs"])
    raw = yaml.safe_load(params.read_text())
    raw["data"]["strict"] = True
    params.write_text(yaml.safe_dump(raw))
    done = _ingest(tmp_path, params)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "in/pairs.jsonl, line 2" in done.stderr and "malformed_json" in done.stderr
    assert not (tmp_path / "data").exists()
