"""The defaults sweep runs in its quick mode: the mean validation accuracy over the seeds
chooses, the held-out pairs are scored once per seed, for the chosen configuration only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_benchmark


@pytest.mark.slow
def test_quick_sweep_chooses_by_validation(tmp_path: Path) -> None:
    result = run_benchmark(
        "sweep", "--quick", "--only", "default,beta_0.01", "--seeds", "0,1", workdir=tmp_path
    )
    runs = result["runs"]
    assert result["seeds"] == [0, 1]
    for run in runs.values():  # judged by the mean over the seeds
        seed_accs = [r["val_acc"] for r in run["by_seed"].values()]
        assert list(run["by_seed"]) == ["0", "1"]
        assert run["val_acc"] == pytest.approx(sum(seed_accs) / 2, abs=1e-4)
    assert list(runs) == ["default", "beta_0.01"]
    best = max(run["val_acc"] for run in runs.values())
    first_best = next(name for name, run in runs.items() if run["val_acc"] == best)
    assert result["chosen"] == first_best and result["chosen_val_acc"] == best
    assert result["chosen_overrides"] == (["loss.beta=0.01"] if first_best != "default" else [])
    heldout = result["chosen_heldout_acc_by_seed"]
    assert list(heldout) == ["0", "1"] and all(0 <= acc <= 1 for acc in heldout.values())
    assert result["chosen_heldout_acc"] == pytest.approx(sum(heldout.values()) / 2, abs=1e-4)
    assert result["heldout_pairs"] > 0
    assert result["validation_pairs"] > 0 and result["train_pairs"] > 0
    for run in runs.values():  # every configuration trained the whole budget with each seed
        for seed_run in run["by_seed"].values():
            assert seed_run["steps"] > 0 and seed_run["pairs_per_s"] > 0
