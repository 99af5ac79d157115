"""Loss Playground (issue 5): what every loss does, exactly and instantly, for teaching.

Six sections, each a fragment (a slider reruns only its own section) with its formula, its
controls, a live chart and a few plain sentences. All numbers come from rmcore.playground,
which calls the engine's own losses, KL estimators, advantages and rewards. Every control
lives in the URL under its key, so a link reopens the exact view; teaching mode hides the
advanced controls (their values still come from the URL). Each section records its wall and
CPU render time in st.session_state["_playground_ms"] and ["_playground_cpu_ms"] (the test
reads them; the page lists them at the end).
"""
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:  # `streamlit run pages/playground.py` and AppTest put only pages/ there
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import streamlit as st  # noqa: E402

from rmcore import playground as pg  # noqa: E402
from rmcore.backbones import BUILTIN, model_cache_dir  # noqa: E402
from rmcore.errors import ConfigError  # noqa: E402
from rmcore.losses import DPO_VARIANTS, REWARD_MODEL_LOSSES  # noqa: E402
from ui.state import seed_from_url, url_list, write_url  # noqa: E402

TIMINGS, TIMINGS_CPU = "_playground_ms", "_playground_cpu_ms"
COLORS = {"bradley_terry": "#4C5FD5", "hinge": "#E4572E", "mse": "#17BEBB", "cross_entropy": "#76B041",
          "focal": "#FFC914", "triplet": "#9B5DE5",
          "reinforce": "#E4572E", "baseline": "#4C5FD5", "rloo": "#76B041", "exact": "#1F2430",
          "k1": "#E4572E", "k2": "#FFC914", "k3": "#4C5FD5"}
DPO_STYLE = {"sigmoid": ("DPO (sigmoid)", "#4C5FD5"), "ipo": ("IPO", "#9B5DE5"), "hinge": ("hinge (SLiC)", "#E4572E")}
DEFAULT_REFERENCE = "Kelara Systems is eliminating 2,020 jobs worldwide, chief executive Viktor Torova told staff."
DEFAULT_CANDIDATE = "Kelara Systems will cut 2,020 jobs, its chief executive said."


# --------------------------------------------------------------------------- controls in the URL
def control(widget, label: str, key: str, default, *, parse=str, valid=None, advanced: bool = False, **kwargs):
    """Draw `widget` under `key`, seeded from ?key=… and written back; hidden when advanced in teaching mode."""
    raw = url_list(key) if isinstance(default, list) else st.query_params.get(key)
    try:
        url_value = parse(raw) if raw not in (None, []) else None
    except (TypeError, ValueError):
        url_value = None
    seed_from_url(key, url_value, valid or (lambda v: True), default)
    if advanced and st.session_state.get("teach", False):
        value = st.session_state[key]
    else:
        value = widget(label, key=key, **kwargs)
    write_url(key, key, round(value, 6) if isinstance(value, float) else value)
    return value


def slider(label: str, key: str, low: float, high: float, default: float, step: float, at=st, **kwargs):
    """A numeric slider in the URL, drawn in container `at`; ints stay ints (type of `default`)."""
    kind = type(default)
    return control(at.slider, label, key, default, parse=lambda s: kind(float(s)),
                   valid=lambda v: isinstance(v, (int, float)) and low <= v <= high,
                   min_value=low, max_value=high, step=step, **kwargs)


def choice(widget, label: str, key: str, options: list, default, **kwargs):
    if isinstance(default, list):
        return control(widget, label, key, default, parse=list, valid=lambda v: set(v) <= set(options),
                       options=options, **kwargs)
    return control(widget, label, key, default, valid=lambda v: v in options, options=options, **kwargs)


def seed_input(key: str, at=st) -> int:
    return int(control(at.number_input, "seed", key, 0, parse=int, valid=lambda v: isinstance(v, int),
                       advanced=True, step=1))


def text(widget, label: str, key: str, default: str, **kwargs) -> str:
    return control(widget, label, key, default, valid=lambda v: isinstance(v, str) and len(v) <= 2000, **kwargs)


