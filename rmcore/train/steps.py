"""One optimiser step and one validation pass, and the step plan and optimiser they use."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from transformers import get_scheduler

from rmcore.core.config import LossConfig, Params, TrainConfig
from rmcore.model.batches import Batch, BatchLayout, PackedGroups, collate
from rmcore.train.loss import Count, LossOutput, kwise_loss


def make_optimizer(
    model: torch.nn.Module, cfg: TrainConfig, total_steps: int, warmup: int
) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW (no decay on biases and norms) with warmup and decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    # The fused kernel updates all parameters in one pass (several times faster than the
    # per-tensor loop on CPU); the update is the same AdamW.
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=fused or None)
    name = "constant_with_warmup" if cfg.scheduler == "constant" else cfg.scheduler
    scheduler = get_scheduler(
        name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps
    )
    return optimizer, scheduler


def pair_margin(batch: Batch, loss_cfg: LossConfig) -> float | torch.Tensor:
    """The reward gap each pair is asked for: `loss.margin`, plus the data's own margin of
    the pair times `loss.data_margin_scale` where the data gives margins."""
    if batch.margins is None or loss_cfg.data_margin_scale == 0:
        return loss_cfg.margin
    return loss_cfg.margin + loss_cfg.data_margin_scale * batch.margins


def forward_loss(
    model: torch.nn.Module,
    batch: Batch,
    loss_cfg: LossConfig,
    normalise_by: tuple[Count, Count] | None = None,
) -> LossOutput:
    rewards = model(**batch.model_inputs())  # [N]
    return kwise_loss(
        rewards,
        batch.better,
        batch.worse,
        batch.row_group,
        batch.n_groups,
        beta=loss_cfg.beta,
        margin=pair_margin(batch, loss_cfg),
        center=loss_cfg.center_rewards,
        normalise_by=normalise_by,
    )


def step_counts(acc: Accelerator, micro: list[Batch]) -> tuple[torch.Tensor, torch.Tensor]:
    """(groups with pairs, groups) of the whole step, over micro-batches and processes,
    counted before any forward pass: what every micro-batch's loss is divided by."""
    counted = [batch for batch in micro if batch.counted]
    local = [sum(b.groups_with_pairs for b in counted), sum(b.n_groups for b in counted)]
    total = acc.reduce(torch.tensor(local, dtype=torch.float32, device=acc.device), "sum")
    with_pairs, groups = total.clamp(min=1.0)
    return with_pairs, groups


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    acc: Accelerator,
    micro: list[Batch],
    params: Params,
) -> dict[str, float]:
    """One optimiser step over this process's micro-batches; metrics reduced over processes.

    The step's loss is the k-wise loss of all its groups together, however they are split:
    each micro-batch's sums are divided by the step's counts, and scaled by the number of
    processes because DDP averages the processes' gradients. Every process must pass the
    same number of micro-batches (filler ones, `counted` False, add nothing).
    """
    model.train()
    normalise_by = step_counts(acc, micro)
    # loss, correct, margin, pairs, tokens
    sums = torch.zeros(5, dtype=torch.float64, device=acc.device)
    sums[4] = float(sum(batch.n_tokens for batch in micro if batch.counted))
    for i, batch in enumerate(micro):
        batch = batch.to(acc.device)
        sync = i == len(micro) - 1
        with nullcontext() if sync else acc.no_sync(model):
            out = forward_loss(model, batch, params.loss, normalise_by)
            acc.backward(out.loss * (acc.num_processes if batch.counted else 0.0))
        if not batch.counted:
            continue
        n = float(out.n_pairs)
        parts = [out.loss.detach(), out.accuracy * n, out.margin * n, torch.tensor(n)]
        sums[:4] += torch.stack([p.to(sums) for p in parts])  # no device sync per micro-batch
    grad_norm = acc.clip_grad_norm_(model.parameters(), params.train.max_grad_norm)
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    loss, correct, margin, pairs, tokens = acc.reduce(sums, reduction="sum").tolist()
    return {
        "loss": loss,
        "accuracy": correct / max(pairs, 1.0),
        "margin": margin / max(pairs, 1.0),
        "pairs": pairs,
        "tokens": tokens,
        "lr": float(lr),
        "grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
    }


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    data: PackedGroups,
    acc: Accelerator,
    params: Params,
    pad_id: int,
    layout: BatchLayout | None = None,
) -> dict[str, float]:
    """Loss and pairwise accuracy on the validation groups, sharded over processes, and the
    mean and std of the rewards of all their completions (the model's reward stats, so that
    a validated model needs no second scoring pass for them).

    Every process runs the same number of forward passes (DDP synchronises buffers in each):
    one without a batch of its own reruns the shortest one and does not count it.
    """
    layout = layout or BatchLayout()
    model.eval()
    order = np.argsort(-data.group_lengths, kind="stable")
    size = params.train.batch_size
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    world, rank = acc.num_processes, acc.process_index
    # loss * groups with pairs, right, pairs, groups with pairs, rewards, sum r, sum r^2
    sums = torch.zeros(7, dtype=torch.float64, device=acc.device)
    for index in range(rank, math.ceil(len(batches) / world) * world, world):
        counted = index < len(batches)
        groups = batches[index if counted else -1]
        batch = collate(data, groups, pad_id, layout=layout).to(acc.device)
        out = forward_loss(model, batch, params.loss)
        if not counted:
            continue
        n, rewards = float(out.n_pairs), out.rewards.double()
        parts = [out.loss * out.n_groups, out.accuracy * n, torch.tensor(n), out.n_groups]
        parts += [torch.tensor(float(len(rewards))), rewards.sum(), (rewards**2).sum()]
        sums += torch.stack([p.to(sums) for p in parts])
    reduced = acc.reduce(sums, reduction="sum").tolist()
    loss, correct, pairs, n_groups, completions, total, squares = reduced
    model.train()
    mean = total / max(completions, 1.0)
    return {
        "val_loss": loss / max(n_groups, 1.0),
        "val_accuracy": correct / max(pairs, 1.0),
        "val_pairs": pairs,
        "val_reward_mean": mean,
        "val_reward_std": math.sqrt(max(squares / max(completions, 1.0) - mean**2, 0.0)),
        "val_rewards": completions,
    }
