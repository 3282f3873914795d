"""The train stage on tiny models: learning, determinism, exact resume after SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from rmcore import stages
from rmcore.core.config import parse_params
from rmcore.core.paths import Layout
from rmcore.evaluate.metrics import group_pair_accuracy
from rmcore.model.reward_model import build_reward_model, load_reward_model
from rmcore.model.scoring import score_groups
from rmcore.text.tokenize import load_tokenized
from rmcore.train.accelerator import resolve_precision
from tests.conftest import REPO_ROOT
from tests.tiny import (
    BAD,
    GOOD,
    TOPICS,
    make_tiny_bert,
    make_tiny_neox,
    sample_data_section,
    tiny_params,
    write_synthetic,
)

TIMING = {"pairs_per_s", "tokens_per_s", "train_seconds", "wall_s", "resumed_from_step"}
TIMING |= {"peak_host_mb", "peak_device_mb"}  # a process's peak grows with each run in it


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Per backbone: a project root with tokenised synthetic groups (copied per test)."""
    root = tmp_path_factory.mktemp("train-data")
    out = {}
    for kind, make in (("neox", make_tiny_neox), ("bert", make_tiny_bert)):
        project = root / kind
        model = make(root / f"{kind}-model")
        write_synthetic(Layout(project), n_train=96, n_val=24, n_test=8)
        stages.tokenize(tiny_params(model), Layout(project))
        (project / "model_path").write_text(model)
        out[kind] = project
    return out


def project(tokenized: dict[str, Path], kind: str, root: Path) -> tuple[str, Layout]:
    """A fresh project root holding a copy of the tokenised data."""
    shutil.copytree(tokenized[kind] / "data" / "tokenized", root / "data" / "tokenized")
    return (tokenized[kind] / "model_path").read_text(), Layout(root)


def comparable(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in TIMING}


def sample_params(model: str) -> Any:
    """The repository's params.yaml, reading data/sample from the checkout, on a tiny model,
    in fp32: the test re-scores the saved model (in fp32) against the train stage's validation,
    which bf16 autocast would round differently (tests/test_precision.py trains in bf16)."""
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    for source in raw["data"]["sources"]:
        source["path"] = str(REPO_ROOT / source["path"])
    raw["model"] = {"name": model}
    raw["train"] = {**raw["train"], "epochs": 2, "lr": 3e-3, "eval_every": 10, "seed": 0}
    raw["train"]["mixed_precision"] = "no"
    return parse_params(raw, "params.yaml")


@pytest.mark.precision
def test_loss_falls_and_heldout_accuracy_rises_on_sample(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "project")
    params = sample_params(make_tiny_bert(tmp_path / "bert"))
    stages.ingest(params, layout)
    stages.tokenize(params, layout)
    validation = load_tokenized(layout, "validation")
    torch.manual_seed(params.train.seed)  # the initial weights of the run
    untrained = build_reward_model(params.model, params.tokenize)
    before = group_pair_accuracy(score_groups(untrained, validation, 16), validation["ranks"])
    metrics = stages.train(params, layout)
    steps = pd.read_csv(layout.train_steps)
    assert list(steps.columns[:6]) == ["step", "epoch", "loss", "accuracy", "margin", "pairs"]
    assert len(steps) == metrics["steps"]
    assert steps["loss"].head(10).mean() > steps["loss"].tail(10).mean() + 0.08
    assert json.loads(layout.train_metrics.read_text()) == metrics
    assert metrics["device"] == "cpu" and metrics["precision"] == "no"
    assert metrics["best_val_accuracy"] > max(before + 0.1, 0.65)
    # models/reward_model is the best checkpoint: re-scoring it gives the best accuracy
    reward_model = load_reward_model(layout.model_dir)
    rewards = score_groups(reward_model, validation, batch_size=5)
    assert group_pair_accuracy(rewards, validation["ranks"]) == pytest.approx(
        metrics["best_val_accuracy"], abs=1e-6
    )
    flat = np.concatenate(rewards)
    assert reward_model.reward_stats is not None
    assert reward_model.reward_stats["mean"] == pytest.approx(float(flat.mean()), abs=1e-5)
    assert reward_model.reward_stats["std"] == pytest.approx(float(flat.std()), abs=1e-5)
    assert not layout.checkpoints.exists()  # finished runs leave nothing to resume