@contextmanager
def timed(name: str):
    """Record the section's wall time and this thread's CPU time, in ms (on a busy machine the
    two differ by the time other processes held the cores)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    yield
    st.session_state.setdefault(TIMINGS, {})[name] = 1000 * (time.perf_counter() - wall)
    st.session_state.setdefault(TIMINGS_CPU, {})[name] = 1000 * (time.thread_time() - cpu)


def chart(data: list[dict], key: str, height: int, **layout) -> None:
    """One Plotly chart from trace dicts. Plain dicts and explicit axis domains, not make_subplots and
    add_trace: those re-validate the figure on every call and cost ~3× more per render."""
    layout = {"height": height, "margin": dict(l=10, r=10, t=60, b=10), "hovermode": "x unified",
              "legend": dict(orientation="h", yanchor="bottom", y=1.06, x=0), **layout}
    st.plotly_chart(go.Figure(data=data, layout=layout), key=key, width="stretch")


def rows_layout(x_title: str, top: str, bottom: str) -> dict:
    """Two panels sharing x: traces with yaxis="y" on top, yaxis="y2" below."""
    return {"xaxis": dict(anchor="y2", title=x_title), "yaxis": dict(domain=[0.55, 1], title=top),
            "yaxis2": dict(domain=[0, 0.45], title=bottom)}


def columns_layout(titles: list[str], x_title: str = "") -> dict:
    """len(titles) panels side by side: traces with xaxis="x2", yaxis="y2" … for panel 2 …"""
    width, gap, layout, notes = 1 / len(titles), 0.06, {}, []
    for i, title in enumerate(titles):
        suffix = "" if i == 0 else str(i + 1)
        domain = [i * width + (gap / 2 if i else 0), (i + 1) * width - (gap / 2 if i < len(titles) - 1 else 0)]
        layout[f"xaxis{suffix}"] = dict(domain=domain, anchor=f"y{suffix}", title=x_title)
        layout[f"yaxis{suffix}"] = dict(anchor=f"x{suffix}")
        notes.append(dict(text=f"<b>{title}</b>", x=sum(domain) / 2, y=1.0, xref="paper", yref="paper",
                          xanchor="center", yanchor="bottom", showarrow=False))
    return {**layout, "annotations": notes}


# --------------------------------------------------------------------------- cached computations
@st.cache_data(max_entries=256, show_spinner=False)
def rm_curve(name: str, span: float, loss_kwargs: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One loss per cache entry, so moving γ recomputes focal alone."""
    return pg.rm_loss_curve(name, span, **dict(loss_kwargs))


@st.cache_data(max_entries=64, show_spinner=False)
def ppo_curves(eps: float, magnitude: float, ratio_max: float) -> tuple[np.ndarray, dict]:
    x = pg.grid(0.02, ratio_max, kinks=(1 - eps, 1 + eps))
    return x, {sign: pg.curve(pg.ppo_objective_of_ratio(sign * magnitude, eps), x) for sign in (1, -1)}


@st.cache_data(max_entries=64, show_spinner=False)
def unclipped_lines(magnitude: float, ratio_max: float) -> tuple[np.ndarray, dict]:
    """ρA, the same surrogate with ε = ∞: a straight line, so a few points draw it."""
    x = pg.grid(0.02, ratio_max, n=9)
    return x, {sign: pg.curve(pg.ppo_objective_of_ratio(sign * magnitude, float("inf")), x)[0] for sign in (1, -1)}


@st.cache_data(max_entries=64, show_spinner=False)
def dpo_curves(beta: float, variants: tuple, span: float) -> tuple[np.ndarray, dict]:
    x = pg.grid(-span, span, kinks=(0.5, 1.0))
    return x, {variant: pg.curve(pg.dpo_loss_of_margin(beta, variant), x) for variant in variants}


@st.cache_data(max_entries=32, show_spinner=False)
def kl_samples(family: str, params: tuple, n: int, seed: int) -> pg.KLSamples:
    if family == "Gaussians":
        return pg.kl_samples_gaussian(*params, n=n, seed=seed)
    return pg.kl_samples_categorical(*params, n=n, seed=seed)


