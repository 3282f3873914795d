"""Which attention kernel runs a batch: flash-attention's varlen kernel for packed rows on CUDA
when it is installed (decoders in half precision), our packed SDPA on CPU, padded SDPA rows on
CUDA otherwise. The selection is tested on CPU with flash-attention's availability faked."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from rmcore.core.config import ModelConfig, TokenizeConfig
from rmcore.model import layout as layout_module
from rmcore.model.batches import BatchLayout, PackedGroups, collate
from rmcore.model.layout import (
    FLASH_VARLEN,
    OUR_PACKED,
    PADDED,
    choose_layout,
    select_kernel,
)
from rmcore.model.reward_model import RewardModel, build_reward_model
from tests.tiny_families import make_family

CUDA = torch.device("cuda")  # only its type is read: the models stay on the CPU

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("attention-models")
    return {family: make_family(family, root / family) for family in ("llama", "bert")}


def build(path: str) -> RewardModel:
    torch.manual_seed(0)
    return build_reward_model(ModelConfig(name=path), TokenizeConfig()).eval()


@pytest.mark.parametrize(
    ("device", "packing", "flash", "flash_model", "half", "share", "kernel"),
    [
        ("cuda", "auto", True, True, True, False, FLASH_VARLEN),
        ("cuda", "on", True, True, True, False, FLASH_VARLEN),
        ("cuda", "auto", False, True, True, False, PADDED),  # not installed: padded SDPA
        ("cuda", "on", False, True, True, False, OUR_PACKED),
        ("cuda", "auto", True, False, True, False, PADDED),  # encoder or no support
        ("cuda", "auto", True, True, False, False, PADDED),  # fp32: flash takes no fp32
        ("cuda", "auto", True, True, True, True, PADDED),  # shared prompts asked for
        ("cuda", "off", True, True, True, False, PADDED),
        ("cpu", "auto", True, True, True, False, OUR_PACKED),
        ("cpu", "off", False, False, False, False, PADDED),
    ],
)
def test_kernel_selection(
    device: str, packing: str, flash: bool, flash_model: bool, half: bool, share: bool, kernel: str
) -> None:
    assert select_kernel(device, packing, flash, flash_model, half, share) == kernel


def fake_flash(monkeypatch: pytest.MonkeyPatch, available: bool) -> list[RewardModel]:
    """Flash-attention 'installed'; switching to it records the model and keeps SDPA, which
    takes a packed row by its position ids the way the varlen kernel does (exactly, on CPU,
    through transformers' block mask)."""
    switched: list[RewardModel] = []
    monkeypatch.setattr(layout_module, "flash_varlen_available", lambda: available)
    monkeypatch.setattr(RewardModel, "enable_varlen_packing", lambda self: switched.append(self))
    return switched


def test_cuda_with_flash_packs_decoders_by_position_ids(
    models: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    switched = fake_flash(monkeypatch, available=True)
    model = build(models["llama"])
    with caplog.at_level(logging.INFO, logger="rmcore.model.layout"):
        chosen = choose_layout(model, CUDA, compute_dtype=torch.bfloat16)
    assert switched == [model]
    assert chosen == BatchLayout(packed=True, share_prefix=False)
    assert model.attention == FLASH_VARLEN
    assert "attention flash_varlen" in caplog.text
    # the mask-free packed forward gives the padded rewards (fp32 on CPU)
    rng = np.random.default_rng(0)
    sample = PackedGroups.from_sequences(
        [list(rng.integers(10, 150, n)) for n in (7, 19, 3)],
        [[list(rng.integers(10, 150, n)) for n in (4, 11)] for _ in range(3)],
    )
    with torch.no_grad():
        rewards = [
            model(
                **collate(
                    sample, np.arange(3), model.tokenizer.pad_token_id, layout=lay
                ).model_inputs()
            )
            for lay in (BatchLayout(), chosen)
        ]
    assert torch.allclose(rewards[0], rewards[1], atol=1e-5)


def test_cuda_without_flash_pads_through_sdpa(
    models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    switched = fake_flash(monkeypatch, available=False)
    model = build(models["llama"])
    chosen = choose_layout(model, CUDA, share_prefix=False, compute_dtype=torch.bfloat16)
    assert chosen == BatchLayout() and model.attention == "sdpa" and not switched


@pytest.mark.parametrize(("family", "dtype"), [("llama", None), ("bert", torch.bfloat16)])
def test_flash_is_not_used_for_fp32_or_encoders(
    models: dict[str, str], monkeypatch: pytest.MonkeyPatch, family: str, dtype: torch.dtype
) -> None:
    switched = fake_flash(monkeypatch, available=True)
    model = build(models[family])
    chosen = choose_layout(model, CUDA, share_prefix=False, compute_dtype=dtype)
    assert not chosen.packed and not switched


@pytest.mark.gpu
def test_flash_varlen_on_cuda_matches_padded(models: dict[str, str]) -> None:
    pytest.importorskip("flash_attn")
    model = build(models["llama"]).to("cuda", torch.bfloat16)
    chosen = choose_layout(model, CUDA)
    assert chosen.packed and model.attention == FLASH_VARLEN
