"""Public preference datasets by params alone: each schema's docs/data.md example, on a small
file in that schema, gives the groups, ranks, ties and accounting the raw records say."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rmcore.data.io import read_split
from rmcore.data.schema import SPLITS
from rmcore.data.split import split_key
from tests.data.helpers import Result, ingest, readme_example
from tests.data.public_schemas import FIXTURES, NECTAR_MODELS, Record

Row = dict[str, Any]


def _write(path: Path, records: list[Record]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    elif path.suffix == ".json":  # a JSON array, as the file is published
        path.write_text(json.dumps(records, indent=1))
    else:
        data = "".join(json.dumps(r) + "\n" for r in records).encode()
        path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def run(tmp_path: Path, name: str) -> tuple[Result, list[Record], list[Row]]:
    """Ingest the fixture of `name` with its docs example; (result, raw records, groups)."""
    file, build = FIXTURES[name]
    records = build()
    _write(tmp_path / file, records)
    [src] = readme_example(name)
    assert src["path"] == file, "the docs example reads the file the fixture writes"
    result = ingest(tmp_path, [src])
    groups = [row for s in SPLITS for row in read_split(result.layout, s).to_pylist()]
    return result, records, groups


def _by_prompt(groups: list[Row]) -> dict[str, Row]:
    return {g["prompt"][-1]["content"]: g for g in groups}


def _ranked(group: Row) -> dict[str, int]:
    return dict(zip(group["completions"], group["ranks"], strict=True))


def check_ultrafeedback(records: list[Record], groups: list[Row]) -> None:
    found = _by_prompt(groups)
    clouds = found[records[0]["instruction"]]
    assert clouds["scores"] == [20.0, 6.0, 18.0, 14.0]  # the four aspects summed
    assert clouds["ranks"] == [0, 3, 1, 2]
    primes = found[records[1]["instruction"]]
    assert primes["ranks"] == [0, 0, 2, 1]  # two completions rated 5/5/5/5 tie
    assert records[2]["instruction"] not in found  # a rating of "N/A"


def check_helpsteer2(records: list[Record], groups: list[Row]) -> None:
    found = _by_prompt(groups)
    boiling = found[records[0]["prompt"]]
    assert _ranked(boiling) == {records[0]["response"]: 0, records[1]["response"]: 1}
    assert boiling["scores"] == [12.0, 6.0]
    assert _ranked(found[records[2]["prompt"]]) == {
        records[2]["response"]: 0,
        records[3]["response"]: 1,
    }
    assert records[4]["prompt"] not in found  # both responses score 12: all tied


def check_nectar(records: list[Record], groups: list[Row]) -> None:
    for record in records:
        [group] = [g for g in groups if record["answers"][0]["answer"] in g["completions"]]
        ranks = _ranked(group)
        assert len(ranks) == 7
        for answer in record["answers"]:
            assert ranks[answer["answer"]] == int(answer["rank"]) - 1
        best = next(a for a in record["answers"] if a["rank"] == 1.0)
        assert best["model"] == NECTAR_MODELS[0]
    multi = next(g for g in groups if len(g["prompt"]) > 1)
    assert [m["role"] for m in multi["prompt"]] == ["user", "assistant", "user"]
    assert multi["prompt"][-1]["content"] == "Suggest a book."


def check_chatbot_arena(records: list[Record], groups: list[Row]) -> None:
    def group_of(record: Record) -> Row | None:
        a = record["conversation_a"][-1]["content"]
        return next((g for g in groups if a in g["completions"]), None)

    for record in records:
        group = group_of(record)
        if record["winner"].startswith("tie") or record["turn"] > 1:
            assert group is None
            continue
        assert group is not None
        assert group["prompt"] == record["conversation_a"][:-1]
        a, b = record["conversation_a"][-1]["content"], record["conversation_b"][-1]["content"]
        best = a if record["winner"] == "model_a" else b
        assert _ranked(group)[best] == 0 and len(group["completions"]) == 2


def check_mt_bench(records: list[Record], groups: list[Row]) -> None:
    def answer(qid: int, model: str) -> str:
        return f"{model}'s answer to question {qid}, turn 1."

    q81 = next(g for g in groups if answer(81, "gpt-4") in g["completions"])
    assert q81["prompt"] == records[0]["conversation_a"][:1]  # cut after the first turn
    assert _ranked(q81) == {
        answer(81, "gpt-4"): 0, answer(81, "claude-v1"): 1, answer(81, "vicuna-13b-v1.2"): 2,
    }  # fmt: skip
    q82 = next(g for g in groups if answer(82, "llama-13b") in g["completions"])
    assert _ranked(q82) == {
        answer(82, "gpt-4"): 0, answer(82, "claude-v1"): 0,  # the tie
        answer(82, "alpaca-13b"): 1, answer(82, "llama-13b"): 2,
    }  # fmt: skip


def check_pku_saferlhf(records: list[Record], groups: list[Row], objective: str) -> None:
    found = _by_prompt(groups)
    for record in records:
        winner = record[f"response_{record[objective]}"]
        assert _ranked(found[record["prompt"]])[winner] == 0


def check_ultrafeedback_binarized(records: list[Record], groups: list[Row]) -> None:
    found = _by_prompt(groups)
    for record in records[:2]:
        group = found[record["prompt"]]
        assert group["completions"] == [
            record["chosen"][-1]["content"],
            record["rejected"][-1]["content"],
        ]
        assert (group["ranks"], group["scores"]) == (
            [0, 1],
            [record["score_chosen"], record["score_rejected"]],
        )
    assert records[2]["prompt"] not in found  # score_chosen == score_rejected: a tie


def check_sharegpt_dpo(records: list[Record], groups: list[Row]) -> None:
    found = {g["completions"][0]: g for g in groups}
    for record in records:
        group = found[record["chosen"]["value"]]
        assert group["completions"][1] == record["rejected"]["value"] and group["ranks"] == [0, 1]
        roles = {"human": "user", "gpt": "assistant", "system": "system"}
        assert group["prompt"] == [
            {"role": roles[m["from"]], "content": m["value"]} for m in record["conversations"]
        ]


CHECKS: dict[str, Callable[[list[Record], list[Row]], None]] = {
    "ultrafeedback": check_ultrafeedback,
    "helpsteer2": check_helpsteer2,
    "nectar": check_nectar,
    "chatbot-arena": check_chatbot_arena,
    "mt-bench": check_mt_bench,
    "pku-saferlhf": lambda r, g: check_pku_saferlhf(r, g, "better_response_id"),
    "pku-saferlhf-safer": lambda r, g: check_pku_saferlhf(r, g, "safer_response_id"),
    "ultrafeedback-binarized": check_ultrafeedback_binarized,
    "sharegpt-dpo": check_sharegpt_dpo,
}

# name -> read, kept, quarantined by reason, groups, pairs (implied), max k
EXPECTED: dict[str, tuple[int, int, dict[str, int], int, int, int, int]] = {
    "ultrafeedback": (3, 2, {"wrong_type": 1}, 2, 11, 0, 4),
    "helpsteer2": (6, 4, {"all_tied": 2}, 2, 2, 0, 2),
    "nectar": (2, 2, {}, 2, 42, 0, 7),
    "chatbot-arena": (7, 4, {"all_tied": 2, "histories_differ": 1}, 4, 4, 0, 2),
    "mt-bench": (8, 6, {"excluded": 2}, 2, 8, 3, 4),
    "pku-saferlhf": (4, 4, {}, 4, 4, 0, 2),
    "pku-saferlhf-safer": (4, 4, {}, 4, 4, 0, 2),
    "ultrafeedback-binarized": (3, 2, {"all_tied": 1}, 2, 2, 0, 2),
    "sharegpt-dpo": (3, 3, {}, 3, 3, 0, 2),
}


@pytest.mark.parametrize("name", list(FIXTURES))
def test_a_public_schema_goes_in_by_its_docs_example(name: str, tmp_path: Path) -> None:
    result, records, groups = run(tmp_path, name)
    section = result.source(name)
    counts = section["records"]
    read, kept, reasons, n_groups, pairs, implied, max_k = EXPECTED[name]
    assert (counts["read"], counts["kept"], counts["quarantined_by_reason"]) == (
        read,
        kept,
        reasons,
    )
    assert counts["kept"] + counts["quarantined"] == counts["read"]
    assert (section["groups"]["kept"], section["pairs_kept"], section["pairs_kept_implied"]) == (
        n_groups, pairs, implied,
    )  # fmt: skip
    assert (
        max(len(g["completions"]) for g in groups)
        == max_k
        == max(map(int, section["groups"]["kept_by_k"]))
    )
    assert len(groups) == n_groups
    CHECKS[name](records, groups)
    splits: dict[str, set[str]] = {}
    for group in groups:
        splits.setdefault(split_key(group["prompt"]), set()).add(group["split"])
    assert all(len(s) == 1 for s in splits.values()), "a prompt in two splits"
