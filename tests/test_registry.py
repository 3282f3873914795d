"""MLflow run logging, registration, the champion gate and crash safety, on a SQLite store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from rmcore import stages
from rmcore.core.config import Params, RegisterConfig, load_params
from rmcore.core.paths import Layout
from rmcore.register import lineage, redact
from tests.conftest import MLFLOW_URI_VARS
from tests.eval_project import (
    CONFIG_SECRET,
    DVC_MD5,
    ENV_SECRET,
    REPO_ROOT,
    REWARD_STATS,
    STEP_TIMES,
    build_project,
    run_cli,
    sqlite_store,
    write_params,
)

pytestmark = pytest.mark.slow


# --- redaction and lineage helpers (no MLflow) ---------------------------------------------


def test_secret_keys_are_recognised_by_word() -> None:
    for key in ["hf_token", "apiKey", "AWS_SECRET_ACCESS_KEY", "password", "db_passwd", "key"]:
        assert redact.is_secret_key(key), key
    for key in ["tokenize", "min_completion_tokens", "max_length", "keep_best", "monkey"]:
        assert not redact.is_secret_key(key), key


def test_redact_hides_keys_env_values_and_url_passwords() -> None:
    config = {
        "a": {"api_token": "abc", "path": "x", "tokens": 3},
        "note": "token is env-secret-value-5678 here",
        "uri": "https://user:pw123@host:5000/x",
        "list": [{"secret": "s"}],
    }
    out = redact.redact(config, secrets=[ENV_SECRET])
    assert out["a"] == {"api_token": "***", "path": "x", "tokens": 3}
    assert out["note"] == "token is *** here"
    assert "pw123" not in out["uri"] and out["list"] == [{"secret": "***"}]
    assert redact.redact_uri("http://u:p@h:1/x") == "http://u:***@h:1/x"
    secrets = redact.environment_secrets({"HF_TOKEN": "abcdefgh", "HOME": "/root/secret"})
    assert secrets == ["abcdefgh"]


def test_flatten_and_dvc_md5() -> None:
    flat = redact.flatten({"a": {"b": [1, {"c": None}], "d": []}})
    assert flat == {"a.b.0": "1", "a.b.1.c": "", "a.d": "[]"}
    lock = {"stages": {"ingest": {"outs": [{"path": "data/normalized", "md5": "ab.dir"}]}}}
    assert lineage.dvc_out_md5(lock, "ingest", "data/normalized") == "ab.dir"
    assert lineage.dvc_out_md5(None, "ingest", "data/normalized") is None


def test_run_record_has_git_commit_curves_and_lineage(tmp_path: Path) -> None:
    from rmcore.register.lineage import build_run_record
    from tests.eval_project import write_reports

    layout = Layout(tmp_path)
    params = write_params(tmp_path)
    write_reports(layout, {"groups": 1})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "params.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    record = build_run_record(params, layout)
    assert record.tags["git_commit"] == head.strip() and record.tags["git_dirty"] == "false"
    assert record.tags["dvc.data_normalized.md5"] == DVC_MD5
    assert ("train/accuracy", 0.6, 2) in record.metrics  # text column `phase` skipped
    assert not any(name.startswith("train/phase") for name, _, _ in record.metrics)
    assert CONFIG_SECRET not in record.texts["dvc.lock"]
    assert str(layout.split_file("test")) in record.missing  # no data written here


def test_tracking_uri_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rmcore.register.registry import resolve_tracking_uri

    layout = Layout(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(RegisterConfig(), layout) == f"sqlite:///{tmp_path}/mlflow.db"
    assert resolve_tracking_uri(RegisterConfig(), layout).startswith("sqlite:////")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert resolve_tracking_uri(RegisterConfig(), layout) == "http://127.0.0.1:1"
    cfg = RegisterConfig(tracking_uri="sqlite:///rel.db")
    assert resolve_tracking_uri(cfg, layout) == f"sqlite:///{tmp_path}/rel.db"


def test_registry_module_disables_telemetry_before_importing_mlflow() -> None:
    code = (
        "import os; os.environ.pop('MLFLOW_DISABLE_TELEMETRY', None); "
        "import rmcore.register.registry; "
        "from mlflow.telemetry.utils import is_telemetry_disabled; print(is_telemetry_disabled())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True
    )
    assert out.stdout.strip() == "True"


# --- a real store ---------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in MLFLOW_URI_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    return {**env, **extra}


def _project(root: Path, store: str, model_seed: int) -> Layout:
    layout = build_project(root, model_seed=model_seed)
    write_params(root, {"register": {"tracking_uri": store}})
    stages.evaluate(_params(root), layout)
    return layout


def _params(root: Path) -> Params:
    return load_params(root / "params.yaml")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    os.environ["RMPIPE_TEST_TOKEN"] = ENV_SECRET
    yield sqlite_store(tmp_path_factory.mktemp("store"))
    os.environ.pop("RMPIPE_TEST_TOKEN", None)


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory, store: str) -> tuple[Layout, Layout]:
    """Two models (different seeds) evaluated on the same test data."""
    a = _project(tmp_path_factory.mktemp("a"), store, model_seed=0)
    b = _project(tmp_path_factory.mktemp("b"), store, model_seed=1)
    return a, b


def _accuracy(layout: Layout) -> float:
    return float(json.loads(layout.eval_metrics.read_text())["pairwise_accuracy"])


def test_register_logs_the_run_and_makes_a_champion(
    projects: tuple[Layout, Layout], store: str
) -> None:
    from rmcore.model.reward_model import load_reward_model
    from rmcore.model.scoring import score_texts

    a, _ = projects
    summary = stages.register(_params(a.root), a)
    assert summary["version"] == 1 and summary["aliases"] == ["champion"]
    assert json.loads(a.registration.read_text())["model_uri"] == "models:/reward-model/1"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    run = client.get_run(summary["run_id"])
    assert run.data.params["eval.batch_size"] == "4"
    assert run.data.params["data.sources.0.name"] == "sample-***"
    assert run.data.metrics["eval/pairwise_accuracy"] == pytest.approx(_accuracy(a))
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == [1, 2, 3]
    # each point at the time its step ended in training (metrics/train_step_times.csv)
    assert [m.timestamp for m in history] == [round(t * 1000) for t in STEP_TIMES.values()]
    assert history[0].timestamp < history[1].timestamp < history[2].timestamp
    assert run.inputs is not None
    inputs = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs}
    assert inputs["normalized/test"] == lineage.file_md5(a.split_file("test"))
    artifacts = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id))
    assert (artifacts / "plots/eval/calibration.png").is_file()
    assert (artifacts / "reports/eval.json").is_file() and (artifacts / "dvc.lock").is_file()
    logged = [json.dumps(d) for d in (run.data.params, run.data.tags, run.data.metrics)]
    logged += [p.read_text() for p in artifacts.rglob("*") if p.suffix in {".json", ".lock"}]
    assert not any(CONFIG_SECRET in text or ENV_SECRET in text for text in logged)
    # Consumers get the train-time model's scores, raw or normalised.
    frame = _frame()
    model = mlflow.pyfunc.load_model("models:/reward-model@champion")
    expected = score_texts(
        load_reward_model(a.model_dir), list(frame["prompt"]), list(frame["response"])
    )
    np.testing.assert_allclose(model.predict(frame), expected, atol=1e-5)
    normalised = model.predict(frame, params={"normalize": True})
    expected_norm = (expected - REWARD_STATS["mean"]) / REWARD_STATS["std"]
    np.testing.assert_allclose(normalised, expected_norm, atol=1e-5)


def _frame() -> pd.DataFrame:

    return pd.DataFrame(
        {
            "prompt": [[{"role": "user", "content": "tell me about tea"}], "rain?"],
            "response": ["great clear answer", "awful rude wrong"],
        }
    )


def test_same_model_and_data_is_not_registered_twice(
    projects: tuple[Layout, Layout], store: str
) -> None:
    a, _ = projects
    summary = stages.register(_params(a.root), a)
    assert summary["version"] == 1 and summary["reused_version"] is True
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    assert len(client.search_model_versions("name = 'reward-model'")) == 1


def test_gate_moves_champion_only_to_an_equal_or_better_model(
    projects: tuple[Layout, Layout],
) -> None:
    a, b = projects
    acc_a, acc_b = _accuracy(a), _accuracy(b)
    assert acc_a != acc_b, "pick seeds whose models differ in accuracy"
    first = stages.register(_params(b.root), b)  # a is champion (version 1)
    assert first["version"] == 2
    assert first["gate"]["champion_accuracy"] == pytest.approx(acc_a)
    assert first["gate"]["how"] == "tag"
    assert first["aliases"] == (["champion"] if acc_b >= acc_a else ["challenger"])
    again = stages.register(_params(a.root), a)  # a again: no new version, gate re-applied
    assert again["version"] == 1
    winner_is_a = acc_a >= acc_b
    assert again["aliases"] == (["champion"] if winner_is_a else ["challenger"])


def test_champion_evaluated_on_other_data_is_rescored(
    projects: tuple[Layout, Layout], store: str
) -> None:
    from rmcore.register.registry import TAG_DATA_HASH, champion_accuracy

    a, _ = projects
    cfg = _params(a.root).registry
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    client.set_model_version_tag("reward-model", "1", TAG_DATA_HASH, "evaluated-elsewhere")
    version = client.get_model_version("reward-model", "1")
    data_hash = json.loads(a.eval_details.read_text())["identity"]["test_data_hash"]
    accuracy, how = champion_accuracy(client, cfg, a, version, data_hash)
    assert how == "rescored"
    assert accuracy == pytest.approx(_accuracy(a), abs=1e-9)  # same model, same pairs


def test_killed_registration_leaves_no_half_registered_version(
    tmp_path: Path, projects: tuple[Layout, Layout], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `python -m rmcore register` SIGKILLed after creating the version, before
    validating it; then crashes at the other steps (in-process); then a clean run."""
    from rmcore.register import registry

    store = sqlite_store(tmp_path)
    a, _ = projects
    write_params(a.root, {"register": {"tracking_uri": store}})
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    a.registration.unlink(missing_ok=True)

    faults = os.pathsep.join([str(REPO_ROOT / "tests" / "faults"), str(REPO_ROOT)])
    env = _env(RMPIPE_TEST_KILL_AFTER="mlflow.register_model", PYTHONPATH=faults)
    killed = run_cli(a.root, "register", env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (half,) = client.search_model_versions("name = 'reward-model'")
    assert half.run_id is not None
    assert "rmpipe.validated" not in half.tags and not half.aliases
    assert not a.registration.exists()

    class Crash(BaseException):
        pass

    def crash_after(name: str) -> None:
        """Let registry.`name` finish, then die as a kill at that moment would."""
        done = getattr(registry, name)

        def then_crash(*args: Any, **kwargs: Any) -> Any:
            done(*args, **kwargs)
            raise Crash(name)

        monkeypatch.setattr(registry, name, then_crash)

    crash_after("log_reward_model")
    with pytest.raises(Crash):
        stages.register(_params(a.root), a)
    assert client.get_run(half.run_id).info.status == "KILLED"  # marked by the second attempt
    assert client.search_model_versions("name = 'reward-model'") == []  # half one deleted

    monkeypatch.undo()
    crash_after("create_validated_version")
    with pytest.raises(Crash):
        stages.register(_params(a.root), a)
    (whole,) = client.search_model_versions("name = 'reward-model'")
    assert whole.tags["rmpipe.validated"] == "true" and not whole.aliases

    monkeypatch.undo()
    summary = stages.register(_params(a.root), a)  # finishes: same version, alias last
    assert summary["version"] == int(whole.version) and summary["aliases"] == ["champion"]
    assert summary["reused_version"] is True
    assert len(client.search_model_versions("name = 'reward-model'")) == 1
