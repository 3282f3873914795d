"""Backbones, poolings, save/load round trips and scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rmcore.core.config import ModelConfig, TokenizeConfig
from rmcore.model.batches import pad_sequences
from rmcore.model.reward_model import (
    HEAD_FILE,
    RewardModel,
    build_reward_model,
    load_reward_model,
)
from rmcore.model.scoring import score_groups, score_texts
from rmcore.text.tokenize import encode_records, tokenize_table
from rmcore.text.tokenizer import resolve_backbone
from tests.tiny import make_tiny_bert, make_tiny_neox, synthetic_groups

PROMPTS = ["tell me about cats", "is rain wet", "chess or tea"]
RESPONSES = ["great helpful answer here", "rude", "kind and clear thanks so much for asking"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("model-models")
    return {
        "bert": make_tiny_bert(root / "bert"),
        "neox": make_tiny_neox(root / "neox"),
        "neox_pad_eos": make_tiny_neox(root / "neox_pad_eos", pad="eos"),
    }


def build(path: str, pooling: str = "auto") -> RewardModel:
    torch.manual_seed(0)
    model = build_reward_model(ModelConfig(name=path, pooling=pooling), TokenizeConfig())
    return model.eval()


def hf_scores(directory: Path, model: RewardModel) -> np.ndarray:
    """Scores of plain transformers loading of the saved dir, inputs padded on the right."""
    hf = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    messages = [[{"role": "user", "content": p}] for p in PROMPTS]
    encoded = encode_records(model.tokenizer, messages, [[r] for r in RESPONSES], TokenizeConfig())
    ids, mask = pad_sequences(
        [e.prompt_ids + e.completion_ids[0] for e in encoded], model.tokenizer.pad_token_id
    )
    with torch.no_grad():
        logits = hf(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits
    return logits[:, 0].numpy()


@pytest.mark.parametrize("kind", ["bert", "neox", "neox_pad_eos"])
def test_default_pooling_loads_with_plain_transformers(
    models: dict[str, str], kind: str, tmp_path: Path
) -> None:
    model = build(models[kind])
    assert model.pooling == ("cls" if kind == "bert" else "last") and model.native
    ours = score_texts(model, PROMPTS, RESPONSES)
    model.save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.bin")) and (tmp_path / "model.safetensors").is_file()
    assert np.allclose(hf_scores(tmp_path, model), ours, atol=1e-5)
    reloaded = load_reward_model(tmp_path)
    assert np.allclose(score_texts(reloaded, PROMPTS, RESPONSES), ours, atol=1e-6)
    assert len(set(np.round(ours, 6))) == 3  # the rows really differ


def test_scored_token_is_never_padding(models: dict[str, str]) -> None:
    model = build(models["neox_pad_eos"])
    tok = model.tokenizer
    assert tok.pad_token_id != tok.eos_token_id
    alone = [score_texts(model, [p], [r])[0] for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    batched = score_texts(model, PROMPTS, RESPONSES, batch_size=3)
    assert np.allclose(alone, batched, atol=1e-5)


@pytest.mark.parametrize(
    ("kind", "pooling"), [("bert", "mean"), ("bert", "last"), ("neox", "mean")]
)
def test_other_poolings_round_trip_through_rmcore(
    models: dict[str, str], kind: str, pooling: str, tmp_path: Path
) -> None:
    model = build(models[kind], pooling)
    assert not model.native and model.reward_head is not None
    ours = score_texts(model, PROMPTS, RESPONSES)
    model.save_pretrained(tmp_path)
    assert (tmp_path / HEAD_FILE).is_file()
    reloaded = load_reward_model(tmp_path)
    assert reloaded.pooling == pooling
    assert np.allclose(score_texts(reloaded, PROMPTS, RESPONSES), ours, atol=1e-6)


def test_cls_pooling_on_decoder_is_refused(models: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="cls on a decoder"):
        build(models["neox"], "cls")


def test_string_prompt_is_one_user_turn(models: dict[str, str]) -> None:
    model = build(models["bert"])
    as_messages = [[{"role": "user", "content": p}] for p in PROMPTS]
    assert np.array_equal(
        score_texts(model, PROMPTS, RESPONSES), score_texts(model, as_messages, RESPONSES)
    )
    with pytest.raises(ValueError, match="3 prompts but 2 responses"):
        score_texts(model, PROMPTS, RESPONSES[:2])


def test_score_groups_independent_of_batch_size(models: dict[str, str]) -> None:
    import pyarrow as pa

    from rmcore.data.schema import GROUP_SCHEMA

    model = build(models["neox"])
    table = pa.Table.from_pylist(synthetic_groups(9, seed=3), schema=GROUP_SCHEMA)
    dataset, _ = tokenize_table(table, model.tokenizer, TokenizeConfig())
    one = score_groups(model, dataset, batch_size=1)
    many = score_groups(model, dataset, batch_size=4)
    assert [len(r) for r in one] == [len(c) for c in dataset["completion_ids"]]
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(one, many, strict=True))


def test_load_needs_rmpipe_metadata(models: dict[str, str]) -> None:
    with pytest.raises(FileNotFoundError, match=r"rmpipe\.json not found"):
        load_reward_model(models["bert"])


def test_packaged_minilm_is_the_default() -> None:
    assert ModelConfig().name == "minilm-l6"
    path = Path(resolve_backbone("minilm-l6"))
    assert (path / "model.safetensors").is_file()
    model = build("minilm-l6")
    tok = model.tokenizer
    assert tok.eos_token_id is None and model.pooling == "cls"
    ids = encode_records(tok, [[{"role": "user", "content": "hi"}]], [["hello"]], TokenizeConfig())[
        0
    ]
    assert ids.completion_ids[0][-1] == tok.sep_token_id
    assert np.isfinite(score_texts(model, ["hi"], ["hello"])).all()
