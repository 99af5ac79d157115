"""Figure builders and table helpers: hand-computed values, naive references, identities."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rmcore import tables, viz


def _metrics(run_ids: list[str], n: int, key: str = "loss/total") -> pd.DataFrame:
    rows = [{"run_id": r, "step": s, "key": key, "value": float(s * (i + 1)), "time": 100.0 + s}
            for i, r in enumerate(run_ids) for s in range(1, n + 1)]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- downsampling

def test_downsample_short_input_unchanged() -> None:
    x, y = np.arange(10), np.linspace(0, 1, 10)
    dx, dy = viz.downsample(x, y, max_points=20)
    np.testing.assert_array_equal(dx, x)
    np.testing.assert_array_equal(dy, y)


@pytest.mark.parametrize("n", [1501, 5000, 100_003])
def test_downsample_keeps_budget_extremes_and_ends(n: int) -> None:
    rng = np.random.default_rng(n)
    x = np.arange(n)
    y = rng.normal(size=n)
    y[n // 3] = 50.0        # a spike that averaging would flatten
    y[2 * n // 3] = -40.0
    dx, dy = viz.downsample(x, y, max_points=1500)
    assert len(dx) <= 1500
    assert dx[0] == 0 and dx[-1] == n - 1
    assert np.all(np.diff(dx) > 0)                     # still in x order, no duplicates
    assert dy.max() == 50.0 and dy.min() == -40.0
    np.testing.assert_array_equal(dy, y[dx])           # points are real points, not averages


def test_downsample_keeps_every_bucket_min_and_max() -> None:
    # Naive reference: per bucket (same boundaries), min and max must both be present.
    n, budget = 1000, 102
    y = np.sin(np.arange(n) * 0.37) + np.arange(n) * 0.001
    dx, dy = viz.downsample(np.arange(n), y, max_points=budget)
    kept = set(dx.tolist())
    interior = np.arange(1, n - 1)
    starts = np.linspace(0, len(interior), (budget - 2) // 2 + 1).astype(int)
    for a, b in zip(starts[:-1], starts[1:]):
        chunk = interior[a:b]
        assert chunk[np.argmin(y[chunk])] in kept
        assert chunk[np.argmax(y[chunk])] in kept


def test_downsample_drops_nan() -> None:
    dx, dy = viz.downsample(np.arange(4), np.array([1.0, np.nan, 3.0, 4.0]))
    np.testing.assert_array_equal(dx, [0, 2, 3])


# ---------------------------------------------------------------- smoothing

def _tensorboard_loop(values: list[float], w: float) -> list[float]:
    """TensorBoard's resmoothDataset, transcribed."""
    last, num_accum, out = 0.0, 0, []
    for v in values:
        if not np.isfinite(v):
            out.append(v)
            continue
        last = last * w + (1 - w) * v
        num_accum += 1
        out.append(last / (1 - w**num_accum))
    return out


def test_ema_hand_computed() -> None:
    # w = 0.5 on [1, 2, 3]: 0.5/0.5 = 1; 1.25/0.75 = 5/3; 2.125/0.875 = 17/7.
    np.testing.assert_allclose(viz.ema_smooth(np.array([1.0, 2.0, 3.0]), 0.5), [1.0, 5 / 3, 17 / 7])


def test_ema_matches_tensorboard_loop_and_weighted_mean_identity() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=200).tolist()
    values[17] = float("nan")
    got = viz.ema_smooth(np.array(values), 0.9)
    np.testing.assert_allclose(got, _tensorboard_loop(values, 0.9), equal_nan=True)
    # Identity: the debiased EMA is the mean weighted by w^(n-k) over the finite values.
    finite = np.array([v for v in values[:50] if np.isfinite(v)])
    weights = 0.9 ** np.arange(len(finite) - 1, -1, -1)
    assert got[49] == pytest.approx(float((weights * finite).sum() / weights.sum()))
    assert np.isnan(got[17])


def test_ema_zero_weight_is_identity_and_constant_stays_constant() -> None:
    v = np.array([3.0, -1.0, 2.0])
    np.testing.assert_array_equal(viz.ema_smooth(v, 0.0), v)
    np.testing.assert_allclose(viz.ema_smooth(np.full(30, 7.0), 0.99), 7.0)


# ---------------------------------------------------------------- figures

def test_line_figure_one_legend_trace_per_run_within_budget() -> None:
    df = _metrics(["a", "b", "c"], 4000)
    fig = viz.line_figure(df, "loss/total", smoothing=0.6, uirevision="cmp")
    spec = json.loads(fig.to_json())
    shown = [t for t in spec["data"] if t.get("showlegend", True)]
    assert [t["meta"] for t in shown] == ["a", "b", "c"]
    assert len(spec["data"]) == 6                        # raw faint + smoothed per run
    assert all(t["type"] == "scatter" for t in spec["data"])  # SVG: no WebGL emulated on a GPU-less CPU
    assert all(len(fig.data[i].x) <= viz.MAX_POINTS for i in range(6))
    assert spec["layout"]["uirevision"] == "cmp"


