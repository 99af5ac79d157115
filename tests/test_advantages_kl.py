"""Math tests for advantage estimators (naive loops, identities) and KL estimators (Monte Carlo)."""
import math
import statistics

import pytest
import torch

from rmcore.advantages import (
    ADVANTAGE_ESTIMATORS, baseline_advantages, ema_baseline_update, gae,
    group_normalized_advantages, reward_advantages, rloo_advantages, self_critical_advantages,
    terminal_rewards, whiten,
)
from rmcore.kl import KL_ESTIMATORS, kl_estimate

D = torch.float64


def t(values):
    return torch.tensor(values, dtype=D)


# ---------------------------------------------------------------- group baselines

def naive_rloo(rewards, g):
    out = []
    for i, r in enumerate(rewards):
        group = rewards[(i // g) * g:(i // g + 1) * g]
        others = [x for j, x in enumerate(group) if (i // g) * g + j != i]
        out.append(r - sum(others) / len(others))
    return out


def naive_grpo(rewards, g, eps):
    out = []
    for i, r in enumerate(rewards):
        group = rewards[(i // g) * g:(i // g + 1) * g]
        out.append((r - statistics.mean(group)) / (statistics.stdev(group) + eps))
    return out


def test_rloo_hand_values_and_naive_loop():
    # group [1, 2, 3, 6]: baselines (11/3, 10/3, 3, 2) -> A = (−8/3, −4/3, 0, 4)
    assert rloo_advantages(t([1.0, 2.0, 3.0, 6.0]), 4).tolist() == pytest.approx([-8 / 3, -4 / 3, 0.0, 4.0])
    rewards = torch.randn(12, generator=torch.Generator().manual_seed(0), dtype=D)
    assert rloo_advantages(rewards, 3).tolist() == pytest.approx(naive_rloo(rewards.tolist(), 3))


def test_rloo_identities():
    rewards = torch.randn(8, generator=torch.Generator().manual_seed(1), dtype=D)
    adv = rloo_advantages(rewards, 4)
    assert adv.view(2, 4).sum(dim=1).abs().max() < 1e-12
    means = rewards.view(2, 4).mean(dim=1, keepdim=True)
    torch.testing.assert_close(adv, (4 / 3 * (rewards.view(2, 4) - means)).reshape(-1))
    # Leave-one-out: sample 0's baseline b_0 = r_0 − A_0 does not move when r_0 does.
    changed = rewards.clone()
    changed[0] += 5.0
    baseline_before = (rewards - adv)[0]
    baseline_after = (changed - rloo_advantages(changed, 4))[0]
    assert baseline_after.item() == pytest.approx(baseline_before.item())
    # ... but the other samples of its group see it.
    assert (changed - rloo_advantages(changed, 4))[1].item() != pytest.approx((rewards - adv)[1].item())


def test_grpo_hand_values_naive_loop_and_identities():
    # group [1, 2, 3, 6]: mean 3, unbiased std sqrt((4 + 1 + 0 + 9) / 3) = sqrt(14/3)
    std = math.sqrt(14 / 3)
    adv = group_normalized_advantages(t([1.0, 2.0, 3.0, 6.0]), 4, eps=1e-4)
    assert adv.tolist() == pytest.approx([x / (std + 1e-4) for x in (-2.0, -1.0, 0.0, 3.0)])
    rewards = torch.randn(12, generator=torch.Generator().manual_seed(2), dtype=D)
    adv = group_normalized_advantages(rewards, 4)
    assert adv.tolist() == pytest.approx(naive_grpo(rewards.tolist(), 4, 1e-4))
    assert adv.view(3, 4).mean(dim=1).abs().max() < 1e-12
    unit = group_normalized_advantages(rewards, 4, eps=0.0)
    assert unit.view(3, 4).std(dim=1).tolist() == pytest.approx([1.0, 1.0, 1.0])
    centred = group_normalized_advantages(rewards, 4, scale=False)
    torch.testing.assert_close(centred, (rewards.view(3, 4) - rewards.view(3, 4).mean(1, keepdim=True)).reshape(-1))


def test_grpo_equal_rewards_give_zero_not_nan():
    assert group_normalized_advantages(t([0.5, 0.5, 1.0, 1.0]), 2).tolist() == [0.0, 0.0, 0.0, 0.0]


def test_group_errors():
    with pytest.raises(ValueError, match="at least 2"):
        rloo_advantages(t([1.0, 2.0]), 1)
    with pytest.raises(ValueError, match="divisible"):
        group_normalized_advantages(t([1.0, 2.0, 3.0]), 2)


def test_simple_baselines():
    assert ema_baseline_update(None, 2.0, 0.9) == 2.0
    assert ema_baseline_update(2.0, 4.0, 0.9) == pytest.approx(0.9 * 2.0 + 0.1 * 4.0)
    with pytest.raises(ValueError):
        ema_baseline_update(1.0, 1.0, 1.5)
    assert baseline_advantages(t([1.0, 3.0]), 2.2).tolist() == pytest.approx([-1.2, 0.8])
    assert self_critical_advantages(t([1.0, 0.5]), t([0.25, 0.75])).tolist() == [0.75, -0.25]
    assert reward_advantages(t([0.3, -1.0])).tolist() == [0.3, -1.0]
    assert set(ADVANTAGE_ESTIMATORS) == {"reward", "baseline", "rloo", "grpo", "gae"}
    assert ADVANTAGE_ESTIMATORS["gae"] is gae


# ---------------------------------------------------------------- GAE

def naive_gae(rewards, values, gamma, lam):
    """One unpadded sequence, straight from the definition A_t = Σ_l (γλ)^l δ_{t+l}."""
    n = len(rewards)
    deltas = [rewards[i] + gamma * (values[i + 1] if i + 1 < n else 0.0) - values[i] for i in range(n)]
    return [sum((gamma * lam) ** (k - i) * deltas[k] for k in range(i, n)) for i in range(n)]


def test_gae_hand_values():
    adv, ret = gae(t([[0.0, 1.0]]), t([[0.5, 0.8]]), torch.ones(1, 2, dtype=D), gamma=0.9, lam=0.95)
    # δ_1 = 1 + 0 − 0.8 = 0.2; δ_0 = 0 + 0.9·0.8 − 0.5 = 0.22; A_0 = 0.22 + 0.9·0.95·0.2 = 0.391
    assert adv[0].tolist() == pytest.approx([0.391, 0.2])
    assert ret[0].tolist() == pytest.approx([0.891, 1.0])


def test_gae_matches_naive_loop_with_right_and_left_padding():
    gen = torch.Generator().manual_seed(3)
    rewards, values = torch.randn(3, 5, generator=gen, dtype=D), torch.randn(3, 5, generator=gen, dtype=D)
    mask = t([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 1, 1, 0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    for b in range(3):
        idx = [i for i in range(5) if mask[b, i] == 1]
        expected = naive_gae([rewards[b, i].item() for i in idx], [values[b, i].item() for i in idx], 0.9, 0.8)
        assert [adv[b, i].item() for i in idx] == pytest.approx(expected)
        assert [ret[b, i].item() for i in idx] == pytest.approx([a + values[b, i].item() for a, i in zip(expected, idx)])
    assert (adv[mask == 0] == 0).all() and (ret[mask == 0] == 0).all()


def test_gae_lambda_one_is_monte_carlo_and_lambda_zero_is_td():
    gen = torch.Generator().manual_seed(4)
    rewards, values = torch.randn(2, 4, generator=gen, dtype=D), torch.randn(2, 4, generator=gen, dtype=D)
    mask = torch.ones(2, 4, dtype=D)
    adv, _ = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    mc_return = rewards.flip(1).cumsum(1).flip(1)            # Σ_{k ≥ t} r_k
    torch.testing.assert_close(adv, mc_return - values)
    adv, _ = gae(rewards, values, mask, gamma=0.7, lam=0.0)
    next_values = torch.cat([values[:, 1:], torch.zeros(2, 1, dtype=D)], dim=1)
    torch.testing.assert_close(adv, rewards + 0.7 * next_values - values)


def test_terminal_rewards_and_whiten():
    mask = t([[1, 1, 0], [0, 1, 1], [1, 0, 0]])
    out = terminal_rewards(t([1.0, 2.0, 3.0]), mask)
    assert out.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 2.0], [3.0, 0.0, 0.0]]
    with pytest.raises(ValueError):
        terminal_rewards(t([1.0]), t([[0, 0]]))
    x = t([[1.0, 2.0, 50.0], [3.0, 6.0, -50.0]])
    w_mask = t([[1, 1, 0], [1, 1, 0]])
    w = whiten(x, w_mask)
    valid = w[w_mask == 1]
    assert valid.mean().item() == pytest.approx(0.0, abs=1e-12)
    assert valid.std().item() == pytest.approx(1.0, abs=1e-6)       # unbiased, as TRL
    assert (w[w_mask == 0] == 0).all()
    kept = whiten(x, w_mask, shift_mean=False)[w_mask == 1]
    assert kept.mean().item() == pytest.approx(3.0)                   # (1 + 2 + 3 + 6) / 4


# ---------------------------------------------------------------- KL estimators

def exact_kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def test_kl_estimators_unbiased_by_monte_carlo():
    p, q = t([0.5, 0.3, 0.2]), t([0.2, 0.3, 0.5])
    samples = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    logprobs, ref_logprobs = p.log()[samples], q.log()[samples]      # sampled from the policy p
    kl = exact_kl(p.tolist(), q.tolist())      # 0.5·ln 2.5 + 0.2·ln 0.4 = 0.3·ln 2.5 ≈ 0.2749
    for name in ("k1", "k3"):
        est = kl_estimate(logprobs, ref_logprobs, name)
        stderr = est.std().item() / math.sqrt(est.numel())
        assert abs(est.mean().item() - kl) < 3 * stderr, name
    # k1 has the larger variance (the reason k3 exists).
    assert kl_estimate(logprobs, ref_logprobs, "k1").var() > kl_estimate(logprobs, ref_logprobs, "k3").var()


def test_k2_biased_but_close_for_near_distributions():
    def expected_k2(p, q):
        return sum(pi * 0.5 * math.log(pi / qi) ** 2 for pi, qi in zip(p, q))
    near_p, near_q = [0.5, 0.3, 0.2], [0.49, 0.31, 0.2]
    assert expected_k2(near_p, near_q) == pytest.approx(exact_kl(near_p, near_q), rel=0.02)
    far_p, far_q = [0.5, 0.3, 0.2], [0.05, 0.15, 0.8]
    assert abs(expected_k2(far_p, far_q) - exact_kl(far_p, far_q)) > 0.1
    # and kl_estimate's k2 is exactly ½ log_ratio²
    assert kl_estimate(t([math.log(0.5)]), t([math.log(0.25)]), "k2").item() == pytest.approx(0.5 * math.log(2) ** 2)


def test_kl_hand_values_nonnegativity_zero_and_errors():
    lp, ref = t([-1.0, -2.0]), t([-1.5, -1.0])                   # log_ratio = 0.5, −1
    assert kl_estimate(lp, ref, "k1").tolist() == pytest.approx([0.5, -1.0])
    assert kl_estimate(lp, ref, "k2").tolist() == pytest.approx([0.125, 0.5])
    assert kl_estimate(lp, ref, "k3").tolist() == pytest.approx([math.exp(-0.5) - 1 + 0.5, math.e - 1 - 1])
    gen = torch.Generator().manual_seed(5)
    a, b = 3 * torch.randn(1000, generator=gen, dtype=D), 3 * torch.randn(1000, generator=gen, dtype=D)
    assert (kl_estimate(a, b, "k3") >= 0).all()
    for name in KL_ESTIMATORS:
        assert kl_estimate(a, a.clone(), name).abs().max() == 0.0
    huge = kl_estimate(t([-500.0]), t([0.0]), "k3")               # clamped to log_ratio = −20
    assert torch.isfinite(huge).all() and huge.item() == pytest.approx(math.exp(20) - 21)
    with pytest.raises(ValueError, match="k1, k2, k3"):
        kl_estimate(a, b, "k4")


def test_k3_is_exact_with_its_gradient_for_large_positive_log_ratios():
    """The policy far above the reference (log_ratio 50): k3 = e^−50 − 1 + 50 and d k3/d log π =
    1 − e^−50, not the value and zero gradient of a clamp at 20."""
    lp = t([50.0, 200.0]).requires_grad_()
    k3 = kl_estimate(lp, t([0.0, 0.0]), "k3")
    assert k3.tolist() == pytest.approx([math.exp(-50) - 1 + 50, 199.0], rel=1e-12)
    k3.sum().backward()
    assert lp.grad.tolist() == pytest.approx([1 - math.exp(-50), 1.0], rel=1e-12)


def test_playground_k3_mean_matches_the_exact_kl_far_apart():
    """μq = 3, σq = 0.2 against N(0, 1), inside the playground's slider ranges: exact KL 122.9;
    the clamp at +20 made k3's sample mean 19.3."""
    from rmcore.playground import kl_samples_gaussian

    out = kl_samples_gaussian(0.0, 1.0, 3.0, 0.2, n=20_000, seed=0)
    assert out.exact_kl == pytest.approx(122.9, abs=0.05)
    assert out.estimates["k3"].mean() == pytest.approx(out.exact_kl, rel=0.05)
