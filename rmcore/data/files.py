"""Tasks from local files (CSV, JSONL / JSON, Parquet), and the rows -> TaskData core.

`rows_to_task` is shared with hub.py: it resolves columns (given, or guessed from common
names), shuffles rows with the seed, caps them, splits train/eval, and builds Examples and
PreferencePairs. A row in eval feeds only eval lists, so no prompt leaks across splits.
Every failure is one DataError sentence naming the file and what is wrong, pathological
files included: too big, too many rows, a huge line, or JSON nested past Python's recursion
limit are refused before they can exhaust memory or raise a RecursionError.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import sys
from typing import Any, Mapping, Sequence

from rmcore.config import MAX_ROWS
from rmcore.data.types import Example, PreferencePair, TaskData, make_prompt
from rmcore.errors import DataError

# Far above real datasets (CNN/DailyMail's train split: 1.3 GB as JSONL, 287k rows, articles
# under 100k characters), and low enough that reading a file (all of it, as text) fits in memory.
MAX_FILE_BYTES = 2 * 2**30
MAX_LINE_CHARS = 10_000_000
_DIGITS = sys.get_int_max_str_digits()  # json.loads refuses longer integers with a ValueError

PROMPT_GUESSES = ("prompt", "document", "article", "text", "question", "input")
REFERENCE_GUESSES = ("reference", "summary", "highlights", "completion", "answer", "output", "target")
CHOSEN_GUESSES = ("chosen",)
REJECTED_GUESSES = ("rejected",)
# Columns that hold a raw document rather than a ready prompt: wrapped with make_prompt.
RAW_DOCUMENT_COLUMNS = ("document", "article", "text")
ASSISTANT_TURN = "\n\nAssistant:"


# --- reading: each reader returns (column names, rows as dicts)
def _decode(path: str) -> str:
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        return raw.decode("utf-8-sig")  # tolerate the BOM that spreadsheet exports add
    except UnicodeDecodeError as err:
        raise DataError(f"Data file '{path}' is not UTF-8 text (bad byte at position {err.start}).") from None


def _read_csv(path: str) -> tuple[list[str], list[dict[str, Any]]]:
    reader = csv.reader(io.StringIO(_decode(path), newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return [], []
        rows = []
        for record in reader:
            if not record:
                continue
            _check_row_count(path, len(rows) + 1)
            if len(record) != len(header):
                raise DataError(f"Data file '{path}' is a malformed CSV: line {reader.line_num} has "
                                f"{len(record)} fields but the header has {len(header)}.")
            rows.append(dict(zip(header, record)))
    except csv.Error as err:
        raise DataError(f"Data file '{path}' is a malformed CSV near line {reader.line_num}: {err}.") from None
    return header, rows


def _read_json(path: str) -> tuple[list[str], list[dict[str, Any]]]:
    """JSON Lines (one object per line); a .json file may also be one array of objects."""
    text = _decode(path)
    if path.lower().endswith(".json") and text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"Data file '{path}' is malformed JSON at line {err.lineno}: {err.msg}.") from None
        except ValueError:  # the only other one: an integer past Python's digit limit
            raise DataError(f"Data file '{path}' holds a number of more than {_DIGITS:,} digits.") from None
        _check_row_count(path, len(records) if isinstance(records, list) else 1)
        numbered = list(enumerate(records, start=1))
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            if len(line) > MAX_LINE_CHARS:
                raise DataError(f"Data file '{path}' has a line of {len(line):,} characters (line {number}); "
                                f"at most {MAX_LINE_CHARS:,} are read.")
            _check_row_count(path, len(numbered) + 1)
            try:
                numbered.append((number, json.loads(line)))
            except json.JSONDecodeError as err:
                raise DataError(f"Data file '{path}' is malformed: line {number} is not valid JSON ({err.msg}).") from None
            except ValueError:
                raise DataError(f"Data file '{path}' is malformed: line {number} holds a number of more than "
                                f"{_DIGITS:,} digits.") from None
    columns: dict[str, None] = {}
    for number, record in numbered:
        if not isinstance(record, dict):
            raise DataError(f"Data file '{path}' is malformed: record {number} is not a JSON object.")
        columns.update(dict.fromkeys(record))
    return list(columns), [record for _, record in numbered]


def _read_parquet(path: str) -> tuple[list[str], list[dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        _check_row_count(path, pq.ParquetFile(path).metadata.num_rows)  # from the footer, before reading
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"Data file '{path}' is not a valid Parquet file ({str(err).splitlines()[0]}).") from None
    return table.schema.names, table.to_pylist()


def _check_row_count(path: str, rows: int) -> None:
    if rows > MAX_ROWS:
        raise DataError(f"Data file '{path}' has more than {MAX_ROWS:,} rows; sample or split it.")


READERS = {".csv": _read_csv, ".jsonl": _read_json, ".json": _read_json, ".parquet": _read_parquet}


def load_file(path: str, *, prompt_column: str = "", reference_column: str = "", chosen_column: str = "",
              rejected_column: str = "", seed: int = 0, eval_fraction: float = 0.1,
              max_examples: int | None = None) -> TaskData:
    """Read a CSV / JSONL / JSON / Parquet file into a TaskData (see rows_to_task)."""
    extension = os.path.splitext(path)[1].lower()
    if not os.path.exists(path):
        raise DataError(f"Data file '{path}' was not found.")
    if extension not in READERS:
        raise DataError(f"Data file '{path}' has an unsupported extension '{extension}'; "
                        f"use one of {', '.join(READERS)}.")
    if not os.path.isfile(path):
        raise DataError(f"Data file '{path}' is not a regular file.")
    if os.path.getsize(path) > MAX_FILE_BYTES:
        raise DataError(f"Data file '{path}' is {os.path.getsize(path) / 2**30:.1f} GB; at most "
                        f"{MAX_FILE_BYTES / 2**30:g} GB are read (sample or split it).")
    try:
        columns, rows = READERS[extension](path)
        if not rows:
            raise DataError(f"Data file '{path}' is empty (no rows).")
        return rows_to_task(f"Data file '{path}'", os.path.basename(path), columns, rows,
                            prompt_column=prompt_column, reference_column=reference_column,
                            chosen_column=chosen_column, rejected_column=rejected_column,
                            seed=seed, eval_fraction=eval_fraction, max_examples=max_examples)
    except RecursionError:  # json.loads, or str() of a cell, on lists or objects nested ~1000 deep
        raise DataError(f"Data file '{path}' holds JSON nested too deeply to read.") from None


# --- rows -> TaskData
def _pick(columns: Sequence[str], given: str, guesses: Sequence[str], source: str) -> str:
    """The column to use: `given` if set (it must exist), else the first guess present, else ""."""
    if given:
        if given not in columns:
            raise DataError(f"{source} needs columns {given}; found: {', '.join(map(str, columns))}.")
        return given
    by_lower = {str(c).lower(): c for c in columns}
    return next((by_lower[g] for g in guesses if g in by_lower), "")


def _text(value: Any, *, role: str) -> str:
    """A cell as text; chat message lists give the last `role` turn ("user" / "assistant")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, list):
        turns = [m.get("content", "") for m in value if isinstance(m, Mapping) and m.get("role") == role]
        return str(turns[-1]) if turns else ""
    return str(value)


