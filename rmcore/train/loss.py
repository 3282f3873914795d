"""The k-wise Bradley-Terry loss of InstructGPT, as pure functions of rewards and pair indices.

For a group with k ranked completions, every pair (better, worse) of different rank contributes
-log sigmoid(r_better - r_worse - margin), where margin is one number or one per pair (the
data's margins, as TRL's `margin` column); the group's loss is the mean over its pairs (all
C(k,2) when there are no ties) plus beta * the mean over its k completions of r^2, so every
reward is penalised once whatever the ties (for k = 2: beta/2 (r_better^2 + r_worse^2)). The
batch loss is the sum of group losses over the groups that have a pair, divided by their number.
Optional centring adds center * the sum over groups of (sum of rewards)^2, divided by the number
of groups. Training divides both sums by the counts of the whole optimiser step instead
(`normalise_by`), so micro-batches and processes add up to the loss of the step's batch.
Groups of different k are handled together: pairs are flat index tensors built in collate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

Count = torch.Tensor | float


@dataclass
class LossOutput:
    """The loss (with graph) and detached batch statistics."""

    loss: torch.Tensor  # scalar
    accuracy: torch.Tensor  # share of pairs with r_better > r_worse
    margin: torch.Tensor  # mean r_better - r_worse over pairs
    n_pairs: int
    n_groups: torch.Tensor  # groups with at least one pair (a tensor: no device sync)
    rewards: torch.Tensor  # [N] float32, the rewards the loss was computed from


def kwise_loss(
    rewards: torch.Tensor,
    better: torch.Tensor,
    worse: torch.Tensor,
    row_group: torch.Tensor,
    n_groups: int,
    *,
    beta: float = 0.001,
    margin: float | torch.Tensor = 0.0,
    center: float = 0.0,
    normalise_by: tuple[Count, Count] | None = None,
) -> LossOutput:
    """rewards [N]; better, worse [P] row indices of each pair; row_group [N] group of each row.

    margin: required reward gap, one number or [P] one per pair.
    normalise_by: (groups with pairs, groups) to divide the sums by; default this batch's own.
    """
    rewards = rewards.float()
    r_better, r_worse = rewards[better], rewards[worse]  # [P]
    diff = r_better - r_worse  # [P]
    pair_group = row_group[better]  # [P]
    pairs_per_group = torch.bincount(pair_group, minlength=n_groups)  # [G]
    groups_with_pairs = (pairs_per_group > 0).sum()
    weight = 1.0 / pairs_per_group[pair_group].clamp(min=1).to(diff.dtype)  # [P]
    if isinstance(margin, torch.Tensor):
        margin = margin.to(device=diff.device, dtype=diff.dtype)
    total = (-F.logsigmoid(diff - margin) * weight).sum()
    if beta > 0:
        squares = torch.zeros(n_groups, dtype=rewards.dtype, device=rewards.device)
        squares = squares.index_add(0, row_group, rewards**2)  # [G]
        k = torch.bincount(row_group, minlength=n_groups).clamp(min=1)  # [G]
        total = total + beta * (squares / k * (pairs_per_group > 0)).sum()
    with_pairs, groups = normalise_by or (groups_with_pairs.clamp(min=1), n_groups)
    loss = total / with_pairs
    if center > 0:
        group_sums = torch.zeros(n_groups, dtype=rewards.dtype, device=rewards.device)
        group_sums = group_sums.index_add(0, row_group, rewards)  # [G]
        loss = loss + center * (group_sums**2).sum() / groups
    if len(diff) == 0:  # only ties: keep the graph, zero gradient
        loss = loss + 0.0 * rewards.sum()
    with torch.no_grad():
        accuracy = (diff > 0).float().mean() if len(diff) else torch.zeros(())
        mean_margin = diff.mean() if len(diff) else torch.zeros(())
    return LossOutput(loss, accuracy, mean_margin, len(diff), groups_with_pairs, rewards)


def pairwise_loss(
    r_chosen: torch.Tensor, r_rejected: torch.Tensor, beta: float = 0.0, margin: float = 0.0
) -> torch.Tensor:
    """The plain pairwise loss over [B] pairs (what k-wise reduces to for k = 2)."""
    base = -F.logsigmoid(r_chosen - r_rejected - margin)
    return (base + beta * 0.5 * (r_chosen**2 + r_rejected**2)).mean()
