"""Property tests of the leak-free split and the stable group id."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmcore.core.config import SplitConfig
from rmcore.data import io as data_io
from rmcore.data.io import read_split
from rmcore.data.schema import SPLITS, RankedGroup
from rmcore.data.split import assign_split, assign_split_key, assign_splits, group_id, split_key
from tests.data.helpers import ingest, source, write_jsonl

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": texts}),
    min_size=1,
    max_size=3,
)
fractions = st.tuples(st.integers(0, 10), st.integers(0, 10), st.integers(0, 10)).filter(
    lambda t: sum(t) > 0
)


def _config(parts: tuple[int, int, int], seed: int) -> SplitConfig:
    total = sum(parts)
    return SplitConfig(
        train=parts[0] / total, validation=parts[1] / total, test=parts[2] / total, seed=seed
    )


@settings(max_examples=200, deadline=None)
@given(messages, fractions, st.integers(0, 2**31))
def test_split_depends_on_the_prompt_only_and_respects_empty_splits(
    prompt: list[dict[str, str]], parts: tuple[int, int, int], seed: int
) -> None:
    config = _config(parts, seed)
    split = assign_split(prompt, config)
    assert split == assign_split([dict(m) for m in prompt], config)  # deterministic
    assert {"train": parts[0], "validation": parts[1], "test": parts[2]}[split] > 0
    # case and whitespace variants of the same prompt cannot land in another split
    variant = [{"role": m["role"], "content": f"  {m['content'].upper()}  "} for m in prompt]
    if split_key(variant) == split_key(prompt):
        assert assign_split(variant, config) == split


@settings(max_examples=100, deadline=None)
@given(messages, st.lists(texts, min_size=2, max_size=4, unique=True), st.randoms())
def test_group_id_is_stable_and_order_free(
    prompt: list[dict[str, str]], completions: list[str], rng: random.Random
) -> None:
    ranks = list(range(len(completions)))
    order = list(range(len(completions)))
    rng.shuffle(order)
    shuffled = ([completions[i] for i in order], [ranks[i] for i in order])
    assert group_id("s", prompt, completions, ranks) == group_id("s", prompt, *shuffled)
    assert group_id("s", prompt, completions, ranks) != group_id("t", prompt, completions, ranks)
    if len(set(ranks)) > 1:
        flipped = ranks[::-1]
        assert group_id("s", prompt, completions, ranks) != group_id(
            "s", prompt, completions, flipped
        )


def test_fractions_are_met_on_many_prompts() -> None:
    config = SplitConfig(train=0.8, validation=0.1, test=0.1, seed=3)
    counts = {"train": 0, "validation": 0, "test": 0}
    for i in range(20_000):
        counts[assign_split([{"role": "user", "content": f"prompt {i}"}], config)] += 1
    assert abs(counts["train"] / 20_000 - 0.8) < 0.015
    assert abs(counts["test"] / 20_000 - 0.1) < 0.01


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.sampled_from(["Hi?", "hi? ", "Sky?", "Two plus two?", "Name a colour."]),
        min_size=2,
        max_size=12,
    ),
    st.integers(0, 1000),
)
def test_ingest_never_puts_one_prompt_in_two_splits(prompts: list[str], seed: int) -> None:
    """End to end: repeated (and case/space-varied) prompts all land in one split."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = [
            {"q": p, "a": f"answer {i}", "b": f"other {i}", "label": 1}
            for i, p in enumerate(prompts)
        ]
        write_jsonl(root / "in.jsonl", rows)
        result = ingest(root, [source("in.jsonl")], split={"seed": seed})
        from rmcore.data.io import read_split

        seen: dict[str, str] = {}
        for split in ("train", "validation", "test"):
            for row in read_split(result.layout, split).to_pylist():
                key = split_key(row["prompt"])
                assert seen.setdefault(key, split) == split
        again = ingest(root, [source("in.jsonl")], split={"seed": seed})
        assert again.report == result.report


def _reference_splits(groups: list[RankedGroup], config: SplitConfig) -> list[str]:
    """The split of each group by the definition: union-find over prompt keys and split keys
    with the texts themselves, each linked set taking its smallest prompt key's split."""
    parent: dict[str, str] = {}

    def find(item: str) -> str:
        parent.setdefault(item, item)
        while parent[item] != item:
            item = parent[item]
        return item

    prompts = [split_key(g.prompt) for g in groups]
    for group, prompt in zip(groups, prompts, strict=True):
        for key in group.split_keys:
            parent[find("\x1d" + key)] = find(prompt)
        find(prompt)
    smallest: dict[str, str] = {}
    for prompt in prompts:
        smallest[find(prompt)] = min(smallest.get(find(prompt), prompt), prompt)
    return [assign_split_key(smallest[find(p)], config) for p in prompts]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "A ", "b", "c", "d  e", "f"]),
            st.lists(st.sampled_from(["k1", "k2", "k3", "k4"]), max_size=2),
        ),
        max_size=25,
    ),
    st.integers(0, 100),
)
def test_hashed_links_give_the_splits_of_the_definition(
    items: list[tuple[str, list[str]]], seed: int
) -> None:
    """`assign_splits` (hashes; texts only of linked prompts) = the union-find over texts."""
    config = SplitConfig(train=0.4, validation=0.3, test=0.3, seed=seed)
    groups = [
        RankedGroup([{"role": "user", "content": p}], ["x", "y"], [0, 1], "s", split_keys=keys)
        for p, keys in items
    ]
    assign_splits(groups, config)
    assert [g.split for g in groups] == _reference_splits(groups, config)


def test_split_keys_link_across_row_groups_of_the_held_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With split_key the groups wait in a temporary file, here read back in many row groups:
    the splits equal those of one row group, each item in one split, and the file is gone."""
    rows = [
        {"prompt": f"question {i % 40} {'plain' if i % 2 else 'templated'}", "chosen": f"a{i}",
         "rejected": f"b{i}", "id": f"item{i % 40}"}
        for i in range(400)
    ]  # fmt: skip
    write_jsonl(tmp_path / "in.jsonl", rows)
    src = source("in.jsonl", "preference", split_key="id")
    whole = ingest(tmp_path, [src])
    tables = {s: read_split(whole.layout, s) for s in SPLITS}
    monkeypatch.setattr(data_io, "ROWS_PER_WRITE", 7)
    chunked = ingest(tmp_path, [src])
    assert chunked.report == whole.report
    items: dict[str, set[str]] = {}
    for split in SPLITS:
        table = read_split(chunked.layout, split)
        assert table.to_pylist() == tables[split].to_pylist()
        if table.num_rows > 7:
            assert pq.ParquetFile(chunked.layout.split_file(split)).num_row_groups > 1
        for row in table.to_pylist():
            items.setdefault(row["prompt"][0]["content"].split()[1], set()).add(split)
    assert len(items) == 40 and all(len(splits) == 1 for splits in items.values())
    assert sorted(p.name for p in chunked.layout.normalized.iterdir()) == sorted(
        ["quarantine.jsonl", "report.json", *(f"{s}.parquet" for s in SPLITS)]
    )