@st.cache_data(max_entries=32, show_spinner=False)
def bandit_estimates(logits: tuple, rewards: tuple, n: int, repeats: int, noise: float, seed: int):
    return pg.gradient_estimates(list(logits), list(rewards), n=n, repeats=repeats, noise=noise, seed=seed)


@st.cache_data(max_entries=32, show_spinner=False)
def bandit_learning(logits: tuple, rewards: tuple, n: int, noise: float, lr: float, seed: int) -> dict:
    return pg.learning_curves(list(logits), list(rewards), n=n, steps=200, lr=lr, noise=noise, seed=seed)


@st.cache_resource(show_spinner="Loading the built-in model…")
def fluency_scorer(path: str):
    import torch

    from rmcore.backbones import load_causal_lm
    from rmcore.rewards import LMScorer

    model, tokenizer = load_causal_lm(path, device=torch.device("cpu"))
    return LMScorer(model, tokenizer, "cpu")


@st.cache_data(max_entries=64, show_spinner=False)
def fluency(path: str, texts: tuple) -> list[float]:
    from rmcore.rewards import Fluency

    return Fluency(fluency_scorer(path))([""] * len(texts), list(texts), [""] * len(texts))


# --------------------------------------------------------------------------- 1. reward-model losses
@st.fragment
def rm_section() -> None:
    with timed("1. reward-model losses"):
        st.header("1. Reward-model losses against the score margin Δ")
        st.latex(r"\Delta = r_c - r_r:\quad \mathrm{BT} = -\log\sigma(\Delta - m),\quad"
                 r"\mathrm{focal} = -(1-p)^{\gamma}\log p,\; p = \sigma(\Delta - m)")
        st.latex(r"\mathrm{hinge} = \max(0, m_h - \Delta),\quad"
                 r"\mathrm{triplet} = \max(0, m_t + d_c - d_r),\; d_r - d_c = \Delta")
        st.latex(r"r_c = \tfrac\Delta2,\; r_r = -\tfrac\Delta2:\quad"
                 r"\mathrm{MSE} = \tfrac12\big[(r_c - t_c)^2 + (r_r - t_r)^2\big],\quad"
                 r"\mathrm{CE} = \tfrac12\big[-\log\sigma(r_c) - \log(1-\sigma(r_r))\big]")
        names = list(REWARD_MODEL_LOSSES)
        cols = st.columns(3)
        shown = choice(cols[0].multiselect, "Losses", "rm_losses", names, names)
        margin = slider("BT / focal margin m", "rm_m", -2.0, 3.0, 0.0, 0.1, at=cols[1])
        gamma = slider("Focal γ", "rm_gamma", 0.0, 5.0, 2.0, 0.5, at=cols[2])
        adv = st.columns(5)
        hinge_margin = slider("Hinge margin m_h", "rm_hm", 0.0, 3.0, 1.0, 0.1, advanced=True, at=adv[0])
        triplet_margin = slider("Triplet margin m_t", "rm_tm", 0.0, 3.0, 0.5, 0.1, advanced=True, at=adv[1])
        t_c = slider("MSE target t_c", "rm_tc", -2.0, 2.0, 1.0, 0.1, advanced=True, at=adv[2])
        t_r = slider("MSE target t_r", "rm_tr", -2.0, 2.0, 0.0, 0.1, advanced=True, at=adv[3])
        span = slider("Δ range ±", "rm_span", 2.0, 15.0, 6.0, 1.0, advanced=True, at=adv[4])
        loss_kwargs = {"bradley_terry": {"margin": margin}, "hinge": {"margin": hinge_margin},
                       "mse": {"chosen_target": t_c, "rejected_target": t_r}, "cross_entropy": {},
                       "focal": {"gamma": gamma, "margin": margin}, "triplet": {"margin": triplet_margin}}
        data = []
        for name in (n for n in names if n in shown):
            x, values, grads = rm_curve(name, span, tuple(loss_kwargs[name].items()))
            data += [dict(type="scatter", x=x, y=values, name=name, line=dict(color=COLORS[name]), legendgroup=name),
                     dict(type="scatter", x=x, y=grads, name=name, line=dict(color=COLORS[name], dash="dot"),
                          legendgroup=name, showlegend=False, yaxis="y2")]
        chart(data, "rm_chart", 520, **rows_layout("Δ = r_chosen − r_rejected", "loss", "d loss / dΔ (autograd)"))
        st.markdown(
            "Pairwise losses (Bradley-Terry, hinge, focal, triplet) only see Δ; MSE and cross-entropy score each "
            "response alone, drawn here with r_c = Δ/2 and r_r = −Δ/2. Bradley-Terry never stops pushing (its "
            "gradient only fades as Δ grows), hinge and triplet (the same hinge, on distances) stop dead once Δ "
            "clears their margin, and focal's γ turns down the pairs that are already ranked well. MSE is the odd one out: it pulls Δ back towards "
            "t_c − t_r from both sides, so a reward model trained with it never becomes over-confident.")


