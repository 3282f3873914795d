"""Our train stage against TRL's RewardTrainer: same pairs, backbone, hyper-parameters and
held-out scoring, one after the other in one process. Prints one JSON line.

    python benchmarks/train_vs_trl.py                 # hh-rlhf, MiniLM-L6, 512 pairs, CPU
    python benchmarks/train_vs_trl.py --quick         # seconds: tiny model, embedded data
    python benchmarks/train_vs_trl.py --device cuda --backbone neox-160m   # on a GPU
    python benchmarks/train_vs_trl.py --quick --mixed-precision no       # both in fp32

Data: ../shared/data/hh-rlhf-harmless-base through rmcore's ingest (hh_rlhf adapter) and
its prompt-hash split (80% train, 20% held out), tokenised by rmcore's tokenize stage. We
train on the first `--pairs` train pairs. TRL gets the same pairs as `chosen_ids` /
`rejected_ids`: rmcore's formatting of each pair without truncation, so TRL sees the same
tokens and applies its own rule (drop pairs longer than max_length). The next `--validation`
train pairs (disjoint from the training pairs and from the held-out ones) are the validation
split of both: our train stage validates on them (and keeps its best checkpoint by them), TRL
gets them as its eval_dataset; hyper-parameters are chosen on them, never on the held-out
pairs. Both models are then scored on the validation pairs and on all held-out pairs (or the
first `--heldout`) by `rmcore.model.scoring.score_groups`: ours as saved, TRL's saved
AutoModelForSequenceClassification wrapped in `RewardModel` with the same tokenizer and
tokenised data.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import datasets
import harness as h  # also puts the repository on sys.path
import numpy as np
import pyarrow.parquet as pq
import torch

from rmcore import stages
from rmcore.core.config import TokenizeConfig
from rmcore.evaluate.metrics import GroupScores, ranked_pairs
from rmcore.model.reward_model import RewardModel, load_reward_model
from rmcore.model.scoring import score_groups
from rmcore.text.tokenize import encode_records, load_tokenized
from rmcore.text.tokenizer import load_tokenizer, resolve_backbone
from rmcore.train.accelerator import resolve_precision

log = logging.getLogger("benchmarks.train_vs_trl")
BACKBONES = {"neox-160m": (12, 768, 12), "neox-small": (6, 512, 8)}


def add_data_args(p: argparse.ArgumentParser, validation: int) -> None:
    """The data, backbone and budget options this benchmark shares with `sweep.py`."""
    p.add_argument("--quick", action="store_true", help="tiny model, embedded data (CI)")
    h.add_data_option(p)
    p.add_argument("--pairs", type=int, default=None, help="train pairs (default 512)")
    p.add_argument("--heldout", type=int, default=None, help="held-out pairs (default all)")
    p.add_argument(
        "--validation", type=int, default=None, help=f"validation pairs (default {validation})"
    )
    p.add_argument("--backbone", default=None, help="minilm-l6, neox-160m, neox-small, path")
    p.add_argument("--max-length", type=int, default=None, help="default 512")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    p.set_defaults(default_validation=validation)


def finish_data_args(args: argparse.Namespace) -> None:
    """Fill the defaults `add_data_args` left open (they differ under --quick)."""
    quick = args.quick
    args.pairs = args.pairs or (24 if quick else 512)
    args.validation = args.validation or (8 if quick else args.default_validation)
    args.max_length = args.max_length or (128 if quick else 512)
    args.backbone = args.backbone or ("tiny-bert" if quick else "minilm-l6")


def seed_list(text: str) -> list[int]:
    """`--accuracy-seeds`: comma-separated integers."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"comma-separated integers expected: {text!r}") from error


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(p, validation=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16", "fp16"],
        default="auto",
        help="train.mixed_precision of both trainers (auto: bf16 where native, else fp32)",
    )
    p.add_argument("--trl-bf16-steps", type=int, default=2, help="steps of TRL's bf16 default")
    p.add_argument("--skip-trl", action="store_true", help="only our trainer")
    p.add_argument(
        "--score-passes",
        type=int,
        default=3,
        help="timed scoring passes over the held-out pairs (the median is reported)",
    )
    p.add_argument(
        "--accuracy-seeds",
        type=seed_list,
        default=[],
        metavar="S1,S2,...",
        help="more training seeds, for the accuracies only (ours and TRL without gradient "
        "checkpointing, untimed): each seed's held-out and validation accuracies and the mean "
        "held-out gap over these and --seed (one seed's gap is within seed-to-seed variation)",
    )
    p.add_argument(
        "--ours-set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="change one of our params (e.g. model.dropout=null, train.packing=off)",
    )
    args = p.parse_args(argv)
    if args.score_passes < 1:
        p.error("--score-passes must be at least 1")
    if args.accuracy_seeds and args.skip_trl:
        p.error("--accuracy-seeds compares with TRL: it cannot go with --skip-trl")
    finish_data_args(args)
    if args.quick:
        args.batch, args.trl_bf16_steps, args.score_passes = min(args.batch, 8), 1, 1
    return args


