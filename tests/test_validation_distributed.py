"""Validation under two gloo processes (a real `torchrun`) finishes, whatever the number of
batches, and gives the metrics of one process.

Run by torchrun, this module is the worker: it validates a DDP-wrapped tiny model on each
split it is given and the main process writes the metrics as JSON.
"""

from __future__ import annotations

import faulthandler
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pytest
import torch

from rmcore.core.config import Params, TokenizeConfig
from rmcore.data.schema import GROUP_SCHEMA
from rmcore.model.batches import PackedGroups
from rmcore.model.reward_model import build_reward_model
from rmcore.text.tokenize import tokenize_table
from rmcore.text.tokenizer import load_tokenizer
from rmcore.train.accelerator import make_accelerator
from rmcore.train.steps import validate
from tests.conftest import REPO_ROOT
from tests.test_distributed import TORCHRUN
from tests.tiny import make_tiny_neox, synthetic_groups, tiny_params

BATCH = 4
WATCHDOG_S = 90
GROUPS = {1: 3, 2: 8, 3: 10}  # validation batches of BATCH groups -> groups in the split


def params(model: str) -> Params:
    return tiny_params(model, train={"batch_size": BATCH, "mixed_precision": "no"})


def run_torchrun(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """`torchrun` of two processes; on a timeout it is stopped with all its workers (they
    run in sessions of their own, out of reach of a process-group kill) and the test fails."""
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        workers = psutil.Process(proc.pid).children(recursive=True)
        proc.terminate()  # torchrun passes SIGTERM on to its workers
        _, alive = psutil.wait_procs(workers, timeout=40)
        for worker in alive:
            worker.kill()
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s:\n{err[-4000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def validate_splits(model_dir: str, splits: list[Path]) -> list[dict[str, float]]:
    """Metrics of each split, validated as the train stage does on this launch's processes."""
    cfg = params(model_dir)
    torch.manual_seed(0)
    model = build_reward_model(cfg.model, cfg.tokenize)
    acc = make_accelerator(cfg.train, model.native)
    prepared = acc.prepare(model)
    pad_id = int(model.tokenizer.pad_token_id)
    out = []
    for split in splits:
        with np.load(split) as arrays:
            packed = PackedGroups(**{key: arrays[key] for key in arrays.files})
        out.append(validate(prepared, packed, acc, cfg, pad_id))
    acc.wait_for_everyone()
    return out


def write_split(model_dir: str, n: int, path: Path) -> Path:
    table = pa.Table.from_pylist(synthetic_groups(n, seed=n), schema=GROUP_SCHEMA)
    dataset, _ = tokenize_table(table, load_tokenizer(model_dir), TokenizeConfig(max_length=128))
    np.savez(path, **asdict(PackedGroups.from_dataset(dataset)))
    return path


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_two_processes_validate_like_one(tmp_path: Path) -> None:
    if not TORCHRUN.is_file():
        pytest.skip(f"torchrun not found next to {sys.executable}")
    model = make_tiny_neox(tmp_path / "neox")
    splits = [write_split(model, n, tmp_path / f"val-{n}.npz") for n in GROUPS.values()]
    out = tmp_path / "metrics.json"
    worker = ["-m", "tests.test_validation_distributed", str(out), model, *map(str, splits)]
    done = run_torchrun(worker, timeout=WATCHDOG_S + 30)
    assert done.returncode == 0, done.stderr[-4000:]
    distributed = json.loads(out.read_text())
    expected = validate_splits(model, splits)
    assert len(distributed) == len(expected) == len(GROUPS)
    completions = [len(np.load(split)["ranks"]) for split in splits]
    for n_batches, two, one, k in zip(GROUPS, distributed, expected, completions, strict=True):
        assert two["val_pairs"] == one["val_pairs"] > 0, n_batches
        assert two["val_accuracy"] == pytest.approx(one["val_accuracy"], abs=1e-9), n_batches
        assert two["val_loss"] == pytest.approx(one["val_loss"], abs=1e-6), n_batches
        # the reward stats count every completion once, the rerun batch not at all
        assert two["val_rewards"] == one["val_rewards"] == k, n_batches
        for key in ("val_reward_mean", "val_reward_std"):
            assert two[key] == pytest.approx(one[key], abs=1e-6), (n_batches, key)


def main(argv: list[str]) -> None:
    # a rank left waiting in a collective would wait for ever: end it with its traceback
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    out, model, *splits = argv
    metrics = validate_splits(model, [Path(s) for s in splits])
    if int(os.environ.get("RANK", "0")) == 0:
        Path(out).write_text(json.dumps(metrics))


if __name__ == "__main__":
    main(sys.argv[1:])