# --------------------------------------------------------------------------- 2. PPO
@st.fragment
def ppo_section() -> None:
    with timed("2. PPO clipped surrogate"):
        st.header("2. PPO's clipped surrogate against the ratio ρ")
        st.latex(r"L^{\mathrm{CLIP}}(\rho) = \min\big(\rho A,\; \mathrm{clip}(\rho, 1-\epsilon, 1+\epsilon)\,A\big),"
                 r"\qquad \rho = \pi_\theta(a)/\pi_{\mathrm{old}}(a)")
        cols = st.columns(3)
        eps = slider("ε (clip range)", "ppo_eps", 0.05, 0.5, 0.2, 0.01, at=cols[0])
        magnitude = slider("|A|", "ppo_adv", 0.1, 2.0, 1.0, 0.1, advanced=True, at=cols[1])
        ratio_max = slider("ρ up to", "ppo_rmax", 1.5, 4.0, 2.5, 0.1, advanced=True, at=cols[2])
        x, curves = ppo_curves(eps, magnitude, ratio_max)
        x_line, lines = unclipped_lines(magnitude, ratio_max)
        data, shapes = [], []
        for axis, sign in (("", 1), ("2", -1)):
            values, grads = curves[sign]
            flat = grads == 0
            on = dict(xaxis=f"x{axis}", yaxis=f"y{axis}", showlegend=axis == "")
            shapes += [dict(type="rect", x0=x0, x1=x1, y0=0, y1=1, xref=f"x{axis}", yref=f"y{axis} domain",
                            fillcolor="grey", opacity=0.12, line_width=0)
                       for x0, x1 in ((0, 1 - eps), (1 + eps, ratio_max))]
            data += [dict(type="scatter", x=x_line, y=lines[sign], name="ρA (no clip)", mode="lines",
                          line=dict(color="#9AA0AC", dash="dash"), **on),
                     dict(type="scatter", x=x, y=values, name="L^CLIP = −loss", line=dict(color="#4C5FD5", width=3),
                          **on),
                     dict(type="scatter", x=x[flat], y=values[flat], mode="markers", name="zero gradient",
                          marker=dict(color="#E4572E", size=5), **on)]
        titles = [f"A = +{magnitude:g}", f"A = −{magnitude:g}"]
        chart(data, "ppo_chart", 380, shapes=shapes, **columns_layout(titles, "ρ"))
        pos_flat, neg_flat = x[curves[1][1] == 0], x[curves[-1][1] == 0]
        st.markdown(
            f"Grey: outside [1 − ε, 1 + ε] = [{1 - eps:.2f}, {1 + eps:.2f}]. Red: where autograd finds no "
            f"gradient — from ρ = {pos_flat.min():.2f} up for A > 0 and from ρ = {neg_flat.max():.2f} down "
            "for A < 0, "
            "the first grid points past 1 ± ε. "
            "The clip only binds on the side where the update would go on helping: a good action stops gaining "
            "once it is 1 + ε times likelier, a bad one once it is 1 − ε times as likely, while a mistake in the "
            "other direction (a bad action made likelier) is never clipped, so it can always be undone."
            if len(pos_flat) and len(neg_flat) else "No clipped point in this range: widen ρ.")


