"""Sections of the Compare page: final/best table, reward distributions, eval side by side."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from rmcore import tables, viz
from ui.plots import plotly_chart
from ui.runtime import store
from ui.text import md_escape

COLUMNS_PER_ROW = 3
# Beyond this many runs the eval answers and the reward distributions are tables, a row per
# run: twenty cards of five elements, or twenty overlaid histograms, cost Chromium more than
# the rest of the page (bench/ui_overhead.py), and a table of twenty rows is easier to scan
# and sort than a wall of cards or a smear of bars.
MAX_CARDS = 6


def samples_per_step(config: dict[str, Any]) -> int:
    """Completions scored per step: prompts × samples for online losses, prompts otherwise."""
    from rmcore.algorithms import POLICY_LOSSES

    algorithm = POLICY_LOSSES.get(config.get("loss", ""))
    per_prompt = config.get("samples_per_prompt", 1) if algorithm is None or algorithm.kind == "online" else 1
    return int(config.get("batch_size", 1)) * int(per_prompt)


def final_table(keys: list[str], names: dict[str, str], run_ids: list[str]) -> None:
    """One row per run (in selection order): the final and the best value of each summary metric.
    Aggregated by the store in SQL: the rows of every step of every run are never loaded."""
    table = store().final_and_best(run_ids, keys)
    if table.empty:
        st.caption("No values yet.")
        return
    shown = [r for r in run_ids if r in set(table["run_id"])]
    wide = pd.DataFrame(index=pd.Index([names.get(r, r) for r in shown], name="run"))
    for key in [k for k in keys if k in set(table["key"])]:
        rows = table[table["key"] == key].set_index("run_id")
        for column in ("final", "best"):
            wide[f"{key} · {column}"] = [rows[column].get(r) for r in shown]
    last_step = table.groupby("run_id")["last_step"].max()
    wide["last step"] = [int(last_step[r]) for r in shown]
    st.dataframe(wide, width="stretch", column_config={c: st.column_config.NumberColumn(format="%.4g")
                                                       for c in wide.columns if c != "last step"})


def reward_distributions(run_ids: list[str], names: dict[str, str]) -> None:
    """Per-sample total reward of each run at its last logged step: overlaid histograms, or
    beyond MAX_CARDS runs a table of each run's summary statistics."""
    values, colors, palette = {}, {}, viz.run_colors(run_ids)
    for run_id in run_ids:
        last = store().last_sample_step(run_id, term="total")  # read only that step, not the whole run
        if last is not None:
            label = f"{names.get(run_id, run_id)} (step {last})"
            values[label] = store().sample_rewards(run_id, term="total", steps=[last])["value"].to_numpy()
            colors[label] = palette[run_id]
    st.markdown("**Reward distribution at the last step**")
    if not values:
        st.caption("None of these runs has per-sample rewards yet.")
        return
    if len(values) > MAX_CARDS:  # twenty overlaid histograms read as one smear: a sortable table
        st.dataframe(tables.distribution_table(values), width="stretch", key="cmp-reward-table",
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("mean", "std", "min", "median", "max")})
        return
    fig = viz.histogram_figure(values, title="total reward per sample", uirevision=",".join(run_ids), colors=colors)
    plotly_chart(fig, "cmp-hist")


def eval_side_by_side(run_ids: list[str], names: dict[str, str]) -> None:
    """The same eval prompt, answered by each run at its latest eval step."""
    st.markdown("**The same eval prompt, answered by each run**")
    latest = {}
    for run_id in run_ids:
        last = store().last_generation_step(run_id, split="eval")
        if last is not None:
            latest[run_id] = store().generations(run_id, step=last, split="eval")
    if not latest:
        st.caption("No eval generations yet (they are written every `eval_every` steps and at the end).")
        return
    prompts = list(dict.fromkeys(p for gens in latest.values() for p in gens["prompt"]))
    index = st.selectbox("Eval prompt", range(len(prompts)), key="cmp_prompt",
                         format_func=lambda i: f"{i + 1}. {_snippet(prompts[i])}")
    prompt = prompts[index]
    with st.expander("Prompt and reference", expanded=False):
        st.text(prompt)
        reference = ""
        for gens in latest.values():
            match = gens[gens["prompt"] == prompt]
            if not match.empty:
                reference = match["reference"].iloc[0]
                break
        st.markdown("**Reference**")
        st.text(reference)
    if len(run_ids) > MAX_CARDS:
        answers_table(run_ids, names, latest, prompt)
        return
    for start in range(0, len(run_ids), COLUMNS_PER_ROW):
        for column, run_id in zip(st.columns(COLUMNS_PER_ROW), run_ids[start:start + COLUMNS_PER_ROW]):
            with column.container(border=True):
                st.markdown(f"**{md_escape(names.get(run_id, run_id))}**")
                row = _answer(latest, run_id, prompt)
                if row is None:
                    st.caption("No eval answer for this prompt yet.")
                    continue
                st.caption(f"step {int(row['step'])} · reward {row['reward']:.3f}")
                st.markdown(md_escape(row["completion"]) if row["completion"] else "*(empty)*")
                st.caption(" · ".join(f"{md_escape(term)} {value:.3f}" for term, value in row["terms"].items()))


def answers_table(run_ids: list[str], names: dict[str, str], latest: dict[str, pd.DataFrame], prompt: str) -> None:
    """The eval answers to ``prompt``, one row per run (in selection order): step, reward,
    the answer and each reward term."""
    rows = []
    for run_id in run_ids:
        row = _answer(latest, run_id, prompt)
        if row is None:
            rows.append({"run": names.get(run_id, run_id), "answer": "(no eval answer for this prompt yet)"})
            continue
        rows.append({"run": names.get(run_id, run_id), "step": int(row["step"]), "reward": row["reward"],
                     "answer": row["completion"] or "(empty)", **{f"r/{t}": v for t, v in row["terms"].items()}})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="cmp-answers", column_config={
        "answer": st.column_config.TextColumn(width="large"), "reward": st.column_config.NumberColumn(format="%.3f"),
        **{c: st.column_config.NumberColumn(format="%.3f") for r in rows for c in r if c.startswith("r/")}})


def _answer(latest: dict[str, pd.DataFrame], run_id: str, prompt: str) -> pd.Series | None:
    """The run's latest eval answer to ``prompt`` (a generations row), or None."""
    gens = latest.get(run_id)
    match = None if gens is None else gens[gens["prompt"] == prompt]
    return None if match is None or match.empty else match.iloc[0]


def _snippet(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"