def backbone_path(name: str, work: Path) -> str:
    if name == "tiny-bert":
        from tests.tiny import make_tiny_bert

        return make_tiny_bert(work / "tiny-bert")
    if name in BACKBONES:
        return h.decoder_dir(work / name, *BACKBONES[name])
    return name


def prepare_data(args: argparse.Namespace, work: Path, model: str) -> dict[str, Any]:
    """Ingest + tokenise, then a project with the train pairs and, as its validation split,
    the next pairs of the train split: the held-out pairs never choose a checkpoint."""
    kind = "sample" if args.quick else "hh"
    params = h.make_params(kind, args.data, model, args.max_length, {})
    full, tokenize_figures = h.prepare(params, work / "full")
    counts = [args.pairs, args.validation]
    train, validation = h.consecutive_groups(load_tokenized(full, "train"), counts, True)
    (heldout,) = h.consecutive_groups(load_tokenized(full, "test"), [args.heldout], True)
    project = h.write_project(work / "ours", full, {"train": train, "validation": validation})
    return {
        "kind": kind,
        "full": full,
        "project": project,
        "train": train,
        "validation": validation,
        "heldout": heldout,
        "figures": tokenize_figures,
    }


def trl_pairs(full: h.Layout, train: datasets.Dataset, model: str) -> datasets.Dataset:
    """chosen_ids / rejected_ids of the train pairs, formatted by rmcore, not truncated."""
    table = pq.read_table(full.split_file("train")).to_pandas().set_index("group_id")
    rows = table.loc[train["group_id"]]
    prompts = [list(p) for p in rows["prompt"]]
    completions = []
    for comps, ranks in zip(rows["completions"], rows["ranks"], strict=True):
        best, worst = int(np.argmin(ranks)), int(np.argmax(ranks))
        completions.append([comps[best], comps[worst]])
    tokenizer = load_tokenizer(model)
    untruncated = TokenizeConfig(max_length=10**9)
    encoded = encode_records(tokenizer, prompts, completions, untruncated)
    return datasets.Dataset.from_dict(
        {
            "chosen_ids": [e.prompt_ids + e.completion_ids[0] for e in encoded],
            "rejected_ids": [e.prompt_ids + e.completion_ids[1] for e in encoded],
        }
    )


def heldout_accuracy(
    model: RewardModel, heldout: datasets.Dataset, device: str, passes: int = 1
) -> dict:
    """Pair accuracy of `model` on `heldout`, and its scoring speed over `passes` passes:
    the first (`eval_pairs_per_s_first`) and the median (`eval_pairs_per_s`, what a consumer
    that scores again and again sees). A call on a few groups first chooses the batch layout
    (once per model, as training chooses its own before the steps it times)."""
    score_groups(model, heldout.select(range(min(4, len(heldout)))), device=device)
    pairs = sum(h.pair_count(r) for r in heldout["ranks"])
    speeds = []
    for _ in range(passes):
        start = time.perf_counter()
        rewards = score_groups(model, heldout, device=device)
        speeds.append(pairs / max(time.perf_counter() - start, 1e-9))
    correct = pair_correct(rewards, heldout["ranks"])
    return {
        "acc": round(float(correct.mean()), 4) if len(correct) else float("nan"),
        "pairs": pairs,
        "eval_pairs_per_s": round(float(np.median(speeds)), 2),
        "eval_pairs_per_s_first": round(speeds[0], 2),
        "eval_passes": passes,
        "correct": correct,  # not printed (`printable`)
    }


