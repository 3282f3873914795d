"""The last layer of a BERT-style encoder, computed for the pooled tokens only.

A reward model reads one token per sequence from the last layer (the first for `cls` pooling,
the last real one for `last`). In a BERT-style layer (self-attention; output projection,
residual and LayerNorm; MLP, residual and LayerNorm), everything after attention works token
by token, so in the last layer the output projection and the MLP need to run on the pooled
tokens only: 9 of the layer's 12 hidden-size-squared multiply-adds per token, an eighth of
the layer compute of a 6-layer model such as MiniLM, in scoring and in training alike. The
attention itself still runs for every token, with the backbone's own shapes.

How: a forward pre-hook on the last layer's attention-output module (`attention.output`,
called with the attention output and the residual) keeps the pooled rows of both, so the
layer and the encoder return [rows, 1, H] (padded batches) or [1, M, H] (packed rows) in
pooling order. `RewardModel.forward` names the rows through a context variable for the
duration of one call: concurrent threads scoring one model each see their own, and outside
such a call (and under gradient checkpointing, whose recomputation runs later) the hook does
nothing.

Families whose last layer has that form: BERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA,
DeBERTa-v2/v3. Others (pre-norm encoders such as ModernBERT, decoders, where the last layer is
one of dozens) compute the whole last layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from rmcore.model.lora import layer_stack

# model types whose layer is attention -> attention.output(attn, residual) -> MLP, per token
POST_NORM_ENCODERS = frozenset(
    {"bert", "roberta", "xlm-roberta", "camembert", "electra", "deberta-v2"}
)

# (flat row index [M] into the [B * T] positions of a batch, the [B', T'] shape they form)
_ROWS: ContextVar[tuple[torch.Tensor, tuple[int, int]] | None] = ContextVar(
    "rmcore_pooled_rows", default=None
)


def install(backbone: PreTrainedModel) -> bool:
    """Hook the backbone's last layer to compute pooled rows only when asked; False where its
    layers do not have the BERT form (nothing is changed then)."""
    modules = pooled_only_modules(backbone)
    if modules is None:
        return False
    output = modules[0]
    if _keep_pooled_rows not in output._forward_pre_hooks.values():  # (once per module)
        output.register_forward_pre_hook(_keep_pooled_rows)
    return True


def pooled_only_modules(backbone: PreTrainedModel) -> list[nn.Module] | None:
    """The last layer's modules that run on the pooled rows only, once hooked: the attention
    output (projection, residual, LayerNorm; the hooked one), the MLP's two halves. None where
    the backbone's layers do not have the BERT form."""
    config = backbone.config
    if config.model_type not in POST_NORM_ENCODERS or getattr(config, "add_cross_attention", False):
        return None
    layer = layer_stack(backbone)[-1]
    modules = [
        getattr(getattr(layer, "attention", None), "output", None),
        getattr(layer, "intermediate", None),
        getattr(layer, "output", None),
    ]
    if not all(isinstance(m, nn.Module) for m in modules):
        return None
    return modules  # type: ignore[return-value]


def checkpointed(backbone: PreTrainedModel) -> bool:
    """Activation checkpointing is on: its recomputation would compute every row."""
    name = "is_activation_checkpointing"  # (transformers 5; `is_gradient_checkpointing` before)
    if not hasattr(type(backbone), name):
        name = "is_gradient_checkpointing"
    return bool(getattr(backbone, name))


@contextlib.contextmanager
def pooled_rows(index: torch.Tensor, shape: tuple[int, int]) -> Iterator[None]:
    """Within this block the hooked last layer computes only the rows `index` (flat into the
    batch's [B * T] positions), returned as [*shape, H]."""
    token = _ROWS.set((index, shape))
    try:
        yield
    finally:
        _ROWS.reset(token)


def _keep_pooled_rows(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    selected = _ROWS.get()
    if selected is None:
        return None
    if len(args) != 2:  # (attention output, residual), as the BERT-form layers call it
        raise RuntimeError(
            f"{type(module).__name__} was called with {len(args)} positional arguments, not "
            "the attention output and the residual: its layer is not of the BERT form. Set "
            "`pooled_last_layer = False` on the RewardModel to compute the whole layer, and "
            "report the model type and transformers version"
        )
    index, shape = selected
    return tuple(_select(x, index, shape) for x in args)


def _select(x: torch.Tensor, index: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    # index_select: its backward is one index_add into a zero gradient
    return x.reshape(-1, x.shape[-1]).index_select(0, index).view(*shape, x.shape[-1])
