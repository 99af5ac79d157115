"""The records every task source builds: examples, preference pairs, a task's splits, the prompt
format, and the hub presets' column mappings. Apart from rmcore.data's loaders so that the
generator, file and hub modules can build them without importing the package that imports them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """A prompt (already in the model's input format) and its reference completion y*.

    `entity` and `number` are the key facts a faithful summary must copy from the prompt, when
    the task records them (synth-news does; files and hub data leave them ""); eval reads them
    for eval/entity_acc and eval/number_acc (rmcore.facts).
    """
    prompt: str
    reference: str
    entity: str = ""
    number: str = ""


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with a preferred and a dispreferred completion.

    `corruption` names how `rejected` was made (synth-news: one of CORRUPTIONS), so reward
    model accuracy can be broken down by type; it is "" for data from files or the hub.
    """
    prompt: str
    chosen: str
    rejected: str
    corruption: str = ""


@dataclass(frozen=True)
class TaskData:
    """One task, split into train and eval; pair lists may be empty for summary-only data."""
    name: str
    train: list[Example]
    eval: list[Example]
    pairs_train: list[PreferencePair]
    pairs_eval: list[PreferencePair]


def make_prompt(document: str) -> str:
    """The summarisation prompt format, as in the TL;DR setup of Stiennon et al. (2020)."""
    return f"{document}\nTL;DR:"


# Column mappings of the hub presets. "prompt_from" says how to build the prompt when the
# dataset has no prompt column: "dialogue_prefix" (hh-rlhf: the shared text up to the last
# "\n\nAssistant:") or "messages" (chat lists: the user turn; responses: last assistant turn).
HUB_DATASET_PRESETS: dict[str, dict] = {
    "cnn_dailymail": {"config": "3.0.0", "kind": "summaries",
                      "prompt_column": "article", "reference_column": "highlights"},
    "xsum": {"config": None, "kind": "summaries", "prompt_column": "document", "reference_column": "summary"},
    "trl-lib/tldr": {"config": None, "kind": "summaries", "prompt_column": "prompt", "reference_column": "completion"},
    "Anthropic/hh-rlhf": {"config": None, "kind": "pairs", "chosen_column": "chosen",
                          "rejected_column": "rejected", "prompt_from": "dialogue_prefix"},
    "trl-lib/ultrafeedback_binarized": {"config": None, "kind": "pairs", "chosen_column": "chosen",
                                        "rejected_column": "rejected", "prompt_from": "messages"},
}