def _split_dialogue(dialogue: str) -> tuple[str, str]:
    """hh-rlhf style text -> (prompt up to and including the last Assistant turn, response)."""
    cut = dialogue.rfind(ASSISTANT_TURN)
    if cut < 0:
        return "", dialogue
    cut += len(ASSISTANT_TURN)
    return dialogue[:cut], dialogue[cut:].strip()


def _pair_texts(row: Mapping[str, Any], prompt: str, chosen_col: str, rejected_col: str) -> tuple[str, str, str]:
    """(prompt, chosen, rejected); without a prompt column it comes from the responses:
    the user turn of chat lists, or the shared dialogue prefix of hh-rlhf style text."""
    chosen, rejected = row.get(chosen_col), row.get(rejected_col)
    if prompt:
        return prompt, _text(chosen, role="assistant"), _text(rejected, role="assistant")
    if isinstance(chosen, list):
        return (_text(chosen, role="user"), _text(chosen, role="assistant"),
                _text(rejected, role="assistant"))
    prompt, chosen_text = _split_dialogue(_text(chosen, role="assistant"))
    return prompt, chosen_text, _split_dialogue(_text(rejected, role="assistant"))[1]


def _prompt(row: Mapping[str, Any], column: str) -> str:
    text = _text(row.get(column), role="user") if column else ""
    if text.strip() and column.lower() in RAW_DOCUMENT_COLUMNS and not text.rstrip().endswith("TL;DR:"):
        return make_prompt(text)
    return text


def rows_to_task(source: str, name: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]], *,
                 prompt_column: str = "", reference_column: str = "", chosen_column: str = "",
                 rejected_column: str = "", seed: int = 0, eval_fraction: float = 0.1,
                 max_examples: int | None = None) -> TaskData:
    """Build a TaskData from rows (dicts; a datasets.Dataset works too).

    Summaries come from prompt + reference columns, pairs from chosen + rejected (with
    prompt, or derived from chat lists / dialogues); pair-only data also gives Examples
    (prompt, chosen). Rows are shuffled with `seed`, capped at `max_examples`, then the
    first round(eval_fraction · n) rows (at least one, if any) go to eval.
    """
    prompt_col = _pick(columns, prompt_column, PROMPT_GUESSES, source)
    reference_col = _pick(columns, reference_column, REFERENCE_GUESSES, source)
    chosen_col = _pick(columns, chosen_column, CHOSEN_GUESSES, source)
    rejected_col = _pick(columns, rejected_column, REJECTED_GUESSES, source)
    has_pairs = bool(chosen_col and rejected_col)
    if not ((prompt_col and reference_col) or has_pairs):
        raise DataError(f"{source} needs columns prompt + reference (or document/summary, ...) or chosen + "
                        f"rejected; found: {', '.join(map(str, columns))}.")

    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    order = order[:max_examples] if max_examples else order
    n_eval = round(eval_fraction * len(order))
    if eval_fraction > 0 and len(order) > 1:
        n_eval = min(max(n_eval, 1), len(order) - 1)
    eval_rows = set(order[:n_eval])

    splits: dict[bool, tuple[list[Example], list[PreferencePair]]] = {True: ([], []), False: ([], [])}
    for index in order:
        row = rows[index]
        examples, pairs = splits[index in eval_rows]
        prompt = _prompt(row, prompt_col)
        if has_pairs:
            pair_prompt, chosen, rejected = _pair_texts(row, prompt, chosen_col, rejected_col)
            if pair_prompt.strip() and chosen.strip() and rejected.strip():
                pairs.append(PreferencePair(prompt=pair_prompt, chosen=chosen, rejected=rejected))
                if not reference_col:
                    examples.append(Example(prompt=pair_prompt, reference=chosen))
        reference = _text(row.get(reference_col), role="assistant") if reference_col else ""
        if prompt.strip() and reference.strip():
            examples.append(Example(prompt=prompt, reference=reference))
    train, pairs_train = splits[False]
    eval_, pairs_eval = splits[True]
    if not (train or pairs_train):
        raise DataError(f"{source} has no usable rows: every row lacks a prompt, reference or response.")
    return TaskData(name=name, train=train, eval=eval_, pairs_train=pairs_train, pairs_eval=pairs_eval)
