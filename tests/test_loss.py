"""The k-wise loss against hand-worked numbers, the pairwise special case and its gradients."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from rmcore.train.loss import kwise_loss, pairwise_loss


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))  # -log sigmoid(-x)


def pairs_of(ranks: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Flat better/worse/row_group tensors for groups given by their ranks (as collate does)."""
    better, worse, row_group, offset = [], [], [], 0
    for g, group in enumerate(ranks):
        for i, ri in enumerate(group):
            row_group.append(g)
            for j, rj in enumerate(group):
                if ri < rj:
                    better.append(offset + i)
                    worse.append(offset + j)
        offset += len(group)
    as_long = lambda xs: torch.tensor(xs, dtype=torch.long)  # noqa: E731
    return as_long(better), as_long(worse), as_long(row_group), len(ranks)


def test_single_pair_hand_worked() -> None:
    rewards = torch.tensor([1.0, 0.0])
    out = kwise_loss(rewards, *pairs_of([[0, 1]]), beta=0.001)
    assert out.loss.item() == pytest.approx(softplus(-1.0) + 0.001 * 0.5 * 1.0, rel=1e-6)
    assert out.loss.item() == pytest.approx(0.313762, abs=1e-6)
    assert out.accuracy.item() == 1.0 and out.margin.item() == pytest.approx(1.0)


def test_three_ranked_hand_worked() -> None:
    rewards = torch.tensor([2.0, 1.0, 0.0])  # ranks 0, 1, 2: pairs with gaps 1, 2, 1
    out = kwise_loss(rewards, *pairs_of([[0, 1, 2]]), beta=0.01)
    bt = (softplus(-1.0) * 2 + softplus(-2.0)) / 3
    l2 = 0.01 * 0.5 * ((4 + 1) + (4 + 0) + (1 + 0)) / 3
    assert out.loss.item() == pytest.approx(bt + l2, rel=1e-6)
    assert out.n_pairs == 3 and out.margin.item() == pytest.approx(4 / 3)


def test_ties_give_no_pair() -> None:
    rewards = torch.tensor([0.5, -0.5, 0.0])
    out = kwise_loss(rewards, *pairs_of([[0, 0, 1]]), beta=0.0)
    # pairs: (0, 2) and (1, 2) only
    expected = (softplus(-0.5) + softplus(0.5)) / 2
    assert out.n_pairs == 2 and out.loss.item() == pytest.approx(expected, rel=1e-6)
    assert out.accuracy.item() == pytest.approx(0.5)


def test_groups_of_different_k_average_per_group() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.3, 0.2, 0.9, -1.0])
    ranks = [[0, 1], [2, 0, 1, 3]]
    out = kwise_loss(rewards, *pairs_of(ranks), beta=0.0)
    g1 = softplus(-1.0)
    r = [0.3, 0.2, 0.9, -1.0]
    rk = ranks[1]
    terms = [softplus(-(r[i] - r[j])) for i in range(4) for j in range(4) if rk[i] < rk[j]]
    assert len(terms) == 6  # C(4, 2)
    assert out.loss.item() == pytest.approx((g1 + sum(terms) / 6) / 2, rel=1e-6)
    assert out.n_groups == 2


def test_k2_equals_plain_pairwise_loss() -> None:
    gen = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(5, generator=gen), torch.randn(5, generator=gen)
    rewards = torch.stack([chosen, rejected], dim=1).reshape(-1)  # [c0, r0, c1, r1, ...]
    out = kwise_loss(rewards, *pairs_of([[0, 1]] * 5), beta=0.001, margin=0.2)
    expected = pairwise_loss(chosen, rejected, beta=0.001, margin=0.2)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_gradient_raises_better_and_lowers_worse() -> None:
    rewards = torch.tensor([0.0, 0.0, 0.0], requires_grad=True)
    kwise_loss(rewards, *pairs_of([[0, 1, 2]]), beta=0.001).loss.backward()
    grad = rewards.grad
    assert grad is not None
    assert grad[0] < 0 < grad[2]  # descent raises the best, lowers the worst
    assert grad[1] == pytest.approx(0.0, abs=1e-7)  # middle: once better, once worse


def test_margin_and_centring_values() -> None:
    rewards = torch.tensor([1.0, 0.0, 2.0, 1.0])
    args = pairs_of([[0, 1], [0, 1]])
    out = kwise_loss(rewards, *args, beta=0.0, margin=0.5, center=0.1)
    expected = softplus(-0.5) + 0.1 * ((1.0**2) + (3.0**2)) / 2
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)


def test_per_pair_margins_as_trl_margin_column() -> None:
    """One margin per pair (the data's, as TRL's `margin` column): TRL's pairwise loss for
    k = 2; in a k = 3 group, only the pair that has one asks for the larger gap."""
    gen = torch.Generator().manual_seed(4)
    chosen, rejected = torch.randn(5, generator=gen), torch.randn(5, generator=gen)
    margins = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0])
    rewards = torch.stack([chosen, rejected], dim=1).reshape(-1)
    out = kwise_loss(rewards, *pairs_of([[0, 1]] * 5), beta=0.0, margin=margins)
    trl = -torch.nn.functional.logsigmoid(chosen - rejected - margins).mean()
    assert out.loss.item() == pytest.approx(trl.item(), rel=1e-6)
    # pairs of ranks [0, 1, 2] in collate's order: (0, 1), (0, 2), (1, 2); 2.0 on (0, 2)
    rewards = torch.tensor([2.0, 1.0, 0.0])
    out = kwise_loss(rewards, *pairs_of([[0, 1, 2]]), beta=0.0, margin=torch.tensor([0, 2.0, 0]))
    expected = (softplus(-1.0) + softplus(0.0) + softplus(-1.0)) / 3
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)


