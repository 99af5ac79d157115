"""Loss Playground sections 3–5 (rmcore.playground_policy): hand-computed gradients, identities
between the algorithms, and the page drawing them from the URL (AppTest)."""
from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from rmcore import playground_policy as ppol
from rmcore.playground import curve
from rmcore.algorithms import POLICY_LOSSES
from rmcore.losses import dpo_loss, policy_gradient_loss

APP = str(Path(__file__).resolve().parents[1] / "app.py")
EPS = dict(clip_eps=0.2, gspo_eps_low=3e-4, gspo_eps_high=4e-4, cispo_eps_high=4.0)


# --------------------------------------------------------------------------- 3. length bias
@pytest.mark.parametrize("advantage", [-1.0, 1.5])
def test_per_token_weights_hand_computed(advantage) -> None:
    """|y| = 2 against one other answer of 4 tokens (G = 2), L_max = 8: GRPO 1/(G·|y|) = 1/4,
    Dr. GRPO 1/(G·L_max) = 1/16, DAPO 1/(|y| + L_other) = 1/6, each times |A|, on every token."""
    expected = {"grpo": 1 / 4, "dr_grpo": 1 / 16, "dapo": 1 / 6}
    bias = ppol.length_bias(max_len=8, other_length=4, group_size=2, advantage=advantage)
    assert list(bias.lengths) == list(range(1, 9))
    for name, weight in expected.items():
        grad = ppol.sample_gradient(2, other_length=4, group_size=2, max_len=8, advantage=advantage,
                                    loss_norm=ppol.LENGTH_NORMS[name])
        torch.testing.assert_close(grad, torch.full((2,), -advantage * weight, dtype=torch.float64))
        assert bias.per_token[name][1] == pytest.approx(abs(advantage) * weight)
        np.testing.assert_allclose(bias.per_sequence[name], bias.lengths * bias.per_token[name])


def test_dr_grpo_weight_is_constant_in_length_and_grpo_falls_as_one_over_length() -> None:
    bias = ppol.length_bias(max_len=100, other_length=30, group_size=4, advantage=-2.0)
    assert len(bias.lengths) == ppol.LENGTH_POINTS and bias.lengths[0] == 1 and bias.lengths[-1] == 100
    np.testing.assert_allclose(bias.per_token["dr_grpo"], 2.0 / (4 * 100))
    np.testing.assert_allclose(bias.per_token["grpo"], 2.0 / (4 * bias.lengths))
    np.testing.assert_allclose(bias.per_sequence["grpo"], 2.0 / 4)  # every answer the same total push
    np.testing.assert_allclose(bias.per_token["dapo"], 2.0 / (bias.lengths + 3 * 30))
    other = ppol.length_bias(max_len=100, other_length=60, group_size=4, advantage=-2.0)
    assert np.all(other.per_token["dapo"] < bias.per_token["dapo"])  # DAPO's weight depends on the batch
    np.testing.assert_array_equal(other.per_token["dr_grpo"], bias.per_token["dr_grpo"])


def test_length_norms_are_the_registry_defaults_where_the_registry_fixes_one() -> None:
    assert ppol.LENGTH_NORMS["dr_grpo"] == POLICY_LOSSES["dr_grpo"].loss_norm
    assert ppol.LENGTH_NORMS["dapo"] == POLICY_LOSSES["dapo"].loss_norm
    assert ppol.LENGTH_NORMS["grpo"] == "seq_mean"  # the paper's; the registry leaves GRPO at token_mean


def test_dr_grpo_advantages_are_grpos_times_the_std() -> None:
    adv = ppol.one_right_advantages(4)  # rewards 1, 0, 0, 0: mean 1/4, unbiased std 1/2
    assert adv["dr_grpo"] == pytest.approx(-0.25)
    assert adv["grpo"] == pytest.approx(-0.25 / (0.5 + 1e-4))
    assert adv["dr_grpo"] == pytest.approx(adv["grpo"] * (0.5 + 1e-4))


# --------------------------------------------------------------------------- 4. ratio clipping
def ratio_case(advantage: float, tokens: int = 8, other_ratio: float = 1.0, high: float = 1.5, **eps: float):
    shape = dict(tokens=tokens, other_ratio=other_ratio, **(EPS | eps))
    x = ppol.ratio_grid(high, **shape)
    return x, ppol.ratio_gradients(x, advantage=advantage, **shape)


@pytest.mark.parametrize("advantage", [1.0, -0.7])
def test_gspo_gradient_is_grpos_with_one_token(advantage) -> None:
    x, grads = ratio_case(advantage, tokens=1, gspo_eps_low=0.2, gspo_eps_high=0.2)
    np.testing.assert_allclose(grads["gspo"], grads["grpo"], rtol=1e-12, atol=1e-15)
    x, grads = ratio_case(advantage, tokens=4, gspo_eps_low=0.2, gspo_eps_high=0.2)
    assert not np.allclose(grads["gspo"], grads["grpo"])  # with more tokens they differ


