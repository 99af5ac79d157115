"""Policy rewards (DESIGN.md §2): text terms, model terms, and their weighted composite.

A reward is a callable ``(prompts, completions, references) -> list[float]``; the composite
sums the terms with non-zero weight and reports each term. ``REWARD_TERMS`` is the registry.
"""
from rmcore.rewards.composite import (REWARD_TERMS, CompositeReward, RewardBreakdown, RewardTerm,
                                      build_composite, validate_weights)
from rmcore.rewards.model import Fluency, LMScorer, RewardModelScorer, fluency_from_logprobs
from rmcore.rewards.text import Bleu, Diversity, LengthPenalty, Rouge, distinct_n, self_bleu

__all__ = [
    "REWARD_TERMS", "RewardTerm", "RewardBreakdown", "CompositeReward", "build_composite", "validate_weights",
    "Rouge", "Bleu", "Diversity", "LengthPenalty", "distinct_n", "self_bleu",
    "Fluency", "LMScorer", "RewardModelScorer", "fluency_from_logprobs",
]
