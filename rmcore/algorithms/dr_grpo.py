"""Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training", arXiv:2503.20783): GRPO unbiased.

    A_i = R_i − mean_group(R)                                   no division by the group's std
    ρ_t = π(y_t) / π_old(y_t)
    L   = 1/(G · L_max) Σ_i Σ_t −min(ρ_t A_i, clip(ρ_t, 1 − ε, 1 + ε) A_i)     (per prompt; mean over prompts)

The paper's Dr. GRPO objective is GRPO's with two factors struck out. 1/|y_i| (GRPO's
per-sequence mean) gives a short answer's tokens larger steps than a long one's, so a wrong
answer is punished less the longer it is, and responses grow; dividing the whole sum by a
constant L_max (here max_new_tokens: loss_norm fixed_sum) gives every token the same weight.
std(R) gives groups whose rewards barely differ (too easy or too hard prompts) the largest
advantages; without it, a group's influence is its actual reward spread. Identity: these
advantages are GRPO's times (std_group + 1e-4). The Loss Playground's length-bias section
draws the per-token weight against |y|. Options: clip_eps, ppo_epochs, minibatches (G ≥ 2).
Diagnostics: policy/clipfrac, policy/approx_kl, policy/zero_std_frac.
"""
from rmcore import advantages as adv
from rmcore.algorithms.base import Algorithm
from rmcore.losses import clipped_surrogate_loss
from rmcore.metrics import APPROX_KL, CLIPFRAC, ZERO_STD_FRAC
from rmcore.online_step import online_step
from rmcore.step_inputs import AdvantageInputs, LossInputs


def advantages(x: AdvantageInputs):
    return adv.group_normalized_advantages(x.rewards, x.cfg.samples_per_prompt, scale=False), None


def loss(x: LossInputs):
    loss, stats = clipped_surrogate_loss(x.logprobs, x.old_logprobs, x.advantages, x.mask, clip_eps=x.cfg.clip_eps,
                                         **x.norm())
    return loss, {**stats, "loss/dr_grpo": loss.item()}


ALGORITHM = Algorithm(
    name="dr_grpo", label="Dr. GRPO", order=62, min_samples=2, multi_epoch=True, loss_norm="fixed_sum",
    description="Liu et al. (2025): GRPO without the std in its advantages and with a constant (max length) "
                "normaliser instead of 1/|y|, which removes its length and difficulty biases.",
    step=online_step, advantages=advantages, loss=loss, options=("clip_eps", "ppo_epochs", "minibatches"),
    diagnostics=(CLIPFRAC, APPROX_KL, ZERO_STD_FRAC))
