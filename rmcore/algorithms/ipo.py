"""IPO (Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human Preferences",
arXiv:2310.12036): DPO's pairs, a squared loss instead of the log-sigmoid.

    h = (log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x))   summed over tokens
    L = mean_pairs((h − 1/(2τ))²)                                                eq. 17

DPO's −log σ(β h) keeps pulling h up however well a pair is already ranked, so on
deterministic preferences it drives π_ref's weight on y_r to 0 and over-fits; IPO regresses
h onto a target 1/(2τ) and stops there: its minimum is at h = 1/(2τ), and a pair ranked
beyond the target is pushed back. τ (option ipo_tau; the paper leaves it to the user, 0.1 is
TRL's default) sets the target. Data: the task's preference pairs. Diagnostics: the implicit
rewards τ·(log π − log π_ref) of chosen and rejected, their margin, and the accuracy.
"""
from rmcore.algorithms.base import Algorithm
from rmcore.losses import dpo_loss
from rmcore.metrics import IMPLICIT_ACCURACY, IMPLICIT_CHOSEN, IMPLICIT_MARGIN, IMPLICIT_REJECTED
from rmcore.offline_step import pairs_step
from rmcore.step_inputs import PairInputs


def loss(x: PairInputs):
    return dpo_loss(x.chosen_logps, x.rejected_logps, x.ref_chosen_logps, x.ref_rejected_logps,
                    beta=x.cfg.ipo_tau, variant="ipo", name="ipo")  # loss/ipo and the implicit-reward diagnostics


ALGORITHM = Algorithm(
    name="ipo", label="IPO", order=72, data="pairs",
    description="Azar et al. (2023): (h − 1/(2τ))² on DPO's log-ratio margin h: a target margin instead of an "
                "ever-growing one.",
    step=pairs_step, loss=loss, needs_reward=False, needs_reference=True, options=("ipo_tau",),
    diagnostics=(IMPLICIT_ACCURACY, IMPLICIT_MARGIN, IMPLICIT_CHOSEN, IMPLICIT_REJECTED))
