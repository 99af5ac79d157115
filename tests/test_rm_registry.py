"""The reward-model loss registry: each entry is complete and consistent with its function, the
margin defaults to the loss's own (hinge and triplet 1, the others 0), the family and margin
rules follow the entries, and a newly registered loss reaches the Loss Playground with no ui edit.
"""
from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from rmcore import playground as pg
from rmcore import config, rm_family
from rmcore.config import RewardModelConfig, field_help
from rmcore.errors import ConfigError
from rmcore.losses import REWARD_MODEL_LOSSES, Knob, PlaygroundCurve, RewardModelLoss, get_reward_model_loss
from rmcore.losses.registry import EMBEDDING, FAMILIES, SCALAR

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def t(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def keyword_defaults(fn) -> dict[str, float]:
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name != "center_coef"}


# --------------------------------------------------------------------------- the entries
@pytest.mark.parametrize("name", list(REWARD_MODEL_LOSSES))
def test_every_entry_is_complete_and_matches_its_function(name) -> None:
    entry = REWARD_MODEL_LOSSES[name]
    assert isinstance(entry, RewardModelLoss) and entry.name == name and get_reward_model_loss(name) is entry
    assert entry.label and entry.description and entry.curve.formula and callable(entry.fn)
    assert entry.families and entry.families <= {SCALAR, EMBEDDING}
    assert dict(entry.hyperparameters) == keyword_defaults(entry.fn)  # the defaults are the function's own
    assert set(entry.curve.knobs) <= set(entry.hyperparameters)
    chosen, rejected = t([0.3, 2.0]), t([0.1, 2.5])
    assert entry(chosen, rejected)[0].item() == entry.fn(chosen, rejected)[0].item()  # calling it calls fn
    assert entry.__doc__ == entry.fn.__doc__


def test_rule_tuples_are_derived_from_the_entries_with_the_old_values() -> None:
    assert rm_family.EMBEDDING_LOSSES == ("triplet",)
    assert rm_family.SCALAR_LOSSES == ("mse", "cross_entropy")
    assert rm_family.MARGIN_LOSSES == ("hinge", "triplet")
    assert (rm_family.SCALAR, rm_family.EMBEDDING) == FAMILIES == ("scalar", "embedding")


def test_a_broken_entry_is_refused_when_registered() -> None:
    curve = PlaygroundCurve("x")
    with pytest.raises(ValueError, match="families"):
        RewardModelLoss("x", "X", REWARD_MODEL_LOSSES["hinge"].fn, frozenset({"siamese"}), {}, "d", curve)
    with pytest.raises(ValueError, match="keywords of hinge_loss"):
        RewardModelLoss("x", "X", REWARD_MODEL_LOSSES["hinge"].fn, frozenset(FAMILIES), {"gamma": 1.0}, "d", curve)


# --------------------------------------------------------------------------- the margin default
@pytest.mark.parametrize("loss, margin", [("hinge", 1.0), ("triplet", 1.0), ("bradley_terry", 0.0), ("focal", 0.0)])
def test_margin_not_given_is_the_losss_own(loss, margin) -> None:
    cfg = RewardModelConfig(loss=loss).validate()  # hinge and triplet used to be refused here
    assert rm_family.resolved_margin(cfg) == margin and rm_family.loss_kwargs(cfg)["margin"] == margin
    assert REWARD_MODEL_LOSSES[loss].default("margin") == margin


def test_an_explicit_margin_wins_and_zero_on_a_margin_loss_is_refused() -> None:
    assert rm_family.loss_kwargs(RewardModelConfig(loss="hinge", margin=2.5))["margin"] == 2.5
    assert rm_family.loss_kwargs(RewardModelConfig(loss="bradley_terry", margin=0.5))["margin"] == 0.5
    for loss in ("hinge", "triplet"):
        with pytest.raises(ConfigError, match=f"The {loss} loss needs a positive margin"):
            RewardModelConfig(loss=loss, margin=0.0).validate()
    with pytest.raises(ConfigError, match=r"margin must be -1 \(the loss's own default\) or in \[0, 1000000\], "
                                          r"got -0.5\."):
        RewardModelConfig(margin=-0.5).validate()
    with pytest.raises(ConfigError, match="margin must be -1"):
        RewardModelConfig(margin=2e6).validate()
    assert "1 for hinge and triplet, 0 otherwise" in field_help(RewardModelConfig, "margin")
    assert RewardModelConfig().margin == config.MARGIN_DEFAULT == rm_family.MARGIN_DEFAULT == -1.0


