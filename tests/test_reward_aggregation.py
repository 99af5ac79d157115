"""Multi-term reward aggregation and the adaptive KL controller (issue 15 items 7 and 8): hand
computations, the zero-variance rule, and both at work in a run (logged, charted, resumed)."""
import math

import pytest
import torch

from rmcore.errors import ConfigError
from rmcore.kl import adaptive_kl_coef
from rmcore.rewards import RewardBreakdown
from rmcore.rewards.aggregate import aggregate_rewards, group_zscores, signal_shares
from rmcore.config import TrainConfig

D = torch.float64
EPS = 1e-4


def breakdown(terms, weights):
    total = [sum(weights[k] * terms[k][i] for k in terms) for i in range(len(next(iter(terms.values()))))]
    return RewardBreakdown(total=total, terms=terms, weights=weights)


def test_group_zscores_hand_values_and_ties_give_zero():
    z = group_zscores(torch.tensor([1.0, 3.0, 5.0, 5.0], dtype=D), 2)
    s = math.sqrt(2)  # unbiased std of (1, 3)
    assert z.tolist() == pytest.approx([-1 / (s + EPS), 1 / (s + EPS), 0.0, 0.0])
    assert group_zscores(torch.tensor([0.1, 0.1, 0.1], dtype=D), 3).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        group_zscores(torch.tensor([1.0, 2.0, 3.0]), 2)


def test_normalize_per_term_is_the_weighted_sum_of_per_group_zscores():
    rouge, diversity = [0.2, 0.4, 0.1, 0.1], [1.0, 0.5, 0.3, 0.9]
    b = breakdown({"rouge": rouge, "diversity": diversity}, {"rouge": 1.0, "diversity": 0.1})
    got = aggregate_rewards(b, 2, "normalize_per_term")
    sd_r, sd_d1, sd_d2 = math.sqrt(0.02), math.sqrt(0.125), math.sqrt(0.18)  # unbiased stds of the groups
    want = [-0.1 / (sd_r + EPS) + 0.1 * 0.25 / (sd_d1 + EPS), 0.1 / (sd_r + EPS) - 0.1 * 0.25 / (sd_d1 + EPS),
            0.1 * -0.3 / (sd_d2 + EPS), 0.1 * 0.3 / (sd_d2 + EPS)]  # rouge ties in group 2: 0
    assert got.tolist() == pytest.approx(want, rel=1e-6)
    assert got.dtype == torch.float32
    assert aggregate_rewards(b, 2, "sum").tolist() == pytest.approx(b.total)


def test_a_term_without_variance_contributes_nothing():
    base = {"rouge": [0.2, 0.4, 0.7, 0.1]}
    with_flat = {**base, "fluency": [0.33, 0.33, 0.33, 0.33]}
    a = aggregate_rewards(breakdown(base, {"rouge": 1.0}), 2, "normalize_per_term")
    b = aggregate_rewards(breakdown(with_flat, {"rouge": 1.0, "fluency": 50.0}), 2, "normalize_per_term")
    assert b.tolist() == a.tolist()
    with pytest.raises(ConfigError, match="sum, normalize_per_term"):
        aggregate_rewards(breakdown(base, {"rouge": 1.0}), 2, "mean")


def test_signal_shares_follow_the_spread_under_sum_and_the_weights_per_term():
    terms = {"rouge": [0.0, 1.0, 0.2, 0.8], "diversity": [0.50, 0.52, 0.49, 0.51]}
    weights = {"rouge": 1.0, "diversity": 1.0}
    summed = signal_shares(breakdown(terms, weights), 2, "sum")
    assert summed["rouge"] == pytest.approx((0.5 + 0.3) / (0.5 + 0.3 + 0.01 + 0.01))  # population stds per group
    per_term = signal_shares(breakdown(terms, weights), 2, "normalize_per_term")
    assert per_term["rouge"] == pytest.approx(0.5, abs=0.01) and per_term["diversity"] == pytest.approx(0.5, abs=0.01)
    assert signal_shares(breakdown({"rouge": [1.0, 1.0]}, {"rouge": 1.0}), 2) == {}


def test_adaptive_kl_controller_hand_values():
    # Ziegler et al.: e = clip(KL / target − 1, ±0.2), β' = β (1 + e · n / horizon)
    assert adaptive_kl_coef(0.1, 6.0, 4.0, 64, 10_000) == pytest.approx(0.1 * (1 + 0.2 * 64 / 10_000))
    assert adaptive_kl_coef(0.1, 4.4, 4.0, 100, 1_000) == pytest.approx(0.1 * (1 + 0.1 * 0.1))
    assert adaptive_kl_coef(0.1, 0.0, 4.0, 100, 100) == pytest.approx(0.1 * 0.8)
    with pytest.raises(ConfigError):
        adaptive_kl_coef(0.1, 1.0, 0.0, 10, 10)


def test_config_refuses_what_cannot_work():
    with pytest.raises(ConfigError, match="PPO has no groups"):
        TrainConfig(loss="ppo", reward_aggregation="normalize_per_term").validate()
    TrainConfig(loss="grpo", reward_aggregation="normalize_per_term").validate()
    TrainConfig(loss="dpo", reward_aggregation="normalize_per_term").validate()  # no reward in its loss: moot
    with pytest.raises(ConfigError, match="reward_aggregation"):
        TrainConfig(reward_aggregation="max").validate()
    with pytest.raises(ConfigError, match="kl_coef is 0"):
        TrainConfig(loss="grpo", kl_coef=0.0, kl_target=1.0).validate()


def run_metrics(tiny_lm_path, **overrides):
    from rmcore.trainer import train

    steps = []
    cfg = TrainConfig(backbone=tiny_lm_path, steps=3, batch_size=2, samples_per_prompt=2, max_new_tokens=8,
                      eval_every=0, eval_prompts=2, checkpoint_every=0, device="cpu", lr=1e-3, **overrides)
    train(cfg, on_step=lambda r: steps.append(r.metrics) if r.step else None)
    return steps


def test_the_controller_moves_the_coefficient_each_step_as_logged(tiny_lm_path):
    steps = run_metrics(tiny_lm_path, loss="grpo", kl_coef=0.05, kl_target=1e-6, kl_horizon=8)
    coefs = [m["policy/kl_coef"] for m in steps]
    assert coefs[0] == 0.05
    for before, after, m in zip(coefs, coefs[1:], steps):
        assert after == pytest.approx(adaptive_kl_coef(before, m["policy/kl"], 1e-6, 4, 8))
        assert (after > before) == (m["policy/kl"] > 1e-6)  # step 1 samples the reference itself: KL 0
    assert coefs[-1] > coefs[1]
    assert "policy/kl_coef" not in run_metrics(tiny_lm_path, loss="grpo")[0]


def test_per_term_normalisation_changes_what_the_update_sees_not_the_logged_reward(tiny_lm_path):
    summed = run_metrics(tiny_lm_path, loss="rloo", seed=3)
    per_term = run_metrics(tiny_lm_path, loss="rloo", seed=3, reward_aggregation="normalize_per_term")
    # Step 1 samples from the same untouched model: same rewards logged, another learning signal.
    assert per_term[0]["reward/total"] == summed[0]["reward/total"]
    assert per_term[0]["loss/rloo"] != summed[0]["loss/rloo"]
    shares = {k: v for k, v in per_term[0].items() if k.startswith("policy/signal_share/")}
    assert shares and sum(shares.values()) == pytest.approx(1.0)
