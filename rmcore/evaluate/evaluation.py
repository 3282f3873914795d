"""The evaluate stage: score the held-out test split; write the headline metrics
(metrics/eval.json, what `dvc metrics show` prints), every metric (metrics/eval_details.json)
and plots.

Rewards come from `rmcore.model.scoring.score_groups`, which does not depend on batch size or
padding, in the precision saved with the model (recorded in the details' identity); the
metrics are pure functions in `rmcore.metrics`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from rmcore.core import atomic, hashing
from rmcore.core.config import EvalConfig, default_length_buckets
from rmcore.core.integrity import empty_split
from rmcore.core.paths import Layout
from rmcore.evaluate import plots
from rmcore.evaluate.metrics import (
    GroupScores,
    calibration,
    core_metrics,
    evaluation_metrics,
    headline_metrics,
    ranked_pairs,
)

log = logging.getLogger(__name__)

SPLIT = "test"


def _list_lengths(column: Any) -> np.ndarray:
    return np.asarray(pc.list_value_length(column).to_numpy(zero_copy_only=False), dtype=np.int64)


def score_test_split(
    cfg: EvalConfig, layout: Layout, device: str, trust_remote_code: bool = False
) -> tuple[GroupScores, str]:
    """Rewards of every completion of the tokenised test split, and the split's hash."""
    from rmcore.model.reward_model import load_reward_model
    from rmcore.model.scoring import score_groups
    from rmcore.text.tokenize import load_tokenized

    dataset = load_tokenized(layout, SPLIT)
    if len(dataset) == 0:
        raise empty_split(layout.tokenized / SPLIT, SPLIT, layout.ingest_report)
    model = load_reward_model(layout.model_dir, device, trust_remote_code)
    rewards = score_groups(model, dataset, cfg.batch_size, device)  # G arrays of [k]
    table = dataset.with_format("arrow")[:]
    comp_lengths = _list_lengths(pc.list_flatten(table["completion_ids"]))  # [N]
    sizes = _list_lengths(table["completion_ids"])  # [G]
    ranks = table["ranks"].to_pylist()
    group_ids = table["group_id"].to_pylist()
    scores = GroupScores.from_groups(
        rewards=[np.asarray(r, dtype=np.float64) for r in rewards],
        ranks=ranks,
        lengths=np.split(comp_lengths, np.cumsum(sizes)[:-1]),
        prompt_lengths=_list_lengths(table["prompt_ids"]),
        sources=table["source"].to_pylist(),
    )
    return scores, hashing.groups_hash(group_ids, ranks)


def saved_score_precision(model_dir: Path) -> str:
    """The scoring precision recorded in a saved model's config.json (fp32 where none is)."""
    import json

    from rmcore.model.scoring import PRECISION_KEY, checked_precision

    path = model_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    return checked_precision(config.get(PRECISION_KEY), str(path))


def write_plots(scores: GroupScores, metrics: dict[str, Any], layout: Layout) -> list[Path]:
    """PNG images under plots/eval and CSV tables for `dvc plots`."""
    pairs = ranked_pairs(scores)
    margins = scores.rewards[pairs.better] - scores.rewards[pairs.worse]
    table = calibration(margins)
    out = layout.eval_plots
    rows = [
        {"bin_lower": lo, "predicted": p, "observed": o, "count": c}
        for lo, p, o, c in zip(
            table["bin_lower"], table["predicted"], table["observed"], table["count"], strict=True
        )
        if c > 0
    ]
    buckets = metrics["length_buckets"]
    return [
        plots.reward_distribution(scores, out / "reward_distribution.png"),
        plots.accuracy_by_length(buckets, out / "accuracy_by_length.png"),
        plots.calibration_diagram(table, out / "calibration.png"),
        plots.write_csv(rows, layout.eval_calibration),
        plots.write_csv(
            [{"bucket": b, **v} for b, v in buckets.items()], layout.eval_length_buckets
        ),
    ]


def length_bucket_edges(cfg: EvalConfig, layout: Layout) -> list[int]:
    """eval.length_buckets; when null, derived from the max_length the test split was
    tokenised with, so that no bucket lies beyond the longest possible sequence."""
    if cfg.length_buckets is not None:
        return list(cfg.length_buckets)
    from rmcore.text.tokenize import read_meta

    return default_length_buckets(int(read_meta(layout)["max_length"]))


def run_evaluation(
    cfg: EvalConfig, layout: Layout, trust_remote_code: bool = False
) -> dict[str, Any]:
    """Score the test split, write metrics/eval.json (headline), metrics/eval_details.json
    and the plots; return the headline."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    scores, data_hash = score_test_split(cfg, layout, device, trust_remote_code)
    metrics = evaluation_metrics(scores, length_bucket_edges(cfg, layout))
    metrics["identity"] = {
        "split": SPLIT,
        "test_data_hash": data_hash,
        "model_hash": hashing.directory_hash(layout.model_dir),
        # what every consumer of the model scores it in (saved with it by the train stage)
        "score_precision": saved_score_precision(layout.model_dir),
    }
    # NaN -> null, listed with the reason; the details first: register reads both
    atomic.write_json(layout.eval_details, metrics)
    atomic.write_json(layout.eval_metrics, headline_metrics(metrics))
    metrics = atomic.finite(metrics)
    write_plots(scores, metrics, layout)
    headline = {
        k: metrics[k]
        for k in ("pairwise_accuracy", "best_vs_worst_accuracy", "kendall_tau", "n_pairs")
    }
    headline["longer_wins_accuracy"] = metrics["baselines"]["longer_wins"]["pairwise_accuracy"]
    log.info("test split: %s", headline)
    return {"metrics": str(layout.eval_metrics), "details": str(layout.eval_details), **headline}


def raw_test_groups(layout: Layout) -> tuple[list[dict[str, Any]], str]:
    """The evaluated test groups with their texts (normalised split, in tokenised order),
    and their hash; used to score another model on exactly the same data."""
    from rmcore.text.tokenize import load_tokenized

    tokenized = load_tokenized(layout, SPLIT).select_columns(["group_id"])
    ids = [str(g) for g in tokenized["group_id"]]
    from rmcore.data.io import read_split

    columns = ["group_id", "prompt", "completions", "ranks"]
    rows = {r["group_id"]: r for r in read_split(layout, SPLIT).select(columns).to_pylist()}
    missing = [g for g in ids if g not in rows]
    if missing:
        raise ValueError(
            f"{len(missing)} tokenised test groups are not in {layout.split_file(SPLIT)} "
            f"(e.g. {missing[0]}); run the tokenize stage again"
        )
    groups = [rows[g] for g in ids]
    return groups, hashing.groups_hash(ids, [g["ranks"] for g in groups])


def accuracy_on_groups(groups: list[dict[str, Any]], rewards: np.ndarray) -> float:
    """Pairwise accuracy of flat `rewards` ([N], groups in order) on `groups`."""
    sizes = np.array([len(g["completions"]) for g in groups])
    if len(rewards) != sizes.sum():
        raise ValueError(f"{len(rewards)} rewards for {sizes.sum()} completions")
    per_group = np.split(np.asarray(rewards, dtype=np.float64), np.cumsum(sizes)[:-1])
    scores = GroupScores.from_groups(per_group, [g["ranks"] for g in groups])
    return float(core_metrics(scores)["pairwise_accuracy"])
