"""Ranking metrics of reward scores on ranked groups: pure numpy functions.

Rewards, ranks and lengths come flat (one entry per completion, groups one after another);
`sizes` gives k of each group. A pair is two completions of one group with different ranks,
taken once with the better (lower rank) first. Equal scores count as wrong, for the model and
for the baselines alike; `accuracy_ties_half` is the expected accuracy if ties were broken by a
fair coin.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class GroupScores:
    """Flat per-completion arrays of a set of ranked groups."""

    rewards: np.ndarray  # [N] float64
    ranks: np.ndarray  # [N] int64, 0 = best
    lengths: np.ndarray  # [N] int64 completion length (tokens)
    seq_lengths: np.ndarray  # [N] int64 prompt + completion length (tokens)
    sizes: np.ndarray  # [G] int64 completions per group
    sources: np.ndarray  # [G] str

    @classmethod
    def from_groups(
        cls,
        rewards: Sequence[Any],
        ranks: Sequence[Any],
        lengths: Sequence[Any] | None = None,
        prompt_lengths: Sequence[int] | np.ndarray | None = None,
        sources: Sequence[str] | None = None,
    ) -> GroupScores:
        """Build from per-group lists; lengths default to 0, sources to 'all'."""
        if len(rewards) != len(ranks):
            raise ValueError(f"{len(rewards)} reward groups but {len(ranks)} rank groups")
        sizes = np.array([len(r) for r in ranks], dtype=np.int64)
        if any(len(r) != k for r, k in zip(rewards, sizes, strict=True)):
            raise ValueError("every group needs one reward per completion")
        flat_len = _flat(lengths, sizes) if lengths is not None else np.zeros(sizes.sum(), int)
        prompt = np.asarray(prompt_lengths if prompt_lengths is not None else np.zeros(len(sizes)))
        return cls(
            rewards=_flat(rewards, sizes).astype(np.float64),
            ranks=_flat(ranks, sizes).astype(np.int64),
            lengths=flat_len.astype(np.int64),
            seq_lengths=flat_len.astype(np.int64) + np.repeat(prompt.astype(np.int64), sizes),
            sizes=sizes,
            sources=np.asarray(sources if sources is not None else ["all"] * len(sizes)),
        )

    def subset(self, keep: np.ndarray) -> GroupScores:
        """The groups where `keep` ([G] bool) is true."""
        per_completion = np.repeat(keep, self.sizes)
        return GroupScores(
            rewards=self.rewards[per_completion],
            ranks=self.ranks[per_completion],
            lengths=self.lengths[per_completion],
            seq_lengths=self.seq_lengths[per_completion],
            sizes=self.sizes[keep],
            sources=self.sources[keep],
        )


def _flat(groups: Sequence[Sequence[Any]], sizes: np.ndarray) -> np.ndarray:
    if len(sizes) == 0:
        return np.zeros(0)
    return np.concatenate([np.asarray(g, dtype=np.float64) for g in groups])


@dataclass(frozen=True)
class UnorderedPairs:
    """Every pair a < b (flat indices) of completions inside one group."""

    group: np.ndarray  # [P] group index
    a: np.ndarray  # [P] flat index of the first completion
    b: np.ndarray  # [P] flat index of the second completion


def unordered_pairs(sizes: np.ndarray) -> UnorderedPairs:
    """All within-group index pairs, vectorised over groups of equal size."""
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    group, first, second = [], [], []
    for k in np.unique(sizes):
        groups_k = np.nonzero(sizes == k)[0]  # [G_k]
        i, j = np.triu_indices(int(k), 1)  # [k(k-1)/2]
        group.append(np.repeat(groups_k, len(i)))
        first.append((offsets[groups_k][:, None] + i[None, :]).ravel())  # [G_k * k(k-1)/2]
        second.append((offsets[groups_k][:, None] + j[None, :]).ravel())
    if not group:
        empty = np.zeros(0, dtype=np.int64)
        return UnorderedPairs(empty, empty, empty)
    return UnorderedPairs(np.concatenate(group), np.concatenate(first), np.concatenate(second))


@dataclass(frozen=True)
class Pairs:
    """Ordered pairs of different rank: `better` has the lower rank."""

    group: np.ndarray  # [P]
    better: np.ndarray  # [P] flat index
    worse: np.ndarray  # [P] flat index
    best_vs_worst: np.ndarray  # [P] bool: the group's best rank against its worst rank


def ranked_pairs(scores: GroupScores) -> Pairs:
    """Every pair of completions of different rank, better first."""
    up = unordered_pairs(scores.sizes)
    rank_a, rank_b = scores.ranks[up.a], scores.ranks[up.b]
    keep = rank_a != rank_b
    a_better = rank_a < rank_b
    better = np.where(a_better, up.a, up.b)[keep]
    worse = np.where(a_better, up.b, up.a)[keep]
    group = up.group[keep]
    starts = _starts(scores.sizes)
    empty = np.zeros(0, dtype=np.int64)
    best = np.minimum.reduceat(scores.ranks, starts) if len(starts) else empty  # [G]
    worst = np.maximum.reduceat(scores.ranks, starts) if len(starts) else empty  # [G]
    best_vs_worst = (scores.ranks[better] == best[group]) & (scores.ranks[worse] == worst[group])
    return Pairs(group, better, worse, best_vs_worst)


def _starts(sizes: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


def kendall_tau_per_group(scores: GroupScores, values: np.ndarray) -> np.ndarray:
    """Tau-b between -rank and `values` ([N]) in each group ([G], NaN where undefined)."""
    up = unordered_pairs(scores.sizes)
    n_groups = len(scores.sizes)
    sign_rank = np.sign(scores.ranks[up.b] - scores.ranks[up.a])  # +1: a ranked better
    sign_value = np.sign(values[up.a] - values[up.b])  # +1: a scored higher
    concordance = np.bincount(up.group, weights=sign_rank * sign_value, minlength=n_groups)
    n0 = scores.sizes * (scores.sizes - 1) / 2
    untied_rank = n0 - np.bincount(up.group, weights=sign_rank == 0, minlength=n_groups)
    untied_value = n0 - np.bincount(up.group, weights=sign_value == 0, minlength=n_groups)
    denominator = np.sqrt(untied_rank * untied_value)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, concordance / denominator, np.nan)


def pair_accuracy(better_values: np.ndarray, worse_values: np.ndarray) -> dict[str, float]:
    """Accuracy (ties wrong), tie rate and tie-broken-by-coin accuracy of one scorer."""
    if len(better_values) == 0:
        nan = float("nan")
        return {"accuracy": nan, "tie_rate": nan, "accuracy_ties_half": nan}
    correct = float(np.mean(better_values > worse_values))
    ties = float(np.mean(better_values == worse_values))
    return {"accuracy": correct, "tie_rate": ties, "accuracy_ties_half": correct + ties / 2}


def group_pair_accuracy(rewards: Sequence[Any], ranks: Sequence[Any]) -> float:
    """Pairwise accuracy (ties wrong) of per-group rewards, as `pairwise_accuracy` in
    metrics/eval.json."""
    scores = GroupScores.from_groups(rewards, ranks)
    pairs = ranked_pairs(scores)
    return pair_accuracy(scores.rewards[pairs.better], scores.rewards[pairs.worse])["accuracy"]


def _group_mean(values: np.ndarray, group: np.ndarray, n_groups: int) -> float:
    """Mean over groups of each group's mean of `values` (each group counts once)."""
    counts = np.bincount(group, minlength=n_groups)
    sums = np.bincount(group, weights=values, minlength=n_groups)
    has = counts > 0
    return float(np.mean(sums[has] / counts[has])) if has.any() else float("nan")