# --------------------------------------------------------------------------- 3. DPO
@st.fragment
def dpo_section() -> None:
    with timed("3. DPO and relatives"):
        st.header("3. DPO's loss against the implicit reward margin")
        st.latex(r"m = \beta\Big(\log\tfrac{\pi(y_c)}{\pi_{\mathrm{ref}}(y_c)}"
                 r" - \log\tfrac{\pi(y_r)}{\pi_{\mathrm{ref}}(y_r)}\Big)")
        st.latex(r"\mathrm{DPO} = -\log\sigma(m),\quad"
                 r"\mathrm{IPO} = \big(\tfrac{m}{\beta} - \tfrac{1}{2\beta}\big)^2,\quad"
                 r"\mathrm{hinge} = \max(0, 1 - m)")
        cols = st.columns(3)
        beta = slider("β", "dpo_beta", 0.05, 2.0, 0.5, 0.05, at=cols[0])
        variants = choice(cols[1].multiselect, "Variants", "dpo_variants", list(DPO_VARIANTS), list(DPO_VARIANTS),
                          advanced=True)
        span = slider("margin range ±", "dpo_span", 2.0, 10.0, 5.0, 0.5, advanced=True, at=cols[2])
        x, curves = dpo_curves(beta, tuple(v for v in DPO_VARIANTS if v in variants), span)
        data = []
        for name, (values, grads) in curves.items():
            label, color = DPO_STYLE[name]
            data += [dict(type="scatter", x=x, y=values, name=label, line=dict(color=color), legendgroup=name),
                     dict(type="scatter", x=x, y=grads, name=label, line=dict(color=color, dash="dot"),
                          legendgroup=name, showlegend=False, yaxis="y2")]
        axes = rows_layout("implicit reward margin m = r̂_c − r̂_r", "loss", "d loss / d m (autograd)")
        axes["yaxis"]["range"], axes["yaxis2"]["range"] = [-0.1, max(3.0, span + 1)], [-1.6, 1.6]
        chart(data, "dpo_chart", 520, **axes)
        st.markdown(
            "DPO's gradient is −σ(−m): once the chosen answer's implicit reward leads by a few units the push "
            "fades (it saturates), but it never reaches zero, so the policy keeps drifting from the reference on "
            "pairs it already gets right. The hinge variant stops exactly at m = 1. IPO regresses the log-ratio "
            "gap to 1/(2β) — its minimum is at m = ½ — and pushes back from above too; its slope is "
            "2(m − ½)/β², "
            f"steep at β = {beta:g}, so it leaves these axes quickly.")


