"""benchmarks/gpu_check.py runs end to end in its --quick mode (CPU, tiny Qwen2 config, ours
packed and padded, TRL) and prints its one JSON line, so the GPU check cannot rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import run_benchmark

RUN_KEYS = {"pairs_per_s", "tokens_per_s", "train_seconds", "peak_memory_mb", "mfu"}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="trl is not installed")
def test_quick_gpu_check(tmp_path: Path) -> None:
    result = run_benchmark("gpu_check", "--quick", workdir=tmp_path)
    assert result["device"] == "cpu" and result["matmul_peak_gflops_bf16"] > 0
    tiny = result["tiny"]
    for run in ("ours_packed", "ours_padded", "trl"):
        assert tiny[run].keys() >= RUN_KEYS, run
        assert all(tiny[run][key] > 0 for key in RUN_KEYS), tiny[run]
    packed, padded = tiny["ours_packed"], tiny["ours_padded"]
    assert (packed["attention"], padded["attention"]) == ("rmcore_packed", "sdpa")
    assert packed["tokens"] == padded["tokens"] and packed["pairs"] == result["steps"] * 4
    # TRL trained the same real tokens (counted, not recomputed from rounded figures)
    assert tiny["trl"]["tokens"] == packed["tokens"]
    assert tiny["ratio_vs_trl"] > 0 and tiny["attention"] == "rmcore_packed"
