"""Reward models learn on synth-news (issue 4): held-out pairwise accuracy of the built-in
tiny-gpt2 within a stated CPU budget. Slow; the scalar-head and triplet figures are opt-in.
"""
from __future__ import annotations

import os

import pytest

from rmcore.config import RewardModelConfig
from rmcore.rm_trainer import train_reward_model

# --------------------------------------------------------------------------- learning
# Budgets on the built-in tiny-gpt2, CPU, all 200 held-out pairs, 1 torch thread on a shared
# 2-core machine, at the RewardModelConfig defaults (200 steps, batch 16, lr 1e-4): Bradley-Terry
# on the embedding family ≈ 130 CPU s, on the scalar head ≈ 210 CPU s. The per-loss table in
# the README uses the same settings.
LONG = pytest.mark.skipif(not os.environ.get("RMCORE_LONG_TESTS"),
                          reason="another 4-15 min of CPU; set RMCORE_LONG_TESTS=1 to run")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_bradley_terry_reaches_90_percent_on_synth_news(builtin_model_cache, tmp_path) -> None:
    """Issue 4's learning test: BT at the config defaults with the embedding family
    (r = −‖pool(h(x)) − pool(h(y))‖): measured 0.925 held-out at seed 0 (0.935 at seed 1),
    139 CPU s each; wrong entity 0.97 / 0.94, off topic, repetition and invented detail 1.0,
    truncation 0.97 / 1.0, wrong number 0.62 / 0.68.

    The comparison of summary and document is built into the reward: an entity or detail the
    document lacks moves the summary's pooled embedding away from the document's. The one
    type it stays weak on is a changed number (a digit or two in a pooled mean).
    """
    cfg = RewardModelConfig(loss="bradley_terry", family="embedding", steps=200, batch_size=16, lr=1e-4,
                            eval_every=0, eval_pairs=200, device="cpu")  # the defaults, spelt out
    m = train_reward_model(cfg, run_dir=tmp_path / "bt")
    assert m["eval/accuracy"] >= 0.90, {k: v for k, v in m.items() if k.startswith("eval/acc")}
    assert m["eval/accuracy/wrong_entity"] >= 0.9 and m["eval/accuracy/off_topic"] >= 0.9, m


@pytest.mark.slow
@pytest.mark.timeout(1800)
@LONG
def test_scalar_head_bradley_terry_learns_what_the_summary_alone_gives_away(builtin_model_cache,
                                                                          tmp_path) -> None:
    """BT at the config defaults with the last-token scalar head (family auto): measured 0.805
    held-out at seed 0 (0.810 at seed 1); truncation and invented detail 1.0 (both seeds),
    repetition 0.91 / 0.82, off topic 0.91 / 0.94, wrong number 0.50 / 0.59, wrong entity
    0.53 / 0.53.

    Below 0.90: wrong number / entity need the summary checked token by token against the
    document, and the warm-started backbone does not copy names or numbers (its own
    likelihood ranks those pairs right 62% / 65% of the time). Tried without reaching 0.85:
    lr 3e-4 or 1e-3, 300 steps (400 at lr 3e-4), frozen embeddings, an appended EOS, the head's mean
    over the response tokens, an auxiliary LM loss on the chosen summary.
    """
    cfg = RewardModelConfig(loss="bradley_terry", steps=200, batch_size=16, lr=1e-4, eval_every=0,
                            eval_pairs=200, device="cpu")
    m = train_reward_model(cfg, run_dir=tmp_path / "bt")
    assert m["eval/accuracy"] >= 0.72, m
    assert m["eval/accuracy/truncation"] >= 0.9 and m["eval/accuracy/invented_detail"] >= 0.9, m


@pytest.mark.slow
@pytest.mark.timeout(2400)
@LONG
def test_triplet_reaches_90_percent_on_synth_news(builtin_model_cache, tmp_path) -> None:
    """Triplet (embedding reward, m = 1), 300 steps: measured 0.925 held-out accuracy."""
    cfg = RewardModelConfig(loss="triplet", margin=1.0, steps=300, batch_size=16, lr=3e-4, eval_every=0,
                            eval_pairs=200, device="cpu")
    m = train_reward_model(cfg, run_dir=tmp_path / "triplet")
    assert m["eval/accuracy"] >= 0.90, {k: v for k, v in m.items() if k.startswith("eval/acc")}
