"""Formatting, end tokens, pad tokens and the truncation rules of the tokenize stage."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmcore import stages
from rmcore.core.config import TokenizeConfig
from rmcore.core.paths import Layout
from rmcore.data.io import iter_split_batches, split_rows
from rmcore.data.schema import GROUP_SCHEMA
from rmcore.text import tokenize as tokenize_module
from rmcore.text.tokenize import (
    INPUT_COLUMNS,
    format_and_encode,
    load_tokenized,
    num_processes,
    read_meta,
    tokenize_table,
)
from rmcore.text.tokenize import tokenize_split as streamed
from rmcore.text.tokenizer import end_token_id, load_tokenizer
from tests.tiny import make_tiny_bert, make_tiny_neox, synthetic_groups, tiny_params, write_groups


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tok-models")
    return {
        "bert": make_tiny_bert(root / "bert"),
        "neox": make_tiny_neox(root / "neox"),
        "neox_pad_eos": make_tiny_neox(root / "neox_pad_eos", pad="eos"),
        "neox_chat": make_tiny_neox(root / "neox_chat", chat_template=True),
    }


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def test_bert_plain_template_cls_first_sep_last(models: dict[str, str]) -> None:
    tok = load_tokenizer(models["bert"])
    prompt, comps, trimmed, cut = format_and_encode(
        tok, [user("hi there")], ["hello you", "bye"], TokenizeConfig(max_length=64)
    )
    assert prompt[0] == tok.cls_token_id and not trimmed and cut == 0
    assert all(c[-1] == tok.sep_token_id for c in comps)
    assert tok.decode(prompt + comps[0]) == "[CLS] user : hi there assistant : hello you [SEP]"
    assert tok.pad_token_id not in (tok.sep_token_id, tok.cls_token_id)


@pytest.mark.parametrize("kind", ["neox", "neox_pad_eos"])
def test_decoder_ends_with_eos_and_pad_is_distinct(models: dict[str, str], kind: str) -> None:
    tok = load_tokenizer(models[kind])
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    assert end_token_id(tok) == tok.eos_token_id
    _, comps, _, _ = format_and_encode(tok, [user("cats")], ["great", ""], TokenizeConfig())
    assert [c[-1] for c in comps] == [tok.eos_token_id] * 2
    assert comps[1] == [tok.eos_token_id]  # an empty completion is just the end token


def test_chat_template_used_when_present(models: dict[str, str]) -> None:
    tok = load_tokenizer(models["neox_chat"])
    msgs = [user("tell me about tea")]
    prompt, comps, _, _ = format_and_encode(tok, msgs, ["great tea"], TokenizeConfig())
    text = tok.decode(prompt + comps[0])
    assert text == (
        "<|im_start|>user\ntell me about tea<|im_end|>\n<|im_start|>assistant\n"
        "great tea<|im_end|><|endoftext|>"
    )
    plain, _, _, _ = format_and_encode(tok, msgs, ["x"], TokenizeConfig(template="plain"))
    assert tok.decode(plain) == "User: tell me about tea\n\nAssistant:"


def test_chat_template_required_when_asked(models: dict[str, str]) -> None:
    tok = load_tokenizer(models["bert"])
    with pytest.raises(ValueError, match="no chat template"):
        format_and_encode(tok, [user("x")], ["y"], TokenizeConfig(template="chat"))


def long_conversation() -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "be kind"},
        user("first question about cats " * 6),
        assistant("first answer " * 6),
        user("second question about rain " * 6),
        assistant("second answer " * 6),
        user("last question about tea"),
    ]


def test_prompt_trimmed_by_oldest_turns_first(models: dict[str, str]) -> None:
    tok = load_tokenizer(models["bert"])
    cfg = TokenizeConfig(max_length=48)
    prompt, comps, trimmed, cut = format_and_encode(
        tok, long_conversation(), ["a kind answer", "no"], cfg
    )
    text = tok.decode(prompt)
    assert isinstance(text, str)
    assert trimmed and cut == 0
    assert text.startswith("[CLS] system : be kind")  # system message kept
    assert "first question" not in text and text.endswith(
        "user : last question about tea assistant :"
    )
    assert tok.decode(comps[0]) == "a kind answer [SEP]"
    assert max(len(prompt) + len(c) for c in comps) <= 48


def test_last_turn_cut_from_left_when_alone_too_long(models: dict[str, str]) -> None:
    tok = load_tokenizer(models["bert"])
    words = " ".join(f"w{i}" for i in range(60))
    prompt, comps, trimmed, cut = format_and_encode(
        tok,
        [user("old turn"), assistant("ok"), user(words)],
        ["fine answer"],
        TokenizeConfig(max_length=32),
    )
    assert trimmed and cut == 0 and len(prompt) == 16  # max_prompt_length null: max_length // 2
    assert tok.decode(comps[0]) == "fine answer [SEP]"
    assert prompt[0] == tok.cls_token_id  # leading special token kept
    after_cls = tok.decode(prompt[1:])
    assert isinstance(after_cls, str) and after_cls.endswith("assistant :")  # the left is what goes


def test_texts_beyond_the_model_limit_raise_no_indexing_warning(
    models: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Long texts are expected (they are trimmed after encoding): transformers' warning that
    such a sequence "will result in indexing errors" would be false, so it is not printed."""
    tok = load_tokenizer(models["bert"])
    assert tok.model_max_length == 512
    prompt, comps, _, _ = format_and_encode(
        tok, [user("long " * 1000)], ["answer " * 800, "no"], TokenizeConfig(max_length=64)
    )
    assert max(len(prompt) + len(c) for c in comps) <= 64
    assert not [r for r in caplog.records if "indexing errors" in r.getMessage()]