# --------------------------------------------------------------------------- 4. KL estimators
@st.fragment
def kl_section() -> None:
    with timed("4. KL estimators"):
        st.header("4. KL estimators k1, k2, k3")
        st.latex(r"x \sim p,\; r = \tfrac{q(x)}{p(x)}:\quad k_1 = -\log r,\quad k_2 = \tfrac12(\log r)^2,"
                 r"\quad k_3 = (r - 1) - \log r")
        st.latex(r"\mathbb{E}_p[k_1] = \mathbb{E}_p[k_3] = \mathrm{KL}(p\,\|\,q) \neq \mathbb{E}_p[k_2]")
        family = choice(st.segmented_control, "Distributions", "kl_family", ["Gaussians", "Categoricals"], "Gaussians")
        family = family or "Gaussians"
        cols = st.columns(4)
        try:
            if family == "Gaussians":
                mu_p = slider("μ_p (policy)", "kl_mup", -3.0, 3.0, 0.0, 0.1, at=cols[0])
                sigma_p = slider("σ_p", "kl_sp", 0.2, 3.0, 1.0, 0.1, at=cols[1])
                mu_q = slider("μ_q (reference)", "kl_muq", -3.0, 3.0, 1.0, 0.1, at=cols[2])
                sigma_q = slider("σ_q", "kl_sq", 0.2, 3.0, 1.0, 0.1, at=cols[3])
                params = (mu_p, sigma_p, mu_q, sigma_q)
                st.latex(r"\mathrm{KL} = \log\tfrac{\sigma_q}{\sigma_p}"
                         r" + \tfrac{\sigma_p^2 + (\mu_p - \mu_q)^2}{2\sigma_q^2} - \tfrac12")
            else:
                logits_p = text(cols[0].text_input, "logits of p (policy)", "kl_lp", "2, 0, -1, 0.5")
                logits_q = text(cols[1].text_input, "logits of q (reference)", "kl_lq", "0, 0, 0, 0")
                params = (pg.parse_numbers(logits_p, "logits of p"), pg.parse_numbers(logits_q, "logits of q"))
                params = tuple(tuple(p) for p in params)
                st.latex(r"\mathrm{KL} = \textstyle\sum_i p_i(\log p_i - \log q_i),\; p = \mathrm{softmax}(\ell_p)")
            more = st.columns(4)
            n = slider("N samples", "kl_n", 100, 20000, 2000, 100, at=more[0])
            seed = seed_input("kl_seed", at=more[1])
            result = kl_samples(family, params, n, seed)
        except ConfigError as err:
            st.error(str(err))
            return
        data, shapes = [], []
        for col, (name, values) in enumerate(result.estimates.items(), start=1):
            axis = "" if col == 1 else str(col)
            low, high = np.quantile(values, [0.005, 0.995])
            counts, edges = np.histogram(values, bins=40, range=(low, high if high > low else low + 1e-6))
            data.append(dict(type="bar", x=(edges[:-1] + edges[1:]) / 2, y=counts, name=name, showlegend=False,
                             marker_color=COLORS[name], xaxis=f"x{axis}", yaxis=f"y{axis}"))
            shapes += [dict(type="line", x0=at, x1=at, y0=0, y1=1, xref=f"x{axis}", yref=f"y{axis} domain", line=line)
                       for at, line in ((result.exact_kl, dict(color="black", dash="dash")),
                                        (float(values.mean()), dict(color=COLORS[name], width=3)))]
        chart(data, "kl_chart", 300, shapes=shapes, bargap=0, **columns_layout(["k1", "k2", "k3"]))
        st.dataframe(pd.DataFrame(pg.kl_summary(result)).set_index("estimator").round(4), width="stretch")
        st.markdown(
            f"Dashed: the exact KL = {result.exact_kl:.4f}; solid: each estimator's mean over {n} samples (the "
            "histograms hide the outer 1%). k1 is unbiased but noisy and often negative; k3 is unbiased, never "
            "negative, and far less noisy than k1 when p and q are close; k2 is quiet too but biased — E_p[k2] is "
            "what it really estimates, near the KL only for nearby distributions (try μ_q = 3). With "
            "σ_q² > 2σ_p², k3's variance is infinite: watch its mean jump with the seed.")


