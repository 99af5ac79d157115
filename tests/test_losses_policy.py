"""Math tests for masked reductions and policy losses: hand values, a naive loop, identities."""
import math

import pytest
import torch

from rmcore.losses import (
    DPO_VARIANTS, actor_critic_loss, clipped_surrogate_loss, dpo_loss, entropy_from_logits,
    grpo_loss, masked_mean, masked_var, mle_loss, policy_gradient_loss, ppo_loss, reduce_loss,
    token_logprobs, value_loss,
)

D = torch.float64


def t(values):
    return torch.tensor(values, dtype=D)


# ---------------------------------------------------------------- masked reductions

def test_masked_mean_hand_values_and_dim():
    x, mask = t([[1.0, 2.0, 9.0], [4.0, 8.0, 9.0]]), t([[1, 1, 0], [1, 0, 0]])
    # valid: 1, 2, 4 -> 7 / 3
    assert masked_mean(x, mask).item() == pytest.approx(7 / 3)
    # row 0: (1 + 2) / 2 = 1.5; row 1: 4 / 1 = 4
    assert masked_mean(x, mask, dim=1).tolist() == pytest.approx([1.5, 4.0])


def test_masked_mean_all_zero_mask_is_zero_with_finite_grad():
    x = t([[1.0, float("inf")], [float("nan"), 3.0]]).requires_grad_()
    mask = torch.zeros(2, 2, dtype=D)
    out = masked_mean(x, mask)
    out.backward()
    assert out.item() == 0.0
    assert torch.equal(x.grad, torch.zeros(2, 2, dtype=D))
    assert masked_mean(x, mask, dim=1).tolist() == [0.0, 0.0]


def test_masked_mean_ignores_inf_in_padding():
    x, mask = t([[2.0, -float("inf")]]), t([[1, 0]])
    assert masked_mean(x, mask).item() == 2.0


def test_masked_var_matches_torch_var_on_valid_entries():
    x, mask = t([[1.0, 2.0, 100.0], [4.0, 7.0, -50.0]]), t([[1, 1, 0], [1, 1, 0]])
    valid = t([1.0, 2.0, 4.0, 7.0])
    assert masked_var(x, mask).item() == pytest.approx(valid.var().item())
    assert masked_var(x, mask, unbiased=False).item() == pytest.approx(valid.var(unbiased=False).item())


def naive_reduce(per_token, mask, mode, max_len=None):
    """Plain python loops over rows and tokens: the definitions, written out."""
    rows = per_token.tolist()
    masks = mask.tolist()
    if mode == "token_mean":
        total = sum(v * m for row, mrow in zip(rows, masks) for v, m in zip(row, mrow))
        return total / sum(m for mrow in masks for m in mrow)
    if mode == "seq_mean":
        means = []
        for row, mrow in zip(rows, masks):
            count = sum(mrow)
            means.append(sum(v * m for v, m in zip(row, mrow)) / count if count else 0.0)
        return sum(means) / len(means)
    total = sum(v * m for row, mrow in zip(rows, masks) for v, m in zip(row, mrow))
    return total / (len(rows) * (max_len or len(rows[0])))


def test_reduce_loss_hand_values():
    per_token, mask = t([[1.0, 3.0, 5.0], [2.0, 7.0, 7.0]]), t([[1, 1, 1], [1, 0, 0]])
    # token_mean: (1 + 3 + 5 + 2) / 4 = 2.75
    assert reduce_loss(per_token, mask, "token_mean").item() == pytest.approx(2.75)
    # seq_mean: mean(9/3, 2/1) = 2.5
    assert reduce_loss(per_token, mask, "seq_mean").item() == pytest.approx(2.5)
    # fixed_sum: 11 / (2 * 3) and 11 / (2 * 10) with max_len = 10
    assert reduce_loss(per_token, mask, "fixed_sum").item() == pytest.approx(11 / 6)
    assert reduce_loss(per_token, mask, "fixed_sum", max_len=10).item() == pytest.approx(11 / 20)


@pytest.mark.parametrize("mode", ["token_mean", "seq_mean", "fixed_sum"])
def test_reduce_loss_matches_naive_loop(mode):
    gen = torch.Generator().manual_seed(0)
    per_token = torch.randn(5, 7, generator=gen, dtype=D)
    lengths = [7, 3, 1, 5, 0]
    mask = t([[1.0 if j < n else 0.0 for j in range(7)] for n in lengths])
    assert reduce_loss(per_token, mask, mode, max_len=9).item() == pytest.approx(
        naive_reduce(per_token, mask, mode, max_len=9))


