"""Tests for rmcore.data: the synth-news generator, file loaders and the hub loader (offline)."""
from __future__ import annotations

import csv
import json
import random
import re
import subprocess
import sys

import pytest

from rmcore.data import (HUB_DATASET_PRESETS, TASKS, Example, PreferencePair, TaskData, load_task,
                         make_prompt)
from rmcore.data.files import load_file
from rmcore.data.hub import load_hub_dataset
from rmcore.data.synth_news import (CORRUPTIONS, EVENT_TYPES, corrupt, generate_items, load_synth_news)
from rmcore.errors import DataError, HubUnavailableError

NUMBER = re.compile(r"\$?\d[\d,]*(?:\.\d+)?(?:-\d+)?")


def sentences(text: str) -> list[str]:
    """Split after . ! ? (or a closing quote) followed by a space and a capital or quote."""
    return re.split(r'(?<=[.!?])\s+(?=["A-Z])', text.strip())


@pytest.fixture(scope="module")
def items():
    return generate_items(660, seed=7)


@pytest.fixture(scope="module")
def task():
    return load_synth_news(seed=5, n_train=300, n_eval=120)


# --- synth-news: shape and determinism
def test_same_seed_same_data_other_seed_other_data():
    a, b = load_synth_news(seed=11, n_train=50, n_eval=20), load_synth_news(seed=11, n_train=50, n_eval=20)
    assert a == b
    assert load_synth_news(seed=12, n_train=50, n_eval=20).train != a.train


def test_sizes_types_and_prompt_format(task):
    assert isinstance(task, TaskData) and task.name == "synth-news"
    assert (len(task.train), len(task.eval), len(task.pairs_train), len(task.pairs_eval)) == (300, 120, 300, 120)
    assert all(isinstance(e, Example) and e.prompt.endswith("\nTL;DR:") for e in task.train + task.eval)
    assert all(isinstance(p, PreferencePair) for p in task.pairs_train + task.pairs_eval)
    assert make_prompt("A b.") == "A b.\nTL;DR:"
    assert TASKS["synth-news"] is load_synth_news


def test_train_and_eval_share_no_document(task):
    train_prompts = {e.prompt for e in task.train}
    eval_prompts = {e.prompt for e in task.eval}
    assert len(train_prompts) == 300 and len(eval_prompts) == 120
    assert not train_prompts & eval_prompts
    assert not {p.prompt for p in task.pairs_train} & {p.prompt for p in task.pairs_eval}


def test_every_event_type_appears_in_train_and_eval(task):
    assert len(EVENT_TYPES) >= 8
    assert {"earnings", "acquisition", "launch", "layoffs", "weather", "sports", "election",
            "science"} <= set(EVENT_TYPES)
    items = generate_items(420, seed=5)   # load_synth_news draws the same items, eval first
    assert [make_prompt(i.document) for i in items] == [e.prompt for e in task.eval + task.train]
    assert {i.event_type for i in items[:120]} == set(EVENT_TYPES)
    assert {i.event_type for i in items[120:]} == set(EVENT_TYPES)


def test_lead_sentence_holds_the_facts_the_summary_states(items):
    for item in items:
        lead = sentences(item.document)[0]
        assert lead == item.lead
        assert item.entity in item.summary and item.number in item.summary
        assert item.entity in lead and item.number in lead


def test_summary_is_one_sentence_of_10_to_22_words(items):
    for item in items:
        assert 10 <= len(item.summary.split()) <= 22, item.summary
        assert len(sentences(item.summary)) == 1 and item.summary.endswith(".")


def test_document_has_3_to_6_sentences_and_at_most_90_words(items):
    counts = [len(sentences(item.document)) for item in items]
    assert min(counts) >= 3 and max(counts) <= 6
    assert set(counts) == {3, 4, 5, 6}
    assert max(len(item.document.split()) for item in items) <= 90


def test_names_are_many_and_varied(items):
    assert len({item.entity for item in items}) > 0.8 * len(items)


