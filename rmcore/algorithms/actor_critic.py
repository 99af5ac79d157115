"""Advantage actor-critic: a learned value head is the baseline (Mnih et al. 2016, arXiv:1602.01783).

    returns R_t = R for every response token        terminal reward, γ = 1, no bootstrapping
    A_t = R_t − V(s_t)                              held constant
    L   = reduce_t(−A_t · log π(y_t)) + vf_coef · reduce_t(½ (V(s_t) − R_t)²)

V is a linear head on the policy's last hidden state, initialised to 0 weight (so V ≡ its
bias at start, a neutral critic) and trained with the policy. Options: vf_coef.
Diagnostics: loss/value, the critic's regression error.
"""
from rmcore.algorithms.base import Algorithm
from rmcore.losses import actor_critic_loss
from rmcore.online_step import online_step
from rmcore.step_inputs import AdvantageInputs, LossInputs


def advantages(x: AdvantageInputs):
    """No advantages yet (they need V with gradient-free values at update time): the returns."""
    return None, x.rewards[:, None].expand_as(x.mask) * x.mask


def loss(x: LossInputs):
    return actor_critic_loss(x.logprobs, x.values, x.returns, x.mask, vf_coef=x.cfg.vf_coef, **x.norm())


ALGORITHM = Algorithm(
    name="actor_critic", label="Actor-critic", order=30,
    description="A = R − V(s_t) from a value head; policy term + value regression.",
    step=online_step, advantages=advantages, loss=loss, value_head=True, options=("vf_coef",),
    diagnostics=("loss/value",))
