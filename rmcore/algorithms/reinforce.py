"""REINFORCE (Williams 1992, "Simple statistical gradient-following algorithms").

    A_i = R_i                                       the sequence reward, no baseline
    L   = reduce_t(−A_i · log π(y_t | x, y_<t))     A held constant

Unbiased and high-variance: every sample is pushed up in proportion to its raw reward, so
with rewards in [0, 1] every sampled completion is reinforced, the good ones more.
Data: prompts; G samples each (samples_per_prompt), scored by the composite reward.
R includes −β·KL when kl_placement is "reward"; otherwise the KL term is added to the loss
by the shared step (rmcore.online_step), as for every online algorithm.
"""
from rmcore import advantages as adv
from rmcore.algorithms.base import Algorithm
from rmcore.losses import policy_gradient_loss
from rmcore.online_step import online_step
from rmcore.step_inputs import AdvantageInputs, LossInputs


def advantages(x: AdvantageInputs):
    return adv.reward_advantages(x.rewards), None


def loss(x: LossInputs):
    loss, stats = policy_gradient_loss(x.logprobs, x.advantages, x.mask, **x.norm())
    return loss, {**stats, "loss/reinforce": loss.item()}


ALGORITHM = Algorithm(
    name="reinforce", label="REINFORCE", order=10,
    description="Williams (1992): −R·log π(y). Unbiased, high variance.",
    step=online_step, advantages=advantages, loss=loss)
