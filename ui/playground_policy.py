"""Loss playground, sections 3–4: what GRPO's successors change, one knob at a time.

GRPO vs Dr. GRPO vs DAPO: the gradient one token receives against the length of its
response (the normaliser). GRPO vs GSPO vs CISPO: where the gradient with respect to one
token's log π is zero as that token's ratio moves (the clip). Each section is a fragment; the
numbers come from rmcore.playground_policy, which calls the engine's own losses under autograd.
"""
from __future__ import annotations

import streamlit as st

from rmcore.algorithms import POLICY_LOSSES
from rmcore.playground_policy import LENGTH_NORMS, RATIO_ALGORITHMS, one_right_advantages, zero_intervals
from ui.playground_charts import ALGO_COLORS, chart, length_bias, ratio_curves, rows_layout
from ui.playground_controls import choice, slider, timed
from ui.text import md_escape

SIGNS = {"A = +1": 1.0, "A = −1": -1.0}


# --------------------------------------------------------------------------- 3. length bias
@st.fragment
def length_section() -> None:
    with timed("3. length bias"):
        st.header("3. GRPO, Dr. GRPO and DAPO: the loss per token against response length")
        st.latex(r"\Big|\frac{\partial L}{\partial \log\pi(y_t)}\Big| = \frac{|A|}{Z},\qquad "
                 r"Z_{\mathrm{GRPO}} = G\,|y|,\quad Z_{\mathrm{Dr.\,GRPO}} = G\,L_{\max},\quad "
                 r"Z_{\mathrm{DAPO}} = \textstyle\sum_{j=1}^{G} |y_j|")
        cols = st.columns(4)
        advantage = slider("advantage A of this answer", "lb_adv", -2.0, 2.0, -1.0, 0.1, at=cols[0])
        group = slider("G (answers per prompt)", "lb_g", 2, 16, 4, 1, at=cols[1])
        max_len = slider("L_max (max_new_tokens)", "lb_lmax", 8, 256, 64, 8, at=cols[2])
        other = min(slider("length of the other G − 1", "lb_other", 1, 256, 16, 1, at=cols[3]), max_len)
        bias = length_bias(max_len, other, group, advantage)
        data = []
        for name, norm in LENGTH_NORMS.items():
            label, color = f"{POLICY_LOSSES[name].label} ({norm})", ALGO_COLORS[name]
            data += [dict(type="scatter", x=bias.lengths, y=bias.per_token[name], name=label, legendgroup=name,
                          line=dict(color=color)),
                     dict(type="scatter", x=bias.lengths, y=bias.per_sequence[name], name=label, legendgroup=name,
                          line=dict(color=color, dash="dot"), showlegend=False, yaxis="y2")]
        shapes = [dict(type="line", x0=other, x1=other, y0=0, y1=1, xref="x", yref=f"{axis} domain",
                       line=dict(color="grey", dash="dash")) for axis in ("y", "y2")]
        axes = rows_layout("|y|, this answer's length (dashed: the others' length)", "per token |∂L/∂log π(y_t)|",
                           "whole answer Σ_t |∂L/∂log π(y_t)|")
        axes["yaxis"]["type"] = "log"  # 1/|y| is a straight fall, a constant a flat line
        chart(data, "lb_chart", 520, shapes=shapes, **axes)
        if advantage == 0:
            st.markdown("With A = 0 no token gets any gradient: move A.")
            return
        grpo, dr, dapo = (bias.per_token[name] for name in LENGTH_NORMS)
        adv = one_right_advantages(group)
        st.markdown(
            "Under GRPO's 1/|y| every answer gets the same total push (bottom, flat), so a long "
            + ("wrong answer is punished" if advantage < 0 else "right answer is rewarded")
            + f" less per token than a short one: {grpo[-1]:.4f} per token at |y| = {max_len:d} against "
            f"{grpo[0]:.4f} at |y| = 1" + (" — wrong answers lose little by rambling, and responses grow. "
                                          if advantage < 0 else " — right answers gain by being short. ")
            + f"Under Dr. GRPO every token weighs the same, {dr[0]:.4f} = |A|/(G·L_max) at any length; DAPO's "
            f"token mean divides by the whole batch's tokens, so its weight ({dapo[0]:.4f} at |y| = 1) falls as the "
            "other answers grow: move their length. "
            f"Dr. GRPO also drops the std from its advantages (GRPO's × (std + 1e-4)): with one right answer in "
            f"{group:d}, a wrong one gets A = {adv['grpo']:.3f} under GRPO and {adv['dr_grpo']:.3f} under Dr. GRPO; "
            "this chart gives all three the same A to show the normaliser alone. The app's GRPO runs token_mean "
            "unless loss_norm is seq_mean, the paper's.")