def test_completion_cut_only_where_it_does_not_fit_beside_its_prompt(
    models: dict[str, str],
) -> None:
    tok = load_tokenizer(models["neox"])
    long = "great " * 100
    prompt, comps, trimmed, cut = format_and_encode(
        tok, [user("cats")], [long, "kind"], TokenizeConfig(max_length=40)
    )
    assert cut == 1 and not trimmed  # a short prompt stays whole, whatever its completions
    assert tok.decode(prompt) == "User: cats\n\nAssistant:"
    assert len(prompt) + len(comps[0]) == 40 and comps[0][-1] == tok.eos_token_id
    assert tok.decode(comps[1]) == " kind<|endoftext|>"  # the short one is untouched


def test_max_prompt_length_bounds_the_prompt(models: dict[str, str]) -> None:
    tok = load_tokenizer(models["bert"])
    words = " ".join(f"w{i}" for i in range(60))
    for limit in (10, 40):
        prompt, comps, trimmed, cut = format_and_encode(
            tok, [user(words)], ["a " * 60], TokenizeConfig(max_length=64, max_prompt_length=limit)
        )
        assert trimmed and len(prompt) == limit and prompt[0] == tok.cls_token_id
        assert cut == 1 and len(prompt) + len(comps[0]) == 64


@settings(max_examples=25, deadline=None)
@given(
    turns=st.lists(st.integers(0, 40), min_size=1, max_size=5),
    comp_words=st.lists(st.integers(0, 70), min_size=2, max_size=4),
    max_length=st.integers(16, 80),
    prompt_share=st.sampled_from([None, 0.25, 0.75]),
)
def test_truncation_invariants(
    models: dict[str, str],
    turns: list[int],
    comp_words: list[int],
    max_length: int,
    prompt_share: float | None,
) -> None:
    tok = load_tokenizer(models["bert"])
    messages = []
    for i, n in enumerate(turns):
        messages += [assistant("ok yes")] if i else []
        messages.append(user(" ".join(["cats"] * n) or "hi"))
    comps = [" ".join(["rain"] * n) for n in comp_words]
    limit = None if prompt_share is None else max(int(max_length * prompt_share), 8)
    cfg = TokenizeConfig(max_length=max_length, max_prompt_length=limit)
    prompt, ids, trimmed, cut = format_and_encode(tok, messages, comps, cfg)
    whole, _, _, _ = format_and_encode(tok, messages, ["x"], TokenizeConfig(max_length=1000))
    assert trimmed == (len(whole) > cfg.prompt_limit)  # trimmed only when too long itself
    assert prompt == whole or len(prompt) <= cfg.prompt_limit
    assert all(len(prompt) + len(c) <= max_length for c in ids)
    assert all(c[-1] == tok.sep_token_id for c in ids)
    assert prompt[:1] == [tok.cls_token_id]
    room = max_length - len(prompt)
    assert cut == sum(n + 1 > room for n in comp_words)  # cut only if it does not fit
    for n, c, text in zip(comp_words, ids, comps, strict=True):
        if n + 1 <= room:
            assert len(c) == n + 1  # uncut completions keep every token
        alone, [single], _, _ = format_and_encode(tok, messages, [text], cfg)
        assert alone + single == prompt + c  # scored alone: the tokens it had in its group


def write_long_records(layout: Layout) -> int:
    rows: list[dict[str, Any]] = synthetic_groups(20, seed=5)
    rows[0]["prompt"] = long_conversation()
    rows[1]["completions"] = ["great " * 300, "rude"]
    rows[1]["ranks"] = [0, 1]
    rows[1]["margins"] = [{"better": 0, "worse": 1, "margin": 1.5}]
    write_groups(
        layout,
        {
            "train": rows,
            "validation": synthetic_groups(4, seed=6, split="validation"),
            "test": [],
        },
    )
    return len(rows)


