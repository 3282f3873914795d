"""The CPU's bf16 detection, its RMPIPE_CPU_BF16 override, and training in bf16 on a CPU.

Every test here is marked `precision`: CI runs them (with the other precision-sensitive
tests) once as the machine is and once with RMPIPE_CPU_BF16 flipped, so the fp32 and the
bf16 paths both run on CPUs with and without native bf16.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rmcore import stages
from rmcore.core.paths import Layout
from rmcore.train.accelerator import BF16_OVERRIDE, cpu_has_native_bf16, resolve_precision
from tests.tiny import make_tiny_neox, tiny_params, write_synthetic

pytestmark = [pytest.mark.precision, pytest.mark.usefixtures("one_thread")]

# bf16 keeps 8 significant bits (7 stored): each rounding of a matmul input is off by up to
# 2^-8 relative (~0.4%). On the first step both runs start from the same weights, so the loss
# differs by rounding only: well under 2^-8 of it. After that the updates built from slightly
# different gradients drift apart step by step (Adam follows small gradients as fast as big
# ones), so later steps get a loss-sized tolerance: measured here, the 24 steps stay within
# 0.05 of fp32 (mean 0.01), while a broken bf16 path (NaN, no learning) is off by far more.
# Emulated bf16 (CPUs without it) rounds the accumulations differently, hence the margin.
BF16_FIRST_STEP_RTOL = 2.0**-8
BF16_LOSS_ATOL = 0.1
BF16_MEAN_LOSS_ATOL = 0.03


def flags_say_native() -> bool:
    """Read /proc/cpuinfo's flags lines independently of rmcore."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return False
    flags: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


@pytest.mark.parametrize(("value", "native"), [("0", False), ("1", True)])
def test_the_override_decides_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str, native: bool
) -> None:
    monkeypatch.setenv(BF16_OVERRIDE, value)
    with caplog.at_level(logging.INFO, logger="rmcore.train.accelerator"):
        assert cpu_has_native_bf16() is native
        assert resolve_precision("auto", cuda=False) == ("bf16" if native else "no")
    assert f"RMPIPE_CPU_BF16={value} override" in caplog.text
    assert f"auto on CPU: {'bf16' if native else 'no'}" in caplog.text


def test_unset_or_empty_detects_from_cpuinfo(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(BF16_OVERRIDE, raising=False)
    with caplog.at_level(logging.INFO, logger="rmcore.train.accelerator"):
        assert cpu_has_native_bf16() is flags_say_native()
    assert "in /proc/cpuinfo" in caplog.text and "override" not in caplog.text
    monkeypatch.setenv(BF16_OVERRIDE, "")  # `RMPIPE_CPU_BF16= make test` means unset
    assert cpu_has_native_bf16() is flags_say_native()


@pytest.mark.parametrize("value", ["yes", "true", "2", "01", "off"])
def test_other_values_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(BF16_OVERRIDE, value)
    message = r"RMPIPE_CPU_BF16=.*allowed values are 0 .* and 1 .*unset it to detect"
    with pytest.raises(ValueError, match=message):
        cpu_has_native_bf16()
    with pytest.raises(ValueError, match="RMPIPE_CPU_BF16"):
        resolve_precision("auto", cuda=False)  # the train stage's path


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A tiny NeoX (no dropout: runs are comparable) and a project of tokenised groups."""
    root = tmp_path_factory.mktemp("precision")
    model = make_tiny_neox(root / "neox")
    write_synthetic(Layout(root / "project"), n_train=96, n_val=16, n_test=4)
    stages.tokenize(tiny_params(model), Layout(root / "project"))
    return model, root / "project"


def train(
    tokenized: tuple[str, Path], root: Path, override: str, precision: str
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The train stage on a copy of the tokenised project, with RMPIPE_CPU_BF16=override."""
    model, project = tokenized
    layout = Layout(root)
    shutil.copytree(project / "data" / "tokenized", layout.tokenized)
    params = tiny_params(model, train={"batch_size": 8, "mixed_precision": precision})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(BF16_OVERRIDE, override)
        metrics = stages.train(params, layout)
    assert json.loads(layout.train_metrics.read_text())["precision"] == metrics["precision"]
    return metrics, pd.read_csv(layout.train_steps)


@pytest.fixture(scope="module")
def auto_runs(
    tokenized: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[dict[str, Any], pd.DataFrame]]:
    """`mixed_precision: auto` as on a CPU without native bf16 (0) and with it (1)."""
    root = tmp_path_factory.mktemp("auto-runs")
    return {value: train(tokenized, root / value, value, "auto") for value in ("0", "1")}


def test_auto_precision_follows_the_override(auto_runs: dict) -> None:
    assert auto_runs["0"][0]["precision"] == "no"
    assert auto_runs["1"][0]["precision"] == "bf16"


def test_bf16_training_learns_and_tracks_fp32(auto_runs: dict) -> None:
    """bf16 on a CPU trains, and its loss trajectory stays within bf16's rounding of fp32's."""
    fp32, bf16 = auto_runs["0"][1], auto_runs["1"][1]
    assert len(fp32) == len(bf16) == 24
    assert (fp32["pairs"] == bf16["pairs"]).all()  # the same batches in the same order
    assert np.isfinite(bf16["loss"]).all() and np.isfinite(bf16["grad_norm"]).all()
    assert bf16["loss"].head(4).mean() > bf16["loss"].tail(4).mean() + 0.05  # it learns
    gap = (bf16["loss"] - fp32["loss"]).abs()
    assert gap.max() > 0  # autocast really computed in bf16
    assert gap[0] < BF16_FIRST_STEP_RTOL * fp32["loss"][0], gap[0]
    assert gap.max() < BF16_LOSS_ATOL, gap.max()
    assert gap.mean() < BF16_MEAN_LOSS_ATOL, gap.mean()


def test_explicit_bf16_runs_on_a_cpu_without_native_bf16(
    tokenized: tuple[str, Path],
    auto_runs: dict,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Emulated, slow on such CPUs, but honoured: the same computation as native bf16."""
    with caplog.at_level(logging.WARNING, logger="rmcore.train.accelerator"):
        metrics, steps = train(tokenized, tmp_path, "0", "bf16")
    assert metrics["precision"] == "bf16"
    assert "emulated and slow" in caplog.text
    pd.testing.assert_frame_equal(
        steps.drop(columns="seconds", errors="ignore"),
        auto_runs["1"][1].drop(columns="seconds", errors="ignore"),
    )
