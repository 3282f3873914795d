"""Evaluation plots: PNG images (matplotlib, Agg) and CSV tables for `dvc plots`."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a display

import matplotlib.pyplot as plt
import numpy as np

from rmcore.core.atomic import atomic_path
from rmcore.evaluate.metrics import GroupScores, ranked_pairs


def reward_distribution(scores: GroupScores, path: Path) -> Path:
    """Histograms of the better and the worse completion's reward over all pairs."""
    pairs = ranked_pairs(scores)
    better, worse = scores.rewards[pairs.better], scores.rewards[pairs.worse]
    fig, ax = plt.subplots(figsize=(6, 4))
    both = np.concatenate([better, worse])
    bins: Any = np.linspace(both.min(), both.max(), 41) if both.size and np.ptp(both) > 0 else 20
    ax.hist(worse, bins=bins, alpha=0.6, label=f"worse (n={len(worse)})", color="tab:red")
    ax.hist(better, bins=bins, alpha=0.6, label=f"better (n={len(better)})", color="tab:green")
    ax.set_xlabel("reward")
    ax.set_ylabel("completions in pairs")
    ax.set_title("Reward of the better and the worse completion")
    ax.legend()
    return _save(fig, path)


def accuracy_by_length(buckets: dict[str, dict[str, Any]], path: Path) -> Path:
    """Bars of model and longer-wins accuracy per length bucket, with pair counts."""
    labels = list(buckets)
    model = [_nan(buckets[b]["accuracy"]) for b in labels]
    longer = [_nan(buckets[b]["longer_wins_accuracy"]) for b in labels]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(x - 0.2, model, width=0.4, label="reward model")
    ax.bar(x + 0.2, longer, width=0.4, label="longer response wins")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(x, [f"{b}\n(n={buckets[b]['n_pairs']})" for b in labels])
    ax.set_xlabel("tokens in the longer sequence of the pair")
    ax.set_ylabel("pairwise accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    return _save(fig, path)


def calibration_diagram(table: dict[str, Any], path: Path) -> Path:
    """Reliability diagram of sigmoid(r_better - r_worse)."""
    predicted = np.asarray(table["predicted"], dtype=float)
    observed = np.asarray(table["observed"], dtype=float)
    has = np.asarray(table["count"]) > 0
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax.plot(predicted[has], observed[has], marker="o", label=f"model (ECE {table['ece']:.3f})")
    ax.set_xlabel("predicted P(first is better)")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    return _save(fig, path)


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """A table for `dvc plots` (header from the first row)."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format=path.suffix.lstrip("."))
    plt.close(fig)
    return path
