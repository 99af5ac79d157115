"""One-click experiments for the Home page: small runs on the built-in task and model.

The budget (30 steps of 4 prompts × 4 samples, up to 48 new tokens) is sized so that each
preset's runs finish in a few minutes on a 2-core CPU, one after the other. Each card's
`expect` says what the runs showed when measured at this budget (seed 0, 2-core CPU); the
slow tests in tests/test_presets.py check the same effects.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from rmcore.config import TrainConfig

SMALL = TrainConfig(steps=30, batch_size=4, samples_per_prompt=4, max_new_tokens=48, eval_every=10,
                    eval_prompts=16, log_generations=4)

# A reward that pays for short answers: the length term -|words - 6| / 6 at weight 2 against
# ROUGE at weight 1. A faithful summary has about 15 words, so the policy earns more by cutting
# it off than by keeping its facts. (Diversity cannot be hacked this way on the built-in model:
# its summaries already score distinct-2 = 1.0, the term's maximum.) Rollouts at temperature 1
# and lr 2e-4 so that 30 steps are enough to see it happen.
SHORT_ANSWERS = dict(loss="grpo", length_weight=2.0, target_length=6, temperature=1.0, lr=2e-4)


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    description: str
    expect: str  # "what you should see": the measured end values at this budget
    configs: Callable[[], list[TrainConfig]]


def quick_tour() -> list[TrainConfig]:
    """The same run with three losses: only `loss` differs."""
    return [SMALL.replace(loss=loss, name=f"tour {label}")
            for loss, label in (("reinforce", "REINFORCE"), ("ppo", "PPO"), ("grpo", "GRPO"))]


def reward_hacking() -> list[TrainConfig]:
    """The default reward next to one whose length term pays for cutting summaries short."""
    base = SMALL.replace(**SHORT_ANSWERS, kl_coef=0.0)
    return [base.replace(length_weight=0.0, name="no length term"),
            base.replace(name="short answers paid (hacked)")]


def kl_leash() -> list[TrainConfig]:
    """The hacked reward with and without the KL penalty to the starting model."""
    base = SMALL.replace(**SHORT_ANSWERS)
    return [base.replace(kl_coef=0.0, name="no KL"), base.replace(kl_coef=KL_LEASH, name=f"KL {KL_LEASH}")]


KL_LEASH = 0.5

PRESETS: list[Preset] = [
    Preset("tour", "Quick tour: REINFORCE vs PPO vs GRPO",
           "Three runs on the built-in task, identical but for the loss.",
           ("All three keep readable, faithful summaries: eval ROUGE-L starts at 0.96 and ends at 0.95 "
            "(REINFORCE), 0.95 (PPO), 0.96 (GRPO), and the entity is still copied in 81–94% of answers "
            "(from 88%; the exact figure moves with the CPU's float rounding). "
            "PPO moves furthest from the start: KL 2.6 against 0.1 (REINFORCE) and 0.3 (GRPO). The "
            "built-in model starts near the top of ROUGE, so the losses differ in how they move, "
            "not in how far they climb."), quick_tour),
    Preset("hacking", "Reward hacking: a reward that pays for short answers",
           "The default reward against one with a 6-word length target at weight 2: watch the reward "
           "climb while ROUGE and fluency fall.",
           ("Hacked: the training reward climbs from −1.40 to −0.11 while eval ROUGE-L falls from "
            "0.96 to 0.39 and fluency from 0.96 to 0.16 (answers like \"Doria Labs will acquire rival "
            "Kelis in a \\$6.\"). Without the length term ROUGE-L ends at 0.88."), reward_hacking),
    Preset("kl", "KL leash: the hacked reward with and without KL",
           f"The short-answer reward with KL coefficient 0 and {KL_LEASH}: the penalty keeps the policy "
           "near the starting model.",
           ("KL 0 drifts to KL 24 and eval ROUGE-L 0.39; with KL 0.5 the KL ends at 2.4, ROUGE-L "
            "at 0.90 and the answers stay whole summaries."), kl_leash),
]
