"""Two CPU processes under a real `torchrun` (gloo DDP) train like one process on the same
global batch."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rmcore import stages
from rmcore.core.config import load_params
from rmcore.core.paths import Layout
from tests.conftest import REPO_ROOT
from tests.tiny import make_tiny_neox, sample_data_section, write_synthetic

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _params(path: Path, model: str, batch_size: int) -> Path:
    raw = {
        "data": sample_data_section(),
        "tokenize": {"max_length": 128},
        "model": {"name": model},
        # fp32: DDP's gradient all-reduce must match one process to 1e-4, beyond bf16's rounding
        "train": {
            "epochs": 2,
            "batch_size": batch_size,
            "lr": 1e-3,
            "eval_every": 6,
            "mixed_precision": "no",
        },
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def _run_group(
    command: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess:
    """Run in its own process group, so a timeout also ends torchrun's workers."""
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s:\n{err[-4000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.mark.slow
@pytest.mark.precision
def test_torchrun_two_processes_match_one(tmp_path: Path) -> None:
    if not TORCHRUN.is_file():
        pytest.skip(f"torchrun not found next to {sys.executable}")
    model = make_tiny_neox(tmp_path / "neox")  # no dropout: runs are comparable
    single = Layout(tmp_path / "single")
    write_synthetic(single, n_train=96, n_val=24, n_test=8)
    single_params = load_params(_params(tmp_path / "single.yaml", model, batch_size=8))
    stages.tokenize(single_params, single)
    ddp = Layout(tmp_path / "ddp")
    shutil.copytree(single.tokenized, ddp.tokenized)
    ddp_params = _params(tmp_path / "ddp.yaml", model, batch_size=4)  # 2 x 4 = the same 8
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "rmcore", "train"]
    command += ["--params", str(ddp_params), "--root", str(ddp.root)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    done = _run_group(command, env, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    distributed = json.loads(ddp.train_metrics.read_text())
    assert distributed["processes"] == 2

    expected = stages.train(single_params, single)
    assert expected["processes"] == 1
    assert distributed["steps"] == expected["steps"] == 24
    assert distributed["pairs_trained"] == expected["pairs_trained"]
    for key in ("train_loss", "train_accuracy", "val_loss", "best_val_accuracy"):
        assert distributed[key] == pytest.approx(expected[key], abs=1e-4), key
    # Gradients summed across processes round differently from one process's sum; over 24
    # Adam steps that reaches ~1e-4 in the weights' rewards (seed 0: 1.5e-4), not a bias.
    assert distributed["reward_mean"] == pytest.approx(expected["reward_mean"], abs=5e-4)
    steps_ddp, steps_one = pd.read_csv(ddp.train_steps), pd.read_csv(single.train_steps)
    assert (steps_ddp["loss"] - steps_one["loss"]).abs().max() < 1e-4
    assert steps_one["loss"].head(4).mean() > steps_one["loss"].tail(4).mean()  # it trains
