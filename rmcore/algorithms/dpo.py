"""DPO (Rafailov et al. 2023, arXiv:2305.18290): preference pairs, no reward, no sampling in the loss.

    h = (log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x))   summed over tokens
    L = mean_pairs(−log σ(β · h))                                                eq. 7

π_ref is the frozen starting model; β (option dpo_beta) sets how far the implicit reward
β·(log π − log π_ref) may move it. Data: the task's preference pairs (chosen, rejected).
Each step also samples and scores one completion per prompt, without gradient, for the
reward charts. Diagnostics: the implicit rewards of chosen and rejected, their margin, and
the accuracy (share of pairs whose chosen implicit reward is the higher).
"""
from rmcore.algorithms.base import Algorithm
from rmcore.losses import dpo_loss
from rmcore.metrics import IMPLICIT_ACCURACY, IMPLICIT_CHOSEN, IMPLICIT_MARGIN, IMPLICIT_REJECTED
from rmcore.offline_step import pairs_step
from rmcore.step_inputs import PairInputs


def loss(x: PairInputs):
    return dpo_loss(x.chosen_logps, x.rejected_logps, x.ref_chosen_logps, x.ref_rejected_logps,
                    beta=x.cfg.dpo_beta)  # loss/dpo and the implicit-reward diagnostics


ALGORITHM = Algorithm(
    name="dpo", label="DPO", order=70, data="pairs",
    description="Rafailov et al. (2023): −log σ(β·[(log π − log π_ref)(chosen) − (log π − log π_ref)(rejected)]) "
                "on preference pairs; no reward, no sampling.",
    step=pairs_step, loss=loss, needs_reward=False, needs_reference=True, options=("dpo_beta",),
    diagnostics=(IMPLICIT_ACCURACY, IMPLICIT_MARGIN, IMPLICIT_CHOSEN, IMPLICIT_REJECTED))
