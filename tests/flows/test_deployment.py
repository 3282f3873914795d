"""prefect.yaml's deployment on a real Prefect server: deploy, schedule, run on a worker."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flows.params import original_path
from tests.flows.conftest import REPO_ROOT, dvc, git, runs, sh

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEPLOYMENT = "reward-model-pipeline/weekly-retrain"
POOL = "rmpipe"  # the work pool named in prefect.yaml


def prefect(env: dict[str, str], *args: str, cwd: Path = REPO_ROOT, timeout: float = 120) -> str:
    return sh([sys.executable, "-m", "prefect", *args], cwd, env, timeout)


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


@pytest.fixture
def real_project(tmp_path: Path) -> Path:
    """This repository's pipeline (its git-tracked files) in a fresh git + DVC clone, with a
    300-record slice of the embedded data in data/raw and its own DVC remote."""
    from tests.tiny import make_tiny_bert

    root = tmp_path / "rmpipe"
    tracked = git("ls-files", "-z", cwd=REPO_ROOT).split("\0")
    for name in filter(None, tracked):
        source = REPO_ROOT / name
        if source.is_file() and not name.startswith("tests/"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    records = (root / "data/sample/preferences.jsonl").read_text().splitlines(keepends=True)
    (root / "data/raw/tiny.jsonl").write_text("".join(records[:300]))
    git("init", "-q", "-b", "main", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "rmpipe", cwd=root)
    dvc("remote", "modify", "--local", "local", "url", str(tmp_path / "remote"), cwd=root)
    make_tiny_bert(tmp_path / "tiny-bert")
    return root


def test_worker_runs_the_real_pipeline(
    deployment: dict[str, Any], prefect_env: dict[str, str], real_project: Path
) -> None:
    overrides = [
        f"model.name={real_project.parent / 'tiny-bert'}",
        "data.sources.0.path=data/raw/tiny.jsonl",
        "tokenize.max_length=64",
    ]
    committed = (real_project / "params.yaml").read_bytes()
    out = prefect(
        prefect_env, "deployment", "run", DEPLOYMENT,
        "--param", f"root={real_project}", "--param", f"overrides={json.dumps(overrides)}",
        "--param", "retry_delay=0",
    )  # fmt: skip
    match = re.search(r"UUID: ([0-9a-f-]{36})", out)
    assert match, out
    run_id = match.group(1)

    # the whole pipeline, tiny as it is, takes minutes on a busy machine
    worker = prefect(
        prefect_env, "worker", "start", "--pool", POOL, "--run-once", "--limit", "1", timeout=600
    )
    api = prefect_env["PREFECT_API_URL"]
    flow_run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
    assert flow_run["state"]["type"] == "COMPLETED", (flow_run["state"], worker[-3000:])

    registration = json.loads((real_project / "metrics/registration.json").read_text())
    assert registration["version"] in (1, "1")
    assert "champion" in registration["aliases"]
    from mlflow import MlflowClient

    store = f"sqlite:///{real_project / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    champion = client.get_model_version_by_alias(registration["name"], "champion")
    assert str(champion.version) == "1"
    assert champion.run_id is not None
    run = client.get_run(champion.run_id)
    assert run.data.params  # the run records the params DVC tracked

    # dvc.lock records the run's params; params.yaml is the project's again
    assert (real_project / "params.yaml").read_bytes() == committed
    assert re.search(r"params.yaml:\s+modified:", dvc("status", cwd=real_project))
    assert "in sync" in dvc("status", "--cloud", cwd=real_project)  # pushed to the remote
    artifacts = httpx.post(
        f"{api}/artifacts/filter",
        json={
            "artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"any_": ["pipeline-stages"]}}
        },
        timeout=10,
    ).json()
    [table] = artifacts
    rows = table["data"] if isinstance(table["data"], list) else json.loads(table["data"])
    assert [row["stage"] for row in rows] == ["ingest", "tokenize", "train", "evaluate", "register"]
    assert {row["result"] for row in rows} == {"ran"}
    [results] = httpx.post(
        f"{api}/artifacts/filter",
        json={
            "artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"any_": ["pipeline-results"]}}
        },
        timeout=10,
    ).json()
    assert "model:    models:/reward-model/1 (version 1, champion)" in results["data"]
    assert "keep:     put the params above in params.yaml" in results["data"]  # overrides
    assert f"mlflow ui --backend-store-uri sqlite:///{real_project}/mlflow.db" in results["data"]


def _run_deployment(env: dict[str, str], *params: str) -> dict[str, Any]:
    """`prefect deployment run` with these `--param`s, then a worker takes it; the flow run."""
    args = [arg for param in params for arg in ("--param", param)]
    out = prefect(env, "deployment", "run", DEPLOYMENT, *args)
    match = re.search(r"UUID: ([0-9a-f-]{36})", out)
    assert match, out
    worker = prefect(env, "worker", "start", "--pool", POOL, "--run-once", "--limit", "1")
    run = httpx.get(f"{env['PREFECT_API_URL']}/flow_runs/{match.group(1)}", timeout=10).json()
    assert run["state"]["type"] == "COMPLETED", (run["state"], worker[-3000:])
    return dict(run)


def test_overrides_last_for_their_run_only(
    deployment: dict[str, Any], prefect_env: dict[str, str], project: Path
) -> None:
    """A deployment run with overrides, then one without (as the schedule starts it): the
    second runs on the committed params, and params.yaml is never left changed."""
    committed = (project / "params.yaml").read_bytes()
    common = (f"root={project}", "validate_params=false", "push=false", "retry_delay=0")
    _run_deployment(prefect_env, *common, 'overrides=["train.epochs=3"]')
    assert (project / "models/m/weights.txt").read_text() == "15"  # 5 rows x 3 epochs
    assert (project / "params.yaml").read_bytes() == committed
    assert not original_path(project).exists()

    _run_deployment(prefect_env, *common)
    assert runs(project) == ["prepare", "train", "register", "train", "register"]
    assert (project / "models/m/weights.txt").read_text() == "5"  # committed: 1 epoch
    assert (project / "params.yaml").read_bytes() == committed
    locked = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["train"]["params"]
    assert locked["params.yaml"]["train"]["epochs"] == 1
    assert "Data and pipelines are up to date" in dvc("status", cwd=project)
