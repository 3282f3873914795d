"""prefect.yaml's deployment on a real Prefect server: deploy, schedule, run on a worker."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.flows.conftest import REPO_ROOT, dvc, runs, sh

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEPLOYMENT = "reward-model-pipeline/weekly-retrain"
POOL = "rmpipe"  # the work pool named in prefect.yaml


def prefect(env: dict[str, str], *args: str, cwd: Path = REPO_ROOT) -> str:
    return sh([sys.executable, "-m", "prefect", *args], cwd, env)


@pytest.fixture(scope="module")
def deployment(prefect_env: dict[str, str]) -> dict[str, Any]:
    """The work pool created and prefect.yaml deployed, as a user would from the README."""
    prefect(prefect_env, "work-pool", "create", POOL, "--type", "process")
    prefect(prefect_env, "--no-prompt", "deploy", "--all")
    api = prefect_env["PREFECT_API_URL"]
    response = httpx.get(f"{api}/deployments/name/{DEPLOYMENT}", timeout=10)
    response.raise_for_status()
    return dict(response.json())


def test_deployment_matches_prefect_yaml(deployment: dict[str, Any]) -> None:
    assert deployment["entrypoint"] == "flows/pipeline.py:pipeline"
    assert deployment["work_pool_name"] == POOL
    [schedule] = deployment["schedules"]
    assert schedule["active"]
    assert schedule["schedule"]["cron"] == "0 3 * * 1"
    assert schedule["schedule"]["timezone"] == "UTC"
    [step] = deployment["pull_steps"]
    directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
    assert Path(directory) == REPO_ROOT.resolve()


def test_server_schedules_the_weekly_runs(
    deployment: dict[str, Any], prefect_env: dict[str, str]
) -> None:
    """The server's scheduler turns the cron schedule into runs (Mondays, 03:00 UTC)."""
    api = prefect_env["PREFECT_API_URL"]
    query = {
        "deployments": {"id": {"any_": [deployment["id"]]}},
        "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
    }
    scheduled: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not scheduled and time.monotonic() < deadline:
        found = httpx.post(f"{api}/flow_runs/filter", json=query, timeout=10).json()
        scheduled = [run for run in found if run["auto_scheduled"]]
        time.sleep(1)
    assert scheduled, (
        "the server created no scheduled runs; Prefect 3.8's scheduler needs SQLAlchemy < 2.1 "
        "(pinned in pyproject.toml): pip install 'sqlalchemy<2.1'"
    )
    for run in scheduled:
        assert re.search(r"T03:00:00", run["expected_start_time"]), run["expected_start_time"]


def test_worker_runs_the_deployment(
    deployment: dict[str, Any], prefect_env: dict[str, str], project: Path
) -> None:
    out = prefect(
        prefect_env, "deployment", "run", DEPLOYMENT,
        "--param", f"root={project}", "--param", "validate_params=false",
        "--param", "retry_delay=0",
    )  # fmt: skip
    match = re.search(r"UUID: ([0-9a-f-]{36})", out)
    assert match, out
    run_id = match.group(1)

    worker = prefect(prefect_env, "worker", "start", "--pool", POOL, "--run-once", "--limit", "1")
    api = prefect_env["PREFECT_API_URL"]
    flow_run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
    assert flow_run["state"]["type"] == "COMPLETED", (flow_run["state"], worker)
    assert runs(project) == ["prepare", "train", "register"]
    assert (project / "registered.json").exists()
    assert "Data and pipelines are up to date" in dvc("status", cwd=project)
    assert "in sync" in dvc("status", "--cloud", cwd=project)  # pushed to the remote
    artifacts = httpx.post(
        f"{api}/artifacts/filter",
        json={
            "artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"any_": ["pipeline-stages"]}}
        },
        timeout=10,
    ).json()
    [table] = artifacts
    assert [row["stage"] for row in _rows(table["data"])] == ["prepare", "train", "register"]


def _rows(data: Any) -> list[dict[str, Any]]:
    import json

    return list(json.loads(data) if isinstance(data, str) else data)
