"""Scoring speed against training speed: the train stage on some pairs, then the trained model,
loaded as its consumers load it, scores those same pairs through the one scoring path
(`rmcore.model.scoring.score_groups`, as evaluate does). Prints one JSON line.

    python benchmarks/score_speed.py              # hh-rlhf, MiniLM-L6, 256 pairs, CPU
    python benchmarks/score_speed.py --quick      # seconds: tiny model, embedded data

Data and model as in `train_vs_trl.py`: ../shared/data/hh-rlhf-harmless-base through rmcore's
ingest and tokenize stages (max_length 512), the packaged MiniLM-L6 backbone, batches of 16
pairs, train.mixed_precision auto (bf16 where the CPU computes it natively). Scoring runs in
the precision the model records (the one it trained in); where that is bf16 the same pairs
are scored once more in fp32, to show what the precision alone is worth.
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

from rmcore import stages
from rmcore.core.config import SCORE_BATCH_SIZE
from rmcore.model.batches import PackedGroups
from rmcore.model.reward_model import RewardModel, load_reward_model
from rmcore.model.scoring import PRECISION_KEY, score_groups, score_precision

log = logging.getLogger("benchmarks.score_speed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny model, embedded data (CI)")
    h.add_data_option(p)
    p.add_argument("--pairs", type=int, default=None, help="pairs trained and scored (256)")
    p.add_argument("--backbone", default=None, help="minilm-l6 (default) or a model path")
    p.add_argument("--max-length", type=int, default=None, help="default 512")
    p.add_argument("--batch", type=int, default=16, help="pairs per training step")
    p.add_argument("--score-batch", type=int, default=SCORE_BATCH_SIZE, help="groups per pass")
    p.add_argument("--repeats", type=int, default=2, help="scoring passes; the best counts")
    p.add_argument("--mixed-precision", choices=["auto", "no", "bf16"], default="auto")
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    args = p.parse_args(argv)
    args.pairs = args.pairs or (24 if args.quick else 256)
    args.max_length = args.max_length or (128 if args.quick else 512)
    args.backbone = args.backbone or ("tiny-bert" if args.quick else "minilm-l6")
    if args.quick:
        args.batch, args.repeats = min(args.batch, 8), 1
    return args


def backbone_path(name: str, work: Path) -> str:
    if name == "tiny-bert":
        from tests.tiny import make_tiny_bert

        return make_tiny_bert(work / "tiny-bert")
    return name


def prepare(args: argparse.Namespace, work: Path, model: str) -> tuple[h.Layout, Any]:
    """A project whose train split is the first `--pairs` train pairs (one pair per group,
    as train_vs_trl reads them); its validation split is the first held-out pairs."""
    kind = "sample" if args.quick else "hh"
    params = h.make_params(kind, args.data, model, args.max_length, {})
    full, _ = h.prepare(params, work / "full")
    from rmcore.text.tokenize import load_tokenized

    train = h.first_groups(load_tokenized(full, "train"), args.pairs, only_pairs=True)
    validation = h.first_groups(load_tokenized(full, "test"), 8, only_pairs=True)
    project = h.write_project(work / "project", full, {"train": train, "validation": validation})
    return project, train


def time_scoring(model: RewardModel, groups: PackedGroups, args: argparse.Namespace) -> float:
    """Best seconds of `--repeats` passes over all groups (after a warm-up on a few)."""
    few = PackedGroups.from_sequences(
        [groups.prompt_values[: groups.prompt_offsets[1]].tolist()],
        [groups.comp_values[: groups.comp_offsets[1]].tolist()],
    )
    score_groups(model, few, args.score_batch)  # the layout check and first-call costs
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        score_groups(model, groups, args.score_batch)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    h.start_benchmark()
    with tempfile.TemporaryDirectory(prefix="rmpipe-score-speed-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        env = {**h.environment(), "cpu": h.cpu_kind()}
        model_name = backbone_path(args.backbone, work)
        project, train = prepare(args, work, model_name)
        kind = "sample" if args.quick else "hh"
        train_cfg = {
            "batch_size": args.batch,
            "epochs": 1.0,
            "mixed_precision": args.mixed_precision,
        }
        params = h.make_params(kind, args.data, model_name, args.max_length, train_cfg)
        metrics = stages.train(params, project)
        model = load_reward_model(project.model_dir)  # as evaluate, the pyfunc and serving do
        groups = PackedGroups.from_dataset(train)
        pairs = h.count_pairs(train)
        precision = score_precision(model)
        seconds = time_scoring(model, groups, args)
        result: dict[str, Any] = {
            "benchmark": "score_speed",
            "train_pairs_per_s": metrics["pairs_per_s"],
            "score_pairs_per_s": round(pairs / seconds, 2),
            "score_vs_train": round(pairs / seconds / float(metrics["pairs_per_s"]), 2),
            "score_precision": precision,
            "train_precision": metrics["precision"],
            "score_tokens_per_s": round(int(groups.seq_lengths.sum()) / seconds, 1),
            "score_seconds": round(seconds, 3),
            "pairs": pairs,
            "pairs_trained": metrics["pairs_trained"],
            "attention": model.attention,
        }
        if precision != "fp32":  # what the recorded precision is worth
            setattr(model.config, PRECISION_KEY, "fp32")
            fp32 = time_scoring(model, groups, args)
            result["score_fp32_pairs_per_s"] = round(pairs / fp32, 2)
        lengths = groups.seq_lengths
        result["sequence_tokens"] = {"mean": float(np.mean(lengths)), "max": int(lengths.max())}
        result["config"] = {
            "data": "sample" if args.quick else str(args.data / h.HH_FILE),
            "backbone": args.backbone,
            "pairs": args.pairs,
            "max_length": args.max_length,
            "batch": args.batch,
            "score_batch": args.score_batch,
            "repeats": args.repeats,
            "mixed_precision": args.mixed_precision,
            "quick": args.quick,
        }
        result["environment"] = env
        result["wall_s"] = round(time.perf_counter() - start, 1)
        h.emit(result)
        return result


if __name__ == "__main__":
    main()
