"""Where and how training runs: device, mixed precision, process launch (accelerate), and
the batch layout (packing, prefix sharing) for the model and device."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs, DistributedType
from tqdm.auto import tqdm

from rmcore.core.config import ModelConfig, TrainConfig
from rmcore.model.reward_model import RewardModel
from rmcore.train.fsdp import fsdp_plugin

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


def weights_dtype(model: ModelConfig, precision: str, cuda: bool) -> torch.dtype:
    """The dtype weights are loaded in (model.dtype): auto keeps fp32 master weights except
    for a LoRA run's frozen base training in bf16 on a GPU, which bf16 loses nothing."""
    if model.dtype == "bfloat16":
        return torch.bfloat16
    if model.dtype == "auto" and cuda and precision == "bf16" and model.lora.enabled:
        return torch.bfloat16
    return torch.float32


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def make_accelerator(
    cfg: TrainConfig,
    native_pooling: bool,
    model: torch.nn.Module | None = None,
    precision: str | None = None,
) -> Accelerator:
    """An Accelerator for this machine and launch (single process, DDP or FSDP; FSDP shards
    `model`'s layers, see `rmcore.train.fsdp`). `precision`: already resolved, else from cfg."""
    cuda = torch.cuda.is_available()
    precision = precision or resolve_precision(cfg.mixed_precision, cuda)
    kwargs: dict[str, Any] = {}
    if cfg.distributed == "fsdp":
        if model is None:
            raise ValueError("train.distributed fsdp: make_accelerator needs the model to shard")
        kwargs["fsdp_plugin"] = fsdp_plugin(model, precision, cuda)
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
