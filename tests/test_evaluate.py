"""Evaluation metrics (hand-worked numbers, scipy as reference) and the evaluate stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import kendalltau

from rmcore.core.config import EvalConfig
from rmcore.core.paths import Layout
from rmcore.evaluate.metrics import (
    GroupScores,
    bucket_labels,
    calibration,
    core_metrics,
    evaluation_metrics,
    kendall_tau_per_group,
    normalize_rewards,
    ranked_pairs,
)
from tests.eval_project import build_project

# Three groups, worked by hand:
#   A k=2 ranks [0,1] rewards [2,1]         -> 1 pair, right
#   B k=3 ranks [1,0,2] rewards [1,1,0]     -> 3 pairs: (1>0) tie = wrong, (0>2) right, (1>2) right
#   C k=3 ranks [0,0,1] rewards [0,3,1]     -> 2 pairs (the tied ranks give none): wrong, right
HAND = GroupScores.from_groups(
    rewards=[[2.0, 1.0], [1.0, 1.0, 0.0], [0.0, 3.0, 1.0]],
    ranks=[[0, 1], [1, 0, 2], [0, 0, 1]],
    lengths=[[5, 10], [3, 2, 1], [1, 1, 1]],
    prompt_lengths=[10, 100, 1000],
    sources=["a", "b", "b"],
)


def test_hand_worked_pairwise_metrics() -> None:
    m = core_metrics(HAND)
    assert m["n_groups"] == 3 and m["n_pairs"] == 6 and m["n_completions"] == 8
    assert m["pairwise_accuracy"] == pytest.approx(4 / 6)
    assert m["tie_rate"] == pytest.approx(1 / 6)
    assert m["accuracy_ties_half"] == pytest.approx(4 / 6 + 1 / 12)
    # best vs worst, each group once: A 1, B 1 (index 1 vs 2), C 0.5 (two best vs the worst)
    assert m["best_vs_worst_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["mean_margin"] == pytest.approx((1 + 0 + 1 + 1 - 1 + 2) / 6)
    assert m["reward_mean"] == pytest.approx(9 / 8)
    assert m["reward_std"] == pytest.approx(np.std([2, 1, 1, 1, 0, 0, 3, 1]))
    # tau-b over the k > 2 groups only: B 0.8165 and C 0.0
    assert m["n_groups_k_gt_2"] == 2
    assert m["kendall_tau"] == pytest.approx((np.sqrt(2 / 3) + 0.0) / 2)


def test_longer_wins_baseline_counts_ties_wrong() -> None:
    longer = core_metrics(HAND)["baselines"]["longer_wins"]
    # (better, worse) lengths: A 5 vs 10 wrong; B 2 vs 3 wrong, 3 vs 1 right, 2 vs 1 right;
    # C 1 vs 1 and 1 vs 1, ties, wrong
    assert longer["pairwise_accuracy"] == pytest.approx(2 / 6)
    assert longer["tie_rate"] == pytest.approx(2 / 6)
    assert longer["accuracy_ties_half"] == pytest.approx(3 / 6)
    assert longer["kendall_tau_undefined"] == 1  # C: all lengths equal
    chance = core_metrics(HAND)["baselines"]["chance"]
    assert chance == {"pairwise_accuracy": 0.5, "best_vs_worst_accuracy": 0.5, "kendall_tau": 0.0}


def test_per_source_and_length_buckets() -> None:
    m = evaluation_metrics(HAND, [64, 128, 256, 512])
    assert m["per_source"]["a"]["n_pairs"] == 1 and m["per_source"]["a"]["kendall_tau"] is None
    assert m["per_source"]["b"]["pairwise_accuracy"] == pytest.approx(3 / 5)
    buckets = m["length_buckets"]
    assert list(buckets) == bucket_labels([64, 128, 256, 512])
    assert list(buckets) == ["<=64", "65-128", "129-256", "257-512", ">512"]
    # pair length = the longer prompt + completion sequence: A 20, B 101..103, C 1001
    assert [b["n_pairs"] for b in buckets.values()] == [1, 3, 0, 0, 2]
    assert buckets["65-128"]["accuracy"] == pytest.approx(2 / 3)
    assert buckets["129-256"]["accuracy"] is None


def test_bucket_edges_are_inclusive() -> None:
    scores = GroupScores.from_groups([[1.0, 0.0]], [[0, 1]], lengths=[[64, 10]])
    assert evaluation_metrics(scores, [64])["length_buckets"]["<=64"]["n_pairs"] == 1
    scores = GroupScores.from_groups([[1.0, 0.0]], [[0, 1]], lengths=[[65, 10]])
    assert evaluation_metrics(scores, [64])["length_buckets"][">64"]["n_pairs"] == 1


def test_kendall_tau_b_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    ranks, rewards = [], []
    for _ in range(200):
        k = int(rng.integers(2, 8))
        ranks.append(rng.integers(0, 3, size=k))
        rewards.append(rng.integers(0, 4, size=k).astype(float))  # many ties in both
    scores = GroupScores.from_groups(rewards, ranks)
    ours = kendall_tau_per_group(scores, scores.rewards)
    for got, rank, reward in zip(ours, ranks, rewards, strict=True):
        expected = kendalltau(-rank, reward).statistic
        if np.isnan(expected):
            assert np.isnan(got)
        else:
            assert got == pytest.approx(expected, abs=1e-12)


def test_pairs_are_every_ordered_pair_of_different_rank() -> None:
    rng = np.random.default_rng(1)
    ranks = [rng.integers(0, 3, size=int(rng.integers(2, 6))) for _ in range(50)]
    scores = GroupScores.from_groups([np.zeros(len(r)) for r in ranks], ranks)
    pairs = ranked_pairs(scores)
    expected = sum(
        int(r[i] != r[j]) for r in ranks for i in range(len(r)) for j in range(i + 1, len(r))
    )
    assert len(pairs.better) == expected
    assert np.all(scores.ranks[pairs.better] < scores.ranks[pairs.worse])


def test_calibration_is_symmetric_and_exact_for_a_calibrated_scorer() -> None:
    table = calibration(np.array([0.0, 0.0, 0.0, 0.0]))  # P = 0.5, half the outcomes are 1
    assert table["ece"] == pytest.approx(0.0)
    assert sum(table["count"]) == 8
    table = calibration(np.array([1.0]))  # sigmoid(1) = 0.731 for an event that happened
    assert table["ece"] == pytest.approx(1 - 1 / (1 + np.exp(-1)))


def test_normalize_rewards_uses_saved_stats_and_refuses_without() -> None:
    got = normalize_rewards(np.array([1.0, 3.0]), {"mean": 2.0, "std": 0.5})
    np.testing.assert_allclose(got, [-2.0, 2.0])
    with pytest.raises(ValueError, match="no reward_stats"):
        normalize_rewards(np.array([1.0]), None)
    with pytest.raises(ValueError, match="positive"):
        normalize_rewards(np.array([1.0]), {"mean": 0.0, "std": 0.0})


def test_metrics_are_json_serialisable() -> None:
    json.dumps(evaluation_metrics(HAND, [64]), allow_nan=True)


# --- the evaluate stage on a tiny model -----------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    return build_project(tmp_path_factory.mktemp("eval"))


@pytest.mark.slow
def test_evaluate_cli_writes_metrics_and_plots(project: Layout) -> None:
    from rmcore.__main__ import main

    params = str(project.root / "params.yaml")
    assert main(["evaluate", "--params", params, "--root", str(project.root)]) == 0
    metrics = json.loads(project.eval_details.read_text())
    headline = json.loads(project.eval_metrics.read_text())
    assert headline == {
        **{k: metrics[k] for k in ("pairwise_accuracy", "best_vs_worst_accuracy", "kendall_tau")},
        "ece": metrics["ece"],
        "n_pairs": metrics["n_pairs"],
        "baselines": {
            name: {k: b[k] for k in ("pairwise_accuracy", "best_vs_worst_accuracy", "kendall_tau")}
            for name, b in metrics["baselines"].items()
        },
    }
    assert metrics["n_groups"] == 24 and metrics["n_pairs"] > 24  # k ranges over 2..4
    for key in ["pairwise_accuracy", "tie_rate", "best_vs_worst_accuracy", "kendall_tau"]:
        assert 0 <= metrics[key] <= 1 or key == "kendall_tau"
    assert set(metrics["per_source"]) == {"synthetic"}
    assert list(metrics["length_buckets"]) == ["<=16", "17-32", "33-48", ">48"]
    assert sum(b["n_pairs"] for b in metrics["length_buckets"].values()) == metrics["n_pairs"]
    assert metrics["baselines"]["longer_wins"]["pairwise_accuracy"] is not None
    assert len(metrics["identity"]["test_data_hash"]) == 64
    for name in ["reward_distribution", "accuracy_by_length", "calibration"]:
        assert (project.plots / "eval" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert (project.plots / "eval_calibration.csv").read_text().startswith("bin_lower,")
    assert (project.plots / "eval_length_buckets.csv").read_text().startswith("bucket,")


@pytest.mark.slow
def test_metrics_do_not_depend_on_eval_batch_size(project: Layout) -> None:
    from rmcore.evaluate.evaluation import run_evaluation
    from rmcore.register.lineage import numeric_leaves

    results = []
    for batch_size in (1, 7):
        run_evaluation(EvalConfig(batch_size=batch_size, length_buckets=[16, 32]), project)
        results.append(dict(numeric_leaves(json.loads(project.eval_details.read_text()))))
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for key, value in results[0].items():
            assert other[key] == pytest.approx(value, abs=1e-6), key
