"""REINFORCE++ (Hu 2025, arXiv:2501.03262): REINFORCE with PPO's tricks and no critic.

    r_t = R · [t is the last response token] − β · KL_t          KL to the reference, per token, in the reward
    G_t = Σ_{s ≥ t} r_s                                          the return from token t (γ = 1)
    A_t = (G_t − mean_batch G) / std_batch G                     normalised over every token of the batch
    L   = reduce_t(−min(ρ_t A_t, clip(ρ_t, 1 − ε, 1 + ε) A_t))  PPO's clipped surrogate

A critic-free estimator like GRPO's, but its baseline is the whole batch, not the prompt's
group: the paper argues group normalisation overfits to easy prompts, and that a global
normalisation keeps the estimate stable across prompts. The KL sits in the reward token by
token (kl_placement auto = reward), so a token's advantage includes the KL it and the rest of
the response cost. β is kl_coef (or the adaptive controller's). Its baseline variant,
reinforce_pp_baseline, subtracts each prompt's group mean from R first.
Options: clip_eps, ppo_epochs, minibatches. Diagnostics: policy/clipfrac, policy/approx_kl.
"""
from rmcore import advantages as adv
from rmcore.algorithms.base import Algorithm
from rmcore.losses import clipped_surrogate_loss
from rmcore.metrics import APPROX_KL, CLIPFRAC
from rmcore.online_step import online_step
from rmcore.step_inputs import AdvantageInputs, LossInputs


def token_advantages(x: AdvantageInputs, group_baseline: bool):
    """A_t of REINFORCE++ (group_baseline False) or REINFORCE++-baseline (True), (N, T)."""
    R = x.raw_rewards                                                       # (N,) before the KL
    if group_baseline:
        R = adv.group_normalized_advantages(R, x.cfg.samples_per_prompt, scale=False)  # R − mean_group
    token_rewards = adv.terminal_rewards(R, x.mask)                         # (N, T)
    if x.token_kl is not None and x.cfg.kl_placement == "reward":
        token_rewards = token_rewards - x.kl_coef * x.token_kl
    return adv.whiten(adv.returns_to_go(token_rewards, x.mask), x.mask), None


def advantages(x: AdvantageInputs):
    return token_advantages(x, group_baseline=False)


def loss(x: LossInputs):
    loss, stats = clipped_surrogate_loss(x.logprobs, x.old_logprobs, x.advantages, x.mask, clip_eps=x.cfg.clip_eps,
                                         **x.norm())
    return loss, {**stats, "loss/reinforce_pp": loss.item()}


ALGORITHM = Algorithm(
    name="reinforce_pp", label="REINFORCE++", order=22, multi_epoch=True, kl_placement="reward",
    description="Hu (2025): returns with a per-token KL penalty, normalised over the whole batch (no critic, no "
                "groups), and PPO's clipped surrogate.",
    step=online_step, advantages=advantages, loss=loss, options=("clip_eps", "ppo_epochs", "minibatches"),
    diagnostics=(CLIPFRAC, APPROX_KL))
