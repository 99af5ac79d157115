"""The Loss playground's charts and cached numbers.

Figures are plain Plotly dicts with explicit axis domains (see ``chart``); the numbers come
from rmcore.playground, cached per control value with ``st.cache_data`` so that moving one
slider recomputes only what it changes.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from rmcore import playground as pg
from rmcore import playground_policy as ppol
from ui.plots import plotly_chart

# The reward-model losses' colours are in their registry entries (PlaygroundCurve.color); PALETTE
# colours an entry that gives none.
PALETTE = ("#4C5FD5", "#E4572E", "#17BEBB", "#76B041", "#FFC914", "#9B5DE5", "#F15BB5", "#00A6A6", "#6C757D")
COLORS = {"reinforce": "#E4572E", "baseline": "#4C5FD5", "rloo": "#76B041", "exact": "#1F2430",
          "k1": "#E4572E", "k2": "#FFC914", "k3": "#4C5FD5"}
# Policy algorithms by registry name (sections 3–5; their labels come from POLICY_LOSSES).
ALGO_COLORS = {"grpo": "#4C5FD5", "dr_grpo": "#E4572E", "dapo": "#17BEBB", "gspo": "#9B5DE5", "cispo": "#76B041",
               "dpo": "#4C5FD5", "ipo": "#9B5DE5", "slic": "#E4572E", "simpo": "#F15BB5"}


# --------------------------------------------------------------------------- figures
def chart(data: list[dict], key: str, height: int, **layout: Any) -> None:
    """One Plotly chart from trace dicts. Plain dicts and explicit axis domains, not make_subplots and
    add_trace: those re-validate the figure on every call and cost ~3× more per render."""
    layout = {"height": height, "margin": dict(l=10, r=10, t=60, b=10), "hovermode": "x unified",
              "legend": dict(orientation="h", yanchor="bottom", y=1.06, x=0), **layout}
    plotly_chart(go.Figure(data=data, layout=layout), key)


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
def length_bias(max_len: int, other_length: int, group_size: int, advantage: float) -> ppol.LengthBias:
    return ppol.length_bias(max_len=max_len, other_length=other_length, group_size=group_size, advantage=advantage)


@st.cache_data(max_entries=64, show_spinner=False)
def ratio_curves(ratio_max: float, advantage: float, **shape: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """shape: tokens, other_ratio and each algorithm's ε (see ppol.ratio_gradients)."""
    x = ppol.ratio_grid(ratio_max, **shape)
    return x, ppol.ratio_gradients(x, advantage=advantage, **shape)


@st.cache_data(max_entries=64, show_spinner=False)
def preference_curves(coefs: tuple, gamma: float, span: float) -> tuple[np.ndarray, dict]:
    """coefs: ((algorithm, coefficient), …) of the algorithms drawn."""
    return ppol.preference_curves(dict(coefs), gamma=gamma, span=span)


@st.cache_data(max_entries=32, show_spinner=False)
def kl_samples(family: str, params: tuple, n: int, seed: int) -> pg.KLSamples:
    if family == "Gaussians":
        return pg.kl_samples_gaussian(*params, n=n, seed=seed)
    return pg.kl_samples_categorical(*params, n=n, seed=seed)


@st.cache_data(max_entries=32, show_spinner=False)
def bandit_estimates(logits: tuple, rewards: tuple, n: int, repeats: int, noise: float,
                     seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return pg.gradient_estimates(list(logits), list(rewards), n=n, repeats=repeats, noise=noise, seed=seed)


@st.cache_data(max_entries=32, show_spinner=False)
def bandit_learning(logits: tuple, rewards: tuple, n: int, noise: float, lr: float, seed: int) -> dict:
    return pg.learning_curves(list(logits), list(rewards), n=n, steps=200, lr=lr, noise=noise, seed=seed)


@st.cache_resource(show_spinner="Loading the built-in model…")
def fluency_scorer(path: str) -> Any:
    """The built-in model as an LMScorer on the CPU, loaded once per process."""
    import torch

    from rmcore.backbones import load_causal_lm
    from rmcore.rewards import LMScorer

    model, tokenizer = load_causal_lm(path, device=torch.device("cpu"))
    return LMScorer(model, tokenizer, "cpu")


@st.cache_data(max_entries=64, show_spinner=False)
def fluency(path: str, texts: tuple) -> list[float]:
    from rmcore.rewards import Fluency

    return Fluency(fluency_scorer(path))([""] * len(texts), list(texts), [""] * len(texts))

