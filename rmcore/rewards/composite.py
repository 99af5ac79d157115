"""The policy reward: a weighted sum of named terms that reports each term on its own.

    r(y) = α·ROUGE(y, y*) + β·Fluency(y) + γ·Diversity(y) + δ·RM(x, y)
           [+ w_bleu·BLEU(y, y*) + w_len·Length(y)]                        (DESIGN.md §2)

``REWARD_TERMS`` is the registry the app builds its sliders from; ``validate_weights`` turns
bad weights into one ConfigError sentence; ``CompositeReward`` computes only the terms with
a non-zero weight and returns a ``RewardBreakdown`` (total and every computed term).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

from rmcore.errors import ConfigError, TrainingError
from rmcore.rewards.model import Fluency, RewardModelScorer, Scorer
from rmcore.rewards.text import Bleu, Diversity, LengthPenalty, Rouge

RewardFn = Callable[[list[str], list[str], list[str]], list[float]]


@dataclass(frozen=True)
class RewardTerm:
    """One entry of the registry: how the app names a term and how to build it."""

    label: str            # short name for charts and sliders
    symbol: str           # the weight's symbol in r(y) (α, β, …)
    build: Callable[..., RewardFn]
    needs_reference: bool  # True when the term compares against the reference y*
    help: str             # one sentence for tooltips


REWARD_TERMS: dict[str, RewardTerm] = {
    "rouge": RewardTerm(label="ROUGE", symbol="α", build=Rouge, needs_reference=True,
                        help="ROUGE F1 (rouge1, rouge2 or rougeL) of the sample against the reference, in [0, 1]."),
    "fluency": RewardTerm(label="Fluency", symbol="β", build=Fluency, needs_reference=False,
                          help="exp(mean token log-prob) of the sample under the frozen reference model, in (0, 1]."),
    "diversity": RewardTerm(label="Diversity", symbol="γ", build=Diversity, needs_reference=False,
                            help="Distinct-n of the sample: unique n-grams / all n-grams, in [0, 1]."),
    "rm": RewardTerm(label="Reward model", symbol="δ", build=RewardModelScorer, needs_reference=False,
                     help="Score of a trained reward model on prompt + sample (unbounded)."),
    "bleu": RewardTerm(label="BLEU", symbol="w_bleu", build=Bleu, needs_reference=True,
                       help="Sentence BLEU (sacrebleu, exp smoothing) of the sample against the reference, in [0, 1]."),
    "length": RewardTerm(label="Length", symbol="w_len", build=LengthPenalty, needs_reference=False,
                         help="Length penalty -|words - target| / target, at most 0."),
}


def validate_weights(weights: dict[str, float], *, needs_reward: bool) -> dict[str, float]:
    """Check reward weights and return them as python floats, by term name.

    Every value must be a finite real number (not a bool, a string, NaN or inf); names must be
    REWARD_TERMS keys. With ``needs_reward`` (every loss but MLE and DPO), all-zero weights
    are an error, since such a loss would have nothing to learn from.
    """
    unknown = sorted(set(weights) - set(REWARD_TERMS))
    if unknown:
        raise ConfigError(f"Unknown reward term(s) {', '.join(map(repr, unknown))}; "
                          f"valid terms are {', '.join(REWARD_TERMS)}.")
    checked = {}
    for name, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ConfigError(f"The weight of reward term '{name}' must be a finite number, got {value!r}.")
        checked[name] = float(value)
    if needs_reward and all(value == 0.0 for value in checked.values()):
        raise ConfigError("All reward weights are zero; set at least one of α, β, γ, δ (or BLEU/length) "
                          "for a loss that learns from a reward.")
    return checked


@dataclass
class RewardBreakdown:
    """Rewards of one batch: the weighted total and every computed term, unweighted.

    total: B floats, Σ_k weights[k] · terms[k][b].
    terms: term name -> B floats (only terms with a non-zero weight were computed).
    weights: term name -> weight, for the computed terms.
    """

    total: list[float]
    terms: dict[str, list[float]]
    weights: dict[str, float]


class CompositeReward:
    """Weighted sum of reward terms; only terms with a non-zero weight are computed.

        r_b = Σ_{k : w_k ≠ 0} w_k · term_k(x_b, y_b, y*_b)

    ``terms`` maps a name to a reward callable. A term may have no callable if the caller
    passes its values in ``precomputed`` (the trainer does so for fluency, from the reference
    log-probs it already has for KL); precomputed values win over a callable.

    Example:
        >>> reward = CompositeReward({"diversity": 0.5, "length": 1.0},
        ...                          {"diversity": Diversity(2), "length": LengthPenalty(2)})
        >>> reward(["p"], ["a b c"], ["r"]).total
        [0.0]
    """

    def __init__(self, weights: dict[str, float], terms: dict[str, RewardFn]) -> None:
        checked = validate_weights(weights, needs_reward=False)
        # Registry order, so the total is summed in the same order on every call and machine.
        self.weights = {name: checked[name] for name in REWARD_TERMS if checked.get(name, 0.0) != 0.0}
        self.terms = {name: terms[name] for name in self.weights if name in terms}

    def __call__(self, prompts: list[str], completions: list[str], references: list[str] | None,
                 precomputed: dict[str, list[float]] | None = None) -> RewardBreakdown:
        batch = len(completions)
        if len(prompts) != batch or (references is not None and len(references) != batch):
            n_refs = "no" if references is None else len(references)
            raise TrainingError(f"Reward inputs differ in length: {len(prompts)} prompts, {batch} completions, "
                                f"{n_refs} references.")
        precomputed = precomputed or {}
        values = {name: self._term_values(name, prompts, completions, references, precomputed)
                  for name in self.weights}
        total = [sum(self.weights[name] * values[name][b] for name in self.weights) for b in range(batch)]
        return RewardBreakdown(total=[float(value) for value in total], terms=values, weights=dict(self.weights))

    def _term_values(self, name: str, prompts: list[str], completions: list[str],
                     references: list[str] | None, precomputed: dict[str, list[float]]) -> list[float]:
        """One term's unweighted values for the batch, checked: B finite python floats."""
        if name in precomputed:
            raw: Any = precomputed[name]
        elif name not in self.terms:
            raise TrainingError(f"Reward term '{name}' has a non-zero weight but neither a scorer nor "
                                f"precomputed values.")
        elif references is None and REWARD_TERMS[name].needs_reference:
            raise TrainingError(f"Reward term '{name}' needs reference texts, and this task has none.")
        else:
            refs = references if references is not None else [""] * len(completions)
            try:
                raw = self.terms[name](prompts, completions, refs)
            except Exception as exc:
                raise TrainingError(f"Reward term '{name}' failed: {exc}") from exc
        values = [float(value) for value in raw]
        if len(values) != len(completions):
            raise TrainingError(f"Reward term '{name}' gave {len(values)} values for {len(completions)} completions.")
        if not all(math.isfinite(value) for value in values):
            raise TrainingError(f"Reward term '{name}' gave a non-finite value (NaN or inf).")
        return values


