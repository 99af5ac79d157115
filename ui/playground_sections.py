"""Loss playground, sections 1, 2 and 5: each loss drawn against the one number it depends on.

Reward-model losses against the score margin Δ (built from the loss registry), PPO's clipped
surrogate against the ratio ρ, and DPO, IPO, SLiC and SimPO against their preference margin.
Each section is a fragment (a slider reruns only its own section); values and gradients come
from rmcore.playground and rmcore.playground_policy, which call the engine's own losses under
autograd.
"""
from __future__ import annotations

import streamlit as st

from rmcore import playground as pg
from rmcore.algorithms import POLICY_LOSSES
from rmcore.config import TrainConfig
from rmcore.playground_policy import zero_intervals
from ui.playground_charts import (ALGO_COLORS, PALETTE, chart, columns_layout, ppo_curves, preference_curves, rm_curve,
                                  rows_layout, unclipped_lines)
from ui.playground_controls import choice, slider, timed
from ui.text import md_escape

ADVANCED_PER_ROW = 5  # advanced sliders per row of columns, the Δ range last
TRAIN_DEFAULTS = TrainConfig()


# --------------------------------------------------------------------------- 1. reward-model losses
@st.fragment
def rm_section() -> None:
    """Every registered reward-model loss, with its formula, sliders, colour and sentence taken
    from its registry entry (rmcore.losses.registry): a new loss appears here with no ui edit."""
    with timed("1. reward-model losses"):
        st.header("1. Reward-model losses against the score margin Δ")
        entries, knobs = pg.rm_losses(), pg.rm_knobs()
        st.latex(r"\Delta = r_c - r_r,\qquad \text{scored alone: } r_c = \tfrac\Delta2,\; r_r = -\tfrac\Delta2")
        for row in range(0, len(entries), 2):
            st.latex(r",\quad ".join(entry.curve.formula for entry in entries[row:row + 2]))
        names = [entry.name for entry in entries]
        main = [knob for knob in knobs.values() if not knob.advanced]
        advanced = [knob for knob in knobs.values() if knob.advanced]
        cols = st.columns(1 + len(main))
        shown = choice(cols[0].multiselect, "Losses", "rm_losses", names, names)
        values = {knob.key: slider(knob.label, knob.key, knob.low, knob.high, float(knob.start), knob.step, at=col)
                  for knob, col in zip(main, cols[1:])}
        adv = [col for i in range(0, len(advanced) + 1, ADVANCED_PER_ROW)
               for col in st.columns(min(ADVANCED_PER_ROW, len(advanced) + 1 - i))]
        values |= {knob.key: slider(knob.label, knob.key, knob.low, knob.high, float(knob.start), knob.step,
                                    advanced=True, at=col) for knob, col in zip(advanced, adv)}
        span = slider("Δ range ±", "rm_span", 2.0, 15.0, 6.0, 1.0, advanced=True, at=adv[-1])
        data = []
        for i, entry in enumerate(entries):
            if entry.name not in shown:
                continue
            name, color = entry.name, entry.curve.color or PALETTE[i % len(PALETTE)]
            x, loss, grads = rm_curve(name, span, tuple(pg.rm_kwargs(entry, values).items()))
            data += [dict(type="scatter", x=x, y=loss, name=name, line=dict(color=color), legendgroup=name),
                     dict(type="scatter", x=x, y=grads, name=name, line=dict(color=color, dash="dot"),
                          legendgroup=name, showlegend=False, yaxis="y2")]
        chart(data, "rm_chart", 520, **rows_layout("Δ = r_chosen − r_rejected", "loss", "d loss / dΔ (autograd)"))
        st.markdown("Pairwise losses only see Δ; the losses that score each response alone are drawn with "
                    "r_c = Δ/2 and r_r = −Δ/2, and a loss on embedding distances with d_r − d_c = Δ.")
        st.markdown("\n".join(f"- **{md_escape(entry.label)}** ({md_escape(entry.name)}): "
                              f"{md_escape(entry.description)}" for entry in entries if entry.name in shown))


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


# --------------------------------------------------------------------------- 5. DPO and relatives
# (algorithm, config field = URL key, slider label, low, high, step, advanced): each algorithm's
# own coefficient, starting at the config's default as a run would use it. SimPO's β is advanced:
# on SimPO's own margin it only scales the log-probs behind it (it shows in the text).
PREFERENCE_KNOBS = (("dpo", "dpo_beta", "DPO β", 0.05, 2.0, 0.05, False),
                    ("ipo", "ipo_tau", "IPO τ", 0.05, 1.0, 0.01, False),
                    ("slic", "slic_beta", "SLiC β", 0.1, 4.0, 0.05, False),
                    ("simpo", "simpo_beta", "SimPO β", 0.5, 10.0, 0.1, True))
SYMBOLS = {"dpo": "β", "ipo": "τ", "slic": "β"}  # the algorithms drawn against h, by their coefficient's name


