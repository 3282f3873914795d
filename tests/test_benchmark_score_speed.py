"""The scoring-speed benchmark runs in its quick mode: one JSON line, counts that add up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_benchmark

KEYS = {
    "train_pairs_per_s",
    "score_pairs_per_s",
    "score_vs_train",
    "score_precision",
    "train_precision",
    "score_tokens_per_s",
    "pairs",
    "pairs_trained",
    "attention",
    "config",
    "environment",
}


@pytest.mark.slow
@pytest.mark.precision
def test_quick_score_speed_benchmark(tmp_path: Path) -> None:
    result = run_benchmark("score_speed", "--quick", workdir=tmp_path)
    assert not KEYS - result.keys(), KEYS - result.keys()
    assert result["benchmark"] == "score_speed" and result["config"]["quick"] is True
    assert result["pairs"] == result["pairs_trained"] == result["config"]["pairs"]
    # the model scores in the precision it trained in, and says so
    trained = {"no": "fp32", "bf16": "bf16"}[result["train_precision"]]
    assert result["score_precision"] == trained
    assert ("score_fp32_pairs_per_s" in result) == (trained == "bf16")
    for key in ("train_pairs_per_s", "score_pairs_per_s", "score_tokens_per_s"):
        assert result[key] > 0, key
