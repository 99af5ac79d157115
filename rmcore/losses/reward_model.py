"""Pairwise reward-model losses on scalar scores of a chosen and a rejected response.

Inputs ``chosen``, ``rejected``: (B,) rewards r(x, y_c), r(x, y_r) of the same B prompts.
Each loss is a mean over pairs (or over all 2B scores), plus an optional reward-centering
term, and returns ``(loss, stats)`` with rm/accuracy (r_c > r_r), rm/margin (mean
r_c − r_r), rm/chosen_mean, rm/rejected_mean, rm/center_penalty and loss/<name>.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_pair(chosen: Tensor, rejected: Tensor) -> None:
    if chosen.dim() != 1 or chosen.shape != rejected.shape:
        raise ValueError(f"chosen and rejected must both be (B,), got {tuple(chosen.shape)} "
                         f"and {tuple(rejected.shape)}.")


def center_penalty(chosen: Tensor, rejected: Tensor, coef: float) -> Tensor:
    """Reward centering: coef · mean_b (r_c + r_r)², pulls each pair's mean score to 0.

    Pairwise losses only see differences, so scores can drift; centering pins the offset
    (Eisenstein et al. 2023, "Helping or herding?", arXiv:2312.09244).
    chosen, rejected: (B,). Returns a scalar tensor with gradient.
    """
    return coef * ((chosen + rejected) ** 2).mean()


def _finish(name: str, loss: Tensor, chosen: Tensor, rejected: Tensor,
            center_coef: float) -> tuple[Tensor, dict[str, float]]:
    """Add the centering term and build the stats every reward-model loss reports."""
    penalty = center_penalty(chosen, rejected, center_coef)
    total = loss + penalty
    chosen, rejected = chosen.detach(), rejected.detach()
    return total, {f"loss/{name}": total.item(),
                   "rm/accuracy": (chosen > rejected).float().mean().item(),
                   "rm/margin": (chosen - rejected).mean().item(),
                   "rm/chosen_mean": chosen.mean().item(),
                   "rm/rejected_mean": rejected.mean().item(),
                   "rm/center_penalty": penalty.item()}


def bradley_terry_loss(chosen: Tensor, rejected: Tensor, *, margin: float = 0.0,
                       center_coef: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """Bradley-Terry: L = −log σ(r_c − r_r − m), mean over pairs.

    Bradley & Terry 1952; InstructGPT reward model, arXiv:2203.02155 eq. 1; the margin m
    is Llama 2's (arXiv:2307.09288 eq. 2). chosen, rejected: (B,).
    """
    _check_pair(chosen, rejected)
    loss = -F.logsigmoid(chosen - rejected - margin).mean()
    return _finish("bradley_terry", loss, chosen, rejected, center_coef)


def hinge_loss(chosen: Tensor, rejected: Tensor, *, margin: float = 1.0,
               center_coef: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """Margin ranking: L = max(0, m − (r_c − r_r)), mean over pairs; 0 once r_c ≥ r_r + m.

    As torch.nn.MarginRankingLoss. chosen, rejected: (B,).
    """
    _check_pair(chosen, rejected)
    loss = torch.relu(margin - (chosen - rejected)).mean()
    return _finish("hinge", loss, chosen, rejected, center_coef)


def mse_loss(chosen: Tensor, rejected: Tensor, *, chosen_target: float = 1.0,
             rejected_target: float = 0.0,
             center_coef: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """Regression on target scores: L = 1/(2B) Σ_b [(r_c − t_c)² + (r_r − t_r)²].

    chosen, rejected: (B,); targets default to 1 (good) and 0 (bad).
    """
    _check_pair(chosen, rejected)
    errors = torch.cat([chosen - chosen_target, rejected - rejected_target])  # (2B,)
    loss = (errors ** 2).mean()
    return _finish("mse", loss, chosen, rejected, center_coef)


def cross_entropy_loss(chosen: Tensor, rejected: Tensor, *,
                       center_coef: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """Pointwise good/bad classification: each score is a logit of "this response is good".

        L = 1/(2B) Σ_b [−log σ(r_c) − log(1 − σ(r_r))]

    chosen, rejected: (B,).
    """
    _check_pair(chosen, rejected)
    logits = torch.cat([chosen, rejected])                                     # (2B,)
    labels = torch.cat([torch.ones_like(chosen), torch.zeros_like(rejected)])  # (2B,)
    loss = F.binary_cross_entropy_with_logits(logits, labels)
    return _finish("cross_entropy", loss, chosen, rejected, center_coef)


def focal_loss(chosen: Tensor, rejected: Tensor, *, gamma: float = 2.0, margin: float = 0.0,
               center_coef: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """Focal Bradley-Terry: L = −(1 − p)^γ log p,  p = σ(r_c − r_r − m), mean over pairs.

    The focal loss of Lin et al. 2017 (arXiv:1708.02002 eq. 4) applied to the BT
    probability: pairs already ranked confidently weigh less. γ = 0 is Bradley-Terry.
    Both factors come from logsigmoid ((1 − p) = σ(−Δ)), so nothing underflows to log 0.
    chosen, rejected: (B,).
    """
    _check_pair(chosen, rejected)
    delta = chosen - rejected - margin                                  # (B,)
    weight = torch.exp(gamma * F.logsigmoid(-delta))                    # (1 − p)^γ
    loss = -(weight * F.logsigmoid(delta)).mean()
    return _finish("focal", loss, chosen, rejected, center_coef)


def embedding_distance(prompt_emb: Tensor, response_emb: Tensor) -> Tensor:
    """Euclidean distance ‖e(x) − e(y)‖₂ per row; the embedding reward is −distance.

    prompt_emb, response_emb: (B, H) -> (B,). Its gradient at distance 0 is 0 in torch.
    """
    return torch.linalg.vector_norm(prompt_emb - response_emb, dim=-1)


def triplet_loss(d_chosen: Tensor, d_rejected: Tensor, *, margin: float = 1.0,
                 center_coef: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """Triplet margin loss: L = max(0, m + d(x, y_c) − d(x, y_r)), mean over pairs.

    Schroff et al. 2015 (FaceNet), arXiv:1503.03832, with the prompt as anchor.
    d_chosen, d_rejected: (B,) distances (see embedding_distance); the reward is −d, so the
    stats (and the optional centering) use r_c = −d_c, r_r = −d_r. Centering pulls the
    distances to 0 here, so leave center_coef at 0 unless that is what you want.
    """
    _check_pair(d_chosen, d_rejected)
    loss = torch.relu(margin + d_chosen - d_rejected).mean()
    return _finish("triplet", loss, -d_chosen, -d_rejected, center_coef)
