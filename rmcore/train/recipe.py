"""The training loop: plain PyTorch on Hugging Face accelerate.

One process or many (`torchrun` / `accelerate launch`: DDP, or FSDP with train.distributed).
Every optimiser step takes `batch_size * grad_accum * processes` groups from a plan seeded by
(seed, epoch) alone, so the data order is the same for any process count and after a resume;
each process runs `grad_accum` micro-batches of `batch_size` groups, all k completions of a
group in the same forward pass. An epoch trains each group once (its last step may be smaller),
and a step's loss is that of all its groups together, however they are split (see
`rmcore.steps.train_step`). Only the main process writes files.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, broadcast_object_list, set_seed
from torch.utils.data import DataLoader

from rmcore.core import atomic
from rmcore.core.config import ConfigError, Params
from rmcore.core.hashing import fingerprint
from rmcore.core.integrity import empty_split
from rmcore.core.paths import Layout
from rmcore.model.batches import Batch, BatchLayout, PackedGroups
from rmcore.model.layout import FLASH_VARLEN, choose_layout
from rmcore.model.reward_model import (
    RewardModel,
    build_reward_model,
    load_reward_model,
    set_reward_stats,
)
from rmcore.model.scoring import record_score_precision, score_groups
from rmcore.text.tokenize import load_tokenized, read_meta
from rmcore.train.accelerator import (
    AUTOCAST_DTYPES,
    make_accelerator,
    progress,
    resolve_precision,
    unwrapped,
    weights_dtype,
)
from rmcore.train.checkpoint import Checkpoints
from rmcore.train.memory import peak_memory
from rmcore.train.numerics import check_finite
from rmcore.train.plan import Plan, StepBatches, data_hash, make_plan, plan_epoch
from rmcore.train.steps import make_optimizer, train_step, validate

log = logging.getLogger(__name__)
WALL_TIME = "wall_time"  # history column: when the step ended; not in plots/train_steps.csv


@dataclass
class TrainState:
    """Everything the loop needs to continue exactly where it stopped."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    pairs: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    best_val_accuracy: float | None = None
    best_step: int | None = None
    best_dir: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    validations: list[dict[str, float]] = field(default_factory=list)

    # accelerate saves and restores registered objects through these two
    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def _due(every: int, step: int, epoch_end: bool) -> bool:
    return step % every == 0 if every else epoch_end


def _check_tokenized(meta: dict[str, Any], params: Params) -> None:
    if meta["model_name"] != params.model.name:
        raise ConfigError(
            f"data/tokenized was made with the tokenizer of {meta['model_name']!r} but "
            f"model.name is {params.model.name!r}; run the tokenize stage again"
        )


@dataclass
class Run:
    """The objects of one training run."""

    params: Params
    acc: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    plan: Plan
    data: PackedGroups
    val: PackedGroups
    ckpts: Checkpoints
    pad_id: int
    layout: BatchLayout
    state: TrainState = field(default_factory=TrainState)


