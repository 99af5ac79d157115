"""Fact copying: does a summary carry the document's key entity and number, exactly?

ROUGE rewards the template words a small model learns first ("will acquire rival … in a …
deal"); whether it read the document shows in the facts. synth-news records each item's
main entity (company, team, person, city, institute) and key number ("$4.2 billion",
"1,250 jobs", "3-1", "57%"), and these helpers score a completion against them:

    entity_acc = share of eval summaries in which the recorded entity appears
    number_acc = share in which the recorded number appears

"Appears" means as a whole token sequence: "Varotek" is not found in "Varotekia", and
"120 jobs" is not found in "1,120 jobs" nor "$1.5 billion" in "$1.55 billion" (a digit, a
letter, or a thousands/decimal separator next to the match rules it out).
"""
from __future__ import annotations

import re

# A fact must not continue a word or a number on either side: no letter or digit, and no
# separator ("$", ",", ".", "-") that would make it part of a longer figure.
_BEFORE = r"(?<![\w$,.\-])"
_AFTER = r"(?!\w|[,.\-]\d)"


def mentions(text: str, fact: str) -> bool:
    """True when `fact` occurs in `text` as a whole (see the module docstring); '' never does."""
    if not fact:
        return False
    return re.search(_BEFORE + re.escape(fact) + _AFTER, text) is not None


def copy_accuracy(completions: list[str], facts: list[str]) -> float | None:
    """Share of completions that mention their fact; None when no example records one."""
    if len(completions) != len(facts):
        raise ValueError(f"{len(completions)} completions but {len(facts)} facts.")
    scored = [mentions(c, f) for c, f in zip(completions, facts) if f]
    return sum(scored) / len(scored) if scored else None


def fact_metrics(completions: list[str], entities: list[str], numbers: list[str],
                 prefix: str = "eval/") -> dict[str, float]:
    """{prefix}entity_acc and {prefix}number_acc, each only when the examples record that fact."""
    metrics = {}
    for key, facts in (("entity_acc", entities), ("number_acc", numbers)):
        value = copy_accuracy(completions, facts)
        if value is not None:
            metrics[prefix + key] = value
    return metrics