def test_line_figure_x_axes() -> None:
    df = _metrics(["a"], 5)
    samples = viz.line_figure(df, "loss/total", x="samples", samples_per_step={"a": 16})
    np.testing.assert_array_equal(samples.data[0].x, [16, 32, 48, 64, 80])
    wall = viz.line_figure(df, "loss/total", x="time", log_y=True)
    np.testing.assert_array_equal(wall.data[0].x, [0, 1, 2, 3, 4])
    assert wall.layout.yaxis.type == "log"
    with pytest.raises(ValueError):
        viz.line_figure(df, "loss/total", x="epochs")


def test_terms_and_histogram_figures() -> None:
    df = pd.concat([_metrics(["a"], 5, "reward/total"), _metrics(["a"], 5, "reward/rouge")])
    fig = viz.terms_figure(df, ["reward/total", "reward/rouge", "reward/absent"], uirevision="a")
    assert [t.name for t in fig.data] == ["reward/total", "reward/rouge"]
    two_axes = viz.terms_figure(df, ["reward/total", "reward/rouge"], right_axis=("reward/rouge",))
    assert [t.yaxis for t in two_axes.data] == ["y", "y2"] and two_axes.layout.yaxis2.side == "right"
    hist = viz.histogram_figure({"a": np.array([0.1, 0.2]), "b": np.array([0.3])})
    assert [t.type for t in hist.data] == ["histogram", "histogram"]


def test_heatmap_counts_sum_to_samples() -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"step": np.repeat(np.arange(1, 41), 16), "idx": np.tile(np.arange(16), 40),
                       "value": rng.uniform(-1, 2, size=640)})
    steps, centers, counts = viz.heatmap_counts(df, value_bins=20)
    assert counts.shape == (20, 40)
    assert counts.sum() == 640
    np.testing.assert_array_equal(counts.sum(axis=0), np.full(40, 16))   # 16 samples per step
    assert centers[0] > -1 and centers[-1] < 2
    # Long runs are bucketed in steps too; nothing is lost.
    _, _, coarse = viz.heatmap_counts(df, value_bins=20, max_steps=8)
    assert coarse.shape == (20, 8) and coarse.sum() == 640
    fig = viz.reward_heatmap(df)
    assert fig.data[0].type == "heatmap"


def test_heatmap_single_value_and_empty() -> None:
    df = pd.DataFrame({"step": [1, 1, 2], "idx": [0, 1, 0], "value": [0.5, 0.5, 0.5]})
    _, _, counts = viz.heatmap_counts(df, value_bins=5)
    assert counts.sum() == 3
    _, _, empty = viz.heatmap_counts(df.iloc[:0])
    assert empty.size == 0


# ---------------------------------------------------------------- tables

def test_config_diff_flags_only_differing_fields() -> None:
    diff = tables.config_diff({"r1": {"loss": "ppo", "lr": 1e-4, "steps": 30},
                            "r2": {"loss": "grpo", "lr": 1e-4, "steps": 30, "seed": 1}})
    assert list(diff.columns) == ["r1", "r2", "differs"]
    assert diff.loc["loss", "differs"] and diff.loc["seed", "differs"]
    assert not diff.loc["lr", "differs"] and not diff.loc["steps", "differs"]
    assert diff.loc["lr", "r1"] == "0.0001" and diff.loc["seed", "r1"] == "—"


def test_config_diff_shows_the_margin_a_reward_model_run_trained_with() -> None:
    diff = tables.config_diff({"h": {"loss": "hinge", "margin": -1.0}, "b": {"loss": "bradley_terry", "margin": -1.0},
                               "m": {"loss": "hinge", "margin": 0.5}})
    assert diff.loc["margin", "h"] == "1 (the loss's own)" and diff.loc["margin", "b"] == "0 (the loss's own)"
    assert diff.loc["margin", "m"] == "0.5" and diff.loc["margin", "differs"]
    same_text = tables.config_diff({"h": {"loss": "hinge", "margin": -1.0},
                                    "b": {"loss": "bradley_terry", "margin": -1.0}})
    assert same_text.loc["margin", "differs"]  # both say -1, but they trained with 1 and 0


