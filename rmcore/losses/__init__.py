"""Losses: pure functions of tensors that return ``(loss, stats)``.

Policy losses (policy.py, grpo_family.py, preference.py) are mapped to algorithm names in rmcore.algorithms; the
reward-model losses are registered in registry.py (re-exported here), one entry per loss under
the name the config and the app use.
"""
from __future__ import annotations

from rmcore.losses.common import LOSS_NORMS, masked_mean, masked_sum, masked_var, reduce_loss
from rmcore.losses.grpo_family import cispo_loss, gspo_loss
from rmcore.losses.policy import (
    actor_critic_loss,
    clipped_surrogate_loss,
    entropy_from_logits,
    grpo_loss,
    mle_loss,
    policy_gradient_loss,
    ppo_loss,
    token_logprobs,
    value_loss,
)
from rmcore.losses.preference import DPO_VARIANTS, dpo_loss, implicit_reward_stats, simpo_loss
from rmcore.losses.reward_model import (
    bradley_terry_loss,
    center_penalty,
    cross_entropy_loss,
    embedding_distance,
    focal_loss,
    hinge_loss,
    mse_loss,
    triplet_loss,
)
from rmcore.losses.registry import (
    REWARD_MODEL_LOSSES,
    Knob,
    PlaygroundCurve,
    RewardModelLoss,
    get_reward_model_loss,
)

__all__ = [
    "DPO_VARIANTS", "LOSS_NORMS", "REWARD_MODEL_LOSSES", "Knob", "PlaygroundCurve", "RewardModelLoss",
    "actor_critic_loss", "bradley_terry_loss", "center_penalty", "cispo_loss", "clipped_surrogate_loss",
    "cross_entropy_loss", "dpo_loss", "embedding_distance", "entropy_from_logits", "focal_loss",
    "get_reward_model_loss", "grpo_loss", "gspo_loss", "hinge_loss", "implicit_reward_stats", "masked_mean",
    "masked_sum", "masked_var", "mle_loss", "mse_loss", "policy_gradient_loss", "ppo_loss", "reduce_loss",
    "simpo_loss", "token_logprobs", "triplet_loss", "value_loss",
]
