"""Facts about a Hugging Face backbone that the reward model's layouts depend on: decoder or
encoder, how it numbers positions, its sliding window, its classification head, and whether
its attention takes packed rows (ours, or flash-attention's varlen kernel)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from rmcore.model.packing import packed_attention_refusal

VARLEN_ATTENTION = "flash_attention_2"


def is_decoder(config: Any) -> bool:
    """True for causal language models (GPT-NeoX, Llama, ...), False for encoders (BERT, ...)."""
    kind = config.model_type
    return (
        kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """[N, T] padding mask -> [N, T] position ids counting real tokens only, so a left-padded
    row gets the positions it would have alone (padding: 0 before, the last one after)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def position_offset(backbone: PreTrainedModel) -> int:
    """Where explicit position ids start: RoBERTa-style embeddings number the real tokens from
    pad_id + 1 (fairseq's rule) when they make positions themselves, so the position ids of
    packed rows, counted from 0, are shifted to match."""
    embeddings = getattr(backbone.base_model, "embeddings", None)
    padding_idx = getattr(embeddings, "padding_idx", None)
    if hasattr(embeddings, "create_position_ids_from_input_ids") and padding_idx is not None:
        return int(padding_idx) + 1
    return 0


def sliding_window(config: Any) -> int | None:
    """The sliding-window span of a decoder's windowed layers, or None if it has none."""
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    if not window or (types is not None and "sliding_attention" not in types):
        return None
    return int(window)


def encoder_head(backbone: PreTrainedModel) -> str | None:
    """The encoder class's head on pooled first tokens: `pooler` (BERT: pooler, dropout,
    classifier), `first` (RoBERTa, ELECTRA: a classifier that reads token 0 of the sequences
    it is given), or None (other heads: padded rows only)."""
    pooler = getattr(backbone.base_model, "pooler", None)
    # a head trained under LoRA sits in PEFT's wrapper beside its original
    classifier = getattr(backbone, "classifier", None)
    classifier = getattr(classifier, "original_module", classifier)
    if not isinstance(classifier, nn.Module):
        return None
    if isinstance(pooler, nn.Module):
        return "pooler"
    if pooler is None and not isinstance(classifier, nn.Linear):
        return "first"
    return None


def packing_refusal(backbone: PreTrainedModel, decoder: bool, native: bool) -> str | None:
    """Switch the backbone to our packed attention; where it cannot score packed rows, why."""
    name = type(backbone).__name__
    if native and not decoder and encoder_head(backbone) is None:
        return (
            f"{name}'s classification head is neither a BERT pooler nor a head on the first token"
        )
    if native and decoder and not isinstance(getattr(backbone, "score", None), nn.Module):
        return f"{name} has no `score` head"
    return packed_attention_refusal(backbone)


def varlen_refusal(backbone: PreTrainedModel, decoder: bool) -> str | None:
    """Switch a decoder to flash-attention 2, whose varlen kernel takes packed rows by their
    position ids (CUDA, half precision); where that cannot be done, say why."""
    name = type(backbone).__name__
    if not decoder:
        return f"{name} is no decoder: packed rows by position ids need causal attention"
    if not getattr(backbone, "_supports_flash_attn", False):
        return f"{name} does not support flash-attention"
    try:
        backbone.set_attn_implementation(VARLEN_ATTENTION)
    except (ImportError, ValueError, RuntimeError) as exc:
        return f"{name} cannot use {VARLEN_ATTENTION}: {exc}"
    return None


def cast_to(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`x` in `module`'s parameter dtype, outside autocast (a head trained in fp32 on a bf16
    backbone; autocast makes its own choice)."""
    trained = (p for p in module.parameters() if p.requires_grad)  # PEFT's copy, not the original
    weight = next(trained, None)
    weight = weight if weight is not None else next(module.parameters(), None)
    if weight is None or torch.is_autocast_enabled(x.device.type) or x.dtype == weight.dtype:
        return x
    return x.to(weight.dtype)
