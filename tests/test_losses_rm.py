"""Math tests for the reward-model losses: hand values, identities, gradient signs."""
import math

import pytest
import torch

from rmcore.losses import (
    REWARD_MODEL_LOSSES, bradley_terry_loss, center_penalty, cross_entropy_loss,
    embedding_distance, focal_loss, get_reward_model_loss, hinge_loss, mse_loss, triplet_loss,
)

D = torch.float64


def t(values):
    return torch.tensor(values, dtype=D)


def log_sigmoid(x):
    return -math.log(1 + math.exp(-x))


def test_bradley_terry_equals_minus_log_sigmoid_of_delta():
    chosen, rejected = t([2.0, 0.0, -1.0]), t([1.0, 0.5, -3.0])
    # Δ = 1, −0.5, 2 (minus the margin 0.25 in the second call)
    loss, stats = bradley_terry_loss(chosen, rejected)
    assert loss.item() == pytest.approx(-sum(log_sigmoid(d) for d in (1.0, -0.5, 2.0)) / 3)
    with_margin, _ = bradley_terry_loss(chosen, rejected, margin=0.25)
    assert with_margin.item() == pytest.approx(-sum(log_sigmoid(d - 0.25) for d in (1.0, -0.5, 2.0)) / 3)
    assert stats["rm/accuracy"] == pytest.approx(2 / 3)
    assert stats["rm/margin"] == pytest.approx((1.0 - 0.5 + 2.0) / 3)
    assert stats["rm/chosen_mean"] == pytest.approx(1 / 3)
    assert stats["rm/rejected_mean"] == pytest.approx(-0.5)
    assert stats["rm/center_penalty"] == 0.0
    assert stats["loss/bradley_terry"] == pytest.approx(loss.item())


def test_hinge_is_zero_past_the_margin_and_linear_inside():
    loss, _ = hinge_loss(t([3.0, 2.0]), t([1.0, 0.5]), margin=1.0)
    assert loss.item() == 0.0                                 # Δ = 2, 1.5 ≥ m
    loss, _ = hinge_loss(t([1.0, 0.0]), t([0.5, 1.0]), margin=1.0)
    assert loss.item() == pytest.approx((0.5 + 2.0) / 2)     # m − Δ = 1 − 0.5, 1 − (−1)


def test_focal_with_gamma_zero_is_bradley_terry_and_downweights_easy_pairs():
    gen = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(6, generator=gen, dtype=D), torch.randn(6, generator=gen, dtype=D)
    bt, _ = bradley_terry_loss(chosen, rejected, margin=0.3)
    focal0, _ = focal_loss(chosen, rejected, gamma=0.0, margin=0.3)
    assert focal0.item() == bt.item()
    # One pair, Δ = 1: p = σ(1); focal γ=2 = −(1 − p)² log p
    p = 1 / (1 + math.exp(-1.0))
    focal2, _ = focal_loss(t([1.0]), t([0.0]), gamma=2.0)
    assert focal2.item() == pytest.approx(-(1 - p) ** 2 * math.log(p))
    assert focal2.item() < -math.log(p)


def test_mse_and_cross_entropy_hand_values():
    chosen, rejected = t([0.5, 2.0]), t([0.0, 1.0])
    # (0.5−1)² + (2−1)² + (0−0)² + (1−0)² = 0.25 + 1 + 0 + 1 over 4 scores
    loss, _ = mse_loss(chosen, rejected)
    assert loss.item() == pytest.approx(2.25 / 4)
    ce, _ = cross_entropy_loss(chosen, rejected)
    # −log σ(0.5) − log σ(2) − log(1 − σ(0)) − log(1 − σ(1)), over 4 scores; 1 − σ(x) = σ(−x)
    expected = -(log_sigmoid(0.5) + log_sigmoid(2.0) + log_sigmoid(0.0) + log_sigmoid(-1.0)) / 4
    assert ce.item() == pytest.approx(expected)


def test_center_penalty_hand_value_and_added_to_every_loss():
    chosen, rejected = t([1.0, 2.0]), t([0.0, -3.0])
    # (1 + 0)² = 1, (2 − 3)² = 1 -> mean 1, times coef 0.1
    assert center_penalty(chosen, rejected, 0.1).item() == pytest.approx(0.1)
    # Triplet reads its inputs as distances, rewards −d: (−1 − 0)², (−2 + 3)² -> also 1.
    for name, fn in REWARD_MODEL_LOSSES.items():
        base, _ = fn(chosen, rejected)
        centred, stats = fn(chosen, rejected, center_coef=0.1)
        assert centred.item() == pytest.approx(base.item() + 0.1), name
        assert stats["rm/center_penalty"] == pytest.approx(0.1), name


def test_triplet_zero_once_rejected_is_farther_by_the_margin():
    loss, stats = triplet_loss(t([1.0, 0.5]), t([2.0, 3.0]), margin=1.0)
    assert loss.item() == 0.0                                 # 1 + 1 − 2 = 0, 1 + 0.5 − 3 < 0
    assert stats["rm/accuracy"] == 1.0                        # d_c < d_r on both
    assert stats["rm/chosen_mean"] == pytest.approx(-0.75)    # reward = −distance
    loss, stats = triplet_loss(t([2.0]), t([1.5]), margin=1.0)
    assert loss.item() == pytest.approx(1.5)                  # 1 + 2 − 1.5
    assert stats["rm/accuracy"] == 0.0


def test_embedding_distance_is_euclidean():
    prompt, response = t([[0.0, 0.0], [1.0, 1.0]]), t([[3.0, 4.0], [1.0, 1.0]])
    assert embedding_distance(prompt, response).tolist() == pytest.approx([5.0, 0.0])


@pytest.mark.parametrize("name", ["bradley_terry", "hinge", "mse", "cross_entropy", "focal"])
def test_gradient_pushes_chosen_up_and_rejected_down(name):
    chosen, rejected = t([0.2, -0.4]).requires_grad_(), t([0.3, 0.1]).requires_grad_()
    loss, _ = get_reward_model_loss(name)(chosen, rejected)
    loss.backward()
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all()


def test_triplet_gradient_pulls_chosen_closer_and_pushes_rejected_away():
    d_chosen, d_rejected = t([1.0]).requires_grad_(), t([1.5]).requires_grad_()
    loss, _ = triplet_loss(d_chosen, d_rejected, margin=1.0)
    loss.backward()
    assert d_chosen.grad.item() > 0 and d_rejected.grad.item() < 0


def test_registry_and_unknown_name():
    assert list(REWARD_MODEL_LOSSES) == ["bradley_terry", "hinge", "mse", "cross_entropy", "focal", "triplet"]
    assert get_reward_model_loss("focal").fn is focal_loss
    with pytest.raises(ValueError, match="Unknown reward-model loss 'x'; valid: bradley_terry"):
        get_reward_model_loss("x")


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        bradley_terry_loss(t([1.0, 2.0]), t([1.0]))
