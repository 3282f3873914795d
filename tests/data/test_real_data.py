"""The real datasets in ../shared/data ingest with the param snippets of docs/data.md alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rmcore.data.records import REASONS
from tests.data.helpers import DATA_DOC, Result, ingest, readme_example


def _run(tmp_path: Path, shared_data: Path, name: str) -> Result:
    sources = readme_example(name)
    for src in sources:
        src["path"] = src["path"].replace("../shared/data", str(shared_data))
    return ingest(tmp_path, sources)


def _check_accounting(result: Result, name: str) -> dict[str, Any]:
    section = result.source(name)
    records = section["records"]
    assert records["kept"] + records["quarantined"] == records["read"]
    assert sum(records["quarantined_by_reason"].values()) == records["quarantined"]
    record_entries = [e for e in result.quarantine if e["unit"] == "record"]
    assert len(record_entries) == records["quarantined"]
    assert all(e["reason"] in REASONS and e["fix"] and e["file"] for e in result.quarantine)
    return section


def test_hh_rlhf(tmp_path: Path, shared_data: Path) -> None:
    section = _check_accounting(_run(tmp_path, shared_data, "hh-rlhf"), "hh-rlhf")
    assert section["records"]["read"] == 2312
    assert section["records"]["kept"] > 2250
    assert set(section["records"]["quarantined_by_reason"]) <= {
        "prompt_mismatch",
        "empty_completion",
    }
    assert section["records"]["quarantined_by_reason"]["prompt_mismatch"] >= 1
    assert section["groups"]["kept_by_k"] == {"2": section["groups"]["kept"]}


def test_oasst_gives_k_wise_groups(tmp_path: Path, shared_data: Path) -> None:
    result = _run(tmp_path, shared_data, "oasst")
    section = _check_accounting(result, "oasst")
    assert section["records"]["read"] == 100
    assert max(int(k) for k in section["groups"]["kept_by_k"]) > 2
    assert section["groups"]["kept"] == 212
    assert section["groups"]["candidates"] == section["groups"]["kept"] + sum(
        section["groups"]["quarantined_by_reason"].values()
    )
    assert all(e["unit"] == "group" for e in result.quarantine)  # single replies, trees kept


def test_pandalm_votes_merge_into_rankings(tmp_path: Path, shared_data: Path) -> None:
    result = _run(tmp_path, shared_data, "pandalm")
    section = _check_accounting(result, "pandalm")
    assert section["records"]["read"] == 999
    assert section["notes"]["merged_groups"] > 50
    assert max(int(k) for k in section["groups"]["kept_by_k"]) >= 4
    assert "cyclic_pairs" in section["notes"]
    assert section["records"]["quarantined_by_reason"]["wrong_type"] >= 1  # boolean responses


def test_llmbar_with_params_alone(tmp_path: Path, shared_data: Path) -> None:
    section = _check_accounting(_run(tmp_path, shared_data, "llmbar"), "llmbar")
    assert section["records"]["read"] == 885
    assert len(section["files"]) == 8
    assert section["records"]["kept"] > 850


def test_readme_lists_every_reason() -> None:
    for reason in REASONS:
        assert f"`{reason}`" in DATA_DOC, f"docs/data.md's reason table misses {reason}"


def test_readme_examples_are_valid_params() -> None:
    from rmcore.core.config import parse_params

    for name in ("hh-rlhf", "oasst", "pandalm", "llmbar"):
        parse_params({"data": {"sources": readme_example(name)}})
    with pytest.raises(KeyError):
        readme_example("nope")
