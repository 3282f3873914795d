"""The defaults sweep runs in its quick mode: validation chooses, the held-out pairs are
scored once, for the chosen configuration only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_benchmark


@pytest.mark.slow
def test_quick_sweep_chooses_by_validation(tmp_path: Path) -> None:
    result = run_benchmark("sweep", "--quick", "--only", "default,beta_0.01", workdir=tmp_path)
    runs = result["runs"]
    assert list(runs) == ["default", "beta_0.01"]
    best = max(run["val_acc"] for run in runs.values())
    first_best = next(name for name, run in runs.items() if run["val_acc"] == best)
    assert result["chosen"] == first_best and result["chosen_val_acc"] == best
    assert result["chosen_overrides"] == (["loss.beta=0.01"] if first_best != "default" else [])
    assert 0 <= result["chosen_heldout_acc"] <= 1 and result["heldout_pairs"] > 0
    assert result["validation_pairs"] > 0 and result["train_pairs"] > 0
    for run in runs.values():  # every configuration trained the whole budget
        assert run["steps"] > 0 and run["pairs_per_s"] > 0
