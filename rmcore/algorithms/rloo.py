"""RLOO: REINFORCE with a leave-one-out baseline over each prompt's G samples.

    A_i = R_i − 1/(G−1) Σ_{j≠i} R_j  =  G/(G−1) · (R_i − mean_group)
    L   = reduce_t(−A_i · log π(y_t | x, y_<t))

Kool et al. 2019, "Buy 4 REINFORCE samples, get a baseline for free!"; Ahmadian et al. 2024,
arXiv:2402.14740. The baseline never sees R_i, so the estimate is unbiased; it needs G ≥ 2.
Data: prompts; G samples each (prompt-major: sample g of prompt p is row p·G + g).
"""
from rmcore import advantages as adv
from rmcore.algorithms.base import Algorithm
from rmcore.losses import policy_gradient_loss
from rmcore.online_step import online_step
from rmcore.step_inputs import AdvantageInputs, LossInputs


def advantages(x: AdvantageInputs):
    return adv.rloo_advantages(x.rewards, x.cfg.samples_per_prompt), None


def loss(x: LossInputs):
    loss, stats = policy_gradient_loss(x.logprobs, x.advantages, x.mask, **x.norm())
    return loss, {**stats, "loss/rloo": loss.item()}


ALGORITHM = Algorithm(
    name="rloo", label="RLOO", order=50, min_samples=2,
    description="REINFORCE with a leave-one-out baseline over the G samples of each prompt (Ahmadian et al. 2024).",
    step=online_step, advantages=advantages, loss=loss)
