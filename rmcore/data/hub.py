"""Tasks from Hugging Face Hub datasets (or local dataset folders) via `datasets.load_dataset`.

The machine running rmcore may have no hub access, so reaching the hub is one clearly
reported failure (HubUnavailableError) rather than a stack trace; datasets already in
the local cache still load offline, because `load_dataset` checks its cache itself.
Column mappings of known datasets live in HUB_DATASET_PRESETS; rows go through the same
rows_to_task as local files.
"""
from __future__ import annotations

from rmcore.data.types import HUB_DATASET_PRESETS, TaskData
from rmcore.data.files import rows_to_task
from rmcore.errors import DataError, HubUnavailableError


def _offline_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the hub could not be reached".

    datasets wraps most of them in the built-in ConnectionError (OfflineModeIsEnabled is
    one too); the raw httpx / huggingface_hub ones can still escape while data files
    download, so they are listed when those packages are importable.
    """
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        import httpx
        errors += [httpx.ConnectError, httpx.TimeoutException]
    except ImportError:
        pass
    try:
        from huggingface_hub.errors import LocalEntryNotFoundError
        errors.append(LocalEntryNotFoundError)
    except ImportError:
        pass
    return tuple(errors)


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(err).__name__


def load_hub_dataset(name: str, *, split: str = "train", config: str | None = None, prompt_column: str = "",
                     reference_column: str = "", chosen_column: str = "", rejected_column: str = "",
                     seed: int = 0, eval_fraction: float = 0.1, max_examples: int | None = None,
                     trust_remote_code: bool = False, cache_dir: str | None = None) -> TaskData:
    """Load `split` of a hub dataset (or local dataset folder) and map its columns to a TaskData.

    Preset datasets (HUB_DATASET_PRESETS) bring their config and column names; explicit
    column arguments win over the preset, and columns still "" are guessed. The eval set is
    a seeded `eval_fraction` of the loaded split (see rows_to_task).
    """
    import datasets

    preset = HUB_DATASET_PRESETS.get(name, {})
    config = config if config is not None else preset.get("config")
    columns = {key: given or preset.get(key, "") for key, given in (
        ("prompt_column", prompt_column), ("reference_column", reference_column),
        ("chosen_column", chosen_column), ("rejected_column", rejected_column))}
    # Newer datasets releases dropped loading scripts and only log when asked for them;
    # pass the flag only when the user turned it on, so older releases still honour it.
    extra = {"trust_remote_code": True} if trust_remote_code else {}
    try:
        dataset = datasets.load_dataset(name, config, split=split, cache_dir=cache_dir, **extra)
    except _offline_errors():
        raise HubUnavailableError(
            f"Cannot reach the Hugging Face Hub to load dataset '{name}' and it is not cached; download it "
            f"on a connected machine or pass a local CSV/JSONL/Parquet file.") from None
    except datasets.exceptions.DatasetNotFoundError:
        raise DataError(f"Dataset '{name}' was not found on the Hugging Face Hub (or is gated); check the "
                        f"name or pass a local CSV/JSONL/Parquet file.") from None
    except (ValueError, FileNotFoundError, datasets.exceptions.DatasetsError) as err:
        raise DataError(f"Cannot load split '{split}' of dataset '{name}': {_first_line(err)}.") from None
    if len(dataset) == 0:
        raise DataError(f"Split '{split}' of dataset '{name}' is empty (no rows).")
    return rows_to_task(f"Dataset '{name}'", name, dataset.column_names, dataset, seed=seed,
                        eval_fraction=eval_fraction, max_examples=max_examples, **columns)
