"""The benchmark against TRL runs end to end in its quick mode and prints its JSON line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import datasets
import pytest

from tests.conftest import REPO_ROOT, run_benchmark

KEYS = {
    "ours_pairs_per_s",
    "trl_pairs_per_s",
    "trl_nogc_pairs_per_s",
    "ratio_vs_trl",
    "ratio_vs_trl_nogc",
    "ours_pairs_trained",
    "trl_pairs_trained",
    "ours_heldout_acc",
    "trl_heldout_acc",
    "matmul_peak_gflops_bf16",
    "matmul_peak_gflops_fp32",
    "ours_mfu",
    "ours_mfu_vs_fp32_peak",
    "ours_mfu_peak",
    "trl_precision",
    "trl_bf16_default_pairs_per_s",
    "tokenize_pairs_per_s",
    "eval_pairs_per_s",
    "heldout_pairs",
    "validation_pairs",
    "ours_val_acc",
    "trl_val_acc",
    "cpu",
}


@pytest.mark.slow
@pytest.mark.precision
@pytest.mark.skipif(
    importlib.util.find_spec("trl") is None,
    reason="trl is not installed (pip install -e '.[bench]' or '.[dev]')",
)
def test_quick_benchmark_against_trl(tmp_path: Path) -> None:
    # fp32 for both trainers: the held-out check below compares the train stage's validation
    # with a rescoring in fp32, which bf16 autocast would round differently
    result = run_benchmark(
        "train_vs_trl", "--quick", "--mixed-precision", "no", "--accuracy-seeds", "1",
        workdir=tmp_path,
    )  # fmt: skip
    assert not KEYS - result.keys(), KEYS - result.keys()
    assert result["ours_pairs_trained"] == result["config"]["pairs"]
    assert (result["ours_precision"], result["trl_precision"]) == ("fp32", "fp32")
    assert isinstance(result["cpu"]["flags"], list)
    assert isinstance(result["cpu"]["native_bf16"], bool)
    assert result["trl_pairs_trained"] <= result["config"]["pairs"]
    for key in ("ours_pairs_per_s", "trl_pairs_per_s", "matmul_peak_gflops_fp32", "ours_mfu"):
        assert result[key] > 0, key
    # over the best peak, never over an emulated bf16 peak below fp32's
    assert result["ours_mfu"] <= result["ours_mfu_vs_fp32_peak"]
    assert 0.0 <= result["ours_heldout_acc"] <= 1.0
    assert result["validation_pairs"] == result["config"]["validation"]
    assert result["ours_val_acc"] == pytest.approx(
        result["ours_val_accuracy_from_train_stage"], abs=1e-4
    )  # the train stage validated on the harness's validation pairs, scored the same way
    by_seed = result["accuracy_by_seed"]
    assert sorted(by_seed) == ["0", "1"]  # the run's seed, then --accuracy-seeds
    assert by_seed["0"]["ours_heldout_acc"] == result["ours_heldout_acc"]
    assert by_seed["0"]["trl_heldout_acc"] == result["trl_nogc_heldout_acc"]
    gaps = [r["ours_heldout_acc"] - r["trl_heldout_acc"] for r in by_seed.values()]
    assert result["heldout_gap_mean"] == pytest.approx(sum(gaps) / 2, abs=1e-4)
    assert result["heldout_gap_min"] <= result["heldout_gap_mean"] <= result["heldout_gap_max"]
    # the paired intervals hold their gaps (mean over seeds: the mean of the seeds' gaps)
    low, high = result["heldout_gap_ci95"]
    assert low <= result["ours_heldout_acc"] - result["trl_heldout_acc"] <= high
    for run in by_seed.values():
        low, high = run["heldout_gap_ci95"]
        assert low <= run["ours_heldout_acc"] - run["trl_heldout_acc"] <= high
    low, high = result["heldout_gap_mean_ci95"]
    assert low - 1e-4 <= result["heldout_gap_mean"] <= high + 1e-4
    assert "correct" not in result["details"]["ours"]["eval"]  # per-pair arrays not printed


def test_paired_gap_interval() -> None:
    """The gap's interval comes from the pairs the two scorers judge differently."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import numpy as np
    import train_vs_trl

    same = np.array([1.0, 0.0, 1.0, 1.0])
    assert train_vs_trl.paired_gap(same, same) == {"gap": 0.0, "ci95": [0.0, 0.0]}
    ours = np.array([1.0] * 60 + [0.0] * 40)
    theirs = np.array([1.0] * 50 + [0.0] * 50)  # 10 pairs only ours gets right
    diff = ours - theirs
    half = 1.96 * diff.std(ddof=1) / 10
    got = train_vs_trl.paired_gap(ours, theirs)
    assert got["gap"] == 0.1
    assert got["ci95"] == [round(0.1 - half, 4), round(0.1 + half, 4)]
    assert got["ci95"][0] > 0  # 10 of 10 discordant pairs favour ours


def test_benchmark_splits_are_disjoint() -> None:
    """Train and validation pairs come one after the other from the train split, never
    overlapping, each with the pairs asked for; None takes every group left."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import harness

    ranks = [[0, 1], [0, 0], [0, 1, 2], [1, 0], [0, 1], [0, 1], [1, 0]]
    ds = datasets.Dataset.from_dict({"ranks": ranks, "row": list(range(len(ranks)))})
    train, validation, rest = harness.consecutive_groups(ds, [2, 2, None], only_pairs=True)
    assert (train["row"], validation["row"], rest["row"]) == ([0, 3], [4, 5], [6])
    with pytest.raises(ValueError, match="only 1 pairs available from group 6, 2 requested"):
        harness.consecutive_groups(ds, [4, 2], only_pairs=True)


def test_mfu_is_over_the_best_measured_peak() -> None:
    """bf16's peak where the device computes bf16 in hardware; fp32's on a CPU that emulates
    bf16 (measured on an AVX2-only CPU: 0.96 GFLOP/s bf16 against 161 fp32)."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import train_vs_trl

    emulated = {"matmul_peak_gflops_fp32": 161.35, "matmul_peak_gflops_bf16": 0.96}
    native = {"matmul_peak_gflops_fp32": 180.0, "matmul_peak_gflops_bf16": 420.0}
    assert train_vs_trl.best_peak(emulated) == ("fp32", 161.35)
    assert train_vs_trl.best_peak(native) == ("bf16", 420.0)


def test_accuracy_seeds_option() -> None:
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import train_vs_trl

    assert train_vs_trl.parse_args(["--accuracy-seeds", "1,2"]).accuracy_seeds == [1, 2]
    with pytest.raises(SystemExit):
        train_vs_trl.parse_args(["--accuracy-seeds", "1,x"])
    with pytest.raises(SystemExit):
        train_vs_trl.parse_args(["--accuracy-seeds", "1", "--skip-trl"])
