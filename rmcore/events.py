"""What a training loop reports, through its callbacks, to whoever listens.

The trainers know nothing of the store or the UI: they call ``on_step(StepReport)`` once
per optimizer step and ``on_progress(ProgressReport)`` while preparing (e.g. building the
built-in backbone on first use). The runner turns these into store writes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class StepReport:
    step: int                                   # 1-based optimizer step
    total_steps: int
    metrics: dict[str, float]                   # namespaced: loss/…, reward/…, policy/…, eval/…, perf/…
    sample_rewards: dict[str, list[float]] = field(default_factory=dict)  # term (and "total") -> one value per sample
    generations: list[dict[str, Any]] = field(default_factory=list)
    # each generation: {"split": "train"|"eval", "prompt", "completion", "reference",
    #                   "reward": float, "terms": {term: float}}
    checkpoint: str | None = None               # save_pretrained folder written at this step


@dataclass
class ProgressReport:
    stage: str          # short machine name, e.g. "build-backbone", "warm-start", "load-data"
    fraction: float     # 0..1 within the stage
    message: str        # one line for the user, e.g. "Building tiny-gpt2: warm-start 40%"


OnStep = Callable[[StepReport], None]
OnProgress = Callable[[ProgressReport], None]
ShouldStop = Callable[[], bool]