def test_grpo_gradient_is_zero_exactly_beyond_the_clip_on_the_improving_side() -> None:
    x, grads = ratio_case(1.0, high=2.0)
    assert np.all(grads["grpo"][x > 1.2 + 1e-9] == 0) and np.all(grads["grpo"][x < 1.2 - 1e-9] != 0)
    assert ppol.zero_intervals(x, grads["grpo"]) == [(pytest.approx(1.2), 2.0)]
    x, grads = ratio_case(-1.0, high=2.0)
    assert np.all(grads["grpo"][x < 0.8 - 1e-9] == 0) and np.all(grads["grpo"][x > 0.8 + 1e-9] != 0)
    # Unclipped, the gradient is REINFORCE's weighted by the ratio: −ρA/T.
    inside = (x > 0.85) & (x < 1.15)
    np.testing.assert_allclose(grads["grpo"][inside], x[inside] / 8)


def test_gspo_zeroes_the_sequence_once_its_geometric_mean_ratio_leaves_the_range() -> None:
    tokens, other = 6, 1.002
    x, grads = ratio_case(1.0, tokens=tokens, other_ratio=other)
    s = (x * other ** (tokens - 1)) ** (1 / tokens)
    far = np.abs(s - (1 + 4e-4)) > 1e-9  # away from the corner itself, where the two branches tie
    np.testing.assert_array_equal((grads["gspo"] == 0)[far], (s > 1 + 4e-4)[far])
    assert grads["grpo"][np.searchsorted(x, 1.1)] != 0  # GRPO still learns from that token


@pytest.mark.parametrize("advantage, tokens, other", [(1.0, 8, 1.0), (-1.0, 5, 1.3), (0.4, 1, 0.7)])
def test_cispo_never_zeroes_a_gradient_and_is_reinforce_at_ratio_one(advantage, tokens, other) -> None:
    x, grads = ratio_case(advantage, tokens=tokens, other_ratio=other, high=6.0, cispo_eps_high=0.5)
    assert np.all(grads["cispo"] != 0)
    logprobs = torch.zeros(1, tokens, dtype=torch.float64, requires_grad=True)
    loss, _ = policy_gradient_loss(logprobs, torch.tensor([advantage], dtype=torch.float64),
                                   torch.ones(1, tokens, dtype=torch.float64), loss_norm="seq_mean")
    (reinforce,) = torch.autograd.grad(loss, logprobs)
    at_one = grads["cispo"][np.flatnonzero(x == 1.0)[0]]
    assert at_one == pytest.approx(reinforce[0, 0].item()) and at_one == pytest.approx(-advantage / tokens)
    # The weight is capped, not the gradient: flat at −A·(1 + ε_high)/T beyond the cap.
    np.testing.assert_allclose(grads["cispo"][x > 1.5], -advantage * 1.5 / tokens)


def test_zero_intervals() -> None:
    x = np.arange(7.0)
    assert ppol.zero_intervals(x, np.array([1, 0, 0, 1, 0, 0, 0.0])) == [(1.0, 2.0), (4.0, 6.0)]
    assert ppol.zero_intervals(x, np.ones(7)) == []


# --------------------------------------------------------------------------- 5. preference losses
COEFS = {"dpo": 0.5, "ipo": 0.25, "slic": 2.0, "simpo": 2.0}


@pytest.mark.parametrize("tau", [0.1, 0.25, 0.8])
def test_ipo_minimum_is_at_one_over_two_tau(tau) -> None:
    x, curves = ppol.preference_curves(COEFS | {"ipo": tau}, gamma=1.0, span=8.0)
    values, grads = curves["ipo"]
    assert x[values.argmin()] == pytest.approx(1 / (2 * tau)) and values.min() == 0
    assert grads[values.argmin()] == 0 and grads[0] < 0 < grads[-1]  # pushed back from above too


def test_slic_derivative_is_zero_beyond_its_margin() -> None:
    x, curves = ppol.preference_curves(COEFS, gamma=1.0, span=4.0)
    grads = curves["slic"][1]
    assert np.all(grads[x >= 0.5] == 0) and np.all(grads[x < 0.5] == pytest.approx(-2.0))  # corner at 1/β
    assert np.all(curves["dpo"][1] < 0)  # DPO never stops


def test_curves_are_the_engine_losses_and_ignore_reference_log_probs() -> None:
    x = np.array([-3.0, 0.0, 1.2, 4.0])
    for name, coef in COEFS.items():
        plain = ppol.preference_loss_of_margin(name, coef)
        moved = ppol.preference_loss_of_margin(name, coef, ref_logps=(-12.5, 3.0))
        np.testing.assert_allclose(curve(moved, x), curve(plain, x), atol=1e-12)
    zero = torch.zeros(1, dtype=torch.float64)
    direct = dpo_loss(torch.tensor([1.2], dtype=torch.float64), zero, zero, zero, beta=0.5)[0].item()
    assert curve(ppol.preference_loss_of_margin("dpo", 0.5), x)[0][2] == pytest.approx(direct)


