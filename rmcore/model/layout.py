"""Which batch layout a model runs in on a device: padded, packed, shared prefix; and which
attention kernel runs packed rows.

Packed rows run through one of two kernels: on CUDA with flash-attention installed, a decoder
computing in half precision uses flash-attention 2's varlen kernel, which takes the packed row
[1, S] with position ids restarting at each sequence and no mask (`flash_varlen`); elsewhere our
per-sequence SDPA gather (`rmcore_packed`, `rmcore.model.packing`), on CPU by default. On CUDA
without flash-attention, batches are padded rows through PyTorch SDPA. The choice is logged
and kept in `model.attention`.

A layout other than padded rows is used only where it is exact: verified on a small random
sample against padded rows before use (in half precision, to half precision's rounding).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from rmcore.model.backbone import sliding_window
from rmcore.model.batches import BatchLayout, PackedGroups, collate
from rmcore.model.packing import PACKED_ATTENTION
from rmcore.model.reward_model import RewardModel

log = logging.getLogger(__name__)

FLASH_VARLEN = "flash_varlen"
OUR_PACKED = "rmcore_packed"
PADDED = "padded"
HALF = (torch.bfloat16, torch.float16)


def flash_varlen_available() -> bool:
    """flash-attention 2 is installed with a CUDA build (transformers' own check)."""
    from transformers.utils import is_flash_attn_2_available

    return bool(is_flash_attn_2_available())


def select_kernel(
    device_type: str, packing: str, flash: bool, flash_model: bool, half: bool, share: bool
) -> str:
    """The kernel for this device and request: `flash_varlen`, `rmcore_packed` or `padded`.

    flash: flash-attention is available; flash_model: the model can use it (a decoder whose
    class supports it); half: it computes in bf16/fp16 (flash-attention takes no fp32);
    share: shared prompts were asked for explicitly (they need block masks, which the varlen
    kernel does not take).
    """
    if packing == "off":
        return PADDED
    if device_type == "cuda" and flash and flash_model and half and not share:
        return FLASH_VARLEN
    if device_type != "cuda" or packing == "on":
        return OUR_PACKED
    return PADDED


def choose_layout(
    model: RewardModel,
    device: torch.device,
    packing: str = "auto",
    share_prefix: bool | str = "auto",
    compute_dtype: torch.dtype | None = None,
) -> BatchLayout:
    """The batch layout for this model and device, verified exact on a small sample.

    packing auto: packed rows on CPU (our kernel) and on CUDA with flash-attention (its varlen
    kernel); padded SDPA rows on CUDA otherwise. share_prefix auto: causal models scored on
    their last token, except under the varlen kernel. `compute_dtype`: the autocast dtype of
    training (None: the weights' dtype). An explicit request that cannot be honoured is an
    error.
    """
    dtype = compute_dtype or next(model.parameters()).dtype
    share = _want_share_prefix(model, share_prefix)
    flash_model = model.decoder and bool(getattr(model.backbone, "_supports_flash_attn", False))
    kernel = select_kernel(
        device.type,
        packing,
        flash_varlen_available(),
        flash_model,
        dtype in HALF,
        share_prefix is True,
    )
    kernel = _enable(model, kernel, packing)
    packed = kernel != PADDED
    if kernel == FLASH_VARLEN and share:
        log.info("shared prompts off: flash-attention's varlen kernel takes no block mask")
        share = False
    if share and not packed and model.config._attn_implementation not in _MASKABLE:
        if share_prefix is True:
            raise ValueError(
                f"train.share_prefix needs a 4-D attention mask, which attention "
                f"{model.config._attn_implementation} does not take; use sdpa or eager"
            )
        share = False
    layout = BatchLayout(packed=packed, share_prefix=share)
    # flash-attention takes half precision only; other kernels are checked in the weights'
    check_dtype = dtype if kernel == FLASH_VARLEN else None
    if layout != BatchLayout() and not layout_is_exact(model, layout, check_dtype):
        explicit = packing == "on" or share_prefix is True
        message = f"{layout} does not reproduce the padded rewards of this model"
        if explicit:
            raise ValueError(message + "; set train.packing off / train.share_prefix false")
        log.warning("%s; using padded rows", message)
        layout, kernel = BatchLayout(), PADDED
    model.attention = kernel if packed else model.config._attn_implementation
    chosen = f"batches: {layout}, attention {model.attention}"
    # said once per process: scoring chooses again for each model it loads (the gate, serving)
    log.log(logging.DEBUG if chosen in _SAID else logging.INFO, "%s", chosen)
    _SAID.add(chosen)
    return layout


_SAID: set[str] = set()


def _enable(model: RewardModel, kernel: str, packing: str) -> str:
    """Switch the backbone to `kernel`; the kernel actually used (falls back where the model
    refuses, or raises for an explicit packing on)."""
    if kernel == FLASH_VARLEN:
        refusal = model.enable_varlen_packing()
        if refusal is None:
            return kernel
        log.info("flash-attention varlen off: %s", refusal)
        kernel = OUR_PACKED if packing == "on" else PADDED
    if kernel != OUR_PACKED:
        return kernel
    refusal = model.packing_refusal()
    if refusal is None:
        return kernel
    if packing == "on":
        raise ValueError(
            f"train.packing on: this model cannot score packed rows: {refusal}; use "
            "train.packing auto or off"
        )
    log.info("packed rows off: %s", refusal)
    return PADDED


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
def layout_is_exact(
    model: RewardModel, layout: BatchLayout, compute_dtype: torch.dtype | None = None
) -> bool:
    """Rewards of a small random sample in `layout` equal those of plain padded rows (in
    `compute_dtype`, to its rounding: 1e-4 in fp32, 3e-2 in bf16/fp16)."""
    dtype = compute_dtype or next(model.parameters()).dtype
    cache: dict[tuple[BatchLayout, torch.dtype], bool] = model.__dict__.setdefault(
        "_exact_layouts", {}
    )
    if (layout, dtype) in cache:
        return cache[layout, dtype]
    sample = _check_sample(len(model.tokenizer))
    device = next(model.parameters()).device
    pad_id = int(model.tokenizer.pad_token_id)
    was_training = model.training
    model.eval()
    batches = [
        collate(sample, np.arange(len(sample)), pad_id, layout=lay).to(device)
        for lay in (BatchLayout(), layout)
    ]
    autocast = dtype in HALF and next(model.parameters()).dtype not in HALF
    with torch.autocast(device.type, dtype=dtype, enabled=autocast):
        rewards = [model(**batch.model_inputs()) for batch in batches]
    model.train(was_training)
    tolerance = 3e-2 if dtype in HALF else 1e-4
    same = torch.allclose(rewards[0], rewards[1], atol=tolerance, rtol=min(tolerance * 10, 3e-2))
    cache[layout, dtype] = bool(same)
    return cache[layout, dtype]


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
