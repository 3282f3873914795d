"""The bad-input corpus: every kind of broken input and what ingest does with it.

`BAD_INPUTS` is the table (kind, outcome); `python -m tests.data.test_bad_inputs` prints it as
Markdown. Quarantine kinds assert the reason, file, line and field of the entry and that
kept + quarantined = read; error kinds assert that the message names the file (and the line,
field or column) and that nothing is written.
"""

# ruff: noqa: E501
from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rmcore.data.records import IngestError
from tests.data.helpers import ingest, pair, source, write_jsonl

GOOD = pair("What is two plus two?", "Four.", "Five.")
GOOD2 = pair("Name a primary colour.", "Red.", "Banana.")

Build = Callable[[Path], list[dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class Case:
    kind: str
    build: Build
    reason: str | None = None  # quarantine reason expected (None: an error is expected)
    field: str | None = None
    line: int | None = None
    error: str | None = None  # text the error message must contain
    data: dict[str, Any] = dataclasses.field(default_factory=dict)  # extra `data:` params
    kept: int = 1  # records expected kept

    @property
    def outcome(self) -> str:
        if self.error:
            return f"error: `{self.error}...`"
        if self.reason:
            field = f", field `{self.field}`" if self.field else ""
            return f"quarantined as `{self.reason}` (line {self.line}{field})"
        return "kept as separate pairs, counted as `cyclic_pairs`"


def _jsonl(rows: list[Any], **options: Any) -> Build:
    def build(root: Path) -> list[dict[str, Any]]:
        write_jsonl(root / "in.jsonl", rows)
        return [source("in.jsonl", **options)]

    return build


def _raw(name: str, data: bytes, fmt: str = "mapping", **options: Any) -> Build:
    def build(root: Path) -> list[dict[str, Any]]:
        (root / name).write_bytes(data)
        return [source(name, fmt, **options)]

    return build


LIST_OPTIONS = {"prompt": "q", "responses": "r", "ranks": "k"}
SCORE_OPTIONS = {"prompt": "q", "responses": "r", "scores": "s"}
HH_GOOD = {
    "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!",
    "rejected": "\n\nHuman: Hi\n\nAssistant: Go away.",
}
HH_MISMATCH = {
    "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!",
    "rejected": "\n\nHuman: Bye\n\nAssistant: Go away.",
}

BAD_INPUTS = [
    Case("malformed JSON line", _jsonl([GOOD, '{"q": "x", "a": ']), "malformed_json", None, 2),
    Case("JSON line that is not an object", _jsonl([GOOD, "[1, 2]"]), "not_an_object", None, 2),
    Case("wrong type (bool response)", _jsonl([GOOD, {**GOOD2, "a": True}]), "wrong_type", "a", 2),
    Case("missing field", _jsonl([GOOD, {"q": "Hi?", "a": "Hello."}]), "missing_field", "b", 2),
    Case("empty completion", _jsonl([GOOD, pair("Hi?", "", "Hello.")]), "empty_completion", "completions", 2),
    Case("whitespace-only completion", _jsonl([GOOD, pair("Hi?", " \n\t ", "Hello.")]), "empty_completion", "completions", 2),
    Case("whitespace-only prompt", _jsonl([GOOD, pair("   ", "A.", "B.")]), "empty_prompt", "prompt", 2),
    Case("non-UTF-8 bytes", _raw("in.jsonl", json.dumps(GOOD).encode() + b'\n{"q": "caf\xe9", "a": "x", "b": "y", "label": 1}\n'), "not_utf8", None, 2),
    Case("1 MB text (> data.max_chars)", _jsonl([GOOD, pair("Long?", "x" * 1_000_000, "short")]), "text_too_long", "completions[0]", 2),
    Case("duplicate record", _jsonl([GOOD, GOOD]), "duplicate_group", None, 2),
    Case("same pair, order swapped", _jsonl([GOOD, pair("What is two plus two?", "Five.", "Four.", 2)]), "duplicate_group", None, 2),
    Case("identical completions ranked differently", _jsonl([GOOD, pair("Hi?", "Same.", "Same.")]), "conflicting_duplicate", "completions[1]", 2),
    Case("every completion ties", _jsonl([GOOD, pair("Hi?", "A.", "B.", 0)]), "all_tied", "ranks", 2),
    Case("unknown label value", _jsonl([GOOD, pair("Hi?", "A.", "B.", 7)]), "invalid_value", "label", 2),
    Case("group with k = 1", _jsonl([{"q": "Hi?", "r": ["A.", "B."], "k": [0, 1]}, {"q": "Yo?", "r": ["A."], "k": [0]}], **LIST_OPTIONS), "single_completion", "completions", 2),
    Case("NaN score", _jsonl([{"q": "Hi?", "r": ["A.", "B."], "s": [1, 0]}, '{"q": "Yo?", "r": ["A.", "B."], "s": [NaN, 1]}'], **SCORE_OPTIONS), "invalid_score", "s[0]", 2),
    Case("infinite score", _jsonl([{"q": "Hi?", "r": ["A.", "B."], "s": [1, 0]}, '{"q": "Yo?", "r": ["A.", "B."], "s": [1, Infinity]}'], **SCORE_OPTIONS), "invalid_score", "s[1]", 2),
    Case("hh-rlhf prompts do not match", _jsonl([HH_GOOD, HH_MISMATCH], fmt="hh_rlhf"), "prompt_mismatch", "rejected", 2),
    Case("hh-rlhf text without turns", _jsonl([HH_GOOD, {"chosen": "hello", "rejected": "bye"}], fmt="hh_rlhf"), "bad_transcript", "chosen", 2),
    Case("CSV row with too many cells", _raw("in.csv", b"q,a,b,label\nHi?,A.,B.,1\nYo?,A.,B.,1,extra\n"), "wrong_field_count", None, 3),
    Case(
        "cyclic preferences (a>b, b>c, c>a)",
        _jsonl([pair("P?", "a", "b"), pair("P?", "b", "c"), pair("P?", "c", "a")], prompt="q", responses=["a", "b"], label="label", merge_pairs=True),
        kept=3,
        reason="",
    ),
    Case("CSV with a missing column", _raw("in.csv", b"q,a,label\nHi?,A.,1\n"), error="in.csv: no column 'b'"),
    Case("empty file", _raw("in.jsonl", b""), error="in.jsonl contains no records"),
    Case("blank-lines-only file", _raw("in.jsonl", b"\n\n  \n"), error="in.jsonl contains no records"),
    Case("not gzip although named .gz", _raw("in.jsonl.gz", b'{"q": 1}\n'), error="in.jsonl.gz: not gzip-compressed"),
    Case("truncated gzip", _raw("in.jsonl.gz", gzip.compress(json.dumps(GOOD).encode() * 50)[:40]), error="in.jsonl.gz: the gzip stream is truncated"),
    Case("broken JSON array", _raw("in.json", b'[\n {"q": "Hi?", "a": "A", "b": "B", "label": 1},\n {"q": \n]'), error="in.json, line 4 column 1: invalid JSON"),
    Case("missing file", lambda root: [source("nope.jsonl")], error="data file not found: nope.jsonl"),
    Case("glob matching nothing", lambda root: [source("nothing/*.jsonl")], error="nothing/*.jsonl` matches no file"),
    Case("malformed line with strict: true", _jsonl([GOOD, {**GOOD2, "b": 3}]), data={"strict": True}, error="in.jsonl, line 2, field `b`: wrong_type"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c.kind for c in BAD_INPUTS])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    sources = case.build(tmp_path)
    if case.error:
        with pytest.raises(IngestError) as err:
            ingest(tmp_path, sources, **case.data)
        assert case.error in str(err.value), str(err.value)
        assert not (tmp_path / "data" / "normalized" / "report.json").exists()
        return
    result = ingest(tmp_path, sources, **case.data)
    records = result.source()["records"]
    assert result.balanced()
    assert records["kept"] == case.kept
    if not case.reason:  # kept by design (cycles): counted, not quarantined
        assert records["quarantined"] == 0
        assert result.source()["notes"]["cyclic_pairs"] == 3
        assert result.source()["groups"]["kept"] == 3
        return
    assert result.reasons() == {case.reason: 1}
    [entry] = [e for e in result.quarantine if e["unit"] == "record"]
    assert entry["reason"] == case.reason
    assert entry["line"] == case.line
    assert entry["field"] == case.field
    assert entry["file"].startswith("in.")
    assert entry["fix"]


def markdown_table() -> str:
    rows = ["| bad input | what ingest does |", "|---|---|"]
    rows += [f"| {case.kind} | {case.outcome} |" for case in BAD_INPUTS]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
