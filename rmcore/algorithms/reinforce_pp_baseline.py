"""REINFORCE++-baseline (Hu 2025, arXiv:2501.03262): REINFORCE++ with each prompt's group mean subtracted first.

    R'_i = R_i − mean_group(R)                                  over the prompt's G samples
    r_t  = R'_i · [t is the last token] − β · KL_t;   G_t = Σ_{s ≥ t} r_s
    A_t  = (G_t − mean_batch G) / std_batch G                   then PPO's clipped surrogate, as REINFORCE++

The group mean removes how hard the prompt is (its samples compete with each other, as in
GRPO and RLOO), and the global normalisation, unlike GRPO's per-group std, does not blow up
the advantages of a group whose rewards barely differ. Options: clip_eps, ppo_epochs,
minibatches (G ≥ 2). Diagnostics: policy/clipfrac, policy/approx_kl, policy/zero_std_frac.
"""
from rmcore.algorithms.base import Algorithm
from rmcore.algorithms.reinforce_pp import token_advantages
from rmcore.losses import clipped_surrogate_loss
from rmcore.metrics import APPROX_KL, CLIPFRAC, ZERO_STD_FRAC
from rmcore.online_step import online_step
from rmcore.step_inputs import AdvantageInputs, LossInputs


def advantages(x: AdvantageInputs):
    return token_advantages(x, group_baseline=True)


def loss(x: LossInputs):
    loss, stats = clipped_surrogate_loss(x.logprobs, x.old_logprobs, x.advantages, x.mask, clip_eps=x.cfg.clip_eps,
                                         **x.norm())
    return loss, {**stats, "loss/reinforce_pp_baseline": loss.item()}


ALGORITHM = Algorithm(
    name="reinforce_pp_baseline", label="REINFORCE++ baseline", order=24, min_samples=2, multi_epoch=True,
    kl_placement="reward",
    description="REINFORCE++ with each prompt's group mean subtracted from the reward before the per-token KL and "
                "the batch normalisation.",
    step=online_step, advantages=advantages, loss=loss, options=("clip_eps", "ppo_epochs", "minibatches"),
    diagnostics=(CLIPFRAC, APPROX_KL, ZERO_STD_FRAC))
