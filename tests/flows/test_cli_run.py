"""`rmpipe run` is the flow: the same run as `python -m flows.pipeline`, against a real Prefect
server on a small DVC project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.flows.conftest import runs

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _rmpipe_run(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # flows.cli is the `rmpipe` console script's module
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--root", str(project), "--no-validate", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_rmpipe_run_runs_the_flow_with_its_options(
    project: Path, prefect_env: dict[str, str]
) -> None:
    before = (project / "params.yaml").read_bytes()
    done = _rmpipe_run(project, prefect_env, "--set", "prepare.rows=3", "--no-push")
    assert done.returncode == 0, done.stdout + done.stderr
    assert runs(project) == ["prepare", "train", "register"]
    assert "Reproduced: prepare, train, register" in done.stdout
    assert (project / "data" / "prepared" / "rows.txt").read_text().split() == ["0", "1", "2"]
    assert "dvc push: skipped (push disabled)" in done.stdout  # --no-push reached the flow
    assert (project / "params.yaml").read_bytes() == before  # the override lasted one run


def test_rmpipe_run_rejects_a_typo_before_starting(
    project: Path, prefect_env: dict[str, str]
) -> None:
    done = _rmpipe_run(project, prefect_env, "--set", "prepare.row=3")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("pipeline not started: override 'prepare.row=3'")
    assert "no key 'row' under prepare" in done.stderr and "Traceback" not in done.stderr
    assert runs(project) == []