def pair_correct(rewards: list[np.ndarray], ranks: list[list[int]]) -> np.ndarray:
    """1.0 for each pair whose better completion got the higher reward (ties wrong, as
    `group_pair_accuracy`), else 0.0, in `ranked_pairs` order: the same pairs in the same order
    for any scorer."""
    scores = GroupScores.from_groups(rewards, ranks)
    pairs = ranked_pairs(scores)
    return (scores.rewards[pairs.better] > scores.rewards[pairs.worse]).astype(np.float64)


def paired_gap(ours: np.ndarray, theirs: np.ndarray) -> dict[str, Any]:
    """Accuracy gap of two scorers on the same pairs ([P] of `pair_correct`, or its mean
    over seeds) and its 95% interval over the sampling of the pairs (normal approximation
    of the paired difference: pairs both get right or both get wrong add no uncertainty)."""
    diff = ours - theirs
    gap = float(diff.mean())
    half = 1.96 * float(diff.std(ddof=1)) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan
    return {"gap": round(gap, 4), "ci95": [round(gap - half, 4), round(gap + half, 4)]}


def printable(value: Any) -> Any:
    """`value` without the per-pair arrays (kept for the paired gaps, too long to print)."""
    if isinstance(value, dict):
        return {k: printable(v) for k, v in value.items() if not isinstance(v, np.ndarray)}
    return value


def run_ours(args: argparse.Namespace, data: dict, model: str) -> dict[str, Any]:
    train_cfg = {
        "batch_size": args.batch,
        "lr": args.lr,
        "epochs": args.epochs,
        "seed": args.seed,
        "mixed_precision": args.mixed_precision,
    }
    params = h.make_params(
        data["kind"], args.data, model, args.max_length, train_cfg, args.ours_set
    )
    load_before = os.getloadavg()[0]
    metrics = stages.train(params, data["project"])
    trained = load_reward_model(data["project"].model_dir, device=args.device)
    evaluation = heldout_accuracy(trained, data["heldout"], args.device, args.score_passes)
    validation = heldout_accuracy(trained, data["validation"], args.device)
    n_params = h.nonembedding_params(trained.backbone)
    lengths = h.sequence_lengths(data["train"])
    flops = h.train_flops(trained.config, n_params, lengths) * args.epochs
    skipped = h.skipped_last_layer_flops(trained, lengths) * args.epochs
    return {
        "metrics": metrics,
        "eval": evaluation,
        "val": validation,
        "flops": flops,
        "flops_computed": flops - skipped,
        "n_params_nonembedding": n_params,
        "load_avg_before": round(load_before, 2),
    }


def run_trl(
    args: argparse.Namespace,
    model: str,
    pairs: tuple[datasets.Dataset, datasets.Dataset],
    out: Path,
    **overrides: Any,
) -> dict[str, Any]:
    """TRL's RewardTrainer with its defaults, except the shared hyper-parameters and
    `overrides` (bf16, gradient_checkpointing, max_steps). `pairs`: (train, validation); the
    validation pairs are its eval_dataset, evaluated by its default (never, which keeps its
    train runtime free of evaluation) and scored after training as ours are."""
    from trl import RewardConfig, RewardTrainer

    config = RewardConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.batch,
        learning_rate=args.lr,
        num_train_epochs=args.epochs,
        max_length=args.max_length,
        seed=args.seed,
        use_cpu=args.device == "cpu",
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        **overrides,
    )
    load_before = os.getloadavg()[0]
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs on stdout
        trainer = RewardTrainer(
            model=resolve_backbone(model),
            args=config,
            train_dataset=pairs[0],
            eval_dataset=pairs[1],
        )
        # what TRL kept after dropping the pairs longer than its max_length
        kept = len(cast(datasets.Dataset, trainer.train_dataset))
        result = trainer.train()
    runtime = float(result.metrics["train_runtime"])
    steps = trainer.state.global_step
    trained = min(steps * args.batch, kept) if config.max_steps > 0 else int(kept * args.epochs)
    trainer.save_model(str(out / "model"))
    return {
        "pairs_given": len(pairs[0]),
        "pairs_kept": kept,
        "pairs_trained": trained,
        "steps": steps,
        "train_runtime_s": round(runtime, 2),
        "pairs_per_s": round(trained / max(runtime, 1e-9), 3),
        "bf16": bool(config.bf16),
        "gradient_checkpointing": bool(config.gradient_checkpointing),
        "load_avg_before": round(load_before, 2),
        "model_dir": str(out / "model"),
    }


