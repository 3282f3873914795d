"""The Prefect flow on a small DVC project, against a real Prefect server."""

from __future__ import annotations

import filecmp
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from flows.lock import owner_path
from tests.flows.conftest import dvc, git, run_flow, runs

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _lock(project: Path) -> dict:
    return yaml.safe_load((project / "dvc.lock").read_text())["stages"]


def _table(stdout: str) -> dict[str, list[str]]:
    """The per-stage table the CLI prints last: stage -> [result, attempts, seconds, ...]."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("stage ") and "result" in line)
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells[1:]
    return rows


def test_flow_reproduces_skips_retries_pushes_and_fails_cleanly(
    project: Path, prefect_env: dict[str, str], tmp_path: Path
) -> None:
    # 1. First run: every stage, in the graph's order (dvc.yaml lists them in reverse).
    first = run_flow(project, prefect_env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert runs(project) == ["prepare", "train", "register"]
    assert "Reproduced: prepare, train, register" in first.stdout
    assert "dvc push: remote 'store'" in first.stdout
    assert f"mlflow ui --backend-store-uri sqlite:///{project}/mlflow.db" in first.stdout
    # DVC agrees: status clean, and `dvc repro` runs nothing.
    assert "Data and pipelines are up to date" in dvc("status", cwd=project)
    dvc("repro", cwd=project)
    assert runs(project) == ["prepare", "train", "register"]

    # 2. Nothing changed: nothing runs, and the flow says so.
    second = run_flow(project, prefect_env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Nothing to reproduce: all 3 stages were up to date" in second.stdout
    assert runs(project) == ["prepare", "train", "register"]
    # ... in a short console story: a line per stage, the table, the summary
    console = (second.stdout + second.stderr).splitlines()
    assert len(console) <= 40, "\n".join(console)
    assert second.stdout.count("Nothing to reproduce") == 1, second.stdout

    # 3. Another clone restores data and model from the DVC remote.
    git("add", "-A", cwd=project)
    git("commit", "-q", "-m", "pipeline outputs", cwd=project)
    clone = tmp_path / "clone"
    git("clone", "-q", str(project), str(clone), cwd=tmp_path)
    dvc("remote", "add", "-d", "--local", "store", str(tmp_path / "remote"), cwd=clone)
    assert not (clone / "models/m").exists()
    dvc("pull", cwd=clone)
    for path in ("models/m/weights.txt", "data/prepared/rows.txt", "registered.json"):
        assert filecmp.cmp(project / path, clone / path, shallow=False), path
    assert "Data and pipelines are up to date" in dvc("status", cwd=clone)

    # 4. An override re-runs the stages that read it, for this run only; a transient failure
    #    is retried. dvc.lock records the run's params (its outputs were made with them), and
    #    params.yaml is the project's again, byte for byte: DVC sees the difference.
    params_before = (project / "params.yaml").read_bytes()
    third = run_flow(
        project, prefect_env, "--set", "train.epochs=3", "--set", "train.fail_once=true",
        "--retries", "2", "--retry-delay", "0",
    )  # fmt: skip
    assert third.returncode == 0, third.stdout + third.stderr
    assert runs(project)[3:] == ["train", "train", "register"]
    table = _table(third.stdout)
    assert table["prepare"][:2] == ["up to date", "0"], third.stdout
    assert table["train"][:2] == ["ran", "2"], third.stdout
    assert "params: train.epochs: 1 -> 3" in third.stdout
    assert _lock(project)["train"]["params"]["params.yaml"]["train"]["epochs"] == 3
    assert (project / "models/m/weights.txt").read_text() == "15"
    assert (project / "params.yaml").read_bytes() == params_before
    assert re.search(r"params.yaml:\s+modified:\s+train\n", dvc("status", "train", cwd=project))

    # 5. A stage that keeps failing: retried, then the flow fails; downstream never runs and
    #    dvc.lock keeps the last good entries (the previous "champion" stays).
    lock_before = _lock(project)
    registered = (project / "registered.json").read_text()
    failed = run_flow(
        project, prefect_env, "--set", "train.fail=3", "--retries", "1", "--retry-delay", "0"
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert runs(project)[6:] == ["train", "train"]
    message = failed.stderr[failed.stderr.index("pipeline failed:") :]
    assert "stage 'train' failed: its command exited with status 3" in message
    assert "train: failing on purpose" in message  # the tail of its log
    assert _lock(project)["train"] == lock_before["train"]
    assert _lock(project)["register"] == lock_before["register"]
    assert (project / "params.yaml").read_bytes() == params_before
    assert "changed deps" in dvc("status", "train", cwd=project)
    assert (project / "registered.json").read_text() == registered


def _last_table_artifact(env: dict[str, str]) -> list[dict]:
    """The newest `pipeline-stages` table artifact on the Prefect server, as rows."""
    query = {"artifacts": {"key": {"any_": ["pipeline-stages"]}}, "sort": "CREATED_DESC"}
    found = httpx.post(f"{env['PREFECT_API_URL']}/artifacts/filter", json=query, timeout=10)
    data = found.json()[0]["data"]
    return data if isinstance(data, list) else json.loads(data)


def test_bad_params_exit_is_not_retried(project: Path, prefect_env: dict[str, str]) -> None:
    """Exit status 2 (params or data rejected) fails the stage at once, reported as such."""
    failed = run_flow(
        project, prefect_env, "--set", "train.fail=2", "--retries", "3", "--retry-delay", "0",
        "--no-push",
    )  # fmt: skip
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert runs(project) == ["prepare", "train"]  # tried once, despite --retries 3
    assert "stage 'train' failed: its command exited with status 2" in failed.stderr
    rows = {row["stage"]: row for row in _last_table_artifact(prefect_env)}
    assert rows["prepare"]["result"] == "ran"
    assert (rows["train"]["result"], rows["train"]["attempts"]) == ("failed", 1)
    assert rows["train"]["reason"] == "exit status 2"
    assert rows["register"]["result"] == "not run"


def _start_flow(project: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "flows.pipeline", "--root", str(project), "--no-validate"]
    return subprocess.Popen(
        [*command, "--no-push", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_concurrent_runs_wait_or_stop_clearly(project: Path, prefect_env: dict[str, str]) -> None:
    owner = owner_path(project)
    # long enough for both later runs (each starting its own temporary server) to meet the lock;
    # in params.yaml itself, as an override would last for the first run only
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("sleep: 0", "sleep: 25"))
    first = _start_flow(project, prefect_env)
    deadline = time.monotonic() + 60
    while not owner.exists():
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "first run never took the lock"
        time.sleep(0.2)
    impatient = _start_flow(project, prefect_env, "--lock-timeout", "1")
    patient = _start_flow(project, prefect_env, "--lock-timeout", "120")
    outputs = [proc.communicate(timeout=150)[0] for proc in (first, impatient, patient)]

    assert first.returncode == 0, outputs[0]
    assert impatient.returncode == 1, outputs[1]
    assert "another pipeline run of" in outputs[1]
    assert "Gave up after waiting 1s" in outputs[1]
    assert patient.returncode == 0, outputs[2]
    assert "waiting up to 120s" in outputs[2]
    assert "Nothing to reproduce" in outputs[2]
    assert runs(project) == ["prepare", "train", "register"]
    assert "Data and pipelines are up to date" in dvc("status", cwd=project)
