"""Loss Playground: its math (estimators, KL, curves from rmcore.losses) and its page (AppTest).

Statistical checks use fixed seeds and a stated tolerance: an unbiased estimate must land
within 4 standard errors of the exact value; a biased one must miss it by more than 10.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from rmcore import playground as pg
from rmcore.config import TrainConfig
from rmcore.errors import ConfigError
from rmcore.losses import REWARD_MODEL_LOSSES, clipped_surrogate_loss, dpo_loss
from rmcore.rewards import Diversity, Rouge

APP = str(Path(__file__).resolve().parents[1] / "app.py")
BUDGET_MS = 300.0


# --------------------------------------------------------------------------- curves come from rmcore.losses
RM_KWARGS = {"bradley_terry": {"margin": 0.5}, "hinge": {"margin": 1.0}, "cross_entropy": {},
             "mse": {"chosen_target": 1.0, "rejected_target": -0.5}, "focal": {"gamma": 2.0, "margin": 0.5},
             "triplet": {"margin": 0.7}}


@pytest.mark.parametrize("name", list(REWARD_MODEL_LOSSES))
def test_rm_curve_values_are_direct_loss_calls_and_gradients_match_finite_differences(name) -> None:
    x, values, _ = pg.rm_loss_curve(name, 4.0, **RM_KWARGS[name])
    assert len(x) <= 400
    loss_fn = REWARD_MODEL_LOSSES[name]
    for i in (0, 7, 20, 33, len(x) - 1):
        delta = torch.tensor([x[i]], dtype=torch.float64)
        chosen, rejected = (10 - delta / 2, 10 + delta / 2) if name == "triplet" else (delta / 2, -delta / 2)
        direct, _ = loss_fn(chosen, rejected, **RM_KWARGS[name])
        assert values[i] == pytest.approx(direct.item(), abs=1e-12)
    h = 1e-6  # central differences of direct calls, away from the hinge/triplet corners
    for point in (-3.3, -0.31, 2.9):
        f = pg.rm_loss_of_delta(name, **RM_KWARGS[name])
        up, down = (torch.tensor([point + step], dtype=torch.float64) for step in (h, -h))
        numeric = (f(up) - f(down)) / (2 * h)
        assert pg.curve(f, np.array([point]))[1][0] == pytest.approx(numeric.item(), abs=1e-6)


def test_rm_curves_hand_values() -> None:
    bt = pg.curve(pg.rm_loss_of_delta("bradley_terry"), np.array([0.0, 2.0]))
    assert bt[0] == pytest.approx([math.log(2), math.log1p(math.exp(-2))])
    assert bt[1] == pytest.approx([-0.5, -1 / (1 + math.exp(2))])
    hinge = pg.curve(pg.rm_loss_of_delta("hinge", margin=1.0), np.array([-1.0, 0.5, 3.0]))
    assert hinge[0] == pytest.approx([2.0, 0.5, 0.0]) and hinge[1] == pytest.approx([-1.0, -1.0, 0.0])
    # MSE with r_c = Δ/2, r_r = −Δ/2: ½[(Δ/2 − 1)² + (Δ/2)²], derivative (Δ − 1)/2.
    mse = pg.curve(pg.rm_loss_of_delta("mse"), np.array([0.0, 4.0]))
    assert mse[0] == pytest.approx([0.5, 2.5]) and mse[1] == pytest.approx([-0.5, 1.5])
    focal_zero = pg.curve(pg.rm_loss_of_delta("focal", gamma=0.0, margin=0.3), np.linspace(-3, 3, 7))
    bt_margin = pg.curve(pg.rm_loss_of_delta("bradley_terry", margin=0.3), np.linspace(-3, 3, 7))
    np.testing.assert_allclose(focal_zero, bt_margin, atol=1e-12)  # focal with γ = 0 is Bradley-Terry


def test_ppo_curve_hand_values_and_zero_gradient_regions() -> None:
    ratios = np.array([0.5, 1.0, 1.5])
    plus = pg.curve(pg.ppo_objective_of_ratio(1.0, 0.2), ratios)
    minus = pg.curve(pg.ppo_objective_of_ratio(-1.0, 0.2), ratios)
    assert plus[0] == pytest.approx([0.5, 1.0, 1.2]) and plus[1] == pytest.approx([1.0, 1.0, 0.0])
    assert minus[0] == pytest.approx([-0.8, -1.0, -1.5]) and minus[1] == pytest.approx([0.0, -1.0, -1.0])
    for ratio, advantage in ((0.37, 2.0), (1.9, -0.5)):
        direct, _ = clipped_surrogate_loss(torch.tensor([[math.log(ratio)]], dtype=torch.float64),
                                           torch.zeros(1, 1, dtype=torch.float64),
                                           torch.tensor([advantage], dtype=torch.float64),
                                           torch.ones(1, 1, dtype=torch.float64), clip_eps=0.2)
        values, _ = pg.curve(pg.ppo_objective_of_ratio(advantage, 0.2), np.array([ratio]))
        assert values[0] == pytest.approx(-direct.item())


@pytest.mark.parametrize("variant", ["sigmoid", "ipo", "hinge"])
def test_dpo_curve_is_dpo_loss_at_h_equal_margin_over_beta(variant) -> None:
    beta, margins = 0.5, np.array([-2.0, 0.0, 0.5, 1.5])
    values, grads = pg.curve(pg.dpo_loss_of_margin(beta, variant), margins)
    for m, value in zip(margins, values, strict=True):
        zero = torch.zeros(1, dtype=torch.float64)
        chosen = torch.tensor([m / beta], dtype=torch.float64)
        direct, _ = dpo_loss(chosen, zero, zero, zero, beta=beta, variant=variant)
        assert value == pytest.approx(direct.item())
    at_zero = {"sigmoid": math.log(2), "ipo": (0 - 1 / (2 * beta)) ** 2, "hinge": 1.0}[variant]
    assert values[1] == pytest.approx(at_zero)
    slope = {"sigmoid": -0.5, "ipo": 2 * (0 - 0.5) / beta ** 2, "hinge": -1.0}[variant]  # d/dm at m = 0
    assert grads[1] == pytest.approx(slope)


def test_grid_keeps_kinks_inside_the_range() -> None:
    x = pg.grid(-1, 1, kinks=(0.123, 5.0), n=11)
    assert 0.123 in x and 5.0 not in x and x[0] == -1 and x[-1] == 1 and np.all(np.diff(x) > 0)


# --------------------------------------------------------------------------- KL estimators
def test_closed_form_kls_match_torch_distributions() -> None:
    normal = torch.distributions.Normal
    expected = torch.distributions.kl_divergence(normal(0.3, 0.7), normal(-1.0, 1.9)).item()
    assert pg.gaussian_kl(0.3, 0.7, -1.0, 1.9) == pytest.approx(expected)
    cat = torch.distributions.Categorical
    logits_p, logits_q = [2.0, 0.0, -1.0], [0.0, 1.0, 0.5]
    expected = torch.distributions.kl_divergence(cat(logits=torch.tensor(logits_p)), cat(logits=torch.tensor(logits_q)))
    assert pg.categorical_kl(logits_p, logits_q) == pytest.approx(expected.item(), rel=1e-5)


def _standard_errors(result: pg.KLSamples, name: str, target: float) -> float:
    values = result.estimates[name]
    return abs(values.mean() - target) / (values.std(ddof=1) / math.sqrt(len(values)))


@pytest.mark.parametrize("family", ["gaussian", "categorical"])
def test_monte_carlo_kl_k1_k3_unbiased_k2_biased_when_far(family) -> None:
    if family == "gaussian":  # σ_q = σ_p keeps k3's variance finite
        far = pg.kl_samples_gaussian(0, 1, 3, 1, 200_000, seed=1)
        near = pg.kl_samples_gaussian(0, 1, 0.1, 1, 200_000, seed=2)
    else:
        far = pg.kl_samples_categorical([3.0, 0.0, -2.0], [-1.0, 0.5, 2.0], 200_000, seed=1)
        near = pg.kl_samples_categorical([0.1, 0.0, -0.1], [0.0, 0.0, 0.0], 200_000, seed=2)
    for result in (far, near):
        assert result.expected["k1"] == pytest.approx(result.exact_kl, rel=1e-9)  # quadrature/sum identity
        assert _standard_errors(result, "k1", result.exact_kl) < 4
        assert _standard_errors(result, "k3", result.exact_kl) < 4
        assert _standard_errors(result, "k2", result.expected["k2"]) < 4  # it converges, to E_p[k2]
        assert np.all(result.estimates["k2"] >= 0) and np.all(result.estimates["k3"] >= -1e-12)
    assert _standard_errors(far, "k2", far.exact_kl) > 10  # far apart: k2 is clearly biased
    assert abs(near.expected["k2"] - near.exact_kl) < 0.02 * near.exact_kl  # close: the bias is third order
    assert far.estimates["k1"].min() < 0  # k1 can go negative, k2 and k3 cannot


def test_gaussian_k2_expectation_matches_hand_value() -> None:
    # p = N(0, 1), q = N(1, 1): log p − log q = ½ − x, so E[k2] = ½(¼ + 1) = 0.625 while KL = 0.5.
    result = pg.kl_samples_gaussian(0, 1, 1, 1, 10, seed=0)
    assert result.exact_kl == pytest.approx(0.5) and result.expected["k2"] == pytest.approx(0.625)


# --------------------------------------------------------------------------- bandit
LOGITS, REWARDS = [0.0, 0.5, -0.5, 1.0], [1.0, 0.8, 0.2, 0.5]


def test_exact_gradient_matches_autograd_of_expected_reward() -> None:
    theta = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    rewards = torch.tensor(REWARDS, dtype=torch.float64)
    (grad,) = torch.autograd.grad(pg.expected_reward(theta, rewards), theta)
    torch.testing.assert_close(pg.exact_gradient(theta.detach(), rewards), grad)


def test_score_function_gradient_matches_naive_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, dtype=torch.float64, generator=generator)
    actions = torch.randint(0, 4, (3, 5), generator=generator)
    advantages = torch.randn(3, 5, dtype=torch.float64, generator=generator)
    got = pg.score_function_gradient(logits, actions, advantages)
    for r in range(3):
        probs = torch.softmax(logits[r], 0)
        naive = sum(advantages[r, i] * (torch.nn.functional.one_hot(actions[r, i], 4) - probs) for i in range(5)) / 5
        torch.testing.assert_close(got[r], naive)
    # The learning loop's closed form is the same estimator as the engine's loss under autograd.
    torch.testing.assert_close(pg.softmax_score_gradient(torch.softmax(logits, -1), actions, advantages), got)


def test_bandit_estimators_are_unbiased_and_the_check_catches_bias() -> None:
    exact, estimates = pg.gradient_estimates(LOGITS, REWARDS, n=2, repeats=40_000, noise=0.3, seed=0)
    stats = {row["estimator"]: row for row in pg.estimator_stats(exact, estimates)}
    for name in pg.PG_ESTIMATORS:
        assert stats[name]["max |bias| / SE"] < 4, (name, stats[name])
    # r_i minus the mean *including* r_i is (N − 1)/N times RLOO: biased, and the 4-SE check sees it.
    self_included = estimates["rloo"] * (2 - 1) / 2
    bias = np.abs(self_included.mean(0) - exact) / (self_included.std(0, ddof=1) / math.sqrt(len(self_included)))
    assert bias.max() > 10


@pytest.mark.parametrize("offset", [0.0, 10.0])
def test_baseline_and_rloo_lower_the_variance(offset) -> None:
    rewards = [r + offset for r in REWARDS]
    exact, estimates = pg.gradient_estimates(LOGITS, rewards, n=8, repeats=4000, seed=3)
    variance = {row["estimator"]: row["total variance"] for row in pg.estimator_stats(exact, estimates)}
    assert variance["baseline"] < variance["reinforce"] and variance["rloo"] < variance["reinforce"]
    if offset:  # a shared offset only adds noise to plain REINFORCE
        assert variance["baseline"] < 0.01 * variance["reinforce"] and variance["rloo"] < 0.01 * variance["reinforce"]


def test_learning_curves_climb_towards_the_best_arm() -> None:
    curves = pg.learning_curves(LOGITS, REWARDS, n=4, steps=200, lr=0.5, seeds=16, seed=0)
    assert set(curves) == {*pg.PG_ESTIMATORS, "exact"}
    assert curves["exact"].shape == (1, 201) and curves["rloo"].shape == (16, 201)
    start = pg.expected_reward(torch.tensor(LOGITS), torch.tensor(REWARDS)).item()
    assert np.all(curves["rloo"][:, 0] == pytest.approx(start))
    assert np.all(np.diff(curves["exact"][0]) > 0)  # small steps of exact ascent never go down
    for name in pg.PG_ESTIMATORS:
        assert curves[name][:, -1].mean() > 0.9 > start, name
    again = pg.learning_curves(LOGITS, REWARDS, n=4, steps=200, lr=0.5, seeds=16, seed=0)
    np.testing.assert_array_equal(again["baseline"], curves["baseline"])


def test_parse_numbers_rejects_bad_text() -> None:
    assert pg.parse_numbers("1, -0.5 2", "x") == [1.0, -0.5, 2.0]
    for bad in ("1, two", "1", "nan, 1"):
        with pytest.raises(ConfigError):
            pg.parse_numbers(bad, "rewards")
    with pytest.raises(ConfigError):
        pg.gradient_estimates([0, 0], [1, 0], n=1, repeats=5)


# --------------------------------------------------------------------------- composite reward
def test_composite_rows_use_the_reward_terms_and_weights() -> None:
    reference = "Kelara Systems is eliminating 2,020 jobs worldwide, chief executive Viktor Torova told staff."
    candidates = {"mine": "Kelara Systems will cut 2,020 jobs.", **pg.hack_candidates(reference)}
    weights = {"rouge": 1.0, "fluency": 2.0, "diversity": 0.5}
    rows = {row["candidate"]: row for row in pg.composite_rows(reference, candidates, weights, fluency=[0.1] * 5)}
    assert rows["copy the reference"]["rouge"] == pytest.approx(1.0)
    assert rows["repetition"]["diversity"] < 0.5 < rows["mine"]["diversity"]
    direct = Rouge("rougeL")([""], [candidates["mine"]], [reference])[0]
    assert rows["mine"]["rouge"] == pytest.approx(direct)
    for row in rows.values():
        assert row["total"] == pytest.approx(row["rouge"] + 2.0 * 0.1 + 0.5 * row["diversity"])
    without = pg.composite_rows(reference, {"mine": candidates["mine"]}, weights, distinct_n=1)[0]
    assert math.isnan(without["fluency"])  # no model: β counts as 0
    assert without["total"] == pytest.approx(direct + 0.5 * Diversity(1)([""], [candidates["mine"]], [""])[0])


# --------------------------------------------------------------------------- the page
@pytest.fixture(autouse=True)
def fresh_caches(tmp_path, monkeypatch):
    """Empty caches, and a model cache without the built-in model (tests never build it)."""
    monkeypatch.setenv("RMCORE_MODEL_CACHE", str(tmp_path / "models"))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def page(**query) -> AppTest:
    """The playground inside the app's entry point, as a deep link (/playground?…) opens it."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    return at.switch_page("pages/playground.py").run()


