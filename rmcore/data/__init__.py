"""Tasks: prompts with reference summaries, and preference pairs, from three sources.

- built-in generators (TASKS, e.g. ``synth-news``), offline and deterministic;
- local files (CSV, JSONL, Parquet) through ``files.py``;
- Hugging Face Hub datasets through ``hub.py`` (real ``datasets.load_dataset``).

``load_task`` picks the source from the name; every failure is one DataError (or
HubUnavailableError) sentence the CLI and the app can show as is.
"""
from __future__ import annotations

import os
from typing import Callable

from rmcore.data.synth_news import load_synth_news
from rmcore.data.types import (  # noqa: F401  (the records, re-exported)
    HUB_DATASET_PRESETS, Example, PreferencePair, TaskData, make_prompt)
from rmcore.errors import DataError

FILE_EXTENSIONS = (".csv", ".jsonl", ".json", ".parquet")

TASKS: dict[str, Callable[..., TaskData]] = {"synth-news": load_synth_news}


def load_task(task: str, *, split: str = "train", seed: int = 0, prompt_column: str = "",
              reference_column: str = "", chosen_column: str = "", rejected_column: str = "",
              max_examples: int | None = None, eval_fraction: float = 0.1) -> TaskData:
    """Load a built-in task, a local file or a hub dataset, chosen by the shape of `task`.

    A name in TASKS is built-in; a path ending in .csv/.jsonl/.json/.parquet (or any existing
    file) is read by files.py; anything else is a hub dataset name or a local dataset folder.
    Column arguments left "" are guessed from common names.
    """
    task = task.strip()
    if not task:
        raise DataError(f"No task given; pick a built-in task ({', '.join(TASKS)}), a data file, or a hub dataset.")
    if max_examples is not None and max_examples < 1:
        raise DataError(f"max_examples must be a positive number of examples, got {max_examples}.")
    if not 0.0 <= eval_fraction < 1.0:
        raise DataError(f"eval_fraction must be in [0, 1), got {eval_fraction}.")
    if task in TASKS:
        sizes = {"n_train": max_examples} if max_examples else {}
        return TASKS[task](seed=seed, **sizes)
    columns = {"prompt_column": prompt_column, "reference_column": reference_column,
               "chosen_column": chosen_column, "rejected_column": rejected_column}
    common = {"seed": seed, "eval_fraction": eval_fraction, "max_examples": max_examples}
    if task.lower().endswith(FILE_EXTENSIONS) or os.path.isfile(task):
        from rmcore.data.files import load_file
        return load_file(task, **columns, **common)
    from rmcore.data.hub import load_hub_dataset
    return load_hub_dataset(task, split=split, **columns, **common)