def test_stage_keeps_every_record_and_reports(models: dict[str, str], tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    n_train = write_long_records(layout)
    params = tiny_params(models["bert"], tokenize={"max_length": 48})
    summary = stages.tokenize(params, layout)
    report = json.loads(layout.tokenize_report.read_text())
    assert report == json.loads(json.dumps(summary))
    train = report["splits"]["train"]
    assert train["groups"] == n_train and report["splits"]["test"]["groups"] == 0
    assert train["cut_completions"] == 1 and train["trimmed_prompts"] == 1
    assert train["margin_pairs"] == 1 and report["totals"]["margin_pairs"] == 1
    assert train["max_seq_len"] <= 48
    ds = load_tokenized(layout, "train")
    assert ds.column_names == [
        "group_id",
        "source",
        "ranks",
        "margins",
        "prompt_ids",
        "completion_ids",
    ]
    assert len(ds) == n_train and ds[1]["ranks"] == [0, 1]
    assert ds[1]["margins"] == [{"better": 0, "worse": 1, "margin": 1.5}]  # the loss reads them
    assert ds[0]["margins"] is None
    assert read_meta(layout)["model_name"] == models["bert"]


def test_max_length_beyond_model_limit_is_refused(models: dict[str, str], tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    write_long_records(layout)
    with pytest.raises(ValueError, match="exceeds the model's limit of 512"):
        stages.tokenize(tiny_params(models["bert"], tokenize={"max_length": 1024}), layout)


def tokenize_split(layout: Layout, split: str, tok: Any, cfg: TokenizeConfig) -> dict[str, Any]:
    """The tokenize stage's streaming path on one split of `layout`."""
    batches = iter_split_batches(layout, split, list(INPUT_COLUMNS), cfg.batch_size)
    path = layout.tokenized / split
    return streamed(batches, split_rows(layout, split), path, tok, cfg)


def _tokenized_files(layout: Layout, split: str) -> dict[str, bytes]:
    folder = layout.tokenized / split
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("kind", ["bert", "neox_chat"])
def test_processes_give_the_output_of_one(
    models: dict[str, str], kind: str, tmp_path: Path
) -> None:
    """Two processes write the very files one writes; both equal the in-memory path."""
    tok = load_tokenizer(models[kind])
    rows = synthetic_groups(150, seed=9)
    rows[3]["prompt"] = long_conversation()  # trimmed
    rows[140]["margins"] = [{"better": 1, "worse": 0, "margin": 0.25}]
    outputs, reports = [], []
    for procs in (1, 2):
        layout = Layout(tmp_path / f"p{procs}")
        write_groups(layout, {"train": rows})
        cfg = TokenizeConfig(max_length=48, batch_size=16, num_proc=procs)
        report = tokenize_split(layout, "train", tok, cfg)
        assert report.pop("processes") == procs and report.pop("seconds") >= 0
        outputs.append(_tokenized_files(layout, "train"))
        reports.append(report)
    assert outputs[0] == outputs[1] and reports[0] == reports[1]
    assert reports[0]["groups"] == 150 and reports[0]["trimmed_prompts"] >= 1
    table = pa.Table.from_pylist(rows, schema=GROUP_SCHEMA)
    memory, counts = tokenize_table(table, tok, TokenizeConfig(max_length=48))
    counts.pop("seconds")
    assert counts == reports[0]
    assert load_tokenized(Layout(tmp_path / "p2"), "train").to_list() == memory.to_list()
    assert memory[140]["margins"] == rows[140]["margins"]


def test_large_splits_are_saved_in_shards(
    models: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokenize_module, "MAX_SHARD_BYTES", 2000)
    layout = Layout(tmp_path)
    write_groups(layout, {"train": synthetic_groups(60, seed=3), "test": []})
    cfg = TokenizeConfig(max_length=48, batch_size=10, num_proc=1)
    tok = load_tokenizer(models["neox_chat"])
    tokenize_split(layout, "train", tok, cfg)
    tokenize_split(layout, "test", tok, cfg)
    names = sorted(p.name for p in (layout.tokenized / "train").glob("*.arrow"))
    assert len(names) > 1 and names[-1] == f"data-{len(names) - 1:05d}-of-{len(names):05d}.arrow"
    assert [r["group_id"] for r in load_tokenized(layout, "train")] == [
        r["group_id"] for r in synthetic_groups(60, seed=3)
    ]
    assert len(load_tokenized(layout, "test")) == 0


def test_automatic_processes_follow_the_cores_and_the_batches() -> None:
    cores = len(os.sched_getaffinity(0))
    assert num_processes(TokenizeConfig(batch_size=10), 10_000) == cores
    assert num_processes(TokenizeConfig(batch_size=10), 5) == 1  # one batch
    assert num_processes(TokenizeConfig(batch_size=10, num_proc=3), 25) == 3
    assert num_processes(TokenizeConfig(batch_size=10, num_proc=8), 25) == 3