def timings(at: AppTest) -> dict[str, tuple[float, float]]:
    """Section -> (wall ms, CPU ms of the script thread), as the page recorded them."""
    wall, cpu = at.session_state["_playground_ms"], at.session_state["_playground_cpu_ms"]
    return {name: (wall[name], cpu[name]) for name in wall}


MOVES = ({"rm_gamma": 3.5, "ppo_eps": 0.3, "lb_lmax": 128, "rc_t": 12, "dpo_beta": 0.25, "kl_muq": 1.7, "bd_lr": 0.8,
          "rw_a": 0.5},
         {"rm_gamma": 1.0, "ppo_eps": 0.1, "lb_lmax": 256, "rc_t": 3, "dpo_beta": 1.5, "kl_muq": -0.5, "bd_lr": 0.3,
          "rw_a": 1.5},
         {"rm_gamma": 4.5, "ppo_eps": 0.45, "lb_lmax": 96, "rc_t": 20, "dpo_beta": 0.75, "kl_muq": 2.5, "bd_lr": 1.2,
          "rw_a": 0.1})


def test_page_renders_every_section_within_budget(tmp_path) -> None:
    """Each section's main control moves to a new value three times (every render computes new
    numbers, nothing comes from the cache); the budget applies to each section's best wall
    time of the three, as timeit does, since this 2-core machine is shared."""
    at = page()
    assert not at.exception and not at.error
    assert "Device" in at.sidebar.caption[0].value  # drawn inside the entry point (require_entrypoint)
    assert len(at.header) == 8 and len(at.get("plotly_chart")) == 9 and len(at.dataframe) >= 3
    # No built-in model in this cache: fluency is offered, never built by rendering.
    assert any(b.label == "Prepare the built-in model" for b in at.button)
    assert not (tmp_path / "models" / "tiny-gpt2").exists()
    first, rounds = timings(at), []
    for values in MOVES:
        for key, value in values.items():
            at.slider(key=key).set_value(value)
        at.run()
        assert not at.exception and not at.error
        rounds.append(timings(at))
    print(f"\n{'section (wall ms / CPU ms)':32} {'first load':>13}" + "".join(f"{f'move {i}':>13}" for i in (1, 2, 3))
          + f"   budget {BUDGET_MS:.0f} ms")
    for name in first:
        cells = [first[name], *(r[name] for r in rounds)]
        print(f"{name:32}" + "".join(f"{wall:7.0f} /{cpu:4.0f}" for wall, cpu in cells))
    best = {name: min(r[name][0] for r in rounds) for name in first}
    assert all(ms < BUDGET_MS for ms in best.values()), f"best wall ms after a slider move: {best}"