def _setup(params: Params, layout: Layout) -> Run:
    cfg = params.train
    _check_tokenized(read_meta(layout), params)
    data = PackedGroups.from_dataset(load_tokenized(layout, "train"))
    val = PackedGroups.from_dataset(load_tokenized(layout, "validation"))
    if len(data) == 0:
        raise empty_split(layout.tokenized / "train", "train", layout.ingest_report)
    if len(data.margin_keys):
        scale = params.loss.data_margin_scale
        log.info(
            "train: %d judged pairs carry a data margin; %s",
            len(data.margin_keys),
            f"each asks for {scale:g} x it" if scale else "ignored (loss.data_margin_scale: 0)",
        )
    set_seed(cfg.seed)
    cuda = torch.cuda.is_available()
    precision = resolve_precision(cfg.mixed_precision, cuda)
    dtype = weights_dtype(params.model, precision, cuda)
    model = build_reward_model(params.model, params.tokenize, dtype)
    # saved in config.json: every consumer scores the model in the precision it trained in
    record_score_precision(model, precision)
    if cfg.gradient_checkpointing:
        model.backbone.gradient_checkpointing_enable({"use_reentrant": False})
    acc = make_accelerator(cfg, model.native, model, precision)
    batch_layout = choose_layout(
        model, acc.device, cfg.packing, cfg.share_prefix, AUTOCAST_DTYPES.get(precision)
    )
    if not acc.is_main_process:  # one copy of the logs is enough
        for name in ("rmcore", "accelerate", "transformers"):
            logging.getLogger(name).setLevel(logging.WARNING)
    plan = make_plan(cfg, len(data), acc.num_processes)
    optimizer, scheduler = make_optimizer(model, cfg, plan.total_steps, plan.warmup_steps)
    pad_id = int(model.tokenizer.pad_token_id)
    prepared, optimizer = acc.prepare(model, optimizer)
    sections = [params.model, params.loss, params.train, params.tokenize]
    key = fingerprint([s.model_dump() for s in sections], data_hash(data, val), acc.num_processes)
    ckpts = Checkpoints(layout.checkpoints, key, acc)
    run = Run(
        params, acc, prepared, optimizer, scheduler, plan, data, val, ckpts, pad_id, batch_layout
    )
    acc.register_for_checkpointing(scheduler, run.state)
    latest = ckpts.latest()
    if latest is None:
        ckpts.reset()
    else:
        ckpts.load(latest)  # model, optimizer, RNG, scheduler and run.state
    return run


def _validate_and_keep(run: Run) -> None:
    if len(run.val) == 0:
        return
    state = run.state
    metrics = validate(run.model, run.val, run.acc, run.params, run.pad_id, run.layout)
    state.validations.append({"step": state.step, **metrics})
    log.info("step %d: %s", state.step, {k: round(v, 4) for k, v in metrics.items()})
    if state.best_val_accuracy is not None and metrics["val_accuracy"] <= state.best_val_accuracy:
        return
    state.best_val_accuracy, state.best_step = metrics["val_accuracy"], state.step
    if run.params.train.keep_best:
        state_dict = run.acc.get_state_dict(run.model)
        model = unwrapped(run.acc, run.model)
        state.best_dir = run.ckpts.save_best(
            state.step, lambda d: model.save_pretrained(d, state_dict=state_dict)
        )


def _epoch_loader(run: Run) -> tuple[Iterator[list[Batch]], int]:
    """This process's batches from the current position to the end of the epoch."""
    cfg, state = run.params.train, run.state
    plan = plan_epoch(
        run.data.group_lengths, run.plan.global_batch, cfg.seed, state.epoch, cfg.length_grouping
    )
    steps = StepBatches(run.data, plan, state.step_in_epoch, run.acc, cfg, run.pad_id, run.layout)
    # Own generator: a DataLoader otherwise draws its base seed from the global RNG, which a
    # resumed run (new loader mid-epoch) would consume differently.
    generator = torch.Generator().manual_seed(cfg.seed + state.epoch)
    loader = DataLoader(steps, batch_size=None, num_workers=cfg.num_workers, generator=generator)
    return iter(loader), len(plan)


