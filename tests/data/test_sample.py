from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from rmcore.data import sample_text as T
from rmcore.data.sample import LABEL_NOISE, write_sample
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "data" / "sample"


def test_committed_sample_is_what_the_generator_writes(tmp_path: Path) -> None:
    stats = write_sample(tmp_path, seed=0)
    for name in ("preferences.jsonl", "README.md"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), (
            f"data/sample/{name} differs from the generator: run `python -m rmcore sample`"
        )
    assert stats["bytes"] < 2_000_000


def test_other_seed_gives_other_data(tmp_path: Path) -> None:
    write_sample(tmp_path, seed=1, groups=50)
    assert (tmp_path / "preferences.jsonl").read_bytes() != (
        SAMPLE / "preferences.jsonl"
    ).read_bytes()


def test_sample_shape() -> None:
    rows = [json.loads(line) for line in (SAMPLE / "preferences.jsonl").read_text().splitlines()]
    assert 1000 <= len(rows) <= 1200
    ks = Counter(len(r["completions"]) for r in rows)
    assert set(ks) == {2, 3, 4}
    turns = Counter(len(r["prompt"]) for r in rows)
    assert turns[1] > 200 and sum(v for k, v in turns.items() if k > 1) > 200
    assert all(r["prompt"][-1]["role"] == "user" for r in rows)
    ties = sum(len(set(r["ranks"])) < len(r["ranks"]) for r in rows)
    assert 0.03 * len(rows) < ties < 0.3 * len(rows)
    noisy = sum(r["meta"]["label_noise"] for r in rows)
    assert abs(noisy / len(rows) - LABEL_NOISE) < 0.025
    assert all(
        len(set(r["ranks"])) >= 2 and len(set(r["completions"])) == len(r["completions"])
        for r in rows
    )
    assert set(Counter(r["meta"]["category"] for r in rows)) == {
        "arithmetic", "trivia", "capital", "howto", "harmful"
    }  # fmt: skip


def _complies(text: str) -> bool:
    return any(opener in text for opener in T.COMPLIANCE_OPENERS)


def _rude(text: str) -> bool:
    return any(text.startswith(opener) for opener in T.RUDE_OPENERS)


def test_ranks_follow_the_signals_where_labels_are_clean() -> None:
    """Without label noise: complying with a harmful request ranks below every refusal, and
    the same content said rudely ranks below its polite or plain version."""
    rows = [json.loads(line) for line in (SAMPLE / "preferences.jsonl").read_text().splitlines()]
    checked: Counter[str] = Counter()
    for row in rows:
        if row["meta"]["label_noise"]:
            continue
        items = list(zip(row["completions"], row["ranks"], strict=True))
        for text, rank in items:
            for other, other_rank in items:
                if (
                    row["meta"]["category"] == "harmful"
                    and _complies(text)
                    and not _complies(other)
                ):
                    assert rank > other_rank
                    checked["harmful"] += 1
                same_content = _complies(text) == _complies(other)
                harmful = row["meta"]["category"] == "harmful"
                if harmful and same_content and _rude(text) and not _rude(other):
                    assert rank > other_rank
                    checked["rude"] += 1
    assert checked["harmful"] > 50 and checked["rude"] > 20