@st.fragment
def preference_section() -> None:
    with timed("5. DPO and relatives"):
        st.header("5. DPO, IPO, SLiC and SimPO against the preference margin")
        st.latex(r"h = \log\tfrac{\pi(y_c)}{\pi_{\mathrm{ref}}(y_c)}"
                 r" - \log\tfrac{\pi(y_r)}{\pi_{\mathrm{ref}}(y_r)},\qquad "
                 r"r(y) = \tfrac{\beta}{|y|}\log\pi(y)\ \text{(SimPO: no reference)}")
        st.latex(r"\mathrm{DPO} = -\log\sigma(\beta h),\quad \mathrm{IPO} = \big(h - \tfrac{1}{2\tau}\big)^2,\quad "
                 r"\mathrm{SLiC} = \max(0, 1 - \beta h),\quad "
                 r"\mathrm{SimPO} = -\log\sigma\big(r(y_c) - r(y_r) - \gamma\big)")
        cols = st.columns(len(PREFERENCE_KNOBS))
        coefs = {name: slider(text, key, low, high, float(getattr(TRAIN_DEFAULTS, key)), step, advanced=adv, at=col)
                 for (name, key, text, low, high, step, adv), col in zip(PREFERENCE_KNOBS, cols)}
        more = st.columns(3)
        gamma = slider("SimPO γ", "simpo_gamma", 0.0, 5.0, float(TRAIN_DEFAULTS.simpo_gamma), 0.1, at=more[0])
        names = [knob[0] for knob in PREFERENCE_KNOBS]
        shown = choice(more[1].multiselect, "Algorithms", "pref_algos", names, names, advanced=True,
                       format_func=lambda name: POLICY_LOSSES[name].label)
        span = slider("margin range ±", "dpo_span", 2.0, 20.0, 8.0, 0.5, advanced=True, at=more[2])
        x, curves = preference_curves(tuple((n, c) for n, c in coefs.items() if n in shown), gamma, span)
        data = []
        for name, (values, grads) in curves.items():
            symbol, label = SYMBOLS.get(name), POLICY_LOSSES[name].label
            label = (f"{label} ({symbol} = {coefs[name]:g}), x = h" if symbol
                     else f"{label} (γ = {gamma:g}), x = r(y_c) − r(y_r)")
            line = dict(color=ALGO_COLORS[name])
            data += [dict(type="scatter", x=x, y=values, name=label, line=line, legendgroup=name),
                     dict(type="scatter", x=x, y=grads, name=label, line=line | dict(dash="dot"),
                          legendgroup=name, showlegend=False, yaxis="y2")]
        axes = rows_layout("margin: h for DPO, IPO, SLiC · r(y_c) − r(y_r), length-normalised, for SimPO", "loss",
                           "d loss / d margin (autograd)")
        slope = 1.15 * max([1.0, *(coefs[name] for name in curves if name in SYMBOLS)])  # DPO's, SLiC's: up to β
        axes["yaxis"]["range"], axes["yaxis2"]["range"] = [-0.1, 4.0], [-slope, slope]
        chart(data, "dpo_chart", 520, **axes)
        said = [SENTENCES[name](x, values, grads, coefs[name], gamma) for name, (values, grads) in curves.items()]
        st.markdown(md_escape(" ".join(said)) or "Pick an algorithm to draw.")  # app text, numbers from the curves


def _ipo_sentence(x, values, grads, tau: float, gamma: float) -> str:
    bottom = zero_intervals(x, grads)  # the minimum is on the grid (a kink), where autograd finds 0
    return (f"IPO bottoms out at h = {bottom[0][0]:.2f} = 1/(2τ) and pushes back beyond it: it regresses h onto a "
            "target instead of growing it." if bottom else "IPO's target h = 1/(2τ) lies beyond this range: widen it.")


def _slic_sentence(x, values, grads, beta: float, gamma: float) -> str:
    stops = zero_intervals(x, grads)
    return (f"SLiC stops dead at its hinge corner h = {stops[0][0]:.2f} = 1/β: no gradient beyond." if stops
            else "SLiC's hinge corner h = 1/β lies beyond this range: widen it.")


# One sentence per algorithm drawn, its numbers read off the curve: (x, loss, d loss, coefficient, γ) -> text.
SENTENCES = {
    "dpo": lambda x, values, grads, beta, gamma: (
        "DPO's slope −β·σ(−βh) fades as h grows but never reaches zero, so the policy keeps moving away from "
        "the reference on pairs it already ranks right."),
    "ipo": _ipo_sentence,
    "slic": _slic_sentence,
    "simpo": lambda x, values, grads, beta, gamma: (
        f"SimPO is a log-sigmoid on its own margin of average log-probs, with no reference model, shifted by "
        f"γ = {gamma:g}: at β = {beta:g} the chosen answer must beat the rejected one by γ/β = {gamma / beta:.2f} "
        "nats per token, whatever the lengths."),
}
