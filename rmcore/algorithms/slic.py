"""SLiC (Zhao et al. 2023, "SLiC-HF: Sequence Likelihood Calibration with Human Feedback",
arXiv:2305.10425): a hinge on DPO's log-ratio margin.

    h = (log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x))   summed over tokens
    L = mean_pairs(max(0, 1 − β h))                  the calibration loss max(0, δ − h), scaled by β = 1/δ

A pair ranked by a margin of 1/β or more gives no gradient: SLiC stops where DPO's
log-sigmoid only slows down. h is measured against the reference, as TRL's "hinge" and the
DPO paper state SLiC (the original calibrates raw likelihoods and adds a cross-entropy
regulariser on reference answers instead). β (option slic_beta) = 1 is SLiC-HF's δ = 1.
Data: the task's preference pairs. Diagnostics: the implicit rewards β·(log π − log π_ref),
their margin, and the accuracy.
"""
from rmcore.algorithms.base import Algorithm
from rmcore.losses import dpo_loss
from rmcore.metrics import IMPLICIT_ACCURACY, IMPLICIT_CHOSEN, IMPLICIT_MARGIN, IMPLICIT_REJECTED
from rmcore.offline_step import pairs_step
from rmcore.step_inputs import PairInputs


def loss(x: PairInputs):
    return dpo_loss(x.chosen_logps, x.rejected_logps, x.ref_chosen_logps, x.ref_rejected_logps,
                    beta=x.cfg.slic_beta, variant="hinge", name="slic")  # loss/slic and the implicit-reward diagnostics


ALGORITHM = Algorithm(
    name="slic", label="SLiC", order=74, data="pairs",
    description="Zhao et al. (2023): a hinge max(0, 1 − β·h) on DPO's log-ratio margin h; pairs ranked by 1/β "
                "give no gradient.",
    step=pairs_step, loss=loss, needs_reward=False, needs_reference=True, options=("slic_beta",),
    diagnostics=(IMPLICIT_ACCURACY, IMPLICIT_MARGIN, IMPLICIT_CHOSEN, IMPLICIT_REJECTED))