def build_composite(weights: dict[str, float], *, rouge_type: str = "rougeL", distinct_n: int = 2,
                    target_length: int = 20, fluency_scorer: Scorer | None = None,
                    rm_scorer: RewardFn | None = None) -> CompositeReward:
    """Build the composite reward from weights, constructing only terms with a non-zero weight.

    fluency_scorer: mean-log-prob scorer for the β term (e.g. ``LMScorer``). Without it a
    non-zero β is allowed, but then every call must pass fluency in ``precomputed`` (the
    trainer's path: ``fluency_from_logprobs`` on its reference log-probs).
    rm_scorer: a reward callable for the δ term (e.g. ``RewardModelScorer``), required when δ ≠ 0.
    """
    checked = validate_weights(weights, needs_reward=False)
    active = {name for name, weight in checked.items() if weight != 0.0}
    if "rm" in active and rm_scorer is None:
        raise ConfigError("The reward-model weight δ is non-zero but no reward model was given.")
    builders: dict[str, Callable[[], RewardFn | None]] = {
        "rouge": lambda: Rouge(rouge_type),
        "bleu": Bleu,
        "diversity": lambda: Diversity(distinct_n),
        "length": lambda: LengthPenalty(target_length),
        "fluency": lambda: Fluency(fluency_scorer) if fluency_scorer is not None else None,
        "rm": lambda: rm_scorer,
    }
    terms = {}
    for name in active:
        term = builders[name]()
        if term is not None:
            terms[name] = term
    return CompositeReward(checked, terms)