def test_simpo_is_drawn_against_its_own_margin() -> None:
    """Only γ moves SimPO's curve: β and the lengths scale the log-probs behind the margin."""
    x = np.array([-2.0, 0.0, 1.0, 3.0])
    base = curve(ppol.preference_loss_of_margin("simpo", 2.0, gamma=1.0), x)
    other = curve(ppol.preference_loss_of_margin("simpo", 0.3, gamma=1.0, lengths=(3, 40)), x)
    np.testing.assert_allclose(other, base, atol=1e-12)
    assert base[0][2] == pytest.approx(math.log(2)) and base[1][2] == pytest.approx(-0.5)  # margin = γ
    shifted = curve(ppol.preference_loss_of_margin("simpo", 2.0, gamma=2.0), x)
    assert shifted[0][2] == pytest.approx(base[0][1])  # γ + 1 moves the curve right by 1


# --------------------------------------------------------------------------- the page
@pytest.fixture(autouse=True)
def fresh_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("RMCORE_MODEL_CACHE", str(tmp_path / "models"))
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def decode(array) -> np.ndarray:
    if isinstance(array, dict):  # plotly sends numpy arrays as {dtype, bdata}
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    return np.asarray(array)


def traces(at: AppTest, name_part: str) -> dict[str, dict]:
    """The traces, by name, of the one chart with a trace whose name contains name_part."""
    specs = [json.loads(el.proto.spec)["data"] for el in at.get("plotly_chart")]
    (chart,) = [data for data in specs if any(name_part in t.get("name", "") for t in data)]
    return {t["name"]: t for t in chart if t.get("showlegend", True)}


def test_page_draws_the_new_sections_from_the_url() -> None:
    query = {"lb_lmax": "32", "lb_other": "8", "lb_g": "2", "lb_adv": "-1.5", "rc_t": "4", "rc_sign": "A = −1",
             "rc_eps": "0.3", "ipo_tau": "0.25", "slic_beta": "2.0", "simpo_gamma": "2.0", "dpo_span": "6.0"}
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at = at.switch_page("pages/playground.py").run()
    assert not at.exception and not at.error
    headers = [h.value for h in at.header]
    assert len(headers) == 8 and headers[2].startswith("3. GRPO, Dr. GRPO and DAPO")
    assert headers[3].startswith("4. GRPO, GSPO and CISPO") and headers[4].startswith("5. DPO, IPO, SLiC and SimPO")
    assert at.slider(key="lb_lmax").value == 32 and at.segmented_control(key="rc_sign").value == "A = −1"
    for body in (el.value for el in at.latex):  # "\quadZ" is an undefined command: KaTeX draws an error
        assert not re.search(r"\\q?quad[A-Za-z]", body), body
    # 3: |y| runs 1..32, and GRPO's weight at |y| = 1 is |A|/G = 0.75.
    lengths = traces(at, "Dr. GRPO")
    grpo = lengths["GRPO (seq_mean)"]
    assert decode(grpo["x"]).max() == 32 and decode(grpo["y"])[0] == pytest.approx(0.75)
    # 4: A < 0, ε = 0.3: GRPO's gradient vanishes below ρ = 0.7, and at ρ = 1 it is −A/T = 0.25.
    clip = traces(at, "CISPO")
    x, g = decode(clip["GRPO"]["x"]), decode(clip["GRPO"]["y"])
    assert np.all(g[x < 0.7 - 1e-9] == 0) and np.all(g[x > 0.7 + 1e-9] != 0)
    assert g[np.flatnonzero(x == 1.0)[0]] == pytest.approx(0.25)
    # 5: IPO bottoms out at 1/(2τ) = 2; SLiC's legend names its β; SimPO says which margin it is drawn on.
    prefs = traces(at, "IPO")
    ipo = next(t for name, t in prefs.items() if name.startswith("IPO"))
    assert decode(ipo["x"])[decode(ipo["y"]).argmin()] == pytest.approx(2.0)
    assert any(name.startswith("SLiC (β = 2)") for name in prefs)
    assert any(name.startswith("SimPO (γ = 2)") and "r(y_c) − r(y_r)" in name for name in prefs)
    at.slider(key="rc_t").set_value(2).run()  # a moved control reaches its chart and the URL
    assert not at.exception and at.query_params["rc_t"] == "2"
    clip = traces(at, "CISPO")
    assert decode(clip["CISPO"]["y"])[np.flatnonzero(decode(clip["CISPO"]["x"]) == 1.0)[0]] == pytest.approx(0.5)
