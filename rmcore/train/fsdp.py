"""FSDP that shards: each transformer layer its own unit, bf16 compute on GPUs, full weights
gathered for saving.

accelerate's FSDP2 plugin defaults to no auto-wrap: the whole model is one unit, whose
parameters are all gathered for every forward pass, so nothing is saved during compute. Here
every module of the backbone's layer classes (`RewardModel._no_split_modules`, from the
Hugging Face class) becomes a unit of its own, then the root; a step then holds one layer's
full parameters at a time (plus prefetch). Checkpoints are sharded (one file per process,
resumed by the same process count); the saved model is the full state dict, gathered by
`Accelerator.get_state_dict`.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


def wrap_classes(model: nn.Module) -> list[str]:
    """Class names whose modules are sharded as units: the model's `_no_split_modules`
    that it really contains."""
    present = {type(module).__name__ for module in model.modules()}
    names = sorted(set(getattr(model, "_no_split_modules", None) or []) & present)
    if not names:
        raise ValueError(
            f"{type(model).__name__} names no layer class to shard (_no_split_modules); "
            "use train.distributed ddp"
        )
    return names


def shard_units(model: nn.Module) -> list[str]:
    """Names of the modules that become FSDP units, innermost first; "" is the root, which
    holds what no layer holds (embeddings, final norm, head)."""
    classes = set(wrap_classes(model))
    units = [name for name, module in model.named_modules() if type(module).__name__ in classes]
    return [*units, ""]


def mixed_precision_policy(precision: str, cuda: bool) -> Any:
    """bf16 parameters in compute, gradients reduced in fp32 (GPUs with bf16 training);
    None leaves accelerate's choice."""
    if not cuda or precision != "bf16":
        return None
    from torch.distributed.fsdp import MixedPrecisionPolicy

    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)


def fsdp_plugin(model: nn.Module, precision: str, cuda: bool) -> Any:
    """accelerate's FSDP2 plugin: a unit per layer, sharded checkpoints, mixed precision."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    classes = wrap_classes(model)
    log.info("FSDP: one unit per %s (%d units)", ", ".join(classes), len(shard_units(model)))
    return FullyShardedDataParallelPlugin(
        fsdp_version=2,
        auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=classes,
        reshard_after_forward=True,
        mixed_precision_policy=mixed_precision_policy(precision, cuda),
        state_dict_type="SHARDED_STATE_DICT",
        cpu_ram_efficient_loading=False,
    )
