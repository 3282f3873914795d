"""Which batch layout a model runs in on a device: padded, packed, shared prefix.

A layout other than padded rows is used only where it is exact: verified on a small random
sample against padded rows before use.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from rmcore.model.batches import BatchLayout, PackedGroups, collate
from rmcore.model.packing import PACKED_ATTENTION
from rmcore.model.reward_model import RewardModel, sliding_window

log = logging.getLogger(__name__)


def choose_layout(
    model: RewardModel,
    device: torch.device,
    packing: str = "auto",
    share_prefix: bool | str = "auto",
) -> BatchLayout:
    """The batch layout for this model and device, verified exact on a small sample.

    packing auto: on CPU, where the backbone's attention can be swapped (the per-sequence
    loop suits CPU kernels; on GPUs, padded SDPA is used). share_prefix auto: causal models
    scored on their last token. An explicit request that cannot be honoured is an error.
    """
    share = _want_share_prefix(model, share_prefix)
    packed = packing == "on" or (packing == "auto" and device.type == "cpu")
    refusal = model.packing_refusal() if packed else None
    if refusal is not None:
        if packing == "on":
            raise ValueError(
                f"train.packing on: this model cannot score packed rows: {refusal}; use "
                "train.packing auto or off"
            )
        log.info("packed rows off: %s", refusal)
        packed = False
    if share and not packed and model.config._attn_implementation not in _MASKABLE:
        if share_prefix is True:
            raise ValueError(
                f"train.share_prefix needs a 4-D attention mask, which attention "
                f"{model.config._attn_implementation} does not take; use sdpa or eager"
            )
        share = False
    layout = BatchLayout(packed=packed, share_prefix=share)
    if layout != BatchLayout() and not layout_is_exact(model, layout):
        explicit = packing == "on" or share_prefix is True
        message = f"{layout} does not reproduce the padded rewards of this model"
        if explicit:
            raise ValueError(message + "; set train.packing off / train.share_prefix false")
        log.warning("%s; using padded rows", message)
        layout = BatchLayout()
    return layout


_MASKABLE = ("sdpa", "eager", PACKED_ATTENTION)


def _want_share_prefix(model: RewardModel, requested: bool | str) -> bool:
    if requested is False:
        return False
    able = model.decoder and model.pooling == "last"
    if requested is True and not able:
        raise ValueError(
            "train.share_prefix is exact only for causal models scored on the last token "
            f"(this model: {'decoder' if model.decoder else 'encoder'}, pooling "
            f"{model.pooling}); an encoder's prompt tokens would see every completion. "
            "Set train.share_prefix auto or false"
        )
    window = sliding_window(model.config)
    if able and window is not None and window < model.tokenize_config.max_length:
        # A completion sits in a shared row after its siblings: the window would count them.
        message = (
            f"train.share_prefix: this model's sliding window ({window} tokens) is shorter "
            f"than tokenize.max_length ({model.tokenize_config.max_length}), and a window "
            "over a shared row would count the other completions' tokens"
        )
        if requested is True:
            raise ValueError(message + "; set train.share_prefix auto or false")
        log.info("%s: prompts are not shared", message)
        return False
    return able


@torch.no_grad()
def layout_is_exact(model: RewardModel, layout: BatchLayout, atol: float = 1e-4) -> bool:
    """Rewards of a small random sample in `layout` equal those of plain padded rows."""
    cache: dict[BatchLayout, bool] = model.__dict__.setdefault("_exact_layouts", {})
    if layout in cache:
        return cache[layout]
    sample = _check_sample(len(model.tokenizer))
    device = next(model.parameters()).device
    pad_id = int(model.tokenizer.pad_token_id)
    was_training = model.training
    model.eval()
    batches = [
        collate(sample, np.arange(len(sample)), pad_id, layout=lay).to(device)
        for lay in (BatchLayout(), layout)
    ]
    rewards = [model(**batch.model_inputs()) for batch in batches]
    model.train(was_training)
    cache[layout] = bool(torch.allclose(rewards[0], rewards[1], atol=atol, rtol=1e-3))
    return cache[layout]


def _check_sample(vocab: int) -> PackedGroups:
    """Two groups (k = 2 and 3) of random tokens; numpy's RNG, so torch's is not consumed."""
    rng = np.random.default_rng(0)
    prompts, comps = [9, 4], [[5, 2], [3, 7, 1]]
    high = max(vocab - 1, 11)  # added tokens (a new pad token) sit at the end

    def ids(n: int) -> np.ndarray:
        return rng.integers(10, high, n)

    comp_lengths = [n for group in comps for n in group]
    return PackedGroups(
        prompt_values=np.concatenate([ids(n) for n in prompts]),
        prompt_offsets=np.concatenate([[0], np.cumsum(prompts)]),
        comp_values=np.concatenate([ids(n) for n in comp_lengths]),
        comp_offsets=np.concatenate([[0], np.cumsum(comp_lengths)]),
        group_offsets=np.array([0, 2, 5]),
        ranks=np.array([0, 1, 0, 1, 1]),
    )
