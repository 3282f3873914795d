"""The one scoring path: rewards of tokenised groups, or of (prompt, response) texts.

Evaluation, training (its loss and validation), the reward statistics, the registered pyfunc
model, `rmpipe score` and the benchmarks all score through here. Groups are batched by length
in the fastest exact batch layout for the model and device, so rewards do not depend on batch
size or layout (beyond float rounding). Texts are tokenised as the tokenize stage does, so a
(prompt, response) scored alone gets the tokens, hence the reward, it had in evaluation.

Precision: a model is scored in the precision recorded in its config.json
(`rmpipe_score_precision`, written by the train stage): `bf16` (bf16 autocast, fp32 weights
and reductions) for a model trained in bf16, `fp32` otherwise and for models without the
record. The record goes with the model, so evaluation, validation, the registered model,
`rmpipe score` and serving all score it in the same precision, on any machine.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

import datasets
import numpy as np
import torch

from rmcore.core.config import SCORE_BATCH_SIZE
from rmcore.model.batches import Batch, BatchLayout, PackedGroups, collate
from rmcore.model.layout import choose_layout
from rmcore.model.reward_model import RewardModel
from rmcore.text.tokenize import encode_records

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = SCORE_BATCH_SIZE
PRECISION_KEY = "rmpipe_score_precision"  # in the model's config.json
SCORE_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


def score_precision(model: RewardModel) -> str:
    """The precision `model` is scored in: `fp32` or `bf16` (see the module docstring)."""
    return checked_precision(getattr(model.config, PRECISION_KEY, None), "the model's config")


def checked_precision(value: Any, where: str) -> str:
    """A recorded scoring precision (None: fp32, a model saved before it was recorded)."""
    value = value or "fp32"
    if value not in SCORE_DTYPES:
        raise ValueError(
            f"{where}: {PRECISION_KEY} {value!r}; allowed values are {sorted(SCORE_DTYPES)} "
            "(train the model again, or set it to fp32)"
        )
    return str(value)


def record_score_precision(model: RewardModel, training_precision: str) -> str:
    """Record in `model`'s config the precision it is to be scored in, from the precision it
    trains in (`no`, `bf16`, `fp16`): bf16 for bf16, else fp32 (fp16 overflows unscaled)."""
    value = "bf16" if training_precision == "bf16" else "fp32"
    setattr(model.config, PRECISION_KEY, value)
    return value


def batch_rewards(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Rewards [N] float32 of a collated batch, one per completion, group by group."""
    return model(**batch.model_inputs())


def score_groups(
    model: RewardModel,
    dataset: datasets.Dataset | PackedGroups,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: torch.device | str | None = None,
    layout: BatchLayout | None = None,
) -> list[np.ndarray]:
    """Reward of every completion of every group ([k] float32 each), in dataset row order.

    `device` None: where the model is. `layout` None: the fastest exact layout for this model,
    device and scoring precision (`rmcore.model.layout.choose_layout`). Groups go through the
    model longest first, `batch_size` at a time, so each batch holds sequences of similar
    length.
    """
    packed = dataset if isinstance(dataset, PackedGroups) else PackedGroups.from_dataset(dataset)
    here = next(model.parameters()).device
    device = torch.device(device) if device is not None else here
    if device != here:  # (a sharded model stays as it is)
        model.to(device)
    dtype = SCORE_DTYPES[score_precision(model)]
    if layout is None:
        layout = _scoring_layout(model, device, dtype)
    was_training = model.training
    if was_training:  # (walking the modules costs milliseconds: not on every served request)
        model.eval()
    try:
        with _no_autograd(was_training), _autocast(model, device, dtype):
            return _score_sorted(model, packed, batch_size, device, layout)
    finally:
        if was_training:
            model.train()


def _scoring_layout(
    model: RewardModel, device: torch.device, dtype: torch.dtype | None
) -> BatchLayout:
    """`choose_layout`'s choice, once per model, device, precision and attention: a served
    model scores request after request, each too small to pay for choosing again."""
    cache: dict[tuple[Any, ...], BatchLayout] = model.__dict__.setdefault("_score_layouts", {})
    key = (device, dtype, model.config._attn_implementation)
    if key not in cache:
        cache[key] = choose_layout(model, device, compute_dtype=dtype)
        # choosing may switch the backbone to packed attention: that is the key from now on
        cache[device, dtype, model.config._attn_implementation] = cache[key]
    return cache[key]


def _no_autograd(training: bool) -> Any:
    """inference_mode for a model that is not training; no_grad between training steps, where
    tensors a module caches (rotary tables, say) must stay usable by the next backward pass."""
    return torch.no_grad() if training else torch.inference_mode()


def _autocast(model: RewardModel, device: torch.device, dtype: torch.dtype | None) -> Any:
    """bf16 autocast where the model is scored in bf16 and its weights are not bf16 already."""
    if dtype is None or next(model.parameters()).dtype == dtype:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _score_sorted(
    model: RewardModel,
    packed: PackedGroups,
    batch_size: int,
    device: torch.device,
    layout: BatchLayout,
) -> list[np.ndarray]:
    if len(packed) == 0:
        return []
    pad_id = int(model.tokenizer.pad_token_id)
    order = np.argsort(-packed.group_lengths, kind="stable")
    rewards = np.empty(int(packed.group_offsets[-1]), dtype=np.float32)  # [C], dataset order
    for start in range(0, len(order), batch_size):
        groups = order[start : start + batch_size]
        batch = collate(packed, groups, pad_id, layout=layout).to(device)
        # completions of the batch's groups, in the order their rewards come out
        rows = _completion_rows(packed, groups)
        rewards[rows] = batch_rewards(model, batch).float().cpu().numpy()
    return np.split(rewards, packed.group_offsets[1:-1])


def _completion_rows(packed: PackedGroups, groups: np.ndarray) -> np.ndarray:
    """Completion indices of `groups`, group by group, without a Python loop per group."""
    starts, k = packed.group_offsets[groups], packed.k[groups]
    within = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
    return np.repeat(starts, k) + within


def score_texts(
    model: RewardModel,
    prompts: list[list[dict[str, str]]] | list[str],
    responses: list[str],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Raw rewards [n] float32 for (prompt, response) rows; a string prompt is one user turn."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    messages = [[{"role": "user", "content": p}] if isinstance(p, str) else p for p in prompts]
    encoded = encode_records(
        model.tokenizer, messages, [[r] for r in responses], model.tokenize_config
    )
    rows = PackedGroups.from_sequences(
        [e.prompt_ids for e in encoded], [e.completion_ids[0] for e in encoded]
    )
    rewards = score_groups(model, rows, batch_size)
    return np.concatenate(rewards) if rewards else np.empty(0, dtype=np.float32)