def test_only_ties_gives_zero_gradient() -> None:
    rewards = torch.tensor([0.3, 0.3], requires_grad=True)
    out = kwise_loss(rewards, *pairs_of([[0, 0]]), beta=0.001)
    out.loss.backward()
    assert out.n_pairs == 0 and out.loss.item() == 0.0
    assert rewards.grad is not None and torch.all(rewards.grad == 0)


def test_vectorised_matches_loop_on_random_groups() -> None:
    gen = torch.Generator().manual_seed(1)
    ranks = [[int(x) for x in torch.randint(0, 3, (k,), generator=gen)] for k in (2, 5, 3, 9, 4)]
    rewards = torch.randn(sum(len(r) for r in ranks), generator=gen)
    out = kwise_loss(rewards, *pairs_of(ranks), beta=0.01)
    losses, offset = [], 0
    for rk in ranks:
        r = rewards[offset : offset + len(rk)].tolist()
        terms = [
            softplus(-(r[i] - r[j]))
            for i in range(len(rk))
            for j in range(len(rk))
            if rk[i] < rk[j]
        ]
        if terms:
            losses.append(sum(terms) / len(terms) + 0.01 * sum(x * x for x in r) / len(r))
        offset += len(rk)
    assert out.loss.item() == pytest.approx(sum(losses) / len(losses), rel=1e-5)


@pytest.mark.parametrize("ranks", [[0, 0, 0, 1], [0, 1, 1, 1], [0, 1, 2, 3], [3, 0, 2, 1]])
def test_l2_penalises_each_reward_of_a_group_once(ranks: list[int]) -> None:
    """beta * mean(r^2) over the group's completions, whatever its ties: 7.5 here (a per-pair
    penalty would give 10.33 for [0, 0, 0, 1] and 5.33 for [0, 1, 1, 1])."""
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0])
    with_l2 = kwise_loss(rewards, *pairs_of([ranks]), beta=1.0).loss.item()
    without = kwise_loss(rewards, *pairs_of([ranks]), beta=0.0).loss.item()
    assert with_l2 - without == pytest.approx(7.5, rel=1e-6)


def test_k2_l2_and_centring_agree_with_trl_style_pairwise() -> None:
    """For pairs: -log sigmoid(r_c - r_r - margin) + beta/2 (r_c^2 + r_r^2), averaged over
    pairs, plus TRL's centring term coef * mean((r_c + r_r)^2)."""
    gen = torch.Generator().manual_seed(2)
    chosen, rejected = torch.randn(6, generator=gen), torch.randn(6, generator=gen)
    rewards = torch.stack([chosen, rejected], dim=1).reshape(-1)
    out = kwise_loss(rewards, *pairs_of([[0, 1]] * 6), beta=0.01, margin=0.1, center=0.05)
    trl = -torch.nn.functional.logsigmoid(chosen - rejected - 0.1).mean()
    trl = trl + 0.05 * ((chosen + rejected) ** 2).mean()
    l2 = 0.01 * 0.5 * (chosen**2 + rejected**2).mean()
    assert out.loss.item() == pytest.approx((trl + l2).item(), rel=1e-6)
    assert pairwise_loss(chosen, rejected, beta=0.01, margin=0.1).item() == pytest.approx(
        (trl + l2 - 0.05 * ((chosen + rejected) ** 2).mean()).item(), rel=1e-6
    )


def test_step_counts_make_micro_batches_add_up_to_the_whole_batch() -> None:
    """Normalised by the step's counts, the losses (and gradients) of the parts of a batch sum
    to the loss of the whole batch, however its groups with and without pairs are split."""
    ranks = [[0, 1, 2], [0, 0], [1, 0, 0, 2], [0, 1], [2, 2, 2], [0, 1, 1]]
    gen = torch.Generator().manual_seed(3)
    rewards = torch.randn(sum(len(r) for r in ranks), generator=gen, requires_grad=True)
    loss = functools.partial(kwise_loss, beta=0.01, margin=0.2, center=0.05)
    whole = loss(rewards, *pairs_of(ranks))
    whole.loss.backward()
    assert rewards.grad is not None
    expected = rewards.grad.clone()
    rewards.grad = None
    step = (torch.tensor(4.0), torch.tensor(6.0))  # groups with pairs, groups
    total, start = torch.zeros(()), 0
    for part in (ranks[:2], ranks[2:]):  # 1 + 3 groups with pairs, 2 + 4 groups
        n = sum(len(r) for r in part)
        out = loss(rewards[start : start + n], *pairs_of(part), normalise_by=step)
        total, start = total + out.loss, start + n
    total.backward()
    assert whole.n_groups.item() == 4
    assert total.item() == pytest.approx(whole.loss.item(), rel=1e-6)
    assert rewards.grad is not None
    assert torch.allclose(rewards.grad, expected, atol=1e-7)
