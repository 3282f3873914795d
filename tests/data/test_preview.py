"""`rmpipe ingest --preview N`: each source's first groups and accounting, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT
from tests.data.helpers import pair, source, write_jsonl


def _preview(root: Path, sources: list[dict], n: int = 1) -> subprocess.CompletedProcess[str]:
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"sources": sources}}))
    command = [sys.executable, "-m", "rmcore", "ingest", "--params", str(params)]
    return subprocess.run(
        [*command, "--root", str(root), "--preview", str(n)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_preview_prints_groups_and_accounting_and_writes_nothing(tmp_path: Path) -> None:
    rows = [pair("What is 2+2?", "Four.", "Five."), pair("Sky?", "Blue.", "Green.", 2), "{bad"]
    write_jsonl(tmp_path / "in" / "pairs.jsonl", rows)
    done = _preview(tmp_path, [source("in/pairs.jsonl", name="pairs")])
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "source `pairs` (mapping): read 3, kept 2, quarantined 1 (malformed_json 1)" in out
    assert "groups 2 (k=2: 2); pairs 2" in out
    assert "group 1 (" in out and "group 2 (" not in out  # N = 1
    assert "user: What is 2+2?" in out
    assert "[0] rank 0: Four." in out and "[1] rank 1: Five." in out
    assert "from in/pairs.jsonl, line 1" in out
    assert "first quarantined: in/pairs.jsonl:3: malformed_json" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "params.yaml"]  # nothing written


def test_preview_of_a_source_that_keeps_nothing_exits_2_with_its_line(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [pair("A?", "x", "y"), pair("B?", "x", "y")])
    wrong = source("in.jsonl", prompt="question", responses=["a", "b"], label="label")
    done = _preview(tmp_path, [wrong])
    assert done.returncode == 2
    assert "would stop the ingest: source `src` kept no record" in done.stdout
    assert "fix: add the field" in done.stdout
    assert not (tmp_path / "data").exists()
