"""Decoders whose tokenizer has no pad token (Llama, Mistral): build, batch, train, reload;
and last-token pooling that gives the same rewards for left and right padding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
)

from rmcore import stages
from rmcore.core.config import ModelConfig, TokenizeConfig
from rmcore.core.paths import Layout
from rmcore.model.reward_model import RewardModel, build_reward_model, load_reward_model
from rmcore.model.scoring import score_texts
from rmcore.text.tokenize import encode_records
from tests.tiny import _bpe_tokenizer, tiny_params, write_synthetic

PROMPTS = ["tell me about cats", "is rain wet", "chess or tea", "why"]
RESPONSES = ["great helpful answer here", "rude", "kind and clear thanks so much for asking", "so"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(kind: str, tokenizer: Any) -> Any:
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    if kind == "gpt2":
        return GPT2Config(
            vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=512, **ids
        )
    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 512,
        "pad_token_id": None,  # like Llama-3 and Mistral: the tokenizer has no pad token either
        "tie_word_embeddings": False,
        **ids,
    }
    return LlamaConfig(**common) if kind == "llama" else MistralConfig(**common)


def make_decoder(directory: Path, kind: str) -> str:
    """A tiny random-init causal LM (safetensors) with a BPE tokenizer that has EOS and BOS
    but no pad token."""
    tokenizer = _bpe_tokenizer(pad=None, chat_template=False, corpus=None)
    assert tokenizer.pad_token is None
    classes = {"gpt2": GPT2LMHeadModel, "llama": LlamaForCausalLM, "mistral": MistralForCausalLM}
    torch.manual_seed(0)
    classes[kind](_config(kind, tokenizer)).save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="module")
def decoders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("decoders")
    return {kind: make_decoder(root / kind, kind) for kind in ("gpt2", "llama", "mistral")}


def build(path: str) -> RewardModel:
    torch.manual_seed(0)
    return build_reward_model(ModelConfig(name=path), TokenizeConfig()).eval()


def sequences(model: RewardModel) -> list[list[int]]:
    messages = [[{"role": "user", "content": p}] for p in PROMPTS]
    encoded = encode_records(model.tokenizer, messages, [[r] for r in RESPONSES], TokenizeConfig())
    return [e.prompt_ids + e.completion_ids[0] for e in encoded]


def padded(rows: list[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, T] ids and mask, padded on the left or the right (T = longest + 3)."""
    width = max(len(r) for r in rows) + 3
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span], mask[i, span] = torch.tensor(row), 1
    return ids, mask


@pytest.mark.parametrize("kind", ["llama", "mistral"])
def test_decoder_without_pad_token_builds_and_batches(decoders: dict[str, str], kind: str) -> None:
    model = build(decoders[kind])
    tok, embedding = model.tokenizer, model.backbone.get_input_embeddings()
    assert tok.pad_token_id == len(tok) - 1 and tok.pad_token_id != tok.eos_token_id
    assert isinstance(embedding, torch.nn.Embedding)
    assert embedding.weight.shape[0] == len(tok)
    assert model.config.pad_token_id == tok.pad_token_id
    assert embedding.padding_idx == tok.pad_token_id  # the added row only ever sits at padding
    alone = [score_texts(model, [p], [r])[0] for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    batched = score_texts(model, PROMPTS, RESPONSES, batch_size=len(PROMPTS))
    assert np.allclose(alone, batched, atol=1e-5)
    assert len(set(np.round(batched, 5))) == len(PROMPTS)  # the rows really differ


@pytest.mark.parametrize("kind", ["llama", "mistral"])
def test_decoder_without_pad_token_trains_saves_and_reloads(
    decoders: dict[str, str], kind: str, tmp_path: Path
) -> None:
    layout = Layout(tmp_path / "project")
    write_synthetic(layout, n_train=16, n_val=8, n_test=4)
    params = tiny_params(
        decoders[kind], train={"max_steps": 2, "batch_size": 4, "mixed_precision": "no"}
    )
    stages.tokenize(params, layout)
    metrics = stages.train(params, layout)
    assert metrics["steps"] == 2 and np.isfinite(metrics["train_loss"])
    ours = load_reward_model(layout.model_dir)
    hf = AutoModelForSequenceClassification.from_pretrained(layout.model_dir).eval()
    ids, mask = padded(sequences(ours), ours.tokenizer.pad_token_id, left=False)
    with torch.no_grad():
        plain = hf(input_ids=ids, attention_mask=mask).logits[:, 0]
        rewards = ours(ids, mask)
    assert torch.allclose(plain, rewards, atol=1e-5)
    assert np.allclose(score_texts(ours, PROMPTS, RESPONSES), rewards.numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_last_token_pooling_is_the_same_for_left_and_right_padding(
    decoders: dict[str, str], kind: str
) -> None:
    model = build(decoders[kind])
    rows = sequences(model)
    pad_id = model.tokenizer.pad_token_id
    with torch.no_grad():
        right = model(*padded(rows, pad_id, left=False))
        left = model(*padded(rows, pad_id, left=True))
        alone = torch.cat([model(*padded([row], pad_id, left=True)) for row in rows])
    assert torch.allclose(left, right, atol=1e-5)
    assert torch.allclose(alone, right, atol=1e-5)
