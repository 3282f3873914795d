"""DVC experiments register into the project's own MLflow store, and move no alias unless
asked: a real `dvc exp run --temp`, then the register stage in a copy shaped like DVC's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from rmcore import stages
from rmcore.core.config import load_params
from rmcore.core.paths import Layout, experiment_name, experiment_origin
from rmcore.register.registry import TAG_EXPERIMENT
from tests.conftest import MLFLOW_URI_VARS
from tests.eval_project import REPO_ROOT, build_project, sqlite_store, write_params

pytestmark = pytest.mark.slow

GIT_ID = {
    "GIT_AUTHOR_NAME": "rmpipe tests",
    "GIT_AUTHOR_EMAIL": "tests@rmpipe.invalid",
    "GIT_COMMITTER_NAME": "rmpipe tests",
    "GIT_COMMITTER_EMAIL": "tests@rmpipe.invalid",
}


def test_experiment_copies_are_recognised_by_their_path(tmp_path: Path) -> None:
    copy = tmp_path / "proj" / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    assert experiment_origin(copy) == tmp_path / "proj"
    assert experiment_origin(copy / "sub") == tmp_path / "proj"
    assert Layout(copy).mlflow_db == tmp_path / "proj" / "mlflow.db"
    assert Layout(copy).mlflow_artifacts == tmp_path / "proj" / "mlartifacts"
    for plain in (tmp_path / "proj", tmp_path / "proj" / ".dvc" / "tmp", tmp_path / "exps"):
        assert experiment_origin(plain) is None
    assert Layout(tmp_path / "proj").mlflow_db == tmp_path / "proj" / "mlflow.db"
    assert experiment_name({"DVC_EXP_NAME": "lean-mice"}) == "lean-mice"
    assert experiment_name({"DVC_EXP_NAME": " "}) is None and experiment_name({}) is None


def _sh(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{out}"
    return out


DVC_YAML = {
    "stages": {
        "register": {
            "cmd": "python -m rmcore register",
            "deps": ["models/reward_model", "metrics/eval.json", "metrics/eval_details.json"],
            "params": ["register"],
            "outs": [{"metrics/registration.json": {"cache": False}}],
        }
    }
}


def test_dvc_exp_run_temp_registers_into_the_project_store(tmp_path: Path) -> None:
    """`dvc exp run --temp` runs register in .dvc/tmp/exps/<tmp>, deleted afterwards; the
    version and run its registration.json names are in the project's mlflow.db."""
    root = tmp_path / "project"
    layout = build_project(root)
    write_params(root)
    stages.evaluate(load_params(root / "params.yaml"), layout)
    sqlite_store(root)  # the project's store, migrated once (as a first registration would)
    store = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (root / ".gitignore").write_text("mlflow.db\nmlflow.db.lock\nmlartifacts/\n")
    env = {k: v for k, v in os.environ.items() if k not in MLFLOW_URI_VARS}
    env.update(GIT_ID, DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    dvc = [sys.executable, "-m", "dvc"]
    _sh(["git", "init", "-q", "-b", "main"], root, env)
    _sh([*dvc, "init", "-q"], root, env)
    _sh(["git", "add", "-A"], root, env)
    _sh(["git", "commit", "-q", "-m", "project"], root, env)

    _sh([*dvc, "exp", "run", "--temp", "--name", "trial-1"], root, env)

    assert not list((root / ".dvc" / "tmp" / "exps").glob("tmp*"))  # the copy is gone
    ref = _sh(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], root, env).split()
    [exp_ref] = [r for r in ref if r.endswith("/trial-1")]
    shown = _sh(["git", "show", f"{exp_ref}:metrics/registration.json"], root, env)
    registration = json.loads(shown)
    assert registration["dvc_experiment"] == "trial-1"
    version = client.get_model_version(registration["name"], str(registration["version"]))
    assert version.run_id == registration["run_id"]
    assert version.tags[TAG_EXPERIMENT] == "trial-1"
    assert registration["aliases"] == [] and registration["gate"]["decision"] is None
    run = client.get_run(registration["run_id"])
    assert run.data.tags["dvc.experiment"] == "trial-1"
    assert run.info.artifact_uri.startswith((root / "mlartifacts").as_uri())
    assert run.inputs is not None
    sources = {d.dataset.name: json.loads(d.dataset.source) for d in run.inputs.dataset_inputs}
    assert sources["normalized/test"] == {"uri": "data/normalized/test.parquet"}
    assert client.get_registered_model(registration["name"]).aliases == {}


def _copy_of(project: Path) -> Path:
    """A directory where DVC puts an experiment's temporary copy of `project`."""
    copy = project / ".dvc" / "tmp" / "exps" / "tmpq7x2k9"
    copy.parent.mkdir(parents=True)
    shutil.copytree(
        project, copy, ignore=shutil.ignore_patterns(".dvc", "mlflow.db*", "mlartifacts")
    )
    return copy


def test_experiment_aliases_and_skip_are_params(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = tmp_path / "project"
    layout = build_project(project)
    stages.evaluate(load_params(project / "params.yaml"), layout)
    store = sqlite_store(project)
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    production = stages.register(load_params(project / "params.yaml"), layout)  # no experiment
    assert production["aliases"] == ["champion"] and production["dvc_experiment"] is None

    copy = _copy_of(project)
    monkeypatch.setenv("DVC_EXP_NAME", "skip-me")
    write_params(copy, {"register": {"in_experiments": "skip"}})
    skipped = stages.register(load_params(copy / "params.yaml"), Layout(copy))
    assert skipped["registered"] is False and "skip-me" in skipped["reason"]
    assert "version" not in skipped and "run_id" not in skipped
    assert len(client.search_model_versions("name = 'reward-model'")) == 1

    # another model in the copy: a new version in the project's store; champion stays
    build_project(copy, model_seed=1)
    stages.evaluate(load_params(copy / "params.yaml"), Layout(copy))
    monkeypatch.setenv("DVC_EXP_NAME", "trial-2")
    trial = stages.register(load_params(copy / "params.yaml"), Layout(copy))
    assert trial["version"] == 2 and trial["aliases"] == []
    assert not (copy / "mlflow.db").exists() and not (copy / "mlartifacts").exists()
    aliases = client.get_registered_model("reward-model").aliases
    assert aliases == {"champion": 1}

    write_params(copy, {"register": {"experiment_aliases": True}})
    gated = stages.register(load_params(copy / "params.yaml"), Layout(copy))
    assert gated["version"] == 2 and gated["gate"]["decision"] in ("champion", "challenger")
    assert gated["aliases"] == [gated["gate"]["decision"]]
