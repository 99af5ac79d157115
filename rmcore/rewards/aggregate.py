"""How the reward terms of a batch become the one number per sample that the advantages read.

    sum:                 R_i = Σ_k w_k · r_k,i                      the composite reward (reward/total)
    normalize_per_term:  R_i = Σ_k w_k · z_k,i,   z_k,i = (r_k,i − mean_g r_k) / (std_g r_k + 1e-4)

g is sample i's group: the G samples of its prompt (rows p·G … p·G + G − 1, prompt-major).
With "sum" a term's influence on the advantages is its weight times its spread, so a term
with a wide range (a reward model's score) drowns a narrow one (diversity) whatever their
weights; normalising each term within the group first gives every term with any spread the
influence of its weight alone (GDPO, arXiv:2601.05242; TRL's
multi_objective_aggregation="normalize_then_sum"). A term that ties within a group carries
no signal there and contributes exactly 0. std is the unbiased estimate and 1e-4 is added
outside the root, as in GRPO's advantages. The group algorithm then makes its advantages
from R as usual (GRPO normalises again, RLOO subtracts the leave-one-out mean, …).
"""
from __future__ import annotations

import torch
from torch import Tensor

from rmcore.errors import ConfigError

REWARD_AGGREGATIONS = ("sum", "normalize_per_term")
EPS = 1e-4


def group_zscores(values: Tensor, group_size: int) -> Tensor:
    """(r − mean_g) / (std_g + 1e-4) within each group of ``group_size``; 0 for a group that ties.

    values: (N,) prompt-major, N divisible by group_size ≥ 2. Returns (N,) in values' dtype.
    """
    if group_size < 2 or values.dim() != 1 or values.numel() % group_size:
        raise ValueError(f"per-term normalisation needs (N,) values in groups of G ≥ 2, got shape "
                         f"{tuple(values.shape)} and G = {group_size}.")
    grouped = values.view(-1, group_size)                                   # (P, G)
    z = (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + EPS)
    ties = (grouped.amax(1, keepdim=True) == grouped.amin(1, keepdim=True))  # (P, 1)
    return torch.where(ties, torch.zeros_like(z), z).reshape(-1)


def aggregate_rewards(breakdown, group_size: int, mode: str = "sum") -> Tensor:
    """One reward per sample, (N,) float32, from a rmcore.rewards.RewardBreakdown.

    "sum" is the breakdown's total itself; "normalize_per_term" weighs the per-group z-scores
    of each term (computed in float64, summed in registry order).
    """
    if mode == "sum":
        return torch.tensor(breakdown.total, dtype=torch.float32)
    if mode != "normalize_per_term":
        raise ConfigError(f"Unknown reward_aggregation {mode!r}; valid: {', '.join(REWARD_AGGREGATIONS)}.")
    total = torch.zeros(len(breakdown.total), dtype=torch.float64)
    for name, weight in breakdown.weights.items():
        values = torch.tensor(breakdown.terms[name], dtype=torch.float64)
        total = total + weight * group_zscores(values, group_size)
    return total.float()


def signal_shares(breakdown, group_size: int, mode: str = "sum") -> dict[str, float]:
    """Each term's share of the within-group spread of R, the part of the reward a group
    algorithm learns from: s_k = mean over groups of std_g(w_k · x_k), x_k the term ("sum") or
    its z-score ("normalize_per_term"), and share_k = s_k / Σ_j s_j. Under "sum" a wide-ranging
    term takes most of it whatever its weight; under "normalize_per_term" the shares follow the
    weights of the terms that vary. {} when nothing varies.
    """
    spreads = {}
    for name, weight in breakdown.weights.items():
        values = torch.tensor(breakdown.terms[name], dtype=torch.float64)
        x = group_zscores(values, group_size) if mode == "normalize_per_term" else values
        spreads[name] = (weight * x).view(-1, group_size).std(1, unbiased=False).mean().item()
    total = sum(spreads.values())
    return {name: s / total for name, s in spreads.items()} if total > 0 else {}