def test_url_reopens_the_same_view_and_bad_values_fall_back() -> None:
    query = {"teach": "True", "rm_losses": "hinge,focal", "rm_gamma": "4.5", "rm_hm": "2.0", "ppo_eps": "0.35",
             "dpo_beta": "9.0", "kl_family": "Categoricals", "kl_lp": "1, 2, 3", "kl_lq": "0, 0, 1", "kl_n": "500",
             "bd_r": "3, 1", "bd_logits": "0, 1", "bd_n": "16", "rw_preset": "keyword salad", "rw_b": "0.25"}
    at = page(**query)
    assert not at.exception and not at.error
    assert at.toggle(key="teach").value is True
    assert at.multiselect(key="rm_losses").value == ["hinge", "focal"]
    assert at.slider(key="rm_gamma").value == 4.5 and at.slider(key="ppo_eps").value == 0.35
    assert at.slider(key="dpo_beta").value == TrainConfig().dpo_beta  # 9.0 is out of range: the default stays
    assert at.text_input(key="kl_lp").value == "1, 2, 3" and at.slider(key="kl_n").value == 500
    assert at.text_input(key="bd_r").value == "3, 1" and at.slider(key="bd_n").value == 16
    assert at.selectbox(key="rw_preset").value == "keyword salad" and at.slider(key="rw_b").value == 0.25
    keys = {s.key for s in at.slider}
    assert "rm_hm" not in keys and "bd_m" not in keys  # teaching mode hides the advanced controls…
    assert at.session_state["rm_hm"] == 2.0 and at.query_params["rm_hm"] == "2.0"  # …but keeps their value
    at.slider(key="ppo_eps").set_value(0.15).run()
    assert at.query_params["ppo_eps"] == "0.15" and at.query_params["rm_gamma"] == "4.5"
    reopened = page(**{k: at.query_params[k] for k in at.query_params})
    assert reopened.slider(key="ppo_eps").value == 0.15
    assert reopened.multiselect(key="rm_losses").value == ["hinge", "focal"]


