"""Two full pipeline runs through the CLI on a tiny model, as a scheduler would start them.

Every stage is a real `python -m rmcore <stage>` subprocess, started with the offline settings,
credentials in its environment and a network guard (tests/guard/sitecustomize.py) that records
and refuses any non-Unix socket use. Run `a` ends with two registrations started at the same
moment against its new SQLite store; run `b` (same params, data and seed, another root) goes
as far as the evaluation metrics, which must equal a's.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.tiny import make_tiny_bert

pytestmark = [pytest.mark.slow, pytest.mark.integration]

GUARD = REPO_ROOT / "tests" / "guard"
SECRETS = {
    "HF_TOKEN": "hf_e2eSecretToken8431",
    "AWS_SECRET_ACCESS_KEY": "aws-e2e-secret-5519",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-e2e-password-7702",
}
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
STAGES = ("ingest", "tokenize", "train", "evaluate")
N_RECORDS = 200  # of the embedded sample: enough for every split, quick to train


@dataclass
class Run:
    root: Path
    net_log: Path
    logs: dict[str, str] = field(default_factory=dict)  # "stage" or "register-1" -> output
    stdout: dict[str, str] = field(default_factory=dict)  # the JSON summary of each

    @property
    def store(self) -> Path:
        return self.root / "mlflow.db"


def _env(net_log: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env.update(OFFLINE, **SECRETS, OMP_NUM_THREADS="1", RMPIPE_NET_LOG=str(net_log))
    env["PYTHONPATH"] = os.pathsep.join([str(GUARD), str(REPO_ROOT)])
    return env


def _command(stage: str, root: Path) -> list[str]:
    return [sys.executable, "-m", "rmcore", stage, "--root", str(root)]


def _stage(run: Run, stage: str) -> None:
    done = subprocess.run(
        _command(stage, run.root),
        cwd=run.root,
        env=_env(run.net_log),
        capture_output=True,
        text=True,
        timeout=300,
    )
    run.logs[stage], run.stdout[stage] = done.stdout + done.stderr, done.stdout
    assert done.returncode == 0, f"{stage} failed:\n{done.stderr[-3000:]}"


def _project(root: Path, backbone: str) -> Run:
    root.mkdir(parents=True)
    lines = (REPO_ROOT / "data" / "sample" / "preferences.jsonl").read_text().splitlines()
    (root / "prefs.jsonl").write_text("\n".join(lines[:N_RECORDS]) + "\n", encoding="utf-8")
    params = {
        "data": {
            "sources": [
                {
                    "path": "prefs.jsonl",
                    "format": "mapping",
                    "name": "sample",
                    "options": {"messages": "prompt", "responses": "completions", "ranks": "ranks"},
                }
            ]
        },
        "tokenize": {"max_length": 64},
        "model": {"name": backbone},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "seed": 0, "max_steps": 6},
        "eval": {"batch_size": 8, "length_buckets": [16, 32, 48]},
        "register": {"model_name": "e2e-reward-model", "experiment": "e2e-experiment"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return Run(root, root.parent / f"{root.name}-network.jsonl")


def _register_twice_at_once(run: Run) -> None:
    procs = [
        subprocess.Popen(
            _command("register", run.root),
            cwd=run.root,
            env=_env(run.net_log),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for i, proc in enumerate(procs, start=1):
        out, err = proc.communicate(timeout=300)
        run.logs[f"register-{i}"], run.stdout[f"register-{i}"] = out + err, out
        assert proc.returncode == 0, f"register {i} failed:\n{err[-3000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    base = tmp_path_factory.mktemp("e2e")
    backbone = make_tiny_bert(base / "backbone")
    a, b = _project(base / "a", backbone), _project(base / "b", backbone)
    for stage in STAGES:
        _stage(a, stage)
    _register_twice_at_once(a)
    for stage in STAGES:
        _stage(b, stage)
    return a, b


def test_the_network_guard_is_active_in_stage_processes(tmp_path: Path) -> None:
    """The control: a process started like the stages records and refuses a connection,
    loopback included."""
    net_log = tmp_path / "network.jsonl"
    code = (
        "import socket\n"
        "for address in [('example.com', 80), ('127.0.0.1', 9)]:\n"
        "    try:\n"
        "        socket.create_connection(address, timeout=1)\n"
        "    except ConnectionRefusedError as exc:\n"
        "        print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=_env(net_log), capture_output=True, text=True
    )
    assert done.stdout.count("network access blocked") == 2, done.stdout + done.stderr
    calls = [json.loads(line) for line in net_log.read_text().splitlines()]
    assert [c["address"] for c in calls] == ["('example.com', 80)", "('127.0.0.1', 9)"]


def test_no_network_connection_is_attempted(runs: tuple[Run, Run]) -> None:
    for run in runs:
        attempts = run.net_log.read_text() if run.net_log.exists() else ""
        assert attempts == "", f"network use in {run.root.name}:\n{attempts[:3000]}"
    assert set(runs[0].logs) == {*STAGES, "register-1", "register-2"}
    assert set(runs[1].logs) == set(STAGES)


def _store_text(store: Path) -> str:
    with sqlite3.connect(store) as db:
        return "\n".join(db.iterdump())


def _texts(run: Run) -> dict[str, str]:
    """Everything a secret could leak into: the MLflow store, its artifacts, stage logs and
    the metrics and reports the stages wrote."""
    texts = {"mlflow.db": _store_text(run.store), **run.logs}
    for folder in ("mlartifacts", "metrics", "data/normalized"):
        for path in (run.root / folder).rglob("*"):
            if path.is_file() and path.suffix != ".parquet":
                texts[str(path.relative_to(run.root))] = path.read_bytes().decode("latin-1")
    return texts


def test_no_secret_reaches_mlflow_or_logs(runs: tuple[Run, Run]) -> None:
    a, b = runs
    texts = _texts(a)
    # The search reaches what was logged: params, metrics and the model's files are there.
    assert "e2e-experiment" in texts["mlflow.db"] and "train.max_steps" in texts["mlflow.db"]
    assert "eval/pairwise_accuracy" in texts["mlflow.db"]
    assert any(name.endswith("model.safetensors") for name in texts)
    texts |= {f"b/{name}": text for name, text in b.logs.items()}
    for name, text in texts.items():
        for variable, secret in SECRETS.items():
            assert secret not in text, f"${variable} found in {name}"


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_timings(v)
            for k, v in value.items()
            if not (k.endswith(("seconds", "_s", "time")) or k in {"path", "paths"})
        }
    return value


def test_same_params_data_and_seed_give_the_same_eval_metrics(runs: tuple[Run, Run]) -> None:
    a, b = (json.loads((run.root / "metrics" / "eval_details.json").read_text()) for run in runs)
    assert a["n_pairs"] > 20 and 0.0 <= a["pairwise_accuracy"] <= 1.0
    assert _without_timings(a) == _without_timings(b)
    assert a["identity"]["model_hash"] == b["identity"]["model_hash"]  # the same weights


def test_two_registers_at_once_make_one_version(runs: tuple[Run, Run]) -> None:
    from mlflow import MlflowClient

    a, _ = runs
    uri = f"sqlite:///{a.store}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    (version,) = client.search_model_versions("name = 'e2e-reward-model'")
    assert version.tags["rmpipe.validated"] == "true"
    assert client.get_registered_model("e2e-reward-model").aliases == {"champion": 1}
    summaries = [json.loads(a.stdout[f"register-{i}"]) for i in (1, 2)]
    assert sorted(s["reused_version"] for s in summaries) == [False, True]
    assert {s["version"] for s in summaries} == {1}
    assert all(s["aliases"] == ["champion"] for s in summaries)
    waited = [i for i in (1, 2) if "waiting for" in a.logs[f"register-{i}"]]
    assert len(waited) == 1, "the two registrations did not overlap; the lock went untested"
    experiment = client.get_experiment_by_name("e2e-experiment")
    assert experiment is not None
    (logged,) = client.search_runs([experiment.experiment_id])  # no second, duplicate run
    assert logged.info.run_id == version.run_id and logged.info.status == "FINISHED"