def trl_scores(run: dict, model: str, args: argparse.Namespace, data: dict) -> None:
    """TRL's saved model, scored exactly as ours (same tokenizer, data and scorer), on the
    held-out pairs (`eval`) and the validation pairs (`val`)."""
    from transformers import AutoModelForSequenceClassification

    backbone = AutoModelForSequenceClassification.from_pretrained(
        run["model_dir"], dtype=torch.float32
    )
    wrapped = RewardModel(backbone, load_tokenizer(model), "auto", TokenizeConfig())
    wrapped = wrapped.to(args.device).eval()
    run["eval"] = heldout_accuracy(wrapped, data["heldout"], args.device)
    run["val"] = heldout_accuracy(wrapped, data["validation"], args.device)


def peaks(args: argparse.Namespace) -> dict[str, Any]:
    """Measured matmul peaks (GFLOP/s) for fp32 and bf16 on the benchmark device."""
    sizes = (256,) if args.quick else (512, 1024, 2048, 4096)
    budget, rounds = (0.2, 1) if args.quick else (1.0, 2)
    fp32 = h.matmul_peak(torch.float32, args.device, sizes, budget, rounds)
    # Emulated bf16 (no bf16 dot products in the CPU) is far slower: one mid size suffices.
    hardware_bf16 = args.device == "cuda" or any(
        flag in h.BF16_FLAGS for flag in h.cpu_kind()["flags"]
    )
    bf16_sizes = sizes if hardware_bf16 else (256 if args.quick else 1024,)
    bf16 = h.matmul_peak(torch.bfloat16, args.device, bf16_sizes, budget, rounds)
    return {
        "matmul_peak_gflops_fp32": fp32["gflops"],
        "matmul_peak_gflops_bf16": bf16["gflops"],
        "matmul_peak_sizes": {"fp32": fp32["size"], "bf16": bf16["size"]},
    }


def trl_inputs(data: dict, model: str) -> tuple[datasets.Dataset, datasets.Dataset]:
    """TRL's (train, validation) pairs, tokenised once per benchmark run (kept in `data`)."""
    if "trl_pairs" not in data:
        data["trl_pairs"] = (
            trl_pairs(data["full"], data["train"], model),
            trl_pairs(data["full"], data["validation"], model),
        )
    return data["trl_pairs"]


def our_precision(args: argparse.Namespace) -> str:
    """What our train stage resolves `--mixed-precision` to on this device: bf16, fp16 or no."""
    return resolve_precision(args.mixed_precision, cuda=args.device == "cuda")


def precision_name(precision: str) -> str:
    """The printed name of a train stage precision: fp32 for "no" (no mixed precision)."""
    return "fp32" if precision == "no" else precision


def trl_precision_flags(args: argparse.Namespace) -> dict[str, bool]:
    """TRL's bf16 / fp16 flags for our precision, so both sides train in the same one."""
    precision = our_precision(args)
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def trl_runs(args: argparse.Namespace, model: str, data: dict, work: Path) -> dict[str, Any]:
    """TRL as a user on this device would run it: its defaults first (bf16 and gradient
    checkpointing); where we train in another precision (fp32 on a CPU without native bf16,
    or as asked), only a few steps of it, then the full runs in our precision."""
    pairs = trl_inputs(data, model)
    same = trl_precision_flags(args)
    out: dict[str, Any] = {"trl_precision": precision_name(our_precision(args))}
    if not same["bf16"]:
        short = run_trl(args, model, pairs, work / "trl-bf16", max_steps=args.trl_bf16_steps)
        out["trl_bf16_default"] = short
        out["trl_bf16_default_pairs_per_s"] = short["pairs_per_s"]
    main = run_trl(args, model, pairs, work / "trl", **same)
    nogc = run_trl(args, model, pairs, work / "trl-nogc", **same, gradient_checkpointing=False)
    if same["bf16"]:
        out["trl_bf16_default_pairs_per_s"] = main["pairs_per_s"]
    trl_scores(main, model, args, data)
    trl_scores(nogc, model, args, data)
    out.update(trl=main, trl_nogc=nogc)
    return out