def test_bad_text_shows_an_error_and_the_rest_renders() -> None:
    at = page(bd_r="1, x", kl_family="Categoricals", kl_lp="1, 2", kl_lq="1, 2, 3")
    assert not at.exception and len(at.error) == 2 and len(at.header) == 8


def test_prepare_button_builds_through_ensure_builtin_then_fluency_appears(tmp_path, tiny_lm_path,
                                                                          monkeypatch) -> None:
    """The button calls the real builder's entry point; here a stand-in that reports progress and
    copies a tiny local model into place (the real build takes minutes)."""
    import rmcore.backbones
    from rmcore.backbones import builtin_dir
    from rmcore.events import ProgressReport

    calls = []

    def fake_ensure_builtin(cache_dir, *, on_progress=None, seed=0):
        calls.append(Path(cache_dir))
        on_progress(ProgressReport("warm-start", 0.5, "Building tiny-gpt2: warm-start 50%"))
        shutil.copytree(tiny_lm_path, builtin_dir(cache_dir))
        return builtin_dir(cache_dir)

    monkeypatch.setattr(rmcore.backbones, "ensure_builtin", fake_ensure_builtin)
    at = page()
    next(b for b in at.button if b.label == "Prepare the built-in model").click().run()
    assert calls == [tmp_path / "models"] and not at.exception
    at.run()
    assert not any(b.label == "Prepare the built-in model" for b in at.button)
    table = next(df.value for df in at.dataframe if "fluency" in df.value.columns)
    assert table["fluency"].between(0, 1).all() and table["fluency"].gt(0).all()
