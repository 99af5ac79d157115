"""Loss playground, sections 6–8: what sampling does to estimates, and what a reward invites.

KL estimators k1, k2, k3 from samples, the policy-gradient variance of REINFORCE, a baseline
and RLOO on a bandit, and the composite reward on candidates built to hack it. Each section
is a fragment; the numbers come from rmcore.playground (the engine's KL estimators,
advantages and reward terms).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from rmcore import playground as pg
from rmcore.backbones import builtin_dir, model_cache_dir
from rmcore.errors import ConfigError
from ui.playground_charts import (COLORS, bandit_estimates, bandit_learning, chart, columns_layout, fluency,
                                  kl_samples)
from ui.playground_controls import choice, seed_input, slider, text, timed
from ui.text import md_escape

DEFAULT_REFERENCE = "Kelara Systems is eliminating 2,020 jobs worldwide, chief executive Viktor Torova told staff."
DEFAULT_CANDIDATE = "Kelara Systems will cut 2,020 jobs, its chief executive said."


# --------------------------------------------------------------------------- 6. KL estimators
@st.fragment
def kl_section() -> None:
    with timed("6. KL estimators"):
        st.header("6. KL estimators k1, k2, k3")
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
            st.error(md_escape(str(err)))  # the logits typed, or from the URL
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
            f"Dashed: the exact KL = {result.exact_kl:.4f}; solid: each estimator's mean over {n:d} samples (the "
            "histograms hide the outer 1%). k1 is unbiased but noisy and often negative; k3 is unbiased, never "
            "negative, and far less noisy than k1 when p and q are close; k2 is quiet too but biased — E_p[k2] is "
            "what it really estimates, near the KL only for nearby distributions (try μ_q = 3). With "
            "σ_q² > 2σ_p², k3's variance is infinite: watch its mean jump with the seed.")


# --------------------------------------------------------------------------- 7. bandit
@st.fragment
def bandit_section() -> None:
    with timed("7. policy gradient on a bandit"):
        st.header("7. Policy-gradient variance on a K-armed bandit")
        st.latex(r"\pi = \mathrm{softmax}(\theta),\quad J = \textstyle\sum_a \pi_a r_a,\quad "
                 r"\nabla_\theta J = \pi \odot (r - J) \;\approx\; \tfrac1N \sum_i A_i \nabla_\theta \log\pi(a_i)")
        st.latex(r"A_i = r_i \;\text{(REINFORCE)},\quad r_i - J \;\text{(baseline)},\quad "
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
            st.error(md_escape(str(err)))
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
            st.caption(f"**Spread**: {repeats:d} gradient estimates from {n:d} pulls each, against the exact ∇J")
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


# --------------------------------------------------------------------------- 8. composite reward
@st.fragment
def reward_section() -> None:
    with timed("8. composite reward"):
        st.header("8. The composite reward, and how to hack it")
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
        model_dir = builtin_dir(model_cache_dir())
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
                                                                                      text=md_escape(r.message)))
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