def best_peak(peak: dict[str, Any]) -> tuple[str, float]:
    """The machine's best measured matmul peak (GFLOP/s) and its precision, the basis of
    `ours_mfu`: bf16 where the device computes bf16 in hardware, fp32 on a CPU that only
    emulates bf16 (there the bf16 peak is a small fraction of fp32's, and an MFU over it
    would exceed 1)."""
    fp32, bf16 = peak["matmul_peak_gflops_fp32"], peak["matmul_peak_gflops_bf16"]
    return ("bf16", bf16) if bf16 >= fp32 else ("fp32", fp32)


def seed_accuracies(
    args: argparse.Namespace, model: str, data: dict, work: Path, ours: dict, trl: dict
) -> dict[str, Any]:
    """Held-out and validation accuracy of ours and TRL at the run's seed (`ours`, TRL
    without gradient checkpointing from `trl`) and at each of `--accuracy-seeds` (the seed of
    the head's initial weights and of the batch order; TRL without gradient checkpointing,
    which changes its speed, not its results), with the held-out gaps' mean and range, and
    the 95% interval of the mean gap over the sampling of the held-out pairs."""
    by_seed = {args.seed: _accuracies(ours, trl["trl_nogc"])}
    correct = [(ours["eval"]["correct"], trl["trl_nogc"]["eval"]["correct"])]
    same = trl_precision_flags(args)
    pairs = trl_inputs(data, model)
    splits = {"train": data["train"], "validation": data["validation"]}
    for seed in (s for s in args.accuracy_seeds if s not in by_seed):
        seeded = argparse.Namespace(**{**vars(args), "seed": seed, "score_passes": 1})
        project = h.write_project(work / f"seed-{seed}", data["full"], splits)
        seed_ours = run_ours(seeded, {**data, "project": project}, model)
        out = work / f"seed-{seed}-trl"
        seed_trl = run_trl(seeded, model, pairs, out, **same, gradient_checkpointing=False)
        trl_scores(seed_trl, model, seeded, data)
        by_seed[seed] = _accuracies(seed_ours, seed_trl)
        correct.append((seed_ours["eval"]["correct"], seed_trl["eval"]["correct"]))
    ours_correct, trl_correct = (np.mean(side, axis=0) for side in zip(*correct, strict=True))
    gaps = [r["ours_heldout_acc"] - r["trl_heldout_acc"] for r in by_seed.values()]
    mean = {
        f"{side}_heldout_acc_mean": round(
            float(np.mean([r[f"{side}_heldout_acc"] for r in by_seed.values()])), 4
        )
        for side in ("ours", "trl")
    }
    return {
        "accuracy_by_seed": by_seed,
        **mean,
        "heldout_gap_mean": round(float(np.mean(gaps)), 4),
        "heldout_gap_min": round(min(gaps), 4),
        "heldout_gap_max": round(max(gaps), 4),
        "heldout_gap_mean_ci95": paired_gap(ours_correct, trl_correct)["ci95"],
    }


def _accuracies(ours: dict, trl: dict) -> dict[str, Any]:
    gap = paired_gap(ours["eval"]["correct"], trl["eval"]["correct"])
    return {
        "ours_heldout_acc": ours["eval"]["acc"],
        "trl_heldout_acc": trl["eval"]["acc"],
        "heldout_gap_ci95": gap["ci95"],
        "ours_val_acc": ours["val"]["acc"],
        "trl_val_acc": trl["val"]["acc"],
    }


