"""What the step machinery hands an algorithm's advantage estimator and loss.

Kept apart from rmcore.algorithms so that the steps (rmcore.online_step, rmcore.offline_step)
and the algorithm modules that use them import each other's pieces without a cycle.
Shapes: N = prompts × G rows, T response tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor


@dataclass
class AdvantageInputs:
    """A scored rollout, for ``Algorithm.advantages``."""
    session: Any                 # rmcore.policy_step.Session (its cfg, EMA baseline state, models)
    rewards: Tensor              # (N,) sequence rewards, minus β·KL when KL is placed in the reward
    raw_rewards: Tensor          # (N,) the composite reward alone
    token_kl: Tensor | None      # (N, T) per-token KL estimate to the reference, when KL is on
    mask: Tensor                 # (N, T) 1 on response tokens
    old_values: Tensor | None    # (N, T) the value head at rollout time (value-head algorithms)
    prompts: list[str]           # one per prompt (not repeated G times)
    refs: list[str]
    kl_coef: float = 0.0         # the KL coefficient in force this step (adaptive when kl_target > 0)

    @property
    def cfg(self) -> Any:
        return self.session.cfg


@dataclass
class LossInputs:
    """One minibatch of response tokens, for ``Algorithm.loss`` (online and MLE)."""
    cfg: Any
    logprobs: Tensor                       # (B, T) with gradient
    mask: Tensor                           # (B, T)
    old_logprobs: Tensor | None = None     # (B, T) at rollout time
    advantages: Tensor | None = None       # (B,) or (B, T)
    values: Tensor | None = None           # (B, T) with gradient (value-head algorithms)
    old_values: Tensor | None = None       # (B, T)
    returns: Tensor | None = None          # (B, T) value targets

    def norm(self) -> dict[str, Any]:
        """The reduction every policy loss takes: rmcore.losses.common.reduce_loss."""
        return {"loss_norm": self.cfg.loss_norm, "max_len": self.cfg.max_new_tokens}


@dataclass
class PairInputs:
    """Summed response log-probs of a batch of preference pairs, for a pairs algorithm's loss."""
    cfg: Any
    chosen_logps: Tensor           # (B,) log π(y_c | x), with gradient
    rejected_logps: Tensor         # (B,)
    ref_chosen_logps: Tensor | None    # (B,) under the frozen reference; None for a reference-free algorithm
    ref_rejected_logps: Tensor | None  # (B,)
    chosen_lengths: Tensor | None = None    # (B,) response tokens of y_c (EOS included)
    rejected_lengths: Tensor | None = None  # (B,)
