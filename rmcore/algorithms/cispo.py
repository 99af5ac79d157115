"""CISPO (MiniMax-M1, arXiv:2506.13585 §3.1): clip the importance weight, never the gradient.

    A_i = (R_i − mean_group) / (std_group + 1e-4)                      group-relative advantages
    r̂_t = min(ρ_t, 1 + ε_high),   ρ_t = π(y_t) / π_old(y_t)           eq. 5 (no lower bound)
    L   = Σ_i Σ_t −sg(r̂_t) · A_i · log π(y_t)  /  Σ_i |y_i|            eq. 4: token-level mean

In PPO and GRPO a token whose ratio leaves [1 − ε, 1 + ε] on the improving side gets no
gradient at all; MiniMax found those are often the rare "fork" tokens (However, Wait, …) that
a reasoning model most needs to learn. CISPO keeps every token's REINFORCE gradient and only
caps how much the off-policy weight may scale it. Identity: at ρ = 1 (one epoch, one
minibatch) it is REINFORCE with GRPO's advantages. Options: cispo_clip_high (the weight is
at most 1 + ε_high = 5, the ScaleRL bound), ppo_epochs, minibatches (G ≥ 2).
Diagnostics: policy/clipfrac (tokens whose weight is truncated), policy/ratio_mean, policy/approx_kl.
"""
from rmcore import advantages as adv
from rmcore.algorithms.base import Algorithm
from rmcore.losses import cispo_loss
from rmcore.metrics import APPROX_KL, CLIPFRAC, RATIO_MEAN, ZERO_STD_FRAC
from rmcore.online_step import online_step
from rmcore.step_inputs import AdvantageInputs, LossInputs


def advantages(x: AdvantageInputs):
    return adv.group_normalized_advantages(x.rewards, x.cfg.samples_per_prompt), None


def loss(x: LossInputs):
    loss, stats = cispo_loss(x.logprobs, x.old_logprobs, x.advantages, x.mask, clip_eps_high=x.cfg.cispo_clip_high,
                             **x.norm())
    return loss, {**stats, "loss/cispo": loss.item()}


ALGORITHM = Algorithm(
    name="cispo", label="CISPO", order=68, min_samples=2, multi_epoch=True, loss_norm="token_mean",
    description="MiniMax-M1 (2025): REINFORCE with GRPO's advantages, weighted by a truncated, detached importance "
                "ratio, so no token loses its gradient to the clip.",
    step=online_step, advantages=advantages, loss=loss, options=("cispo_clip_high", "ppo_epochs", "minibatches"),
    diagnostics=(CLIPFRAC, RATIO_MEAN, APPROX_KL, ZERO_STD_FRAC))
