"""MLE: supervised fine-tuning on the reference summaries; no reward, no sampling in the loss.

    L = reduce_t(−log π(y*_t | x, y*_<t))          teacher-forced cross-entropy

Data: prompt + reference pairs (the task's examples). Each step also samples one completion
per prompt and scores it, without gradient, so its reward curves sit beside the RL losses'.
Options: none of its own (loss_norm, lr, … are shared). Diagnostics: loss/nll_token, the
token-mean NLL whatever the reduction (its exp is the perplexity).
"""
from rmcore.algorithms.base import Algorithm
from rmcore.losses import mle_loss
from rmcore.offline_step import sft_step
from rmcore.step_inputs import LossInputs


def loss(x: LossInputs):
    loss, stats = mle_loss(x.logprobs, x.mask, **x.norm())
    return loss, stats  # loss/mle, loss/nll_token


ALGORITHM = Algorithm(
    name="mle", label="MLE", order=0,
    description="Cross-entropy on the reference summaries (supervised fine-tuning); no reward.",
    step=sft_step, loss=loss, needs_reward=False, diagnostics=("loss/nll_token",))
