"""Where and how training runs: device, mixed precision, process launch (accelerate), and
the batch layout (packing, prefix sharing) for the model and device."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs, DistributedType
from tqdm.auto import tqdm

from rmcore.batching import BatchLayout, PackedGroups, collate
from rmcore.config import TrainConfig
from rmcore.model import RewardModel
from rmcore.packing import PACKED_ATTENTION

log = logging.getLogger(__name__)


BF16_OVERRIDE = "RMPIPE_CPU_BF16"


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX); Linux only.

    `RMPIPE_CPU_BF16=1` or `0` overrides the detection, so that one machine can run (and
    test) the other precision path; unset or empty, /proc/cpuinfo decides.
    """
    override = os.environ.get(BF16_OVERRIDE, "")
    if override:
        if override not in ("0", "1"):
            raise ValueError(
                f"{BF16_OVERRIDE}={override!r}: allowed values are 0 (treat the CPU as without "
                "native bf16) and 1 (as with it); unset it to detect from /proc/cpuinfo"
            )
        native, why = override == "1", f"{BF16_OVERRIDE}={override} override"
    else:
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        except OSError:
            text = ""
        flags = sorted(set(re.findall(r"\b(avx512_bf16|amx_bf16)\b", text)))
        native = bool(flags)
        why = f"detected {', '.join(flags) or 'no avx512_bf16/amx_bf16'} in /proc/cpuinfo"
    log.info("CPU native bf16: %s (%s)", "yes" if native else "no", why)
    return native


def resolve_precision(requested: str, cuda: bool) -> str:
    """The mixed precision to use: `no`, `bf16` or `fp16` (auto: bf16 where native)."""
    if requested == "no":
        return "no"
    if cuda:
        bf16 = torch.cuda.is_bf16_supported()
        if requested == "auto":
            return "bf16" if bf16 else "fp16"
        if requested == "bf16" and not bf16:
            raise ValueError("train.mixed_precision bf16: this GPU has no bf16; use fp16 or auto")
        return requested
    if requested == "fp16":
        raise ValueError("train.mixed_precision fp16 needs a CUDA GPU; use auto or no on CPU")
    native = cpu_has_native_bf16()
    if requested == "auto":
        chosen = "bf16" if native else "no"
        log.info("train.mixed_precision auto on CPU: %s", chosen)
        return chosen
    if not native:
        log.warning("bf16 requested on a CPU without native bf16: emulated and slow")
    return requested


def make_accelerator(cfg: TrainConfig, native_pooling: bool) -> Accelerator:
    """An Accelerator for this machine and launch (single process, DDP or FSDP)."""
    cuda = torch.cuda.is_available()
    precision = resolve_precision(cfg.mixed_precision, cuda)
    kwargs: dict[str, Any] = {}
    if cfg.distributed == "fsdp":
        from accelerate.utils import FullyShardedDataParallelPlugin

        kwargs["fsdp_plugin"] = FullyShardedDataParallelPlugin(fsdp_version=2)
    # Non-native poolings leave the backbone class's own head unused.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=not native_pooling)
    # accelerate keeps its state per process and refuses a second precision in it; a process
    # may train more than once (tests, benchmarks), so each run starts from a fresh state.
    # The process group (PartialState) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    acc = Accelerator(mixed_precision=precision, cpu=not cuda, kwargs_handlers=[ddp], **kwargs)
    if (
        cfg.distributed == "fsdp"
        and acc.num_processes > 1
        and acc.distributed_type != DistributedType.FSDP
    ):
        # accelerate shards only on GPUs; on CPU it would quietly run DDP instead.
        raise ValueError(
            "train.distributed fsdp needs CUDA GPUs (this launch is "
            f"{acc.distributed_type.value}); use train.distributed ddp"
        )
    return acc


def unwrapped(acc: Accelerator, model: torch.nn.Module) -> RewardModel:
    inner = acc.unwrap_model(model)
    if not isinstance(inner, RewardModel):
        raise TypeError(f"expected a RewardModel, got {type(inner).__name__}")
    return inner


def progress(acc: Accelerator, total: int, initial: int) -> Any:
    quiet = not acc.is_main_process or not sys.stderr.isatty()
    return tqdm(total=total, initial=initial, disable=quiet, desc="train", unit="step")


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
    if packed and not model.enable_packing():
        if packing == "on":
            raise ValueError(
                f"train.packing on: {type(model.backbone).__name__} cannot score packed rows "
                "(its attention cannot be replaced); use packing auto or off"
            )
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