# --------------------------------------------------------------------------- 5. bandit
@st.fragment
def bandit_section() -> None:
    with timed("5. policy gradient on a bandit"):
        st.header("5. Policy-gradient variance on a K-armed bandit")
        st.latex(r"\pi = \mathrm{softmax}(\theta),\quad J = \textstyle\sum_a \pi_a r_a,\quad"
                 r"\nabla_\theta J = \pi \odot (r - J) \;\approx\; \tfrac1N \sum_i A_i \nabla_\theta \log\pi(a_i)")
        st.latex(r"A_i = r_i \;\text{(REINFORCE)},\quad r_i - J \;\text{(baseline)},\quad"
                 r"r_i - \tfrac{1}{N-1}\textstyle\sum_{j\neq i} r_j \;\text{(RLOO)}")
        cols = st.columns(3)
        rewards_text = text(cols[0].text_input, "rewards r per arm", "bd_r", "1, 0.8, 0.2, 0.5")
        logits_text = text(cols[1].text_input, "initial logits θ", "bd_logits", "0, 0, 1.5, 0")
        n = slider("N pulls per estimate", "bd_n", 2, 64, 4, 1, at=cols[2])
        adv = st.columns(4)
        lr = slider("learning rate", "bd_lr", 0.05, 2.0, 0.5, 0.05, at=adv[0])
        repeats = slider("M repeats", "bd_m", 50, 1000, 300, 50, advanced=True, at=adv[1])
        noise = slider("reward noise σ", "bd_noise", 0.0, 2.0, 0.0, 0.1, advanced=True, at=adv[2])
        seed = seed_input("bd_seed", at=adv[3])
        try:
            rewards = pg.parse_numbers(rewards_text, "rewards")
            logits = pg.parse_numbers(logits_text, "logits")
            if len(rewards) != len(logits):
                raise ConfigError(f"Give one logit per arm: {len(rewards)} rewards but {len(logits)} logits.")
        except ConfigError as err:
            st.error(str(err))
            return
        exact, estimates = bandit_estimates(tuple(logits), tuple(rewards), n, repeats, noise, seed)
        curves = bandit_learning(tuple(logits), tuple(rewards), n, noise, lr, seed)
        arms = [f"arm {k}" for k in range(len(rewards))]
        # Box statistics are computed by Plotly in the browser; send arm labels and values, M·K each.
        spread = [dict(type="box", x=np.tile(arms, len(values)), y=values.ravel(), name=name,
                       marker_color=COLORS[name], boxpoints=False) for name, values in estimates.items()]
        spread.append(dict(type="scatter", x=arms, y=exact, mode="markers", name="exact ∇J",
                           marker=dict(color="black", symbol="line-ew-open", size=30, line=dict(width=3))))
        steps, learn = np.arange(201), []
        for name, runs in curves.items():
            if len(runs) > 1:
                low, high = np.quantile(runs, [0.1, 0.9], axis=0)
                learn.append(dict(type="scatter", x=np.r_[steps, steps[::-1]], y=np.r_[high, low[::-1]],
                                  fill="toself", fillcolor=COLORS[name], opacity=0.15, line=dict(width=0),
                                  hoverinfo="skip", showlegend=False))
            learn.append(dict(type="scatter", x=steps, y=runs.mean(0), name=name, line=dict(color=COLORS[name])))
        left, right = st.columns(2)
        with left:
            st.caption(f"**Spread**: {repeats} gradient estimates from {n} pulls each, against the exact ∇J")
            chart(spread, "bd_spread", 380, boxmode="group", yaxis_title="∂J/∂θ_k", hovermode="closest")
        with right:
            st.caption(f"**Learning**: 200 steps of θ ← θ + {lr:g}·ĝ, mean of {len(curves['reinforce'])} seeds "
                       "with a 10–90% band")
            chart(learn, "bd_learn", 380, xaxis_title="step", yaxis_title="J(θ) = E_π[r]")
        stats = pd.DataFrame(pg.estimator_stats(exact, estimates)).set_index("estimator")
        st.dataframe(stats.round(4), width="stretch")
        st.markdown(
            "All three estimators are centred on the exact gradient (the bias column, in standard errors, stays "
            "small); they differ in spread. Subtracting a baseline that does not depend on the sampled action — "
            "here the true value J, or the mean of the other N − 1 pulls for RLOO — keeps the mean and removes "
            "the part of the noise that comes from all rewards sharing an offset: add 10 to every reward and "
            "watch plain REINFORCE's variance explode while the others do not move.")


