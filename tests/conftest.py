"""Shared fixtures: a tiny local causal LM (fast), the built-in model cache, a fresh runs dir.

The built-in tiny-gpt2 takes a few minutes to build, so it goes into one cache for the whole
session (`.cache/models` in the checkout, git-ignored): CI builds it once, local reruns
reuse it. Tests that need a model but not the built-in one use `tiny_lm_path` (seconds).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL_CACHE = Path(os.environ.get("RMCORE_MODEL_CACHE", ROOT / ".cache" / "models"))


def pytest_configure(config):
    os.environ["RMCORE_MODEL_CACHE"] = str(MODEL_CACHE)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")       # tests never reach for a hub
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def torch_threads():
    """Every test starts on the session's thread count: a Runner caps torch at cores - 1 for
    the process (a core for the UI), which left every later test on 1 of 2 cores."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch) -> Path:
    """Every test writes its runs into its own folder."""
    path = tmp_path / "runs"
    monkeypatch.setenv("RMCORE_RUNS_DIR", str(path))
    return path


@pytest.fixture
def runner(runs_dir):
    """A Runner on this test's runs folder, shut down (every run ended) afterwards."""
    from rmcore.runner import Runner

    made = Runner(runs_dir)
    yield made
    assert made.shutdown(timeout=60)
    made.store.close()


@pytest.fixture
def fresh_runner(runs_dir):
    """For app tests: a cleared resource cache (so the app builds its runner on this test's
    runs folder), and no run left going afterwards."""
    import streamlit as st

    from rmcore.runner import get_runner

    st.cache_resource.clear()
    yield
    assert get_runner(runs_dir).shutdown(timeout=60)
    st.cache_resource.clear()


@pytest.fixture(scope="session")
def tiny_lm_path(tmp_path_factory) -> str:
    """A 1-layer random GPT-2 with a BPE tokenizer trained on synth-news, saved to disk."""
    from rmcore.backbones import new_gpt2, train_tokenizer
    from rmcore.data.synth_news import load_synth_news

    task = load_synth_news(seed=0, n_train=300, n_eval=20)
    tokenizer = train_tokenizer([e.prompt for e in task.train] + [e.reference for e in task.train],
                                vocab_size=600)
    model = new_gpt2(tokenizer, n_layer=1, n_embd=32, n_head=2, n_positions=256, seed=0)
    path = tmp_path_factory.mktemp("tiny-lm")
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def builtin_model_cache() -> Path:
    """The real built-in tiny-gpt2, built once per cache (minutes the first time)."""
    from rmcore.backbones import ensure_builtin

    ensure_builtin(MODEL_CACHE)
    return MODEL_CACHE


@pytest.fixture(scope="session")
def warm150_path(tmp_path_factory) -> str:
    """The built-in recipe warm-started for 150 steps instead of 500 (about 1.5 min to build):
    eval ROUGE-L 0.52 on the 16 eval prompts, where the shipped model's 0.96 leaves RL no room,
    so learning tests can see a rise (README: The built-in model)."""
    from rmcore.warmstart import build_tiny_gpt2

    folder = tmp_path_factory.mktemp("warm150")
    build_tiny_gpt2(folder, steps=150, train_items=4000)
    return str(folder)
