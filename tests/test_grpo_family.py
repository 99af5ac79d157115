"""Math tests for GRPO's successors and REINFORCE++: hand values on 2–4 element tensors, a naive
loop for each loss, and the identities the papers state (issue 15)."""
import math
from types import SimpleNamespace

import pytest
import torch

from rmcore import advantages as adv
from rmcore.algorithms import get_algorithm
from rmcore.algorithms.dapo import overlong_penalty
from rmcore.config import TrainConfig
from rmcore.losses import cispo_loss, clipped_surrogate_loss, grpo_loss, gspo_loss, policy_gradient_loss
from rmcore.step_inputs import AdvantageInputs, LossInputs

D = torch.float64


def t(values):
    return torch.tensor(values, dtype=D)


def advantage_inputs(loss, rewards, mask=None, token_kl=None, kl_coef=0.0, **cfg):
    cfg = TrainConfig(loss=loss, samples_per_prompt=2, **cfg).resolved()
    mask = torch.ones(len(rewards), 1, dtype=D) if mask is None else mask
    return AdvantageInputs(session=SimpleNamespace(cfg=cfg), rewards=rewards, raw_rewards=rewards, token_kl=token_kl,
                           mask=mask, old_values=None, prompts=["a", "b"], refs=["x", "y"], kl_coef=kl_coef)


def loss_of(name, logprobs, old, advantages, mask, **cfg):
    cfg = TrainConfig(loss=name, **cfg).resolved()
    return get_algorithm(name).loss(LossInputs(cfg=cfg, logprobs=logprobs, mask=mask, old_logprobs=old,
                                               advantages=advantages))


# ---------------------------------------------------------------- Dr. GRPO

def test_dr_grpo_advantages_are_grpos_times_the_group_std():
    R = t([1.0, 0.0, 0.25, 0.75])
    dr, _ = get_algorithm("dr_grpo").advantages(advantage_inputs("dr_grpo", R))
    assert dr.tolist() == pytest.approx([0.5, -0.5, -0.25, 0.25])        # R − mean_group, no std
    grpo, _ = get_algorithm("grpo").advantages(advantage_inputs("grpo", R))
    std = R.view(2, 2).std(1, keepdim=True).expand(2, 2).reshape(-1)
    torch.testing.assert_close(dr, grpo * (std + 1e-4))