def scorer_metrics(scores: GroupScores, pairs: Pairs, values: np.ndarray) -> dict[str, Any]:
    """Pairwise, best-vs-worst and Kendall-tau metrics of one scorer's values ([N])."""
    hi, lo = values[pairs.better], values[pairs.worse]
    acc = pair_accuracy(hi, lo)
    correct = (hi > lo).astype(np.float64)
    bvw = pairs.best_vs_worst
    taus = kendall_tau_per_group(scores, values)[scores.sizes > 2]
    return {
        "pairwise_accuracy": acc["accuracy"],
        "tie_rate": acc["tie_rate"],
        "accuracy_ties_half": acc["accuracy_ties_half"],
        "best_vs_worst_accuracy": _group_mean(correct[bvw], pairs.group[bvw], len(scores.sizes)),
        "kendall_tau": float(np.nanmean(taus)) if np.isfinite(taus).any() else None,
        "kendall_tau_undefined": int(np.isnan(taus).sum()),
    }


def core_metrics(scores: GroupScores) -> dict[str, Any]:
    """The model's metrics with the chance and longer-response-wins baselines beside them."""
    pairs = ranked_pairs(scores)
    margins = scores.rewards[pairs.better] - scores.rewards[pairs.worse]
    longer = scorer_metrics(scores, pairs, scores.lengths.astype(np.float64))
    has_k_gt_2 = bool((scores.sizes > 2).any())
    return {
        **scorer_metrics(scores, pairs, scores.rewards),
        "n_groups": len(scores.sizes),
        "n_groups_k_gt_2": int((scores.sizes > 2).sum()),
        "n_pairs": len(pairs.group),
        "n_completions": len(scores.rewards),
        "mean_margin": float(margins.mean()) if len(margins) else float("nan"),
        "reward_mean": float(scores.rewards.mean()) if len(scores.rewards) else float("nan"),
        "reward_std": float(scores.rewards.std()) if len(scores.rewards) else float("nan"),
        "ece": calibration(margins)["ece"],
        "baselines": {
            "chance": {
                "pairwise_accuracy": 0.5,
                "best_vs_worst_accuracy": 0.5,
                "kendall_tau": 0.0 if has_k_gt_2 else None,
            },
            "longer_wins": longer,
        },
    }


