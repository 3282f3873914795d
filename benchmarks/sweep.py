"""Choose training defaults by validation accuracy, then score the held-out pairs once.

    python benchmarks/sweep.py                       # hh-rlhf, MiniLM-L6, 512 pairs, CPU
    python benchmarks/sweep.py --only default,mean   # some of the configurations
    python benchmarks/sweep.py --seeds 0,1,2         # judged by the mean over three seeds
    python benchmarks/sweep.py --quick               # seconds: tiny model, embedded data

The data, backbone and pair budget are those of `train_vs_trl.py`. Every configuration (a
few `section.key=value` changes to our params) trains on the same train pairs with each of
`--seeds` (the head's initial weights and the batch order) and is judged by its validation
accuracy on the next `--validation` train pairs, the figure our train stage keeps its best
checkpoint by, averaged over the seeds: at a budget of a few hundred pairs one seed's
differences between settings are the size of seed-to-seed variation. Only the configuration
with the best mean validation accuracy (ties: the one listed first) is scored on the
held-out pairs, once per seed, so the held-out figures choose nothing. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import harness as h  # also puts the repository on sys.path
import numpy as np
import train_vs_trl as bench

from rmcore import stages
from rmcore.model.reward_model import load_reward_model

log = logging.getLogger("benchmarks.sweep")

# name -> overrides of our params; "default" is params.yaml as it stands
GRID: dict[str, list[str]] = {
    "default": [],
    "mean_pooling": ["model.pooling=mean"],
    "lr_1e-4": ["train.lr=1e-4"],
    "mean_pooling_lr_1e-4": ["model.pooling=mean", "train.lr=1e-4"],
    "lr_2e-5": ["train.lr=2e-5"],
    "warmup_0": ["train.warmup_ratio=0.0"],
    "cosine": ["train.scheduler=cosine"],
    "constant": ["train.scheduler=constant", "train.warmup_ratio=0.0"],
    "beta_0": ["loss.beta=0.0"],
    "beta_0.01": ["loss.beta=0.01"],
    "margin_0.1": ["loss.margin=0.1"],
    "batch_8": ["train.batch_size=8"],
    "epochs_2": ["train.epochs=2"],
    "epochs_2_lr_1e-4": ["train.epochs=2", "train.lr=1e-4"],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench.add_data_args(p, validation=512)
    p.add_argument(
        "--only", default=None, help=f"comma-separated configurations (of {', '.join(GRID)})"
    )
    p.add_argument(
        "--seeds",
        type=bench.seed_list,
        default=None,
        metavar="S1,S2,...",
        help="training seeds; a configuration is judged by its mean validation accuracy over "
        "them (default: --seed alone)",
    )
    args = p.parse_args(argv)
    bench.finish_data_args(args)
    args.seeds = list(dict.fromkeys(args.seeds or [args.seed]))
    args.names = args.only.split(",") if args.only else list(GRID)
    if args.quick and not args.only:
        args.names = ["default", "mean_pooling"]
    unknown = [n for n in args.names if n not in GRID]
    if unknown:
        p.error(f"unknown configurations {unknown}; known: {', '.join(GRID)}")
    return args


def train_one(
    args: argparse.Namespace, data: dict, model: str, name: str, seed: int, work: Path
) -> dict:
    """Train configuration `name` with `seed` in its own project; its validation figures."""
    project = h.write_project(
        work / f"{name}-seed{seed}",
        data["full"],
        {"train": data["train"], "validation": data["validation"]},
    )
    params = h.make_params(
        data["kind"], args.data, model, args.max_length, {"seed": seed}, GRID[name]
    )
    metrics = stages.train(params, project)
    return {
        "val_acc": round(float(metrics["best_val_accuracy"]), 4),
        "best_step": metrics["best_step"],
        "steps": metrics["steps"],
        "train_seconds": metrics["train_seconds"],
        "pairs_per_s": metrics["pairs_per_s"],
        "model_dir": str(project.model_dir),
    }


def sweep_one(args: argparse.Namespace, data: dict, model: str, name: str, work: Path) -> dict:
    """Configuration `name` trained with every seed: the mean validation accuracy and each
    seed's figures."""
    by_seed = {seed: train_one(args, data, model, name, seed, work) for seed in args.seeds}
    return {
        "val_acc": round(float(np.mean([r["val_acc"] for r in by_seed.values()])), 4),
        "by_seed": by_seed,
    }


def heldout_by_seed(args: argparse.Namespace, data: dict, run: dict) -> dict[int, float]:
    """Held-out accuracy of each seed's model of one configuration."""
    out = {}
    for seed, trained in run["by_seed"].items():
        reward_model = load_reward_model(Path(trained["model_dir"]), device=args.device)
        out[seed] = bench.heldout_accuracy(reward_model, data["heldout"], args.device)["acc"]
    return out


def public(run: dict) -> dict:
    """A run's figures without the model folders (temporary)."""
    by_seed = {
        seed: {k: v for k, v in r.items() if k != "model_dir"} for seed, r in run["by_seed"].items()
    }
    return {"val_acc": run["val_acc"], "by_seed": by_seed}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    h.start_benchmark(args.device)
    with tempfile.TemporaryDirectory(prefix="rmpipe-sweep-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        model = bench.backbone_path(args.backbone, work)
        data = bench.prepare_data(args, work, model)
        runs = {name: sweep_one(args, data, model, name, work) for name in args.names}
        chosen = max(args.names, key=lambda n: (runs[n]["val_acc"], -args.names.index(n)))
        heldout = heldout_by_seed(args, data, runs[chosen])
        result = {
            "chosen": chosen,
            "chosen_overrides": GRID[chosen],
            "chosen_val_acc": runs[chosen]["val_acc"],
            "chosen_heldout_acc": round(float(np.mean(list(heldout.values()))), 4),
            "chosen_heldout_acc_by_seed": heldout,
            "heldout_pairs": h.count_pairs(data["heldout"]),
            "validation_pairs": h.count_pairs(data["validation"]),
            "train_pairs": h.count_pairs(data["train"]),
            "seeds": args.seeds,
            "runs": {name: public(run) for name, run in runs.items()},
            "config": {
                "backbone": args.backbone,
                "max_length": args.max_length,
                "device": args.device,
                "quick": args.quick,
            },
            "environment": h.environment(),
            "wall_s": round(time.perf_counter() - start, 1),
        }
        h.emit(result)
        return result


if __name__ == "__main__":
    main()