def test_copying_the_lead_scores_well_and_a_distractor_does_not(items):
    """The reference mirrors the lead, so copying facts is learnable; distractors score low."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    lead = [scorer.score(i.summary, i.lead)["rougeL"].fmeasure for i in items[:200]]
    other = [scorer.score(i.summary, sentences(i.document)[1])["rougeL"].fmeasure for i in items[:200]]
    assert sum(lead) / len(lead) > 0.8
    assert sum(other) / len(other) < 0.25


# --- synth-news: corruptions
def test_each_corruption_is_well_represented_and_differs_from_chosen(task):
    for pairs in (task.pairs_train, task.pairs_eval):
        counts = {kind: sum(p.corruption == kind for p in pairs) for kind in CORRUPTIONS}
        assert min(counts.values()) >= len(pairs) // len(CORRUPTIONS)
        assert all(p.rejected != p.chosen and p.rejected.strip() for p in pairs)
    assert [p.chosen for p in task.pairs_eval] == [e.reference for e in task.eval]


def test_wrong_number_changes_only_the_number(items):
    rng = random.Random(0)
    for item in items[:110]:
        rejected = corrupt(item, "wrong_number", rng)
        assert item.number not in rejected
        assert set(NUMBER.findall(rejected)) != set(NUMBER.findall(item.summary))
        prefix, suffix = item.summary.split(item.number, 1)
        new_number = rejected[len(prefix):len(rejected) - len(suffix)]
        assert rejected.startswith(prefix) and rejected.endswith(suffix) and NUMBER.search(new_number)


def test_wrong_entity_swaps_in_a_name_absent_from_the_document(items):
    rng = random.Random(1)
    for item in items[:110]:
        rejected = corrupt(item, "wrong_entity", rng)
        assert item.entity not in rejected
        prefix, suffix = item.summary.split(item.entity, 1)
        new_entity = rejected[len(prefix):len(rejected) - len(suffix)]
        assert rejected.startswith(prefix) and rejected.endswith(suffix)
        assert new_entity and new_entity not in item.document


def test_truncation_is_a_shorter_prefix(items):
    rng = random.Random(2)
    for item in items[:110]:
        rejected = corrupt(item, "truncation", rng)
        assert item.summary.startswith(rejected)
        assert 3 <= len(rejected.split()) < len(item.summary.split())
        assert not rejected.endswith(".")


def test_repetition_repeats_a_phrase(items):
    rng = random.Random(3)
    for item in items[:110]:
        words = [w.strip(".,") for w in corrupt(item, "repetition", rng).split()]
        trigrams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
        assert max(trigrams.count(t) for t in trigrams) >= 2
        assert len(words) >= len(item.summary.split()) + 3


def test_off_topic_is_about_another_event(items):
    rng = random.Random(4)
    for item in items[:110]:
        rejected = corrupt(item, "off_topic", rng)
        assert item.entity not in rejected and rejected != item.summary
        assert 10 <= len(rejected.split()) <= 22


def test_invented_detail_adds_a_name_not_in_the_document(items):
    rng = random.Random(5)
    for item in items[:110]:
        rejected = corrupt(item, "invented_detail", rng)
        added = rejected[len(item.summary) - 1:]
        assert rejected.startswith(item.summary[:-1]) and len(added) > 5
        names = re.findall(r"[A-Z][a-z]+", added)
        assert names and any(name not in item.document for name in names)


def test_unknown_corruption_is_rejected(items):
    with pytest.raises(ValueError, match="wrong_number"):
        corrupt(items[0], "typo", random.Random(0))


def test_load_task_builtin_respects_max_examples():
    data = load_task("synth-news", seed=2, max_examples=40)
    assert len(data.train) == 40 and data.train == load_synth_news(seed=2, n_train=40).train
    full = load_synth_news(seed=2)    # the eval set does not move with the train size
    assert (data.eval, data.pairs_eval) == (full.eval, full.pairs_eval)
    assert data.train == full.train[:40]


# --- files
def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def test_csv_round_trip_with_explicit_columns(tmp_path):
    rows = [(f"Doc {i}, with \"quotes\"\nand a newline.", f"sum {i}", i) for i in range(10)]
    path = write_csv(tmp_path / "d.csv", ["body", "tldr", "id"], rows)
    data = load_task(path, prompt_column="body", reference_column="tldr", eval_fraction=0.2, seed=3)
    assert (len(data.train), len(data.eval)) == (8, 2)
    got = {(e.prompt, e.reference) for e in data.train + data.eval}
    assert got == {(doc, ref) for doc, ref, _ in rows}      # a custom prompt column is used as is
    assert data.pairs_train == [] and data.name == "d.csv"


def test_guessed_document_column_is_wrapped_in_the_prompt_format(tmp_path):
    path = write_csv(tmp_path / "news.csv", ["Article", "highlights"], [(f"Story {i}.", f"S{i}") for i in range(5)])
    data = load_file(path, eval_fraction=0.0)
    assert sorted(e.prompt for e in data.train) == [make_prompt(f"Story {i}.") for i in range(5)]
    assert data.eval == []


def test_jsonl_pairs_also_give_examples_from_chosen(tmp_path):
    records = [{"prompt": f"p{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(20)]
    for name in ("pairs.jsonl", "pairs.json"):
        data = load_task(write_jsonl(tmp_path / name, records), eval_fraction=0.25, seed=1)
        assert (len(data.pairs_train), len(data.pairs_eval)) == (15, 5)
        assert {(p.prompt, p.chosen, p.rejected) for p in data.pairs_train + data.pairs_eval} == \
            {(r["prompt"], r["chosen"], r["rejected"]) for r in records}
        assert [(e.prompt, e.reference) for e in data.train] == [(p.prompt, p.chosen) for p in data.pairs_train]
    array = tmp_path / "array.json"
    array.write_text(json.dumps(records), encoding="utf-8")
    assert len(load_task(str(array)).pairs_train) == 18


def test_parquet_with_summaries_and_pairs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"document": [f"d{i}" for i in range(10)], "summary": [f"s{i}" for i in range(10)],
                      "chosen": [f"c{i}" for i in range(10)], "rejected": [f"r{i}" for i in range(10)]})
    path = str(tmp_path / "both.parquet")
    pq.write_table(table, path)
    data = load_task(path, eval_fraction=0.1)
    assert len(data.train) == 9 and len(data.pairs_train) == 9 and len(data.eval) == 1
    assert {(e.prompt, e.reference) for e in data.train + data.eval} == \
        {(make_prompt(f"d{i}"), f"s{i}") for i in range(10)}


def test_eval_split_is_seeded_disjoint_and_capped(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"question": f"q{i}", "answer": f"a{i}"} for i in range(50)])
    first, again, other = (load_task(path, seed=s, eval_fraction=0.2) for s in (0, 0, 1))
    assert first == again and first.eval != other.eval
    assert not {e.prompt for e in first.train} & {e.prompt for e in first.eval}
    assert len(first.train) + len(first.eval) == 50 and len(first.eval) == 10
    capped = load_task(path, max_examples=20, eval_fraction=0.1)
    assert (len(capped.train), len(capped.eval)) == (18, 2)


def test_dialogue_and_chat_pairs_derive_the_prompt(tmp_path):
    dialogue = "\n\nHuman: Hi?\n\nAssistant: Hello.\n\nHuman: Capital of France?\n\nAssistant:"
    hh = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": dialogue + " Paris.", "rejected": dialogue + " Rome."}] * 2)
    pair = load_task(hh, eval_fraction=0.0).pairs_train[0]
    assert (pair.prompt, pair.chosen, pair.rejected) == (dialogue, "Paris.", "Rome.")
    chat = [{"chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
             "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]}] * 2
    pair = load_task(write_jsonl(tmp_path / "uf.jsonl", chat), eval_fraction=0.0).pairs_train[0]
    assert (pair.prompt, pair.chosen, pair.rejected) == ("2+2?", "4", "5")


@pytest.mark.parametrize("name, content, words", [
    ("missing.csv", None, ["not found"]),
    ("data.txt", b"prompt,reference\na,b\n", ["unsupported extension", ".txt"]),
    ("ragged.csv", b"prompt,reference\na,b\nc,d,e\n", ["malformed CSV", "line 3"]),
    ("quote.csv", b'prompt,reference\n"a"x,b\n', ["malformed CSV"]),
    ("bad.jsonl", b'{"prompt": "a", "reference": "b"}\n{"prompt": \n', ["malformed", "line 2"]),
    ("list.jsonl", b'{"prompt": "a", "reference": "b"}\n[1, 2]\n', ["malformed", "record 2"]),
    ("bad.parquet", b"this is not parquet", ["Parquet"]),
    ("empty.csv", b"", ["empty", "no rows"]),
    ("header.csv", b"prompt,reference\n", ["empty", "no rows"]),
    ("blank.jsonl", b"\n\n", ["empty", "no rows"]),
    ("latin.csv", "prompt,reference\ncaf\u00e9,b\n".encode("latin-1"), ["not UTF-8"]),
    ("cols.csv", b"a,b,c\n1,2,3\n", ["needs columns", "found: a, b, c"]),
    ("blanks.csv", b"prompt,reference\n,x\ny,\n", ["no usable rows"]),
])
def test_bad_files_give_one_clear_data_error(tmp_path, name, content, words):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_task(str(path))
    message = str(info.value)
    assert all(word in message for word in words), message
    assert name in message and "\n" not in message


def test_explicit_column_that_is_missing_is_named(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["prompt", "reference"], [("a", "b")])
    with pytest.raises(DataError, match=r"needs columns summary_text; found: prompt, reference\."):
        load_task(path, reference_column="summary_text")


@pytest.mark.parametrize("kwargs", [{"eval_fraction": 1.0}, {"max_examples": 0}])
def test_bad_arguments_and_empty_name(kwargs):
    with pytest.raises(DataError):
        load_task("synth-news", **kwargs)
    with pytest.raises(DataError, match="No task given"):
        load_task("  ")


# --- hub
OFFLINE_SENTENCE = ("Cannot reach the Hugging Face Hub to load dataset '{}' and it is not cached; download it "
                    "on a connected machine or pass a local CSV/JSONL/Parquet file.")


def test_offline_hub_in_a_fresh_process_gives_hub_unavailable(tmp_path):
    """datasets reads HF_*_OFFLINE at import, so a fresh process is the faithful check."""
    code = ("from rmcore.data import load_task\n"
            "for name in ('no-such-task-xyz', 'someone/no-such-dataset'):\n"
            "    try: load_task(name)\n"
            "    except Exception as err: print(type(err).__name__, '|', err)\n")
    env = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    lines = out.stdout.strip().splitlines()
    assert lines == [f"HubUnavailableError | {OFFLINE_SENTENCE.format(n)}"
                     for n in ("no-such-task-xyz", "someone/no-such-dataset")], out.stderr[-2000:]


def test_offline_hub_with_monkeypatched_env(monkeypatch, tmp_path):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Both libraries copy the env into constants when first imported; mirror the env there.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnavailableError) as info:
        load_hub_dataset("no-such-task-xyz", cache_dir=str(tmp_path / "cache"))
    assert str(info.value) == OFFLINE_SENTENCE.format("no-such-task-xyz")


@pytest.fixture()
def dataset_dir(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [{"article": f"Article {i}.", "highlights": f"H{i}", "n": i} for i in range(12)])
    return folder


def test_hub_loader_reads_a_local_dataset_folder(dataset_dir, tmp_path):
    cache = str(tmp_path / "cache")
    guessed = load_hub_dataset(str(dataset_dir), split="train", cache_dir=cache, eval_fraction=0.25)
    assert (len(guessed.train), len(guessed.eval)) == (9, 3)
    assert {(e.prompt, e.reference) for e in guessed.train + guessed.eval} == \
        {(make_prompt(f"Article {i}."), f"H{i}") for i in range(12)}
    explicit = load_hub_dataset(str(dataset_dir), split="train", cache_dir=cache, prompt_column="highlights",
                                reference_column="n", max_examples=4, eval_fraction=0.0)
    assert len(explicit.train) == 4
    assert all(e.prompt.startswith("H") and e.reference.isdigit() for e in explicit.train)
    with pytest.raises(DataError, match=r"needs columns body; found: article, highlights, n\."):
        load_hub_dataset(str(dataset_dir), cache_dir=cache, prompt_column="body")


def test_presets_bring_config_and_columns(monkeypatch, dataset_dir, tmp_path):
    import datasets

    real_load, calls = datasets.load_dataset, []

    def redirect(name, config=None, **kwargs):   # the hub dataset's place is taken by a local folder
        calls.append((name, config))
        return real_load(str(dataset_dir), **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", redirect)
    data = load_hub_dataset("cnn_dailymail", cache_dir=str(tmp_path / "cache"), eval_fraction=0.0)
    assert calls == [("cnn_dailymail", "3.0.0")]
    assert len(data.train) == 12 and data.train[0].prompt.endswith("\nTL;DR:")
    assert {"cnn_dailymail", "xsum", "trl-lib/tldr", "Anthropic/hh-rlhf",
            "trl-lib/ultrafeedback_binarized"} <= set(HUB_DATASET_PRESETS)
    assert {p["kind"] for p in HUB_DATASET_PRESETS.values()} == {"summaries", "pairs"}


def test_dataset_not_found_on_the_hub_is_a_data_error(monkeypatch):
    import datasets

    def missing(name, *args, **kwargs):
        raise datasets.exceptions.DatasetNotFoundError(f"Dataset '{name}' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", missing)
    with pytest.raises(DataError, match="'nobody/nothing' was not found on the Hugging Face Hub"):
        load_task("nobody/nothing")