def test_dr_grpo_weighs_every_token_the_same_whatever_the_length():
    # Two samples, lengths 2 and 1, advantages +1 and −1, ratio 1, L_max = 4:
    # Dr. GRPO: L = −(1·2 − 1·1) / (2 · 4) = −1/8 and every token's gradient is ∓1/8;
    # GRPO (seq_mean): the one-token sample's token gets −1/(2·1) = ½, four times a token of the other.
    mask = t([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    A = t([1.0, -1.0])
    lp = torch.zeros(2, 3, dtype=D, requires_grad=True)
    loss, stats = loss_of("dr_grpo", lp, lp.detach(), A, mask, max_new_tokens=4)
    assert loss.item() == pytest.approx(-1 / 8) and stats["loss/dr_grpo"] == pytest.approx(-1 / 8)
    (grad,) = torch.autograd.grad(loss, lp)
    torch.testing.assert_close(grad, t([[-1 / 8, -1 / 8, 0.0], [1 / 8, 0.0, 0.0]]))
    lp = torch.zeros(2, 3, dtype=D, requires_grad=True)
    grpo, _ = grpo_loss(lp, lp.detach(), A, mask, loss_norm="seq_mean")
    (grad,) = torch.autograd.grad(grpo, lp)
    torch.testing.assert_close(grad, t([[-1 / 4, -1 / 4, 0.0], [1 / 2, 0.0, 0.0]]))


# ---------------------------------------------------------------- DAPO

def naive_surrogate(logprobs, old, advantages, mask, low, high):
    """Token mean of −min(ρA, clip(ρ, 1 − low, 1 + high)A), one token at a time."""
    total, count = 0.0, 0
    for b in range(logprobs.shape[0]):
        for i in range(logprobs.shape[1]):
            if mask[b, i]:
                ratio = math.exp(logprobs[b, i] - old[b, i])
                a = float(advantages[b])
                total += -min(ratio * a, min(max(ratio, 1 - low), 1 + high) * a)
                count += 1
    return total / count


def test_dapo_clip_higher_hand_values():
    # ρ = 1.25, A = +1: inside [0.8, 1.28], so unclipped (GRPO's 1.2 would clip it);
    # ρ = 1.25, A = −1: the min keeps −1.25; ρ = 0.75, A = −1: −0.8 (clipped below).
    ratio = t([[1.25, 1.25, 0.75]])
    lp = torch.log(ratio).requires_grad_()
    adv_tok = t([[1.0, -1.0, -1.0]])
    loss, stats = clipped_surrogate_loss(lp, torch.zeros_like(lp), adv_tok, torch.ones_like(lp),
                                         clip_eps=0.2, clip_eps_high=0.28)
    assert loss.item() == pytest.approx(-(1.25 - 1.25 - 0.8) / 3)
    assert stats["policy/clipfrac_low"] == pytest.approx(1 / 3) and stats["policy/clipfrac_high"] == 0.0
    symmetric, sym_stats = clipped_surrogate_loss(lp, torch.zeros_like(lp), adv_tok, torch.ones_like(lp), clip_eps=0.2)
    assert symmetric.item() == pytest.approx(-(1.2 - 1.25 - 0.8) / 3)
    assert sym_stats["policy/clipfrac_high"] == pytest.approx(1 / 3)


def test_dapo_loss_matches_a_naive_loop():
    g = torch.Generator().manual_seed(3)
    lp, old = torch.randn(4, 5, generator=g, dtype=D) * 0.3, torch.randn(4, 5, generator=g, dtype=D) * 0.3
    A = torch.randn(4, generator=g, dtype=D)
    mask = t([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0]])
    loss, _ = loss_of("dapo", lp, old, A, mask)  # token_mean, ε 0.2 / 0.28
    assert loss.item() == pytest.approx(naive_surrogate(lp, old, A, mask, 0.2, 0.28))


def test_overlong_penalty_hand_values():
    # L_max = 10, buffer 0.2: L_cache = 2, the ramp runs from 8 to 10 tokens.
    assert overlong_penalty(torch.tensor([5, 8, 9, 10, 12]), 10, 0.2).tolist() == [0.0, 0.0, -0.5, -1.0, -1.0]
    assert overlong_penalty(torch.tensor([10]), 10, 0.0).tolist() == [0.0]


# ---------------------------------------------------------------- GSPO

def test_gspo_hand_values_and_sequence_level_clip():
    # seq 0: log-ratios 0.1, 0.3 -> s = e^0.2 = 1.2214 > 1.2 with A = +1: clipped, no gradient.
    # seq 1: one token, log-ratio −0.1 -> s = e^−0.1 with A = −1: inside, gradient −A·s/|y|/B.
    lp = t([[0.1, 0.3], [-0.1, 5.0]]).requires_grad_()
    mask = t([[1.0, 1.0], [1.0, 0.0]])
    loss, stats = gspo_loss(lp, torch.zeros_like(lp), t([1.0, -1.0]), mask, clip_eps_low=0.2, clip_eps_high=0.2)
    s1 = math.exp(-0.1)
    assert loss.item() == pytest.approx(-(1.2 - s1) / 2)
    assert stats["policy/clipfrac"] == 0.5 and stats["policy/ratio_mean"] == pytest.approx((math.exp(0.2) + s1) / 2)
    loss.backward()
    torch.testing.assert_close(lp.grad, t([[0.0, 0.0], [s1 / 2, 0.0]]))


def naive_gspo(lp, old, A, mask, low, high):
    total = 0.0
    for b in range(lp.shape[0]):
        n = int(mask[b].sum())
        s = math.exp(sum(float(lp[b, i] - old[b, i]) for i in range(lp.shape[1]) if mask[b, i]) / n)
        total += -min(s * float(A[b]), min(max(s, 1 - low), 1 + high) * float(A[b]))
    return total / lp.shape[0]


def test_gspo_matches_a_naive_loop_and_equals_grpo_on_one_token_sequences():
    g = torch.Generator().manual_seed(5)
    lp, old = torch.randn(4, 3, generator=g, dtype=D) * 0.2, torch.randn(4, 3, generator=g, dtype=D) * 0.2
    A = torch.randn(4, generator=g, dtype=D)
    mask = t([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    loss, _ = gspo_loss(lp, old, A, mask, clip_eps_low=0.1, clip_eps_high=0.15)
    assert loss.item() == pytest.approx(naive_gspo(lp, old, A, mask, 0.1, 0.15))
    # One token per sequence: the sequence ratio is the token ratio.
    one = (torch.randn(6, 1, generator=g, dtype=D) * 0.3).requires_grad_()
    old1, A1, m1 = torch.zeros(6, 1, dtype=D), torch.randn(6, generator=g, dtype=D), torch.ones(6, 1, dtype=D)
    gspo, _ = gspo_loss(one, old1, A1, m1, clip_eps_low=0.2, clip_eps_high=0.2)
    (g_gspo,) = torch.autograd.grad(gspo, one)
    grpo, _ = grpo_loss(one, old1, A1, m1, clip_eps=0.2)
    (g_grpo,) = torch.autograd.grad(grpo, one)
    assert gspo.item() == pytest.approx(grpo.item())
    torch.testing.assert_close(g_gspo, g_grpo)


# ---------------------------------------------------------------- CISPO

def test_cispo_hand_values_weight_truncated_but_gradient_kept():
    # ρ = 1 and 6 with A = 2 and ε_high = 4: weights 1 and 5; loss = −mean(w·A·log π).
    lp = torch.log(t([[1.0, 6.0]])).requires_grad_()
    loss, stats = cispo_loss(lp, torch.zeros_like(lp), t([2.0]), torch.ones_like(lp), clip_eps_high=4.0)
    assert loss.item() == pytest.approx(-(5 * 2 * math.log(6)) / 2)
    assert stats["policy/clipfrac"] == 0.5 and stats["policy/clipfrac_high"] == 0.5
    loss.backward()
    torch.testing.assert_close(lp.grad, t([[-1.0, -5.0]]))  # neither token is zeroed, unlike PPO's clip


def test_cispo_matches_a_naive_loop_and_is_reinforce_at_ratio_one():
    g = torch.Generator().manual_seed(7)
    lp, old = torch.randn(3, 4, generator=g, dtype=D), torch.randn(3, 4, generator=g, dtype=D)
    A, mask = torch.randn(3, generator=g, dtype=D), t([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    loss, _ = cispo_loss(lp, old, A, mask, clip_eps_high=0.5)
    naive = sum(-min(math.exp(lp[b, i] - old[b, i]), 1.5) * float(A[b]) * float(lp[b, i])
                for b in range(3) for i in range(4) if mask[b, i]) / float(mask.sum())
    assert loss.item() == pytest.approx(naive)
    lp = lp.clone().requires_grad_()
    (g_cispo,) = torch.autograd.grad(cispo_loss(lp, lp.detach(), A, mask)[0], lp)
    (g_pg,) = torch.autograd.grad(policy_gradient_loss(lp, A, mask)[0], lp)
    torch.testing.assert_close(g_cispo, g_pg)


# ---------------------------------------------------------------- REINFORCE++

def whiten_naive(values):
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return [(v - mean) / math.sqrt(var + 1e-8) for v in values]


def test_reinforce_pp_advantages_hand_values():
    # R = (1, 0); per-token KL 0.1, 0.2 | 0.3, β = 0.5, in the reward:
    # token rewards (−0.05, 0.9) | (−0.15) -> returns (0.85, 0.9) | (−0.15) -> whitened over 3 tokens.
    mask, kl = t([[1.0, 1.0], [1.0, 0.0]]), t([[0.1, 0.2], [0.3, 0.0]])
    x = advantage_inputs("reinforce_pp", t([1.0, 0.0]), mask=mask, token_kl=kl, kl_coef=0.5)
    A, returns = get_algorithm("reinforce_pp").advantages(x)
    assert returns is None
    want = whiten_naive([0.85, 0.9, -0.15])
    assert [A[0, 0].item(), A[0, 1].item(), A[1, 0].item()] == pytest.approx(want)
    assert A[1, 1].item() == 0.0
    # The baseline variant subtracts the group mean first (one group of two): R' = (½, −½).
    A_b, _ = get_algorithm("reinforce_pp_baseline").advantages(
        advantage_inputs("reinforce_pp_baseline", t([1.0, 0.0]), mask=mask, token_kl=kl, kl_coef=0.5))
    want = whiten_naive([0.35, 0.4, -0.65])
    assert [A_b[0, 0].item(), A_b[0, 1].item(), A_b[1, 0].item()] == pytest.approx(want)


def test_returns_to_go_matches_a_naive_loop_with_padding():
    rewards = t([[1.0, 2.0, 3.0, 0.0], [0.5, -1.0, 0.0, 0.0]])
    mask = t([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    got = adv.returns_to_go(rewards, mask, gamma=0.9)
    assert got[0].tolist() == pytest.approx([1 + 0.9 * 2 + 0.81 * 3, 2 + 0.9 * 3, 3.0, 0.0])
    assert got[1].tolist() == pytest.approx([0.5 - 0.9, -1.0, 0.0, 0.0])


def test_new_algorithms_fix_their_papers_reduction_and_kl_placement_unless_told_otherwise():
    assert TrainConfig(loss="dr_grpo").resolved().loss_norm == "fixed_sum"
    assert TrainConfig(loss="gspo").resolved().loss_norm == "seq_mean"
    assert TrainConfig(loss="dapo").resolved().loss_norm == "token_mean"
    assert TrainConfig(loss="grpo").resolved().loss_norm == "token_mean"   # as before: unchanged runs
    assert TrainConfig(loss="reinforce_pp").resolved().kl_placement == "reward"
    assert TrainConfig(loss="ppo").resolved().kl_placement == "loss"
    assert TrainConfig(loss="dr_grpo", loss_norm="seq_mean").resolved().loss_norm == "seq_mean"  # an explicit choice