# --------------------------------------------------------------------------- 4. ratio clipping
def zero_text(x, grads) -> str:
    """Where `grads` is exactly 0 on the grid x, in words (numbers only; md_escape it for Markdown)."""
    return " and ".join(f"ρ in [{a:.3f}, {b:.3f}]" for a, b in zero_intervals(x, grads)) or "nowhere"


@st.fragment
def ratio_section() -> None:
    with timed("4. ratio clipping"):
        st.header("4. GRPO, GSPO and CISPO: where the gradient is zero")
        st.latex(r"\mathrm{GRPO}:\ \min\big(\rho_t A,\ \mathrm{clip}(\rho_t, 1 \pm \epsilon)\,A\big),\qquad "
                 r"\mathrm{GSPO}:\ \min\big(s A,\ "
                 r"\mathrm{clip}(s, 1 - \epsilon_{\mathrm{low}}, 1 + \epsilon_{\mathrm{high}})\,A\big)")
        st.latex(r"s = \big(\textstyle\prod_t \rho_t\big)^{1/T},\qquad "
                 r"\mathrm{CISPO}:\ \mathrm{sg}\big(\min(\rho_t, 1 + \epsilon_{\mathrm{high}})\big)\,A\,\log\pi(y_t),"
                 r"\qquad \text{each averaged over the } T \text{ tokens}")
        cols = st.columns(4)
        sign = choice(cols[0].segmented_control, "advantage", "rc_sign", list(SIGNS), "A = +1") or "A = +1"
        tokens = slider("T (tokens)", "rc_t", 1, 32, 8, 1, at=cols[1])
        other = slider("ratio of the other T − 1 tokens", "rc_other", 0.5, 1.5, 1.0, 0.01, at=cols[2])
        eps = slider("GRPO ε", "rc_eps", 0.05, 0.5, 0.2, 0.01, at=cols[3])
        more = st.columns(4)
        low = slider("GSPO ε_low", "rc_glow", 0.0, 0.3, 3e-4, 1e-4, format="%.4f", at=more[0])
        high = slider("GSPO ε_high", "rc_ghigh", 0.0, 0.3, 4e-4, 1e-4, format="%.4f", at=more[1])
        cap = slider("CISPO ε_high", "rc_cispo", 0.05, 5.0, 4.0, 0.05, at=more[2])
        ratio_max = slider("ρ up to", "rc_rmax", 1.2, 6.0, 1.5, 0.1, advanced=True, at=more[3])
        x, grads = ratio_curves(ratio_max, SIGNS[sign], tokens=tokens, other_ratio=other, clip_eps=eps,
                                gspo_eps_low=low, gspo_eps_high=high, cispo_eps_high=cap)
        data = []
        for row, name in enumerate(RATIO_ALGORITHMS):
            label, color = POLICY_LOSSES[name].label, ALGO_COLORS[name]
            data.append(dict(type="scatter", x=x, y=grads[name], name=label, legendgroup=name, line=dict(color=color)))
            runs = zero_intervals(x, grads[name])
            data.append(dict(type="scatter", x=[v for a, b in runs for v in (a, b, None)],
                             y=[v for _ in runs for v in (row, row, None)], mode="lines", name=label,
                             legendgroup=name, showlegend=False, line=dict(color=color, width=10), yaxis="y2"))
        axes = rows_layout("ρ, the first token's ratio π/π_old", "∂L/∂log π(y_1) (autograd)",
                           "gradient exactly 0")
        axes["yaxis"]["domain"], axes["yaxis2"]["domain"] = [0.32, 1], [0, 0.2]
        axes["yaxis2"] |= dict(range=[-0.6, len(RATIO_ALGORITHMS) - 0.4], tickvals=list(range(len(RATIO_ALGORITHMS))),
                               ticktext=[POLICY_LOSSES[name].label for name in RATIO_ALGORITHMS])
        axes["xaxis"]["range"] = [x[0], x[-1]]
        chart(data, "rc_chart", 520, **axes)
        st.markdown(
            f"Zero gradient here (bottom) — GRPO: {md_escape(zero_text(x, grads['grpo']))}; "
            f"GSPO: {md_escape(zero_text(x, grads['gspo']))}; CISPO: {md_escape(zero_text(x, grads['cispo']))}. "
            "GRPO zeroes this token once its own ratio leaves [1 − ε, 1 + ε] on the side the update would keep "
            "helping; the other tokens keep their gradient. GSPO zeroes the whole sequence once the geometric-mean "
            "ratio s leaves its tiny range, so one token a fraction of a percent off, or the other tokens' ratio, is "
            "enough (widen ε_high to 0.2 to see GRPO's picture come back). CISPO never zeroes a gradient: it caps "
            f"the token's weight at 1 + ε_high = {1 + cap:g} (a flat stretch, not a zero), and at ρ = 1 all three "
            f"are REINFORCE's −A/T = {grads['cispo'][abs(x - 1).argmin()]:.4f}.")