# --------------------------------------------------------------------------- 6. composite reward
@st.fragment
def reward_section() -> None:
    with timed("6. composite reward"):
        st.header("6. The composite reward, and how to hack it")
        st.latex(r"r(y) = \alpha\,\mathrm{ROUGE}(y, y^*) + \beta\,\mathrm{Fluency}(y) + \gamma\,\mathrm{Diversity}(y)")
        reference = text(st.text_area, "reference y*", "rw_ref", DEFAULT_REFERENCE, height=70)
        hacks = pg.hack_candidates(reference)
        preset = choice(st.selectbox, "candidate", "rw_preset", ["your own", *hacks], "your own")
        if preset == "your own":
            candidate = text(st.text_area, "your candidate y", "rw_cand", DEFAULT_CANDIDATE, height=70)
        else:
            candidate = hacks[preset]
            st.code(candidate, language=None, wrap_lines=True)
        cols = st.columns(5)
        alpha = slider("α (ROUGE)", "rw_a", 0.0, 2.0, 1.0, 0.05, at=cols[0])
        beta = slider("β (fluency)", "rw_b", 0.0, 2.0, 1.0, 0.05, at=cols[1])
        gamma = slider("γ (diversity)", "rw_g", 0.0, 2.0, 0.5, 0.05, at=cols[2])
        rouge_type = choice(cols[3].selectbox, "ROUGE", "rw_rouge", ["rougeL", "rouge1", "rouge2"], "rougeL",
                            advanced=True)
        distinct = slider("distinct-n", "rw_n", 1, 4, 2, 1, advanced=True, at=cols[4])
        candidates = {"your candidate" if preset == "your own" else preset: candidate,
                      **{name: value for name, value in hacks.items() if name != preset}}
        model_dir = model_cache_dir() / BUILTIN
        scores = None
        if (model_dir / "config.json").exists():
            scores = fluency(str(model_dir), tuple(candidates.values()))
        else:
            st.info("Fluency needs the built-in model, which is not built yet (a few minutes, once); the other "
                    "terms are computed without it and β counts as 0.")
            if st.button("Prepare the built-in model", key="rw_prepare"):
                bar = st.progress(0.0, text="Building tiny-gpt2…")
                from rmcore.backbones import ensure_builtin

                ensure_builtin(model_cache_dir(), on_progress=lambda r: bar.progress(min(max(r.fraction, 0.0), 1.0),
                                                                                      text=r.message))
                st.rerun()
        rows = pg.composite_rows(reference, candidates, {"rouge": alpha, "fluency": beta, "diversity": gamma},
                                 fluency=scores, rouge_type=rouge_type, distinct_n=distinct)
        table = pd.DataFrame(rows).set_index("candidate")[["total", "rouge", "fluency", "diversity", "text"]]
        data = [dict(type="bar", y=list(table.index), x=weight * table[term].fillna(0.0).to_numpy(), name=term,
                     orientation="h", marker_color=color)
                for term, weight, color in (("rouge", alpha, "#4C5FD5"), ("diversity", gamma, "#FFC914"),
                                            ("fluency", beta if scores else 0.0, "#76B041"))]
        data.append(dict(type="scatter", y=list(table.index), x=table["total"].to_numpy(), mode="markers", name="total",
                         marker=dict(color="black", symbol="diamond", size=10)))
        chart(data, "rw_chart", 320, barmode="relative", xaxis_title="weighted contribution to r(y)",
              hovermode="y unified", yaxis=dict(autorange="reversed"))
        st.dataframe(table.round(3), width="stretch")
        st.markdown(
            "Every weight invites a hack: copying the reference maxes ROUGE (a policy has no reference to copy, "
            "but it can learn to echo the document), a fluency term rewards bland, safe sentences and repetition, "
            "and distinct-n alone is maxed by any word salad. Move α, β, γ until the honest candidate wins; that "
            "balance, not any single term, is what the policy will optimise.")


# --------------------------------------------------------------------------- page
st.title("Loss playground")
st.caption("Every curve is computed by the engine's own loss, KL, advantage and reward functions; move a control "
           "and only its section recomputes. The URL holds every control: copy it to share this exact view.")
control(st.toggle, "Teaching mode (hide advanced controls)", "teach", False, parse=lambda s: s == "True",
        valid=lambda v: isinstance(v, bool))
for section in (rm_section, ppo_section, dpo_section, kl_section, bandit_section, reward_section):
    section()
    st.divider()
with st.expander("Render time of each section (budget: 300 ms)"):
    st.dataframe(pd.DataFrame({"wall ms": st.session_state.get(TIMINGS, {}),
                               "CPU ms": st.session_state.get(TIMINGS_CPU, {})}).round(1), width="stretch")
