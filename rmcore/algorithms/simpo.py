"""SimPO (Meng et al. 2024, "SimPO: Simple Preference Optimization with a Reference-Free Reward",
arXiv:2405.14734): the average log-likelihood as the reward, and no reference model at all.

    r(y) = β / |y| · log π(y | x)                         eq. 4: length-normalised, reference-free
    L    = mean_pairs(−log σ(r(y_c) − r(y_r) − γ))        eq. 6: with a target margin γ

DPO's implicit reward sums log-ratios over tokens, so a longer response can win on length;
SimPO averages, and asks the chosen response to win by γ. The reward is the policy's own, so
no reference model is ever loaded (half the memory of DPO): in SimPO runs the fluency term β
and the KL to the reference, which only a reference can measure, are off (the saved config
says so). Options: simpo_beta (2.0) and simpo_gamma (1.0: γ/β = 0.5, the paper's advice).
Identity: the loss does not depend on any reference model. Diagnostics: the rewards r of
chosen and rejected, their margin, and the accuracy.
"""
from rmcore.algorithms.base import Algorithm
from rmcore.losses import simpo_loss
from rmcore.metrics import IMPLICIT_ACCURACY, IMPLICIT_CHOSEN, IMPLICIT_MARGIN, IMPLICIT_REJECTED
from rmcore.offline_step import pairs_step
from rmcore.step_inputs import PairInputs


def loss(x: PairInputs):
    return simpo_loss(x.chosen_logps, x.rejected_logps, x.chosen_lengths, x.rejected_lengths,
                      beta=x.cfg.simpo_beta, gamma=x.cfg.simpo_gamma)  # loss/simpo and the reward statistics


ALGORITHM = Algorithm(
    name="simpo", label="SimPO", order=76, data="pairs", reference_free=True,
    description="Meng et al. (2024): −log σ(β/|y_c|·log π(y_c) − β/|y_r|·log π(y_r) − γ); reference-free, so no "
                "reference model is loaded (and no fluency term or KL in its runs).",
    step=pairs_step, loss=loss, needs_reward=False, options=("simpo_beta", "simpo_gamma"),
    diagnostics=(IMPLICIT_ACCURACY, IMPLICIT_MARGIN, IMPLICIT_CHOSEN, IMPLICIT_REJECTED))
