"""Each one-click experiment, at its shipped budget on the built-in model, shows what its card
promises (ui.presets: the `expect` captions hold the measured values these tests bound).

Slow: the built-in model is built once per cache (conftest), then each run takes 10-20 s.
These are also the suite's learning tests on the built-in model: the hacking test checks that
GRPO raises the (eval) reward it is given. The built-in model starts at greedy eval ROUGE-L
0.96, so a test that GRPO lifts ROUGE-L itself (the previous model's, from 0.48) has no room
left to pass by more than noise.
"""
from __future__ import annotations

import pytest

import rmcore
from ui.presets import KL_LEASH, kl_leash, quick_tour, reward_hacking

pytestmark = pytest.mark.slow


def run(cfg):
    reports = []
    rmcore.train(cfg, on_step=reports.append)
    evals = [r.metrics for r in reports if "eval/rougeL" in r.metrics]
    train_steps = [r.metrics for r in reports[1:]]
    answers = [g["completion"] for g in reports[-1].generations if g["split"] == "eval"]
    return evals[0], evals[-1], train_steps, answers


def mean(steps, key):
    return sum(s[key] for s in steps) / len(steps)


def test_quick_tour_keeps_readable_answers_and_the_losses_move_apart(builtin_model_cache):
    starts, ends, kls = {}, {}, {}
    for cfg in quick_tour():
        start, end, steps, answers = run(cfg)
        starts[cfg.loss] = start
        assert start["eval/rougeL"] > 0.9 and start["eval/entity_acc"] >= 0.8  # the warm start copies
        assert end["eval/rougeL"] > 0.9, (cfg.loss, end["eval/rougeL"])          # and stays readable
        assert all(len(a.split()) >= 8 for a in answers)
        ends[cfg.loss], kls[cfg.loss] = end, mean(steps[-5:], "policy/kl")
    # Measured: KL 0.11 (REINFORCE), 2.6 (PPO), 0.26 (GRPO). GRPO's entity copying on the 16 eval
    # prompts went 0.88 -> 0.94 on one CPU and 0.88 -> 0.81 on another (float32 kernels differ,
    # and 30 RL steps amplify it): it stays within two prompts of its start, not above it.
    assert kls["ppo"] > 5 * max(kls["reinforce"], kls["grpo"])
    for loss in ("reinforce", "ppo", "grpo"):
        assert ends[loss]["eval/entity_acc"] >= starts[loss]["eval/entity_acc"] - 2 / 16, loss


def test_reward_hacking_reward_climbs_while_rouge_and_fluency_fall(builtin_model_cache):
    sane, hacked = reward_hacking()
    _, sane_end, _, _ = run(sane)
    start, end, steps, answers = run(hacked)
    # Measured: reward -1.40 -> -0.11, eval ROUGE-L 0.96 -> 0.39, fluency 0.96 -> 0.16.
    assert mean(steps[-5:], "reward/total") > mean(steps[:5], "reward/total") + 0.5
    assert end["eval/reward"] > start["eval/reward"] + 0.5
    assert end["eval/rougeL"] < start["eval/rougeL"] - 0.3
    assert end["eval/fluency"] < start["eval/fluency"] - 0.3
    assert sane_end["eval/rougeL"] > end["eval/rougeL"] + 0.3  # the length term did it


def test_kl_leash_keeps_the_policy_near_the_start(builtin_model_cache):
    free, leashed = kl_leash()
    assert leashed.kl_coef == KL_LEASH and free.kl_coef == 0
    start, free_end, free_steps, _ = run(free)
    _, leashed_end, leashed_steps, answers = run(leashed)
    # Measured: KL 24 vs 2.4; eval ROUGE-L 0.39 vs 0.90.
    assert mean(leashed_steps[-5:], "policy/kl") < mean(free_steps[-5:], "policy/kl") / 4
    assert leashed_end["eval/rougeL"] > start["eval/rougeL"] - 0.15
    assert free_end["eval/rougeL"] < start["eval/rougeL"] - 0.3
