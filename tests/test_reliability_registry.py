"""A killed registration leaves its logged model under mlartifacts/; the next registration of
the same model removes it (local artifact stores)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from mlflow import MlflowClient

from rmcore import stages
from rmcore.core.config import load_params
from rmcore.register.leftovers import local_path
from tests.conftest import MLFLOW_URI_VARS
from tests.eval_project import REPO_ROOT, build_project, run_cli, sqlite_store, write_params

pytestmark = pytest.mark.slow


def _files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def test_the_next_registration_removes_what_a_killed_one_logged(tmp_path: Path) -> None:
    layout = build_project(tmp_path / "project")
    store = sqlite_store(tmp_path / "store")
    write_params(layout.root, {"register": {"tracking_uri": store}})
    params = load_params(layout.root / "params.yaml")
    stages.evaluate(params, layout)

    faults = os.pathsep.join([str(REPO_ROOT / "tests" / "faults"), str(REPO_ROOT)])
    env = {k: v for k, v in os.environ.items() if k not in MLFLOW_URI_VARS}
    env.update(PYTHONPATH=faults, RMPIPE_TEST_KILL_AFTER="mlflow.register_model")
    killed = run_cli(layout.root, "register", env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    client = MlflowClient(tracking_uri=store, registry_uri=store)
    (half,) = client.search_model_versions("name = 'reward-model'")
    assert half.run_id is not None
    run = client.get_run(half.run_id)
    exp_id = run.info.experiment_id
    models = [
        m for m in client.search_logged_models([exp_id]) if m.source_run_id == run.info.run_id
    ]
    left = [local_path(run.info.artifact_uri, run.info.run_id)]
    left += [local_path(m.artifact_location, m.model_id) for m in models]
    assert len(left) == 2 and all(p is not None and _files(p) for p in left), left
    assert all(layout.mlflow_artifacts in p.parents for p in left if p is not None)

    summary = stages.register(params, layout)
    assert client.get_run(half.run_id).info.status == "KILLED"
    assert [p for p in left if p is not None and p.exists()] == []
    assert [
        m for m in client.search_logged_models([exp_id]) if m.source_run_id == half.run_id
    ] == []
    kept = client.get_run(summary["run_id"])  # the new registration's files stay
    assert _files(local_path(kept.info.artifact_uri, kept.info.run_id) or tmp_path / "none")
    assert summary["aliases"] == ["champion"] and summary["version"] == 2
