"""Loss playground, sections 1–3: each loss drawn against the one number it depends on.

Reward-model losses against the score margin Δ (built from the loss registry), PPO's clipped
surrogate against the ratio ρ, DPO and its relatives against the implicit reward margin. Each section is a fragment (a
slider reruns only its own section); values and gradients come from rmcore.playground,
which calls the engine's own losses under autograd.
"""
from __future__ import annotations

import streamlit as st

from rmcore import playground as pg
from rmcore.losses import DPO_VARIANTS
from ui.playground_charts import (DPO_STYLE, PALETTE, chart, columns_layout, dpo_curves, ppo_curves, rm_curve,
                                  rows_layout, unclipped_lines)
from ui.playground_controls import choice, slider, timed
from ui.text import md_escape

ADVANCED_PER_ROW = 5  # advanced sliders per row of columns, the Δ range last


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
