"""Lean loading: weights in the training dtype where that loses nothing (a LoRA run's frozen
base on a GPU training in bf16, or model.dtype bfloat16), reward statistics from the saved
model's validation (or the model in memory) instead of a second full copy or scoring pass,
and the peak memory in metrics/train.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rmcore import stages
from rmcore.core.config import LoraConfig, ModelConfig, TokenizeConfig
from rmcore.core.paths import Layout
from rmcore.model.reward_model import build_reward_model, load_reward_model
from rmcore.model.scoring import score_groups, score_texts
from rmcore.text.tokenize import load_tokenized
from rmcore.train import recipe
from rmcore.train.accelerator import weights_dtype
from tests.test_families import PROMPTS, RESPONSES
from tests.tiny import tiny_params, write_synthetic
from tests.tiny_families import make_family

pytestmark = pytest.mark.usefixtures("one_thread")

LORA = {"enabled": True, "rank": 4, "dropout": 0.0}


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_family("llama", tmp_path_factory.mktemp("lean") / "llama")


@pytest.mark.parametrize(
    ("dtype", "lora", "precision", "cuda", "expected"),
    [
        ("auto", True, "bf16", True, torch.bfloat16),  # frozen base: nothing to lose
        ("auto", False, "bf16", True, torch.float32),  # full fine-tuning: fp32 master weights
        ("auto", True, "no", True, torch.float32),
        ("auto", True, "bf16", False, torch.float32),  # CPUs keep fp32
        ("bfloat16", False, "no", False, torch.bfloat16),
        ("float32", True, "bf16", True, torch.float32),
    ],
)
def test_weights_dtype(
    dtype: str, lora: bool, precision: str, cuda: bool, expected: torch.dtype
) -> None:
    cfg = ModelConfig(dtype=dtype, lora=LoraConfig(enabled=lora))
    assert weights_dtype(cfg, precision, cuda) == expected


def test_bf16_base_trains_fp32_adapters_and_head(llama: str) -> None:
    pytest.importorskip("peft")
    cfg = ModelConfig(name=llama, lora=LoraConfig(**LORA))
    model = build_reward_model(cfg, TokenizeConfig(), torch.bfloat16).eval()
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
    trained = {p.dtype for p in model.parameters() if p.requires_grad}
    assert frozen == {torch.bfloat16} and trained == {torch.float32}
    rewards = score_texts(model, PROMPTS, RESPONSES)  # no autocast: the head takes bf16 states
    assert rewards.dtype == np.float32 and np.isfinite(rewards).all()


def train(
    path: str, root: Path, n_val: int = 8, **sections: dict[str, Any]
) -> tuple[dict[str, Any], Layout]:
    layout = Layout(root)
    write_synthetic(layout, n_train=16, n_val=n_val, n_test=4)
    train_cfg = {"max_steps": 2, "batch_size": 4, "mixed_precision": "no"}
    params = tiny_params(path, train={**train_cfg, **sections.pop("train", {})}, **sections)
    stages.tokenize(params, layout)
    return stages.train(params, layout), layout


@pytest.mark.parametrize("keep_best", [True, False])
def test_reward_stats_come_from_the_validation(
    llama: str, keep_best: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saved model's validation gave its reward stats: no second copy, no second pass."""

    def no_second_pass(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the validation split was scored again for the reward stats")

    monkeypatch.setattr(recipe, "load_reward_model", no_second_pass)
    monkeypatch.setattr(recipe, "score_groups", no_second_pass)
    metrics, layout = train(
        llama, tmp_path, train={"keep_best": keep_best, "max_steps": 3, "eval_every": 1}
    )
    saved = load_reward_model(layout.model_dir)
    validation = load_tokenized(layout, "validation")
    rewards = np.concatenate(score_groups(saved, validation))
    assert saved.reward_stats is not None
    assert saved.reward_stats["n"] == len(rewards) and saved.reward_stats["split"] == "validation"
    assert saved.reward_stats["mean"] == pytest.approx(float(rewards.mean()), abs=1e-5)
    assert saved.reward_stats["std"] == pytest.approx(float(rewards.std()), abs=1e-5)
    assert metrics["reward_mean"] == saved.reward_stats["mean"]


def test_reward_stats_without_validation_come_from_the_model_in_memory(
    llama: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_second_copy(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the trained model was loaded again for its reward stats")

    monkeypatch.setattr(recipe, "load_reward_model", no_second_copy)
    metrics, layout = train(llama, tmp_path, n_val=0)
    saved = load_reward_model(layout.model_dir)
    rewards = np.concatenate(score_groups(saved, load_tokenized(layout, "train")))
    assert saved.reward_stats is not None and saved.reward_stats["split"] == "train"
    assert saved.reward_stats["mean"] == pytest.approx(float(rewards.mean()), abs=1e-5)
    assert saved.reward_stats["std"] == pytest.approx(float(rewards.std()), abs=1e-5)
    assert metrics["reward_mean"] == saved.reward_stats["mean"]


def test_metrics_report_peak_memory_and_attention(llama: str, tmp_path: Path) -> None:
    metrics, _ = train(llama, tmp_path)
    assert 50 < metrics["peak_host_mb"] < 64_000
    assert metrics["peak_device_mb"] is None  # no CUDA here
    assert metrics["attention"] == "rmcore_packed"  # CPU: our packed kernel


@pytest.mark.precision
def test_bf16_weights_train_and_save(llama: str, tmp_path: Path) -> None:
    metrics, layout = train(llama, tmp_path, model={"dtype": "bfloat16"})
    assert np.isfinite(metrics["train_loss"])
    saved = load_reward_model(layout.model_dir)
    assert np.isfinite(score_texts(saved, PROMPTS, RESPONSES)).all()


@pytest.mark.gpu
def test_lora_on_cuda_loads_the_base_in_bf16(llama: str, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    metrics, _ = train(llama, tmp_path, model={"lora": LORA}, train={"mixed_precision": "bf16"})
    assert metrics["precision"] == "bf16" and metrics["peak_device_mb"] > 0
