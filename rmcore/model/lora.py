"""LoRA adapters (PEFT) on a reward model's backbone, and the merged model they save as.

`apply_lora` injects low-rank adapters into the backbone in place (the backbone stays the
Hugging Face model the rest of rmcore drives) and freezes every other backbone weight; the
class's own head (`score`, or an encoder's pooler and classifier) is trained in full through
PEFT's `modules_to_save`, and a separate head (non-native pooling) is not touched.

What is saved is always merged: `merged_state_dict` turns a state dict of the adapted model
(live, or gathered from sharded processes) into the plain model's keys with W + s * B @ A in
place of each adapted weight, so the saved directory loads with plain
`AutoModelForSequenceClassification.from_pretrained`. `save_adapter` writes the adapter alone
in PEFT's format, for serving stacks that apply adapters to a shared base model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from rmcore.core.config import LoraConfig

log = logging.getLogger(__name__)

ADAPTER = "default"  # PEFT's adapter name
HEAD_NAMES = (
    "score",
    "classifier",
    "pooler",
    "head",
)  # class heads of HF *ForSequenceClassification


@dataclass
class LoraState:
    """What saving needs to know about the adapters of a live model."""

    peft_model: Any  # peft.PeftModel around the backbone (not a registered submodule)
    targets: list[str]
    head: list[str]
    save_adapter: bool = False
    # per adapted module (key prefix in RewardModel's state dict): (scale, fan_in_fan_out)
    layers: dict[str, tuple[float, bool]] = field(default_factory=dict)


def layer_stack(backbone: nn.Module) -> nn.ModuleList:
    """The backbone's stack of transformer layers: its longest ModuleList of one class."""
    stacks = [
        module
        for module in backbone.modules()
        if isinstance(module, nn.ModuleList) and len({type(m) for m in module}) == 1
    ]
    if not stacks:
        raise ValueError(f"{type(backbone).__name__} has no stack of layers to adapt")
    return max(stacks, key=len)


def auto_targets(backbone: nn.Module) -> list[str]:
    """Names of every linear projection in the backbone's layers (attention and MLP)."""
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in layer_stack(backbone).named_modules()
        if isinstance(module, nn.Linear | Conv1D)
    }
    return sorted(names)


def head_modules(backbone: PreTrainedModel) -> list[str]:
    """The class's head modules (trained in full): `score`, or pooler/classifier/head."""
    owners = (backbone, backbone.base_model)
    return [
        name
        for name in HEAD_NAMES
        if any(isinstance(getattr(owner, name, None), nn.Module) for owner in owners)
    ]


def apply_lora(
    backbone: PreTrainedModel, cfg: LoraConfig, base_name: str, train_head: bool = True
) -> LoraState:
    """Inject adapters into `backbone` in place and freeze its other weights; the class's
    head trains in full when `train_head` (the reward model scores with it)."""
    import peft

    targets = auto_targets(backbone) if cfg.target_modules == "auto" else list(cfg.target_modules)
    head = head_modules(backbone) if train_head else []
    config = peft.LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=targets,
        modules_to_save=head or None,
        fan_in_fan_out=_conv1d_targets(backbone, targets),
        base_model_name_or_path=base_name,
    )
    peft_model = peft.get_peft_model(backbone, config)
    for param in backbone.parameters():  # adapters (PEFT does it) and head train in fp32
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
    state = LoraState(peft_model, targets, head, cfg.save_adapter)
    for name, module in backbone.named_modules():
        if isinstance(module, peft.tuners.lora.LoraLayer) and ADAPTER in module.scaling:
            fan = bool(getattr(module, "fan_in_fan_out", False))
            state.layers[f"backbone.{name}"] = (float(module.scaling[ADAPTER]), fan)
    if not state.layers:
        raise ValueError(
            f"model.lora.target_modules {targets} matched no module of "
            f"{type(backbone).__name__}; use auto or name its linear layers"
        )
    trainable = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
    total = sum(p.numel() for p in backbone.parameters())
    log.info(
        "LoRA rank %d on %s, head %s: %d of %d backbone parameters train",
        cfg.rank,
        ", ".join(targets),
        head,
        trainable,
        total,
    )
    return state


def _conv1d_targets(backbone: nn.Module, targets: list[str]) -> bool:
    """GPT-2's Conv1D stores weights [in, out]: PEFT needs fan_in_fan_out for them."""
    return any(
        isinstance(module, Conv1D)
        for name, module in backbone.named_modules()
        if name.rsplit(".", 1)[-1] in targets
    )


def merged_state_dict(state: dict[str, torch.Tensor], lora: LoraState) -> dict[str, torch.Tensor]:
    """A state dict of the adapted model -> the plain model's, adapters merged into weights
    and the trained copies of the head in place of the originals."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".lora_" in key or ".original_module." in key:
            continue
        if ".base_layer." in key:
            prefix, param = key.split(".base_layer.", 1)
            if param == "weight" and prefix in lora.layers:
                value = _merge(value, state, prefix, *lora.layers[prefix])
            out[f"{prefix}.{param}"] = value
        else:
            out[key.replace(f".modules_to_save.{ADAPTER}.", ".")] = value
    return out


def _merge(
    weight: torch.Tensor, state: dict[str, torch.Tensor], prefix: str, scale: float, fan: bool
) -> torch.Tensor:
    """W + scale * B @ A ([out, in]; transposed for Conv1D's [in, out]), in W's dtype."""
    a = state[f"{prefix}.lora_A.{ADAPTER}.weight"].float()  # [r, in]
    b = state[f"{prefix}.lora_B.{ADAPTER}.weight"].float()  # [out, r]
    delta = (b @ a) * scale
    return (weight.float() + (delta.T if fan else delta)).to(weight.dtype)


def save_adapter(directory: Path, state: dict[str, torch.Tensor], lora: LoraState) -> None:
    """The adapter alone in PEFT's format (adapter_config.json, adapter_model.safetensors),
    the trained head included: `PeftModel.from_pretrained(base, directory)` applies it to a
    base model whose embedding is resized to the saved tokenizer."""
    from peft import get_peft_model_state_dict

    peft_keyed = {
        f"base_model.model.{key[len('backbone.') :]}": value
        for key, value in state.items()
        if key.startswith("backbone.")
    }
    # the embedding (grown by an added pad token) is frozen: its rows are the base's, and
    # the added pad row only ever sits where attention masks it
    adapter = get_peft_model_state_dict(
        lora.peft_model, state_dict=peft_keyed, save_embedding_layers=False
    )
    directory.mkdir(parents=True, exist_ok=True)
    lora.peft_model.peft_config[ADAPTER].save_pretrained(str(directory))
    tensors = {k: v.detach().contiguous().cpu() for k, v in adapter.items()}
    save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
    log.info("adapter: %d tensors in %s", len(tensors), directory)