def _log_progress(run: Run, row: dict[str, float], quiet_bar: bool) -> None:
    """Without a progress bar (logs, Prefect), a line every 5% of the run, with the speed
    and the time left at that speed (training steps only: validation adds its own)."""
    every = max(1, run.plan.total_steps // 20)
    state = run.state
    if quiet_bar and run.acc.is_main_process and state.step % every == 0:
        seconds = max(state.train_seconds, 1e-9)
        left = seconds / max(1, state.step) * (run.plan.total_steps - state.step)
        log.info(
            "step %d/%d loss %.4f accuracy %.3f lr %.2e | %.1f pairs/s, %s left",
            state.step,
            run.plan.total_steps,
            row["loss"],
            row["accuracy"],
            row["lr"],
            state.pairs / seconds,
            _duration(left),
        )


def _duration(seconds: float) -> str:
    """1h02m, 3m05s, 42s."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _loop(run: Run) -> None:
    cfg, state, plan = run.params.train, run.state, run.plan
    bar = progress(run.acc, plan.total_steps, state.step)
    loader: Iterator[list[Batch]] = iter(())
    loader_epoch, epoch_steps = -1, 0
    while state.step < plan.total_steps:
        start = time.perf_counter()
        if loader_epoch != state.epoch:
            (loader, epoch_steps), loader_epoch = _epoch_loader(run), state.epoch
        row = train_step(run.model, run.optimizer, run.scheduler, run.acc, next(loader), run.params)
        check_finite(row, state.step + 1, plan.total_steps, cfg)  # before anything is saved
        state.train_seconds += time.perf_counter() - start
        # when the step ended (s since the epoch): MLflow logs each point at its own time
        row[WALL_TIME] = time.time()
        state.history.append({"step": state.step + 1, "epoch": state.epoch, **row})
        state.step, state.step_in_epoch = state.step + 1, state.step_in_epoch + 1
        state.pairs += int(row["pairs"])
        state.tokens += int(row["tokens"])
        epoch_end = state.step_in_epoch >= epoch_steps
        if epoch_end:
            state.epoch, state.step_in_epoch = state.epoch + 1, 0
        done = state.step >= plan.total_steps
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.4f}", acc=f"{row['accuracy']:.3f}")
        _log_progress(run, row, bar.disable)
        if done or _due(cfg.eval_every, state.step, epoch_end):
            _validate_and_keep(run)
        if not done and _due(cfg.save_every, state.step, epoch_end):
            run.ckpts.save(state.step, keep_best=state.best_dir)
    bar.close()


def _saves_live_weights(run: Run) -> bool:
    """The saved model is the one in memory (not an earlier best checkpoint)."""
    cfg, state = run.params.train, run.state
    return not (cfg.keep_best and state.best_dir) or state.best_step == state.step


def validated_reward_stats(run: Run) -> dict | None:
    """The saved model's reward stats from its own validation (the best checkpoint's, or the
    last step's), where that validation recorded them: no second scoring pass. None where it
    did not (no validation split, or a run resumed from a checkpoint of an older version)."""
    state = run.state
    keep_best = run.params.train.keep_best and state.best_dir
    saved_step = state.best_step if keep_best else state.step
    found = [v for v in state.validations if v["step"] == saved_step and "val_rewards" in v]
    if not found:
        return None
    record = found[-1]
    return {
        "mean": float(record["val_reward_mean"]),
        "std": float(record["val_reward_std"]),
        "split": "validation",
        "n": int(record["val_rewards"]),
    }


def live_reward_stats(run: Run) -> dict | None:
    """Reward stats of the model in memory, without loading a second copy: every process
    under FSDP (each forward pass needs all shards), the main one otherwise (None elsewhere)."""
    fsdp = run.acc.distributed_type == DistributedType.FSDP
    if not (fsdp or run.acc.is_main_process):
        return None
    model = unwrapped(run.acc, run.model)
    # flash-attention takes no fp32: fp32 master weights score under the training autocast
    autocast = run.acc.autocast() if model.attention == FLASH_VARLEN else nullcontext()
    with autocast:
        return reward_stats(model, run, run.layout)


def reward_stats(model: RewardModel, run: Run, layout: BatchLayout | None = None) -> dict:
    """Mean and std of `model`'s rewards on the validation split (train if empty), in
    `layout` (None: the scoring path's choice)."""
    split, pack = ("validation", run.val) if len(run.val) else ("train", run.data)
    if not len(run.val):
        log.warning("validation split is empty; reward stats come from the train split")
    rewards = np.concatenate(score_groups(model, pack, layout=layout))
    return {
        "mean": float(rewards.mean()),
        "std": float(rewards.std()),
        "split": split,
        "n": len(rewards),
    }


def _summary(run: Run, wall_start: float, resumed_from: int, stats: dict) -> dict[str, Any]:
    state, acc = run.state, run.acc
    last_epoch = state.history[-min(len(state.history), run.plan.steps_per_epoch) :]
    last_val = state.validations[-1] if state.validations else {}
    return {
        "steps": state.step,
        "epochs": round(state.step / run.plan.steps_per_epoch, 4),
        "groups_per_step": run.plan.global_batch,
        "pairs_trained": state.pairs,
        "train_loss": float(np.mean([r["loss"] for r in last_epoch])),
        "train_accuracy": float(np.mean([r["accuracy"] for r in last_epoch])),
        "val_loss": last_val.get("val_loss"),
        "val_accuracy": last_val.get("val_accuracy"),
        "best_val_accuracy": state.best_val_accuracy,
        "best_step": state.best_step,
        "tokens_trained": state.tokens,
        "pairs_per_s": round(state.pairs / max(state.train_seconds, 1e-9), 2),
        "tokens_per_s": round(state.tokens / max(state.train_seconds, 1e-9), 1),
        "train_seconds": round(state.train_seconds, 2),
        "wall_s": round(time.perf_counter() - wall_start, 2),
        "device": acc.device.type,
        "precision": acc.mixed_precision,
        "packing": run.layout.packed,
        "share_prefix": run.layout.share_prefix,
        "processes": acc.num_processes,
        "distributed": str(acc.distributed_type.value),
        "resumed_from_step": resumed_from,
        "reward_mean": stats["mean"],
        "reward_std": stats["std"],
        "attention": unwrapped(acc, run.model).attention,
        **peak_memory(acc.device),
    }


def _write_outputs(run: Run, layout: Layout, wall_start: float, resumed_from: int) -> dict:
    """Final model (best if keep_best), reward stats, metrics and the step CSV."""
    state_dict = run.acc.get_state_dict(run.model)
    stats = validated_reward_stats(run)
    if stats is None and _saves_live_weights(run):
        stats = live_reward_stats(run)
    summary: dict[str, Any] = {}
    if run.acc.is_main_process:
        with atomic.atomic_path(layout.model_dir) as target:  # never a half-written model
            if run.params.train.keep_best and run.state.best_dir:
                shutil.copytree(run.ckpts.root / run.state.best_dir, target)
            else:
                unwrapped(run.acc, run.model).save_pretrained(target, state_dict=state_dict)
            if stats is None:  # an earlier best: load it once more, in the training dtype
                dtype = next(unwrapped(run.acc, run.model).parameters()).dtype
                trust = run.params.model.trust_remote_code
                best = load_reward_model(target, run.acc.device, trust, dtype)
                stats = reward_stats(best, run)
                del best
            set_reward_stats(target, stats)
        summary = _summary(run, wall_start, resumed_from, stats)
        atomic.write_json(layout.train_metrics, summary)
        _write_history(layout, run.state.history)
    run.acc.wait_for_everyone()
    return summary


def _write_history(layout: Layout, history: list[dict[str, float]]) -> None:
    """The per-step curves (the same for the same params and data, to the byte), and apart
    from them when each step ended, which differs from run to run."""
    frame = pd.DataFrame(history)
    times = frame.pop(WALL_TIME) if WALL_TIME in frame else None
    atomic.write_text(layout.train_steps, frame.to_csv(index=False))
    if times is not None:
        # steps of a run resumed from an older checkpoint may have no time: left out
        stamps = pd.DataFrame({"step": frame["step"], WALL_TIME: times}).dropna()
        atomic.write_text(layout.train_step_times, stamps.to_csv(index=False))


def train(params: Params, layout: Layout) -> dict[str, Any]:
    """Train on data/tokenized, resuming from checkpoints/ when a run of the same params and
    data was interrupted; write models/reward_model, metrics/train.json and the step CSV."""
    wall_start = time.perf_counter()
    run = _setup(params, layout)
    resumed_from = run.state.step
    log.info(
        "training %d steps of %d groups on %d x %s (%s), from step %d",
        run.plan.total_steps,
        run.plan.global_batch,
        run.acc.num_processes,
        run.acc.device,
        run.acc.mixed_precision,
        resumed_from,
    )
    _loop(run)
    summary = [_write_outputs(run, layout, wall_start, resumed_from)]
    run.ckpts.reset()  # finished: nothing to resume
    broadcast_object_list(summary, from_process=0)
    return dict(summary[0])
