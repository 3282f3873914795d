"""The serving benchmark runs in its quick mode: a registered model really served on loopback,
one JSON line with every batch size's figures and no failed request."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_benchmark

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIGURES = {
    "batch_rows",
    "requests",
    "rows",
    "errors",
    "seconds",
    "requests_per_s",
    "rows_per_s",
    "latency_ms_p50",
    "latency_ms_p99",
}


def test_quick_serve_benchmark(tmp_path: Path) -> None:
    result = run_benchmark("serve", "--quick", "--requests", "5", workdir=tmp_path, timeout=900)
    assert result["benchmark"] == "serve" and result["config"]["quick"] is True
    assert result["model_uri"].startswith("models:/")
    assert result["config"]["batch_sizes"] == [1, 32]
    for batch in (1, 32):
        figures = result[f"batch_{batch}"]
        assert figures.keys() == FIGURES, figures.keys()
        assert figures["batch_rows"] == batch and figures["requests"] == 5
        assert figures["rows"] == 5 * batch and figures["errors"] == 0
        assert figures["latency_ms_p50"] <= figures["latency_ms_p99"]