def test_final_and_best() -> None:
    df = pd.DataFrame({"run_id": ["a"] * 4 + ["a"] * 4,
                       "step": [1, 2, 3, 4] * 2,
                       "key": ["loss/total"] * 4 + ["eval/reward"] * 4,
                       "value": [3.0, 1.0, 2.0, 2.5, 0.1, 0.7, 0.4, 0.5],
                       "time": [0.0] * 8})
    table = tables.final_and_best(df).set_index("key")
    assert table.loc["loss/total", "final"] == 2.5
    assert table.loc["loss/total", "best"] == 1.0 and table.loc["loss/total", "best_step"] == 2
    assert table.loc["eval/reward", "best"] == 0.7 and table.loc["eval/reward", "best_step"] == 2
    assert tables.final_and_best(df, keys=["eval/reward"])["key"].tolist() == ["eval/reward"]


def test_eta() -> None:
    assert tables.eta_seconds(0, 10, 5.0) is None
    assert tables.eta_seconds(5, 20, 10.0) == pytest.approx(30.0)
    assert tables.eta_seconds(20, 20, 10.0) == 0.0


def test_line_figure_follows_the_given_run_order_and_colors() -> None:
    df = _metrics(["a", "b", "c"], 5)
    fig = viz.line_figure(df, "loss/total", runs=["c", "a"])
    assert [t.meta for t in fig.data] == ["c", "a"]
    colors = viz.run_colors(["c", "a"])
    assert [t.line.color for t in fig.data] == [colors["c"], colors["a"]]
    hist = viz.histogram_figure({"x": np.array([1.0]), "y": np.array([2.0])}, colors={"y": "#123456"})
    assert hist.data[1].marker.color == "#123456"


def test_many_runs_share_a_figure_point_budget() -> None:
    assert viz.trace_points(1) == viz.trace_points(4) == viz.MAX_POINTS
    assert viz.trace_points(8) == viz.FIGURE_POINTS // 8
    assert viz.trace_points(40) == viz.MIN_TRACE_POINTS
    steps = np.arange(1, 2001)
    df = pd.DataFrame({"run_id": np.repeat([f"r{i}" for i in range(20)], len(steps)),
                       "step": np.tile(steps, 20), "key": "reward/total",
                       "value": np.tile(np.sin(steps / 50.0), 20), "time": 0.0})
    df.loc[df["step"] == 1234, "value"] = 9.0  # a spike every run must keep
    smooth = viz.line_figure(df, "reward/total", smoothing=0.6)
    assert len(smooth.data) == 20  # more than MAX_RAW_RUNS runs: no faint raw lines
    raw = viz.line_figure(df, "reward/total", smoothing=0.0)
    assert len(raw.data) == 20
    assert all(len(t.x) == viz.FIGURE_POINTS // 20 for t in raw.data)
    assert all(np.max(t.y) == 9.0 and 1234 in set(t.x) for t in raw.data)  # the spike survives
    six = viz.line_figure(df[df["run_id"].isin([f"r{i}" for i in range(6)])], "reward/total", smoothing=0.6)
    assert len(six.data) == 12 and all(len(t.x) == viz.FIGURE_POINTS // 12 for t in six.data)
    two = viz.line_figure(df[df["run_id"].isin(["r0", "r1"])], "reward/total", smoothing=0.6)
    assert len(two.data) == 4 and all(len(t.x) == viz.MAX_POINTS for t in two.data)


def test_histograms_share_bins_over_the_pooled_range() -> None:
    a, b = np.array([0.0, 0.25, 1.0]), np.array([2.0, np.nan])
    bins = viz.shared_bins([a, b], nbins=4)
    assert bins["start"] == 0.0 and bins["size"] == 0.5 and 2.0 < bins["end"] < 2.001  # every value is inside
    # numpy's histogram over the same edges counts every finite value once
    edges = np.arange(5) * bins["size"] + bins["start"]
    edges[-1] = bins["end"]
    assert np.histogram(np.concatenate([a, b[:1]]), edges)[0].sum() == 4
    assert viz.shared_bins([np.array([3.0, 3.0])], 10) == {"start": 2.5, "end": 3.5 + 0.1 * 1e-6, "size": 0.1}
    fig = viz.histogram_figure({"a": a, "b": b}, nbins=4)
    assert all(t.xbins.size == 0.5 and t.xbins.start == 0.0 for t in fig.data)


def test_distribution_table_hand_values() -> None:
    table = tables.distribution_table({"a (step 3)": np.array([1.0, 2.0, 3.0, np.nan]), "b": np.array([])})
    assert list(table.index) == ["a (step 3)", "b"]
    row = table.loc["a (step 3)"]
    assert row["samples"] == 3 and row["mean"] == 2.0 and row["median"] == 2.0
    assert row["min"] == 1.0 and row["max"] == 3.0 and row["std"] == pytest.approx(np.sqrt(2 / 3))
    assert table.loc["b", "samples"] == 0 and np.isnan(table.loc["b", "mean"])
