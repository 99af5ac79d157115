"""GSPO (Zheng et al. 2025, "Group Sequence Policy Optimization", arXiv:2507.18071): one ratio per sequence.

    A_i = (R_i − mean_group) / (std_group + 1e-4)                      GRPO's advantages
    s_i = (π(y_i | x) / π_old(y_i | x))^(1/|y_i|)                      eq. 7: the length-normalised
                                                                       sequence likelihood ratio
    L   = 1/B Σ_i −min(s_i A_i, clip(s_i, 1 − ε_low, 1 + ε_high) A_i)   eq. 5

GRPO weighs each token by its own ratio, whose noise grows with the sequence and which the
reward (given per sequence) cannot justify; GSPO clips whole sequences, so one token far
off-policy does not silence only itself but the unit the reward was given to. s_i is a
geometric mean and moves little, hence the paper's tiny ε (3e-4, 4e-4). Identity: with one
token per sequence GSPO is GRPO. The policy term is a mean over sequences; the shared KL term
is reduced the same way (loss_norm auto = seq_mean). Options: gspo_clip_low, gspo_clip_high,
ppo_epochs, minibatches (G ≥ 2; with one epoch and one minibatch s_i = 1 and nothing clips).
Diagnostics: policy/clipfrac (sequences), policy/ratio_mean (mean s_i), policy/approx_kl.
"""
from rmcore import advantages as adv
from rmcore.algorithms.base import Algorithm
from rmcore.losses import gspo_loss
from rmcore.metrics import APPROX_KL, CLIPFRAC, RATIO_MEAN, ZERO_STD_FRAC
from rmcore.online_step import online_step
from rmcore.step_inputs import AdvantageInputs, LossInputs


def advantages(x: AdvantageInputs):
    return adv.group_normalized_advantages(x.rewards, x.cfg.samples_per_prompt), None


def loss(x: LossInputs):
    loss, stats = gspo_loss(x.logprobs, x.old_logprobs, x.advantages, x.mask, clip_eps_low=x.cfg.gspo_clip_low,
                            clip_eps_high=x.cfg.gspo_clip_high)
    return loss, {**stats, "loss/gspo": loss.item()}


ALGORITHM = Algorithm(
    name="gspo", label="GSPO", order=66, min_samples=2, multi_epoch=True, loss_norm="seq_mean",
    description="Zheng et al. (2025): GRPO with one length-normalised importance ratio per sequence, clipped per "
                "sequence (ε 3e-4 / 4e-4).",
    step=online_step, advantages=advantages, loss=loss,
    options=("gspo_clip_low", "gspo_clip_high", "ppo_epochs", "minibatches"),
    diagnostics=(CLIPFRAC, RATIO_MEAN, APPROX_KL, ZERO_STD_FRAC))