def summarise(args: argparse.Namespace, ours: dict, trl: dict, peak: dict, data: dict) -> dict:
    m = ours["metrics"]
    seconds = float(m["train_seconds"])
    achieved = ours["flops"] / max(seconds, 1e-9) / 1e9  # GFLOP/s
    computed = ours["flops_computed"] / max(seconds, 1e-9) / 1e9
    basis, best = best_peak(peak)
    out: dict[str, Any] = {
        "ours_pairs_per_s": round(m["pairs_trained"] / max(seconds, 1e-9), 3),
        "ours_pairs_trained": m["pairs_trained"],
        "ours_heldout_acc": ours["eval"]["acc"],
        "ours_tokens_per_s": round(m["tokens_trained"] / max(seconds, 1e-9), 1),
        "ours_train_seconds": seconds,
        "ours_precision": precision_name(m["precision"]),
        "ours_layout": {"packing": m["packing"], "share_prefix": m["share_prefix"]},
        "ours_model_gflops_per_s": round(achieved, 2),
        "ours_mfu": round(achieved / best, 4),
        "ours_mfu_peak": basis,
        "ours_mfu_vs_fp32_peak": round(achieved / peak["matmul_peak_gflops_fp32"], 4),
        "ours_mfu_basis": (
            "ours_mfu = model FLOPs (6*N_nonembedding*tokens + 12*layers*width*sum(len^2), all "
            f"real tokens) / train seconds / the best measured matmul peak ({basis}: bf16 "
            "where the device computes it in hardware, else fp32); we train in "
            f"{precision_name(m['precision'])}, so "
            "ours_mfu_vs_fp32_peak is the meaningful figure where that is fp32; "
            "ours_hfu counts the FLOPs computed instead: the last layer of a BERT-form encoder "
            "runs its output projection and MLP on the pooled tokens only"
        ),
        "ours_hfu": round(computed / best, 4),
        "ours_hfu_vs_fp32_peak": round(computed / peak["matmul_peak_gflops_fp32"], 4),
        "eval_pairs_per_s": ours["eval"]["eval_pairs_per_s"],
        "eval_pairs_per_s_first_pass": ours["eval"]["eval_pairs_per_s_first"],
        "eval_passes": ours["eval"]["eval_passes"],
        "heldout_pairs": ours["eval"]["pairs"],
        "validation_pairs": ours["val"]["pairs"],
        "ours_val_acc": ours["val"]["acc"],
        "ours_val_accuracy_from_train_stage": m["val_accuracy"],
    }
    if trl:
        t, n = trl["trl"], trl["trl_nogc"]
        out.update(
            trl_pairs_per_s=t["pairs_per_s"],
            trl_nogc_pairs_per_s=n["pairs_per_s"],
            ratio_vs_trl=round(out["ours_pairs_per_s"] / t["pairs_per_s"], 3),
            ratio_vs_trl_nogc=round(out["ours_pairs_per_s"] / n["pairs_per_s"], 3),
            trl_pairs_trained=t["pairs_trained"],
            trl_heldout_acc=t["eval"]["acc"],
            heldout_gap_ci95=paired_gap(ours["eval"]["correct"], t["eval"]["correct"])["ci95"],
            trl_nogc_heldout_acc=n["eval"]["acc"],
            trl_val_acc=t["val"]["acc"],
            trl_nogc_val_acc=n["val"]["acc"],
            trl_precision=trl["trl_precision"],
            trl_bf16_default_pairs_per_s=trl["trl_bf16_default_pairs_per_s"],
        )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    h.start_benchmark(args.device)
    with tempfile.TemporaryDirectory(prefix="rmpipe-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        env = h.environment()
        peak = peaks(args)
        model = backbone_path(args.backbone, work)
        data = prepare_data(args, work, model)
        ours = run_ours(args, data, model)
        trl = {} if args.skip_trl else trl_runs(args, model, data, work)
        result = summarise(args, ours, trl, peak, data)
        if args.accuracy_seeds:
            result.update(seed_accuracies(args, model, data, work, ours, trl))
        result.update(peak)
        result["cpu"] = h.cpu_kind() if args.device == "cpu" else None
        result.update(data["figures"])
        result["config"] = {
            "data": "sample" if args.quick else str(args.data / h.HH_FILE),
            "backbone": args.backbone,
            "device": args.device,
            "pairs": args.pairs,
            "heldout": args.heldout,
            "validation": args.validation,
            "max_length": args.max_length,
            "batch": args.batch,
            "lr": args.lr,
            "epochs": args.epochs,
            "seed": args.seed,
            "mixed_precision": args.mixed_precision,
            "quick": args.quick,
            "ours_set": args.ours_set,
            "accuracy_seeds": args.accuracy_seeds,
        }
        result["details"] = printable({"ours": ours, "trl": trl, "environment": env})
        result["wall_s"] = round(time.perf_counter() - start, 1)
        h.emit(result)
        return result


if __name__ == "__main__":
    main()
