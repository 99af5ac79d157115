"""One-click experiments for the Home page: small runs on the built-in task and model.

The budget (30 steps of 4 prompts × 4 samples × 24 new tokens) is sized so that the three
quick-tour runs finish in a few minutes on a 2-core CPU, one after the other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from rmcore.config import TrainConfig

SMALL = TrainConfig(steps=30, batch_size=4, samples_per_prompt=4, max_new_tokens=48, eval_every=10,
                    eval_prompts=16, log_generations=4)


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    description: str
    configs: Callable[[], list[TrainConfig]]


def quick_tour() -> list[TrainConfig]:
    """The same run with three losses: only `loss` differs."""
    return [SMALL.replace(loss=loss, name=f"tour {label}")
            for loss, label in (("reinforce", "REINFORCE"), ("ppo", "PPO"), ("grpo", "GRPO"))]


def reward_hacking() -> list[TrainConfig]:
    """A sane reward next to one where diversity dominates: distinct-n is easy to max out
    with word salad, so the policy drifts from the reference while its reward climbs."""
    base = SMALL.replace(loss="grpo", kl_coef=0.0)
    return [base.replace(gamma=0.1, name="diversity γ=0.1"), base.replace(gamma=3.0, name="diversity γ=3 (hacked)")]


def kl_leash() -> list[TrainConfig]:
    """The same run with and without the KL penalty to the starting model."""
    base = SMALL.replace(loss="grpo", gamma=1.0)
    return [base.replace(kl_coef=0.0, name="no KL"), base.replace(kl_coef=0.2, name="KL 0.2")]


PRESETS: list[Preset] = [
    Preset("tour", "Quick tour: REINFORCE vs PPO vs GRPO",
           "Three runs on the built-in task, identical but for the loss.", quick_tour),
    Preset("hacking", "Reward hacking: diversity weight too high",
           "γ = 3 against γ = 0.1: watch the reward climb while ROUGE and fluency fall.", reward_hacking),
    Preset("kl", "KL leash: the same run with and without KL",
           "KL coefficient 0 against 0.2 with a strong diversity term: the penalty keeps samples "
           "near the starting model.", kl_leash),
]
