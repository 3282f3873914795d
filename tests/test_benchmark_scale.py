"""The scale benchmark runs in its quick mode: one JSON line, counts that add up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_benchmark

STAGE_KEYS = {"seconds", "groups_per_s", "peak_rss_mb", "worker_peak_rss_mb", "peak_tree_rss_mb"}


@pytest.mark.slow
def test_quick_scale_benchmark(tmp_path: Path) -> None:
    result = run_benchmark("scale", "--quick", workdir=tmp_path)
    assert result["benchmark"] == "scale" and result["quick"] is True
    [size] = result["sizes"]
    run = result["results"][str(size)]
    expected = run["expected"]
    assert expected["groups"] == size
    totals = run["ingest"]["totals"]
    for key in ("records_read", "records_quarantined", "groups_kept"):
        assert totals[key] == expected[key], key
    assert totals["records_kept"] + totals["records_quarantined"] == totals["records_read"]
    for stage in ("ingest", "tokenize_1proc", "tokenize_2proc"):
        assert run[stage].keys() >= STAGE_KEYS, stage
        assert run[stage]["peak_rss_mb"] > 0 and run[stage]["groups_per_s"] > 0
    for procs in (1, 2):
        tokenized = run[f"tokenize_{procs}proc"]
        assert tokenized["groups"] == expected["groups_kept"]
        assert max(tokenized["processes"]) == procs
    assert run["tokenize_1proc"]["tokens"] == run["tokenize_2proc"]["tokens"]
    assert run["tokenize_outputs_identical"] is True
