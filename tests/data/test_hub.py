"""Hub-schema sources through the real `datasets.load_dataset` path, on local fixtures.

Each fixture is a small dataset directory in the Hub schema of openai/webgpt_comparisons,
openai/summarize_from_feedback (config `comparisons`, declared in the card like on the Hub)
and stanfordnlp/SHP; `hf:` points at the directory, so the code that loads a Hub dataset runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from rmcore.data.records import IngestError
from tests.data.helpers import ingest, write_jsonl

WEBGPT = [
    {
        "question": {"dataset": "eli5", "id": "q1", "full_text": "Why is the sky blue?"},
        "quotes_0": {"title": ["Sky - Wiki"], "extract": ["Rayleigh scattering..."]},
        "answer_0": "Because of Rayleigh scattering of sunlight.",
        "tokens_0": ["Because", " of"],
        "score_0": 0.5,
        "quotes_1": {"title": [], "extract": []},
        "answer_1": "Because the sea reflects.",
        "tokens_1": ["Because"],
        "score_1": -0.5,
    },
    {
        "question": {"dataset": "eli5", "id": "q2", "full_text": "Why do cats purr?"},
        "quotes_0": {"title": [], "extract": []},
        "answer_0": "Nobody knows for sure.",
        "tokens_0": [],
        "score_0": 0.0,
        "quotes_1": {"title": [], "extract": []},
        "answer_1": "To communicate.",
        "tokens_1": [],
        "score_1": 0.0,
    },
]
SUMMARIZE = [
    {
        "info": {
            "id": "t3_1", "post": "I lost my keys again today...", "title": "Keys",
            "subreddit": "tifu", "site": None, "article": None,
        },
        "summaries": [
            {"text": "I lost my keys.", "policy": "sup2", "note": None},
            {"text": "Keys are great.", "policy": "ref", "note": None},
        ],
        "choice": 0,
        "worker": "w1",
        "batch": "batch3",
        "split": "train",
        "extra": {"confidence": 8},
    },
    {
        "info": {
            "id": "cnn1", "post": None, "title": None, "subreddit": None, "site": "cnn",
            "article": "The city opened a new park.",
        },
        "summaries": [
            {"text": "A park opened.", "policy": "sup2", "note": None},
            {"text": "A park closed.", "policy": "ref", "note": None},
        ],
        "choice": 5,
        "worker": "w2",
        "batch": "batch9",
        "split": "valid1",
        "extra": {"confidence": 3},
    },
]  # fmt: skip
SHP = [
    {
        "post_id": "p1", "domain": "askcooking_train", "upvote_ratio": 0.9,
        "history": "How long do I boil an egg?", "c_root_id_A": "a1", "c_root_id_B": "b1",
        "created_at_utc_A": 1, "created_at_utc_B": 2, "score_A": 40, "score_B": 5,
        "human_ref_A": "About 9 minutes for hard-boiled.", "human_ref_B": "Just wing it.",
        "labels": 1, "seconds_difference": 1.0, "score_ratio": 8.0,
    },
    {
        "post_id": "p2", "domain": "askcooking_train", "upvote_ratio": 0.9,
        "history": "Salt in pasta water?", "c_root_id_A": "a2", "c_root_id_B": "b2",
        "created_at_utc_A": 5, "created_at_utc_B": 3, "score_A": 3, "score_B": 4,
        "human_ref_A": "No.", "human_ref_B": "Yes, it seasons the pasta.",
        "labels": 0, "seconds_difference": 2.0, "score_ratio": 1.33,
    },
]  # fmt: skip


def _dataset_dir(
    root: Path, name: str, rows: list[dict[str, Any]], config: str | None = None
) -> str:
    folder = root / name
    data_dir = folder / "data"
    write_jsonl(data_dir / "train.jsonl", rows)
    if config:  # a dataset card declaring a named config, as the Hub repository does
        (folder / "README.md").write_text(
            f"---\nconfigs:\n- config_name: {config}\n  data_files:\n"
            "  - split: train\n    path: data/train.jsonl\n---\n"
        )
    return str(folder)


def _hub_source(path: str, fmt: str, config: str | None = None, **options: Any) -> dict[str, Any]:
    return {"hf": path, "hf_config": config, "format": fmt, "name": "src", "options": options}


def _groups(result: Any) -> list[dict[str, Any]]:
    from rmcore.data.io import read_split

    rows = []
    for split in ("train", "validation", "test"):
        rows += read_split(result.layout, split).to_pylist()
    return rows


def test_webgpt_scores_rank_and_equal_scores_tie(tmp_path: Path) -> None:
    folder = _dataset_dir(tmp_path, "webgpt", WEBGPT)
    result = ingest(tmp_path, [_hub_source(folder, "webgpt", include_quotes=True)])
    [group] = _groups(result)
    assert group["ranks"] == [0, 1] and group["scores"] == [0.5, -0.5]
    assert group["prompt"][0]["content"].startswith(
        "Why is the sky blue?\n\nQuotes:\n[1] Sky - Wiki"
    )
    assert result.reasons() == {"all_tied": 1}
    assert result.source()["files"] == [f"hf:{folder}[train]"]


def test_summarize_from_feedback_comparisons_config(tmp_path: Path) -> None:
    folder = _dataset_dir(tmp_path, "summarize", SUMMARIZE, config="comparisons")
    result = ingest(tmp_path, [_hub_source(folder, "summarize_from_feedback", "comparisons")])
    [group] = _groups(result)
    assert group["completions"] == ["I lost my keys.", "Keys are great."]
    assert group["ranks"] == [0, 1]
    assert (
        "SUBREDDIT: r/tifu\nTITLE: Keys\nPOST: I lost my keys again today..."
        in group["prompt"][0]["content"]
    )
    [entry] = result.quarantine
    assert (entry["reason"], entry["field"], entry["record"]) == ("invalid_value", "choice", 2)


def test_shp_labels_and_min_score_ratio(tmp_path: Path) -> None:
    folder = _dataset_dir(tmp_path, "shp", SHP)
    result = ingest(tmp_path, [_hub_source(folder, "shp")])
    groups = sorted(_groups(result), key=lambda g: g["prompt"][0]["content"])
    assert [g["ranks"] for g in groups] == [[0, 1], [1, 0]]
    assert groups[1]["scores"] == [3.0, 4.0]
    result = ingest(tmp_path, [_hub_source(folder, "shp", min_score_ratio=2.0)])
    assert result.reasons() == {"below_min_score_ratio": 1}
    assert result.balanced()


def test_hub_schema_files_also_load_from_path(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "shp.jsonl", SHP)
    result = ingest(tmp_path, [{"path": "shp.jsonl", "format": "shp", "name": "src"}])
    assert result.source()["groups"]["kept"] == 2


def test_hub_missing_column_names_it(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "labels"} for row in SHP]
    folder = _dataset_dir(tmp_path, "shp", rows)
    with pytest.raises(IngestError, match=r"no column 'labels'"):
        ingest(tmp_path, [_hub_source(folder, "shp")])


def test_offline_hub_fails_fast_with_what_to_do(tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(IngestError) as err:
        ingest(tmp_path, [_hub_source("openai/webgpt_comparisons", "webgpt")])
    assert time.perf_counter() - start < 20
    message = str(err.value)
    assert "HF_HUB_OFFLINE is set (offline)" in message
    assert "`path:`" in message


def test_unreachable_hub_is_probed_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    start = time.perf_counter()
    with pytest.raises(IngestError) as err:
        ingest(tmp_path, [_hub_source("openai/webgpt_comparisons", "webgpt")])
    assert time.perf_counter() - start < 10
    assert "127.0.0.1:9 cannot be reached" in str(err.value)
    assert "HF_HUB_OFFLINE=1" in str(err.value)


def test_fixture_rows_are_hub_schema() -> None:
    """Guard: the fixtures keep the field names of the Hub datasets."""
    assert set(WEBGPT[0]) == {
        "question", "quotes_0", "answer_0", "tokens_0", "score_0",
        "quotes_1", "answer_1", "tokens_1", "score_1",
    }  # fmt: skip
    assert set(SUMMARIZE[0]) == {"info", "summaries", "choice", "worker", "batch", "split", "extra"}
    assert json.dumps(sorted(SHP[0])) == json.dumps(
        sorted(
            ["post_id", "domain", "upvote_ratio", "history", "c_root_id_A", "c_root_id_B",
             "created_at_utc_A", "created_at_utc_B", "score_A", "score_B", "human_ref_A",
             "human_ref_B", "labels", "seconds_difference", "score_ratio"]
        )
    )  # fmt: skip