def test_same_seed_same_metrics(tokenized: dict[str, Path], tmp_path: Path) -> None:
    """BERT's dropout makes the RNG matter; two runs must still agree exactly."""
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        model, layout = project(tokenized, "bert", tmp_path / name)
        params = tiny_params(model, model={"dropout": 0.1}, train={"epochs": 1, "seed": seed})
        runs.append((comparable(stages.train(params, layout)), layout.train_steps.read_text()))
        # apart from the curves: when each step ended, later for each step
        times = pd.read_csv(layout.train_step_times)
        assert list(times["step"]) == list(pd.read_csv(layout.train_steps)["step"])
        assert times["wall_time"].is_monotonic_increasing and times["wall_time"].is_unique
        assert abs(times["wall_time"].iloc[-1] - time.time()) < 600
    assert runs[0] == runs[1]
    assert runs[0][0]["train_loss"] != runs[2][0]["train_loss"]  # the seed does matter


def test_data_margins_reach_the_loss(tmp_path: Path) -> None:
    """TRL preference rows with a `margin` column, through ingest, tokenize and train: the
    first step (same weights, same batch) asks each pair for its margin times
    `loss.data_margin_scale`, so its loss grows with the scale; 0 ignores the margins."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "prompt": f"tell me about {TOPICS[i % len(TOPICS)]} number {i}",
            "chosen": " ".join(rng.choice(GOOD, 4)),
            "rejected": " ".join(rng.choice(BAD, 4)),
            "margin": float(rng.uniform(0.5, 3.0)),
        }
        for i in range(40)
    ]
    path = tmp_path / "trl.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    source = {"path": str(path), "format": "preference", "name": "trl"}
    data = {"sources": [{**source, "options": {"margin": "margin"}}]}
    model = make_tiny_bert(tmp_path / "bert")
    train = {"max_steps": 1, "keep_best": False}
    source_layout = Layout(tmp_path / "data")
    params = tiny_params(model, data=data, train=train)
    stages.ingest(params, source_layout)
    stages.tokenize(params, source_layout)
    margins = load_tokenized(source_layout, "train")["margins"]
    assert all(m is not None and len(m) == 1 and m[0]["margin"] >= 0.5 for m in margins)
    first_losses = []
    for scale in (0.0, 1.0, 2.0):
        layout = Layout(tmp_path / f"scale-{scale}")
        shutil.copytree(source_layout.root / "data", layout.root / "data")
        params = tiny_params(model, data=data, loss={"data_margin_scale": scale}, train=train)
        stages.train(params, layout)
        first_losses.append(float(pd.read_csv(layout.train_steps)["loss"].iloc[0]))
    # -log sigmoid(d - s m) grows with s for m > 0, by about s * mean(m) / 2 near d = 0
    assert first_losses[0] < first_losses[1] < first_losses[2]
    assert first_losses[1] - first_losses[0] > 0.3


@pytest.mark.precision
def test_grad_accumulation_matches_a_bigger_batch(
    tokenized: dict[str, Path], tmp_path: Path
) -> None:
    histories = []
    for name, size, accum in (("big", 8, 1), ("accum", 4, 2)):
        model, layout = project(tokenized, "neox", tmp_path / name)
        # fp32: bf16 autocast would round the two batchings differently (atol below)
        train = {"epochs": 1, "batch_size": size, "grad_accum": accum, "mixed_precision": "no"}
        stages.train(tiny_params(model, train=train), layout)
        histories.append(pd.read_csv(layout.train_steps))
    assert len(histories[0]) == len(histories[1]) == 12
    for column in ("loss", "accuracy", "pairs", "lr"):
        assert np.allclose(histories[0][column], histories[1][column], atol=1e-5), column


def _params_file(path: Path, model: str, train: dict[str, Any]) -> Path:
    raw = {
        "data": sample_data_section(),
        "tokenize": {"max_length": 128},
        "model": {"name": model, "dropout": 0.1},
        "train": {"batch_size": 4, "lr": 1e-3, "seed": 0, **train},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def _cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}


def test_resume_after_sigkill_matches_uninterrupted(
    tokenized: dict[str, Path], tmp_path: Path
) -> None:
    train = {"epochs": 3, "save_every": 5, "eval_every": 10}
    model, ref = project(tokenized, "neox", tmp_path / "ref")
    params_path = _params_file(tmp_path / "params.yaml", model, train)
    from rmcore.core.config import load_params

    expected = stages.train(load_params(params_path), ref)
    _, killed = project(tokenized, "neox", tmp_path / "killed")
    command = [
        sys.executable,
        "-m",
        "rmcore",
        "train",
        "--params",
        str(params_path),
        "--root",
        str(killed.root),
    ]
    proc = subprocess.Popen(
        command, env=_cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    latest = killed.checkpoints / "latest.json"
    deadline = time.monotonic() + 120
    while not (latest.is_file() and json.loads(latest.read_text())["step"] >= 15):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not killed.train_metrics.exists() and killed.checkpoints.is_dir()
    done = subprocess.run(command, env=_cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = json.loads(killed.train_metrics.read_text())
    assert resumed["resumed_from_step"] >= 15
    assert comparable(resumed) == comparable(expected)
    assert killed.train_steps.read_text() == ref.train_steps.read_text()


def test_precision_is_detected_not_assumed(monkeypatch: pytest.MonkeyPatch) -> None:
    import rmcore.train.accelerator as runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", cuda=False) == "no"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", cuda=False) == "bf16"
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", cuda=False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", cuda=True) == "fp16"
    assert resolve_precision("no", cuda=True) == "no"


def test_tokens_of_another_model_are_refused(tokenized: dict[str, Path], tmp_path: Path) -> None:
    _, layout = project(tokenized, "neox", tmp_path)
    with pytest.raises(ValueError, match="run the tokenize stage again"):
        stages.train(tiny_params(str(tmp_path / "other")), layout)


@pytest.mark.gpu
def test_bf16_training_on_cuda(tokenized: dict[str, Path], tmp_path: Path) -> None:
    model, layout = project(tokenized, "neox", tmp_path)
    params = tiny_params(model, train={"max_steps": 6, "mixed_precision": "bf16"})
    metrics = stages.train(params, layout)
    assert metrics["device"] == "cuda" and metrics["precision"] == "bf16"
    assert np.isfinite(pd.read_csv(layout.train_steps)["loss"]).all()


def test_interrupted_save_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accelerate import Accelerator

    from rmcore.train.checkpoint import Checkpoints

    class Position:  # what the loop registers: its step, restored by load_state
        def __init__(self) -> None:
            self.step = 0

        def state_dict(self) -> dict[str, int]:
            return {"step": self.step}

        def load_state_dict(self, state: dict[str, int]) -> None:
            self.step = state["step"]

    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.AdamW(model.parameters())
    model, optimizer = acc.prepare(model, optimizer)
    position = Position()
    acc.register_for_checkpointing(position)
    ckpts = Checkpoints(tmp_path, "key-a", acc)
    position.step = 5
    ckpts.save(5, None)
    weights = model.weight.detach().clone()

    def dies_halfway(directory: str, **kwargs: Any) -> None:
        (Path(directory) / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt  # the process ends here, mid-save

    monkeypatch.setattr(acc, "save_state", dies_halfway)
    position.step = 10
    with pytest.raises(KeyboardInterrupt):
        ckpts.save(10, None)
    monkeypatch.undo()
    latest = ckpts.latest()
    assert latest is not None and latest.name == "step-000005"
    with torch.no_grad():
        model.weight.add_(1.0)
    ckpts.load(latest)
    assert position.step == 5
    assert torch.equal(model.weight, weights)
    assert Checkpoints(tmp_path, "key-b", acc).latest() is None  # other params: not resumed