def test_default_hyperparameters_give_the_hand_values() -> None:
    """Each loss called with the config's resolved keywords (no margin given)."""
    def value(loss: str, chosen: list[float], rejected: list[float]) -> float:
        kwargs = rm_family.loss_kwargs(RewardModelConfig(loss=loss))
        return get_reward_model_loss(loss)(t(chosen), t(rejected), **kwargs)[0].item()

    assert value("hinge", [2.0], [1.5]) == pytest.approx(0.5)                 # max(0, 1 − 0.5)
    assert value("triplet", [2.0], [1.5]) == pytest.approx(1.5)               # distances: max(0, 1 + 2 − 1.5)
    assert value("bradley_terry", [2.0], [1.5]) == pytest.approx(math.log1p(math.exp(-0.5)))  # −log σ(0.5)
    # focal, γ = 2, m = 0: −(1 − σ(0.5))² log σ(0.5)
    p = 1 / (1 + math.exp(-0.5))
    assert value("focal", [2.0], [1.5]) == pytest.approx(-(1 - p) ** 2 * math.log(p))


# --------------------------------------------------------------------------- a new loss, no other edit
def squared_hinge_loss(chosen: torch.Tensor, rejected: torch.Tensor, *, margin: float = 0.5,
                       center_coef: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Squared hinge: L = max(0, m − (r_c − r_r))², mean over pairs."""
    loss = (torch.relu(margin - (chosen - rejected)) ** 2).mean()
    return loss, {"loss/squared_hinge": loss.item()}


@pytest.fixture
def squared_hinge(monkeypatch) -> RewardModelLoss:
    entry = RewardModelLoss(
        "squared_hinge", "Squared hinge", squared_hinge_loss, frozenset({SCALAR}), {"margin": 0.5},
        "A throwaway entry: the hinge, squared.",
        PlaygroundCurve(r"\max(0, m_s - \Delta)^2", {"margin": Knob("rm_sqm", "Squared-hinge margin", 0.0, 3.0, 0.1)}))
    monkeypatch.setitem(REWARD_MODEL_LOSSES, entry.name, entry)
    return entry


def test_a_registered_loss_follows_the_config_rules(squared_hinge) -> None:
    cfg = RewardModelConfig(loss="squared_hinge").validate()
    assert rm_family.reward_model_kind(cfg) == SCALAR
    assert rm_family.loss_kwargs(cfg) == {"center_coef": 0.0, "margin": 0.5}
    with pytest.raises(ConfigError, match="needs a positive margin"):  # its default margin is positive
        RewardModelConfig(loss="squared_hinge", margin=0.0).validate()
    with pytest.raises(ConfigError, match="use the scalar family"):
        RewardModelConfig(loss="squared_hinge", family="embedding").validate()


def test_a_registered_loss_appears_in_the_playground_and_its_curve_computes(squared_hinge) -> None:
    assert [entry.name for entry in pg.rm_losses()][-1] == "squared_hinge"
    knobs = pg.rm_knobs()
    assert knobs["rm_sqm"].start == 0.5 and knobs["rm_tm"].start == 0.5 and knobs["rm_hm"].start == 1.0
    kwargs = pg.rm_kwargs(squared_hinge, {key: knob.start for key, knob in knobs.items()})
    assert kwargs == {"margin": 0.5}
    x, values, grads = pg.rm_loss_curve("squared_hinge", 3.0, **kwargs)
    at = {float(point): (value, grad) for point, value, grad in zip(x, values, grads)}
    assert at[0.0] == pytest.approx((0.25, -1.0))   # (0.5 − 0)², d/dΔ = −2(0.5 − 0)
    assert at[0.5] == pytest.approx((0.0, 0.0))     # the margin is on the grid (a kink)
    assert at[-3.0] == pytest.approx((12.25, -7.0))  # (0.5 + 3)², −2·3.5
    # The built-in knobs still map to each loss's keywords.
    values_by_key = {key: knob.start for key, knob in knobs.items()}
    assert pg.rm_kwargs(REWARD_MODEL_LOSSES["focal"], values_by_key) == {"gamma": 2.0, "margin": 0.0}
    assert pg.rm_kwargs(REWARD_MODEL_LOSSES["cross_entropy"], values_by_key) == {}
    np.testing.assert_allclose(pg.curve(pg.rm_loss_of_delta("triplet", margin=1.0), np.array([0.0]))[0], [1.0])


def test_a_registered_loss_is_drawn_by_the_page(squared_hinge, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RMCORE_MODEL_CACHE", str(tmp_path / "models"))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"rm_sqm": "1.5"})
    at = at.switch_page("pages/playground.py").run()
    assert not at.exception and not at.error
    assert "squared_hinge" in at.multiselect(key="rm_losses").options
    assert "squared_hinge" in at.multiselect(key="rm_losses").value
    assert at.slider(key="rm_sqm").value == 1.5  # its slider, seeded from the URL like the others
    assert '"name":"squared_hinge"' in at.get("plotly_chart")[0].proto.spec.replace(" ", "")
    assert any("Squared hinge" in m.value and "throwaway" in m.value for m in at.markdown)
    st.cache_data.clear()
