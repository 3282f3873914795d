"""LoRA (PEFT): which modules adapt, that only adapters and the head train, that the loss
falls, and that the saved model (merged, plain transformers) and the adapter alone give the
rewards of the live adapted model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from rmcore import stages
from rmcore.core.config import LoraConfig, ModelConfig, TokenizeConfig
from rmcore.core.paths import Layout
from rmcore.model.lora import auto_targets
from rmcore.model.reward_model import RewardModel, build_reward_model, load_reward_model
from rmcore.model.scoring import score_texts
from tests.test_families import PROMPTS, RESPONSES, padded_inputs
from tests.tiny import tiny_params, write_synthetic
from tests.tiny_families import make_family

pytest.importorskip("peft")

pytestmark = pytest.mark.usefixtures("one_thread")

TARGETS = {
    "llama": ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
    "phi3": ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"],
    "neox": ["dense", "dense_4h_to_h", "dense_h_to_4h", "query_key_value"],
    "gpt2": ["c_attn", "c_fc", "c_proj"],
    "bert": ["dense", "key", "query", "value"],
    "modernbert": ["Wi", "Wo", "Wqkv"],
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("lora-models")
    return {family: make_family(family, root / family) for family in TARGETS}


def build(path: str, rank: int = 4, pooling: str = "auto", **lora: Any) -> RewardModel:
    torch.manual_seed(0)
    cfg = ModelConfig(name=path, pooling=pooling, lora=LoraConfig(enabled=True, rank=rank, **lora))
    return build_reward_model(cfg, TokenizeConfig()).eval()


@pytest.mark.parametrize("family", sorted(TARGETS))
def test_auto_targets_are_the_layers_projections(models: dict[str, str], family: str) -> None:
    hf = AutoModelForSequenceClassification.from_pretrained(models[family], num_labels=1)
    assert auto_targets(hf) == TARGETS[family]


def test_only_adapters_and_the_head_train(models: dict[str, str]) -> None:
    model = build(models["llama"], rank=4)
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert all(".lora_" in n or ".modules_to_save." in n for n in trainable), trainable
    hidden, layers = 32, 2
    # per layer: q, o (32 -> 32), k, v (32 -> 16: 2 kv heads of 8), gate, up (32 -> 64), down
    shapes = [(32, 32), (32, 16), (32, 16), (32, 32), (32, 64), (32, 64), (64, 32)]
    adapters = layers * sum(4 * (n_in + n_out) for n_in, n_out in shapes)
    assert sum(trainable.values()) == adapters + hidden  # + the score head [1, 32]
    assert sum(p.numel() for p in model.parameters()) > 5 * sum(trainable.values())


def randomise_adapters(model: RewardModel) -> None:
    """PEFT starts B at 0 (no change); random B and head make the merge matter."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".lora_B." in name or ".modules_to_save." in name or "reward_head" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)


@pytest.mark.parametrize(
    ("family", "pooling"), [("llama", "auto"), ("gpt2", "auto"), ("bert", "auto"), ("neox", "mean")]
)
def test_merged_model_scores_as_the_adapted_one(
    models: dict[str, str], family: str, pooling: str, tmp_path: Path
) -> None:
    model = build(models[family], pooling=pooling)
    randomise_adapters(model)
    adapted = score_texts(model, PROMPTS, RESPONSES)
    model.save_pretrained(tmp_path)
    keys = load_file(str(tmp_path / "model.safetensors")).keys()
    assert not [k for k in keys if "lora_" in k or "base_layer" in k or "modules_to_save" in k]
    merged = load_reward_model(tmp_path)
    assert merged.lora is None
    assert np.allclose(score_texts(merged, PROMPTS, RESPONSES), adapted, atol=1e-5)
    if pooling == "auto":  # the class's own head: plain transformers scores the same
        hf = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
        with torch.no_grad():
            ids, mask = padded_inputs(merged.tokenizer)
            plain = hf(input_ids=ids, attention_mask=mask).logits[:, 0].numpy()
        assert np.allclose(plain, adapted, atol=1e-5)


def test_adapter_alone_applies_to_the_base_model(models: dict[str, str], tmp_path: Path) -> None:
    from peft import PeftModel

    model = build(models["llama"], save_adapter=True)
    randomise_adapters(model)
    adapted = score_texts(model, PROMPTS, RESPONSES)
    model.save_pretrained(tmp_path)
    base = AutoModelForSequenceClassification.from_pretrained(models["llama"], num_labels=1)
    base.resize_token_embeddings(len(model.tokenizer))  # the added pad token
    base.config.pad_token_id = model.tokenizer.pad_token_id
    served = PeftModel.from_pretrained(base, tmp_path / "adapter").merge_and_unload().eval()
    with torch.no_grad():
        ids, mask = padded_inputs(model.tokenizer)
        plain = served(input_ids=ids, attention_mask=mask).logits[:, 0].numpy()
    assert np.allclose(plain, adapted, atol=1e-5)


def train_lora(path: str, root: Path, n_train: int, **train: Any) -> tuple[dict, Layout]:
    layout = Layout(root)
    write_synthetic(layout, n_train=n_train, n_val=8, n_test=4)
    params = tiny_params(
        path,
        model={"lora": {"enabled": True, "rank": 8, "alpha": 16, "dropout": 0.0}},
        train={"mixed_precision": "no", "batch_size": 8, **train},
    )
    stages.tokenize(params, layout)
    return stages.train(params, layout), layout


@pytest.mark.precision
def test_lora_loss_falls_and_frozen_weights_stay(models: dict[str, str], tmp_path: Path) -> None:
    metrics, layout = train_lora(models["llama"], tmp_path, 64, epochs=3, lr=1e-2)
    steps = pd.read_csv(layout.train_steps)
    assert steps["loss"].head(4).mean() > steps["loss"].tail(4).mean() + 0.05
    base = load_file(str(Path(models["llama"]) / "model.safetensors"))
    saved = load_file(str(layout.model_dir / "model.safetensors"))
    frozen = [k for k in base if "norm" in k]
    adapted = [k for k in base if k.endswith("q_proj.weight") or k.endswith("down_proj.weight")]
    assert frozen and adapted
    assert all(torch.equal(base[k], saved[k]) for k in frozen)
    assert not any(torch.equal(base[k], saved[k]) for k in adapted)
    assert metrics["val_accuracy"] is not None


@pytest.mark.precision
def test_lora_with_gradient_checkpointing_trains_the_same(
    models: dict[str, str], tmp_path: Path
) -> None:
    runs = [
        train_lora(models["llama"], tmp_path / str(gc), 16, max_steps=2, gradient_checkpointing=gc)
        for gc in (False, True)
    ]
    plain, checkpointed = (pd.read_csv(layout.train_steps) for _, layout in runs)
    assert np.allclose(plain["loss"], checkpointed["loss"], atol=1e-6)
    assert np.allclose(plain["grad_norm"], checkpointed["grad_norm"], rtol=1e-4)
