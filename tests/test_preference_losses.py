"""IPO, SLiC and SimPO (issue 15): hand values, their minima and margins, and SimPO's independence
from any reference model, down to a run that never loads one."""
import math

import pytest
import torch

from rmcore.algorithms import get_algorithm
from rmcore.config import TrainConfig
from rmcore.losses import simpo_loss
from rmcore.step_inputs import PairInputs

D = torch.float64


def t(values):
    return torch.tensor(values, dtype=D)


def pair_loss(name, chosen, rejected, ref_chosen, ref_rejected, lengths=(1.0, 1.0), **cfg):
    cfg = TrainConfig(loss=name, **cfg).resolved()
    return get_algorithm(name).loss(PairInputs(cfg=cfg, chosen_logps=chosen, rejected_logps=rejected,
                                               ref_chosen_logps=ref_chosen, ref_rejected_logps=ref_rejected,
                                               chosen_lengths=t([lengths[0]]), rejected_lengths=t([lengths[1]])))


def margin_pair(h):
    """A pair whose log-ratio margin is h (chosen log-ratio h, the rest 0), with gradient on h."""
    h = t([h]).requires_grad_()
    return h, (h, torch.zeros(1, dtype=D), torch.zeros(1, dtype=D), torch.zeros(1, dtype=D))


def test_ipo_hand_value_and_minimum_at_one_over_two_tau():
    # h = (−1 − (−2)) − (−3 − (−2.5)) = 1.5; τ = 0.1: (1.5 − 5)² = 12.25
    loss, stats = pair_loss("ipo", t([-1.0]), t([-3.0]), t([-2.0]), t([-2.5]), ipo_tau=0.1)
    assert loss.item() == pytest.approx(12.25) and stats["loss/ipo"] == pytest.approx(12.25)
    assert "loss/dpo" not in stats
    for tau in (0.1, 0.5, 2.0):
        h, args = margin_pair(1 / (2 * tau))
        loss, _ = pair_loss("ipo", *args, ipo_tau=tau)
        (grad,) = torch.autograd.grad(loss, h)
        assert loss.item() == pytest.approx(0.0, abs=1e-12) and grad.item() == pytest.approx(0.0, abs=1e-9)
        hs = torch.linspace(-5, 15, 2001, dtype=D)
        values = [pair_loss("ipo", x.view(1), *args[1:], ipo_tau=tau)[0].item() for x in hs[::20]]
        assert hs[::20][int(torch.tensor(values).argmin())].item() == pytest.approx(1 / (2 * tau), abs=0.11)


def test_slic_is_a_hinge_with_margin_one_over_beta():
    for h_value, want in [(0.4, 0.6), (1.0, 0.0), (1.5, 0.0)]:
        h, args = margin_pair(h_value)
        loss, stats = pair_loss("slic", *args, slic_beta=1.0)
        (grad,) = torch.autograd.grad(loss, h)
        assert loss.item() == pytest.approx(want) and stats["loss/slic"] == pytest.approx(want)
        assert grad.item() == pytest.approx(-1.0 if h_value < 1 else 0.0)
    h, args = margin_pair(3.0)
    assert pair_loss("slic", *args, slic_beta=0.25)[0].item() == pytest.approx(0.25)  # 1 − 0.25·3
    assert stats["policy/implicit_reward_accuracy"] == 1.0


def test_simpo_hand_value():
    # chosen: −4 over 2 tokens, rejected: −9 over 3; β = 2, γ = 1: r_c = −4, r_r = −6, margin 2.
    loss, stats = simpo_loss(t([-4.0]), t([-9.0]), t([2.0]), t([3.0]), beta=2.0, gamma=1.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1.0)))
    assert stats["policy/implicit_reward_chosen"] == pytest.approx(-4.0)
    assert stats["policy/implicit_reward_rejected"] == pytest.approx(-6.0)
    assert stats["policy/implicit_reward_margin"] == pytest.approx(2.0)
    assert stats["policy/implicit_reward_accuracy"] == 1.0


def test_simpo_is_length_normalised_and_invariant_to_any_reference():
    chosen, rejected = t([-6.0]).requires_grad_(), t([-6.0])
    base, _ = pair_loss("simpo", chosen, rejected, None, None, lengths=(3.0, 2.0))
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        refs = torch.randn(2, generator=g, dtype=D) * 10
        other, _ = pair_loss("simpo", chosen, rejected, refs[:1], refs[1:], lengths=(3.0, 2.0))
        assert other.item() == base.item()
    # Same summed log-prob, but the chosen one is longer: its average is higher, so it wins.
    assert simpo_loss(t([-6.0]), t([-6.0]), t([3.0]), t([2.0]), gamma=0.0)[1]["policy/implicit_reward_accuracy"] == 1.0


def test_simpo_runs_without_a_reference_model_and_says_so(tiny_lm_path):
    from rmcore.cli import resolution_note
    from rmcore.trainer import make_session

    cfg = TrainConfig(backbone=tiny_lm_path, loss="simpo", beta=0.2, kl_coef=0.05)
    resolved = cfg.resolved()
    assert (resolved.beta, resolved.kl_coef, resolved.kl_target) == (0.0, 0.0, 0.0)
    assert "no reference model" in resolution_note(cfg)
    assert resolution_note(TrainConfig(loss="simpo", beta=0.0, kl_coef=0.0)) is None
    assert resolution_note(TrainConfig(loss="dpo")) is None

    from rmcore.backbones import load_causal_lm

    policy, tokenizer = load_causal_lm(tiny_lm_path, device=torch.device("cpu"))
    session = make_session(resolved, get_algorithm("simpo"), policy, tokenizer, torch.device("cpu"))
    assert session.ref is None
    dpo = make_session(TrainConfig(backbone=tiny_lm_path, loss="dpo").resolved(), get_algorithm("dpo"), policy,
                       tokenizer, torch.device("cpu"))
    assert dpo.ref is not None