def normalize_rewards(rewards: np.ndarray, stats: Mapping[str, float] | None) -> np.ndarray:
    """(reward - mean) / std with the validation statistics the train stage saved."""
    if not stats or "mean" not in stats or "std" not in stats:
        raise ValueError(
            "this model has no reward_stats (validation mean and std, written by the train "
            "stage into rmpipe.json); score without normalisation or retrain"
        )
    std = float(stats["std"])
    if not np.isfinite(std) or std <= 0:
        raise ValueError(f"reward_stats.std must be positive, got {std}")
    return (np.asarray(rewards, dtype=np.float64) - float(stats["mean"])) / std


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def calibration(margins: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Reliability of P(better) = sigmoid(r_better - r_worse).

    Every pair is taken in both orders (p with outcome 1, 1 - p with outcome 0), so the
    diagram covers [0, 1] and a perfectly calibrated model lies on the diagonal.
    """
    p_better = sigmoid(margins.astype(np.float64))
    predicted = np.concatenate([p_better, 1.0 - p_better])  # [2P]
    outcome = np.concatenate([np.ones_like(p_better), np.zeros_like(p_better)])
    which = np.clip((predicted * bins).astype(np.int64), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(which, weights=predicted, minlength=bins) / count
        observed = np.bincount(which, weights=outcome, minlength=bins) / count
    has = count > 0
    ece = float(np.sum(count[has] * np.abs(mean_pred[has] - observed[has])) / max(count.sum(), 1))
    return {
        "bin_lower": (np.arange(bins) / bins).tolist(),
        "count": count.tolist(),
        "predicted": mean_pred.tolist(),
        "observed": observed.tolist(),
        "ece": ece if count.sum() else float("nan"),
    }


def bucket_labels(edges: Sequence[int]) -> list[str]:
    """Names of the buckets `<=e0`, `e0+1-e1`, ..., `>e_last`."""
    labels = [f"<={edges[0]}"] + [f"{lo + 1}-{hi}" for lo, hi in itertools.pairwise(edges)]
    return [*labels, f">{edges[-1]}"]


def length_buckets(scores: GroupScores, edges: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Model and longer-wins accuracy by the token length of a pair's longer sequence."""
    pairs = ranked_pairs(scores)
    pair_len = np.maximum(scores.seq_lengths[pairs.better], scores.seq_lengths[pairs.worse])
    which = np.searchsorted(np.asarray(edges), pair_len, side="left")  # bucket i: <= edges[i]
    out = {}
    for index, label in enumerate(bucket_labels(edges)):
        sel = which == index
        model = pair_accuracy(scores.rewards[pairs.better[sel]], scores.rewards[pairs.worse[sel]])
        longer = pair_accuracy(scores.lengths[pairs.better[sel]], scores.lengths[pairs.worse[sel]])
        out[label] = {
            "n_pairs": int(sel.sum()),
            "accuracy": model["accuracy"] if sel.any() else None,
            "longer_wins_accuracy": longer["accuracy"] if sel.any() else None,
        }
    return out


HEADLINE_KEYS = ("pairwise_accuracy", "best_vs_worst_accuracy", "kendall_tau", "ece", "n_pairs")
BASELINE_KEYS = ("pairwise_accuracy", "best_vs_worst_accuracy", "kendall_tau")


def headline_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers of metrics/eval.json (what `dvc metrics show` prints): the model's
    headline metrics and the same metrics of each baseline."""
    baselines = metrics["baselines"]
    return {
        **{key: metrics[key] for key in HEADLINE_KEYS},
        "baselines": {
            name: {key: baseline.get(key) for key in BASELINE_KEYS}
            for name, baseline in baselines.items()
        },
    }


def evaluation_metrics(scores: GroupScores, edges: Sequence[int]) -> dict[str, Any]:
    """Everything metrics/eval_details.json reports: overall, per length bucket and per
    source."""
    edges = sorted(edges)
    if not edges:
        raise ValueError("eval.length_buckets needs at least one edge")
    per_source = {
        str(source): core_metrics(scores.subset(scores.sources == source))
        for source in sorted(set(scores.sources.tolist()))
    }
    return {
        **core_metrics(scores),
        "length_buckets": length_buckets(scores, edges),
        "per_source": per_source,
    }