def test_fixed_sum_and_token_mean_differ_by_their_normalisers():
    gen = torch.Generator().manual_seed(1)
    per_token = torch.randn(3, 4, generator=gen, dtype=D)
    mask = t([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    # token_mean · (#tokens) = Σ = fixed_sum · (B · max_len); #tokens = 7, B · max_len = 3 · 8.
    token_mean = reduce_loss(per_token, mask, "token_mean")
    fixed_sum = reduce_loss(per_token, mask, "fixed_sum", max_len=8)
    assert (token_mean * 7).item() == pytest.approx((fixed_sum * 24).item())
    assert token_mean.item() != pytest.approx(fixed_sum.item())


def test_reduce_loss_unknown_mode_lists_valid_ones():
    with pytest.raises(ValueError, match="token_mean, seq_mean, fixed_sum"):
        reduce_loss(torch.zeros(1, 1), torch.ones(1, 1), "mean")


# ---------------------------------------------------------------- log-probs and entropy

def test_token_logprobs_and_entropy_against_naive():
    logits = t([[[0.0, 1.0, 2.0], [3.0, 3.0, 3.0]]])      # (1, 2, 3)
    tokens = torch.tensor([[2, 0]])
    # position 0: 2 − log(1 + e + e²); position 1: uniform -> −log 3
    expected = [2 - math.log(1 + math.e + math.e ** 2), -math.log(3)]
    assert token_logprobs(logits, tokens)[0].tolist() == pytest.approx(expected)
    p = [1 / (1 + math.e + math.e ** 2) * math.exp(v) for v in (0.0, 1.0, 2.0)]
    h0 = -sum(pi * math.log(pi) for pi in p)
    assert entropy_from_logits(logits)[0].tolist() == pytest.approx([h0, math.log(3)])


def test_entropy_with_masked_vocab_is_finite_and_has_finite_grad():
    logits = t([[[0.0, 0.0, -float("inf")]]]).requires_grad_()
    h = entropy_from_logits(logits)
    h.sum().backward()
    assert h.item() == pytest.approx(math.log(2))
    assert torch.isfinite(logits.grad).all()


# ---------------------------------------------------------------- MLE and REINFORCE

def test_mle_loss_hand_values():
    logprobs, mask = t([[-1.0, -2.0], [-4.0, -9.0]]), t([[1, 1], [1, 0]])
    loss, stats = mle_loss(logprobs, mask, loss_norm="seq_mean")
    # seq_mean of NLL: mean(3/2, 4/1) = 2.75; token mean NLL: 7/3
    assert loss.item() == pytest.approx(2.75)
    assert stats == pytest.approx({"loss/mle": 2.75, "loss/nll_token": 7 / 3})


def test_policy_gradient_hand_values_and_broadcast():
    logprobs, mask = t([[-1.0, -2.0], [-0.5, -3.0]]), t([[1, 1], [1, 0]])
    adv = t([2.0, -1.0])
    loss, stats = policy_gradient_loss(logprobs, adv, mask)
    # −A·logπ on valid tokens: 2, 4, −0.5 -> 5.5 / 3
    assert loss.item() == pytest.approx(5.5 / 3)
    assert stats["loss/policy"] == pytest.approx(5.5 / 3)
    loss_bt, _ = policy_gradient_loss(logprobs, t([[2.0, 2.0], [-1.0, -1.0]]), mask)
    assert loss_bt.item() == pytest.approx(loss.item())
    with pytest.raises(ValueError):
        policy_gradient_loss(logprobs, t([1.0, 2.0, 3.0]), mask)


@pytest.mark.parametrize("loss_norm", ["token_mean", "seq_mean", "fixed_sum"])
def test_ppo_with_ratio_one_has_the_reinforce_gradient(loss_norm):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 5, generator=gen, dtype=D, requires_grad=True)
    tokens = torch.randint(0, 5, (3, 4), generator=gen)
    adv = torch.randn(3, 4, generator=gen, dtype=D)
    mask = t([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])

    lp = token_logprobs(logits, tokens)
    pg, _ = policy_gradient_loss(lp, adv, mask, loss_norm=loss_norm, max_len=6)
    (grad_pg,) = torch.autograd.grad(pg, logits)
    lp = token_logprobs(logits, tokens)
    ppo, stats = clipped_surrogate_loss(lp, lp.detach(), adv, mask, clip_eps=0.2,
                                        loss_norm=loss_norm, max_len=6)
    (grad_ppo,) = torch.autograd.grad(ppo, logits)
    torch.testing.assert_close(grad_ppo, grad_pg)
    assert grad_pg.abs().sum() > 0
    assert stats["policy/clipfrac"] == 0.0 and stats["policy/ratio_mean"] == pytest.approx(1.0)
    assert stats["policy/approx_kl"] == pytest.approx(0.0)


# ---------------------------------------------------------------- PPO pieces

def test_clipped_surrogate_hand_values_and_clipfrac():
    ratio = t([[1.5, 1.5, 0.5, 1.1]])
    adv = t([[1.0, -1.0, -1.0, 2.0]])
    logprobs = torch.log(ratio).requires_grad_()
    loss, stats = clipped_surrogate_loss(logprobs, torch.zeros_like(ratio), adv,
                                         torch.ones_like(ratio), clip_eps=0.2)
    # min(ρA, clip(ρ)A): 1: min(1.5, 1.2) = 1.2 clipped;  2: min(−1.5, −1.2) = −1.5;
    #                    3: min(−0.5, −0.8) = −0.8 clipped; 4: min(2.2, 2.2) = 2.2 (inside)
    # loss = −(1.2 − 1.5 − 0.8 + 2.2) / 4 = −0.275; clipfrac = 2/4
    assert loss.item() == pytest.approx(-0.275)
    assert stats["policy/clipfrac"] == pytest.approx(0.5)
    assert stats["policy/ratio_mean"] == pytest.approx((1.5 + 1.5 + 0.5 + 1.1) / 4)
    kl = sum((r - 1) - math.log(r) for r in (1.5, 1.5, 0.5, 1.1)) / 4
    assert stats["policy/approx_kl"] == pytest.approx(kl)
    loss.backward()
    # Clipped tokens give no gradient; others d(−ρA)/dlogρ / 4 = −ρA / 4.
    assert logprobs.grad[0].tolist() == pytest.approx([0.0, 1.5 / 4, 0.0, -2.2 / 4])


def test_value_loss_clipping_hand_values():
    values = t([[1.5, 0.2, 3.0]]).requires_grad_()
    old_values, returns, mask = t([[1.0, 0.0, 1.0]]), t([[2.0, 1.0, 1.5]]), torch.ones(1, 3, dtype=D)
    loss, stats = value_loss(values, old_values, returns, mask, value_clip=0.2)
    # token 1: (1.5−2)² = 0.25, clipped V = 1.2 -> (1.2−2)² = 0.64 -> 0.64 (clip binds)
    # token 2: (0.2−1)² = 0.64, clipped V = 0.2 -> same 0.64 (clip does not bind)
    # token 3: (3−1.5)² = 2.25, clipped V = 1.2 -> 0.09 -> 2.25
    # ½ · (0.64 + 0.64 + 2.25) / 3
    assert loss.item() == pytest.approx(0.5 * 3.53 / 3)
    assert stats["policy/value_clipfrac"] == pytest.approx(1 / 3)
    loss.backward()
    # token 1 is on the clipped branch (V outside old ± c): no gradient to V there.
    assert values.grad[0, 0].item() == 0.0
    unclipped, stats = value_loss(values, old_values, returns, mask, value_clip=None)
    assert unclipped.item() == pytest.approx(0.5 * (0.25 + 0.64 + 2.25) / 3)
    assert stats["policy/value_clipfrac"] == 0.0
    with pytest.raises(ValueError):
        value_loss(values, old_values, returns, mask, value_clip=-1.0)


def test_ppo_loss_is_surrogate_plus_weighted_value_loss():
    gen = torch.Generator().manual_seed(3)
    lp, old, adv, v, old_v, ret = (torch.randn(2, 3, generator=gen, dtype=D) for _ in range(6))
    mask = t([[1, 1, 0], [1, 1, 1]])
    loss, stats = ppo_loss(lp, old, adv, v, old_v, ret, mask, clip_eps=0.2, value_clip=0.5,
                           vf_coef=0.25, loss_norm="seq_mean")
    pol, _ = clipped_surrogate_loss(lp, old, adv, mask, clip_eps=0.2, loss_norm="seq_mean")
    val, _ = value_loss(v, old_v, ret, mask, value_clip=0.5, loss_norm="seq_mean")
    assert loss.item() == pytest.approx(pol.item() + 0.25 * val.item())
    assert {"loss/policy", "loss/value", "loss/ppo", "policy/clipfrac", "policy/approx_kl",
            "policy/ratio_mean", "policy/value_clipfrac"} <= set(stats)
    assert all(isinstance(x, float) for x in stats.values())


def test_grpo_loss_broadcasts_sequence_advantages_and_matches_naive_seq_mean():
    ratio = t([[1.1, 1.4, 0.9], [0.7, 1.0, 2.0]])
    adv, mask = t([1.0, -0.5]), t([[1, 1, 1], [1, 1, 0]])
    loss, _ = grpo_loss(torch.log(ratio), torch.zeros_like(ratio), adv, mask, clip_eps=0.2,
                        loss_norm="seq_mean")
    # row 0 (A = 1):    min(1.1, 1.1), min(1.4, 1.2), min(0.9, 0.9) -> 1.1, 1.2, 0.9
    # row 1 (A = −0.5): min(−0.35, −0.4), min(−0.5, −0.5) -> −0.4, −0.5 (token 3 masked)
    expected = -((1.1 + 1.2 + 0.9) / 3 + (-0.4 - 0.5) / 2) / 2
    assert loss.item() == pytest.approx(expected)


def test_actor_critic_hand_values_and_value_gradient():
    logprobs, values = t([[-1.0, -2.0]]).requires_grad_(), t([[0.5, 1.0]]).requires_grad_()
    loss, stats = actor_critic_loss(logprobs, values, t([2.0]), torch.ones(1, 2, dtype=D), vf_coef=0.5)
    # A = R − V = (1.5, 1.0); policy = mean(1.5·1, 1.0·2) = 1.75; value = ½·mean(2.25, 1) = 0.8125
    assert loss.item() == pytest.approx(1.75 + 0.5 * 0.8125)
    assert stats["loss/policy"] == pytest.approx(1.75)
    assert stats["loss/value"] == pytest.approx(0.8125)
    loss.backward()
    # Only the critic term reaches V (A is detached): vf_coef · (V − R) / 2 tokens.
    assert values.grad[0].tolist() == pytest.approx([0.5 * -1.5 / 2, 0.5 * -1.0 / 2])
    assert logprobs.grad[0].tolist() == pytest.approx([-1.5 / 2, -1.0 / 2])


# ---------------------------------------------------------------- DPO

def test_dpo_policy_equal_reference_gives_log2_and_pushes_chosen_up():
    chosen, rejected = t([-3.0, -5.0]).requires_grad_(), t([-4.0, -2.0]).requires_grad_()
    loss, stats = dpo_loss(chosen, rejected, chosen.detach().clone(), rejected.detach().clone(), beta=0.1)
    assert loss.item() == pytest.approx(math.log(2))
    assert stats["policy/implicit_reward_margin"] == 0.0 and stats["policy/implicit_reward_accuracy"] == 0.0
    loss.backward()
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all()


def test_dpo_variants_hand_values():
    args = (t([-1.0]), t([-3.0]), t([-2.0]), t([-2.5]))
    # chosen log-ratio = −1 − (−2) = 1; rejected = −3 − (−2.5) = −0.5; h = 1.5; β h = 0.15
    sigmoid, stats = dpo_loss(*args, beta=0.1, variant="sigmoid")
    assert sigmoid.item() == pytest.approx(math.log(1 + math.exp(-0.15)))
    assert stats == pytest.approx({"loss/dpo": math.log(1 + math.exp(-0.15)), "policy/implicit_reward_chosen": 0.1,
                                   "policy/implicit_reward_rejected": -0.05, "policy/implicit_reward_margin": 0.15,
                                   "policy/implicit_reward_accuracy": 1.0})
    ipo, _ = dpo_loss(*args, beta=0.1, variant="ipo")
    assert ipo.item() == pytest.approx((1.5 - 1 / 0.2) ** 2)        # (1.5 − 5)² = 12.25
    hinge, _ = dpo_loss(*args, beta=0.1, variant="hinge")
    assert hinge.item() == pytest.approx(0.85)                       # relu(1 − 0.15)
    assert DPO_VARIANTS == ("sigmoid", "ipo", "hinge")
    with pytest.raises(ValueError, match="sigmoid, ipo, hinge"):
        dpo_loss(*args, variant="kto")
    with pytest.raises(ValueError):
        dpo_loss(*args, beta=0.0)
