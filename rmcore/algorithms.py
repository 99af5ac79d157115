"""POLICY_LOSSES: the registry of policy algorithms the trainer, CLI and pages build from.

An algorithm is a loss function (rmcore.losses) plus how its learning signal is made
(rmcore.advantages) and what data it learns from. Adding one touches this dict, the step
function in rmcore.policy_step, and a test; never a page.
"""
from __future__ import annotations

from dataclasses import dataclass

from rmcore.errors import ConfigError


@dataclass(frozen=True)
class Algorithm:
    name: str
    label: str
    kind: str             # "sft": references; "online": sample, score, update; "pairs": offline preferences
    advantage: str        # rmcore.advantages.ADVANTAGE_ESTIMATORS key, "critic", or "none"
    needs_reward: bool    # all-zero reward weights are an error
    value_head: bool      # trains a scalar value head on the policy's last hidden state
    clipped: bool         # ratio to the rollout policy; ppo_epochs × minibatches updates per batch
    min_samples: int      # smallest samples_per_prompt (G) it is defined for
    description: str


POLICY_LOSSES: dict[str, Algorithm] = {
    "mle": Algorithm("mle", "MLE", "sft", "none", False, False, False, 1,
                     "Cross-entropy on the reference summaries (supervised fine-tuning); no reward."),
    "reinforce": Algorithm("reinforce", "REINFORCE", "online", "reward", True, False, False, 1,
                           "Williams (1992): −R·log π(y). Unbiased, high variance."),
    "reinforce_baseline": Algorithm(
        "reinforce_baseline", "REINFORCE + baseline", "online", "baseline", True, False, False, 1,
        "−(R − b)·log π(y) with b a moving average of rewards or the greedy sample's reward "
        "(self-critical, Rennie et al. 2017)."),
    "actor_critic": Algorithm("actor_critic", "Actor-critic", "online", "critic", True, True, False, 1,
                              "A = R − V(s_t) from a value head; policy term + value regression."),
    "ppo": Algorithm("ppo", "PPO", "online", "gae", True, True, True, 1,
                     "Schulman et al. (2017): clipped ratio surrogate, clipped value loss, GAE, "
                     "several epochs per batch."),
    "rloo": Algorithm("rloo", "RLOO", "online", "rloo", True, False, False, 2,
                      "REINFORCE with a leave-one-out baseline over the G samples of each prompt "
                      "(Ahmadian et al. 2024)."),
    "grpo": Algorithm("grpo", "GRPO", "online", "grpo", True, False, True, 2,
                      "Shao et al. (2024): group-normalised advantages (R − mean)/std over G "
                      "samples, clipped ratio, KL to the reference in the loss."),
    "dpo": Algorithm("dpo", "DPO", "pairs", "none", False, False, False, 1,
                     "Rafailov et al. (2023): −log σ(β·[(log π − log π_ref)(chosen) − "
                     "(log π − log π_ref)(rejected)]) on preference pairs; no reward, no sampling."),
}


def get_algorithm(name: str) -> Algorithm:
    if name not in POLICY_LOSSES:
        raise ConfigError(f"Unknown loss {name!r}; valid policy losses: {', '.join(POLICY_LOSSES)}.")
    return POLICY_LOSSES[name]
