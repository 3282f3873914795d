"""The arithmetic of an optimiser step: the gradient of a step does not depend on how its
groups are split into micro-batches and processes, and an epoch trains every group once."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
import yaml

from rmcore import stages
from rmcore.core.config import TokenizeConfig, parse_params
from rmcore.core.paths import Layout
from rmcore.data.schema import GROUP_SCHEMA
from rmcore.model.batches import PackedGroups, collate
from rmcore.model.reward_model import build_reward_model
from rmcore.text.tokenize import load_tokenized, tokenize_table
from rmcore.text.tokenizer import load_tokenizer
from rmcore.train.accelerator import make_accelerator
from rmcore.train.plan import micro_batches
from rmcore.train.steps import train_step
from tests.test_distributed import TORCHRUN
from tests.test_validation_distributed import run_torchrun
from tests.tiny import make_tiny_neox, sample_data_section, synthetic_groups, write_groups

pytestmark = pytest.mark.usefixtures("one_thread")


def tied_groups(n: int, seed: int, split: str = "train") -> list[dict[str, Any]]:
    """Synthetic groups, every third with all completions tied (no pair) and every third
    partly tied."""
    rows = synthetic_groups(n, seed, split=split)
    for i, row in enumerate(rows):
        if i % 3 == 1:
            row["ranks"] = [0] * len(row["ranks"])
        elif i % 3 == 2:
            row["ranks"] = [min(rank, 1) for rank in row["ranks"]]
    return rows


def n_pairs(ranks: list[list[int]]) -> int:
    return sum(int((np.subtract.outer(r, r) < 0).sum()) for r in map(np.asarray, ranks))


def params_raw(model: str, **train: Any) -> dict[str, Any]:
    return {
        "data": sample_data_section(),
        "tokenize": {"max_length": 128},
        "model": {"name": model},
        "loss": {"beta": 0.01, "center_rewards": 0.01},
        # fp32: the comparisons below are at fp32 rounding, beyond bf16 autocast's
        "train": {"lr": 1e-3, "seed": 0, "mixed_precision": "no", **train},
    }


@pytest.fixture(scope="module")
def neox(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_neox(tmp_path_factory.mktemp("arith") / "neox")


def one_step_gradient(model_dir: str, packed: PackedGroups, batch: int, accum: int) -> tuple:
    """(parameter change, step row) of one SGD step (lr 1, no clipping) through train_step."""
    params = parsed(params_raw(model_dir, batch_size=batch, grad_accum=accum))
    torch.manual_seed(0)
    model = build_reward_model(params.model, params.tokenize)
    acc = make_accelerator(params.train, model.native)
    model = acc.prepare(model)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    groups = np.arange(len(packed))
    parts = micro_batches(groups, packed.group_lengths, world=1, rank=0, accum=accum)
    pad_id = int(model.tokenizer.pad_token_id)
    micro = [collate(packed, part, pad_id) for part in parts]
    row = train_step(model, optimizer, scheduler, acc, micro, params)
    after = [p.detach() for p in model.parameters()]
    change = torch.cat([(b - a).reshape(-1) for b, a in zip(before, after, strict=True)])
    return change, row


def parsed(raw: dict[str, Any]) -> Any:
    raw["train"]["max_grad_norm"] = 1e9  # the raw gradient, unclipped
    return parse_params(raw, "<arithmetic>")


def test_micro_batches_give_the_gradient_of_the_whole_batch(neox: str) -> None:
    """8 groups, 3 of them without a pair: 1 x 8, 2 x 4 and 4 x 2 give one gradient."""
    table = pa.Table.from_pylist(tied_groups(8, seed=5), schema=GROUP_SCHEMA)
    dataset, _ = tokenize_table(table, load_tokenizer(neox), TokenizeConfig(max_length=128))
    packed = PackedGroups.from_dataset(dataset)
    whole, row = one_step_gradient(neox, packed, batch=8, accum=1)
    assert row["pairs"] == n_pairs(dataset["ranks"])
    for batch, accum in ((4, 2), (2, 4)):
        split, split_row = one_step_gradient(neox, packed, batch, accum)
        assert split_row["loss"] == pytest.approx(row["loss"], abs=1e-6)
        assert split_row["grad_norm"] == pytest.approx(row["grad_norm"], rel=1e-5)
        assert torch.allclose(split, whole, atol=1e-6), (split - whole).abs().max()


def project(root: Path, model: str, n_train: int) -> Layout:
    layout = Layout(root)
    write_groups(
        layout,
        {
            "train": tied_groups(n_train, seed=0),
            "validation": tied_groups(8, seed=1, split="validation"),
            "test": tied_groups(4, seed=2, split="test"),
        },
    )
    stages.tokenize(parsed(params_raw(model)), layout)
    return layout


def test_an_epoch_trains_every_group_once(neox: str, tmp_path: Path) -> None:
    """19 groups, 8 a step (2 x 4 micro-batches): steps of 8, 8 and 3 groups; the last step
    has fewer groups than micro-batches."""
    layout = project(tmp_path, neox, n_train=19)
    params = parsed(params_raw(neox, epochs=2, batch_size=2, grad_accum=4))
    metrics = stages.train(params, layout)
    pairs = n_pairs(load_tokenized(layout, "train")["ranks"])
    assert metrics["steps"] == 6 and metrics["epochs"] == 2
    assert metrics["pairs_trained"] == 2 * pairs
    steps = pd.read_csv(layout.train_steps)
    assert steps.groupby("epoch")["pairs"].sum().tolist() == [pairs, pairs]
    assert np.isfinite(steps["loss"]).all() and np.isfinite(steps["grad_norm"]).all()


@pytest.mark.slow
def test_two_processes_match_one_with_ties_and_a_short_last_step(neox: str, tmp_path: Path) -> None:
    """17 groups, 8 a step: the last step has one group, so one process runs only filler."""
    if not TORCHRUN.is_file():
        pytest.skip(f"torchrun not found next to {sys.executable}")
    single = project(tmp_path / "single", neox, n_train=17)
    ddp = Layout(tmp_path / "ddp")
    shutil.copytree(single.tokenized, ddp.tokenized)
    raw = params_raw(neox, epochs=1, batch_size=4)
    raw["train"]["max_grad_norm"] = 1e9
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(raw))
    command = ["-m", "rmcore", "train", "--params", str(tmp_path / "ddp.yaml")]
    done = run_torchrun([*command, "--root", str(ddp.root)], timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    distributed = json.loads(ddp.train_metrics.read_text())

    expected = stages.train(parsed(params_raw(neox, epochs=1, batch_size=8)), single)
    assert (distributed["processes"], expected["processes"]) == (2, 1)
    pairs = n_pairs(load_tokenized(single, "train")["ranks"])
    assert distributed["pairs_trained"] == expected["pairs_trained"] == pairs
    steps_ddp, steps_one = pd.read_csv(ddp.train_steps), pd.read_csv(single.train_steps)
    assert len(steps_ddp) == len(steps_one) == 3
    for column in ("loss", "grad_norm", "accuracy", "pairs"):
        assert np.allclose(steps_ddp[column], steps_one[column], rtol=1e-5, atol=1e-6), column
    for key in ("val_loss", "val_accuracy", "reward_mean"):
        assert distributed[key] == pytest.approx(expected[key], abs=1e-5), key
