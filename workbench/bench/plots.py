"""Benchmark figures: frames from `workbench.bench.evaluation` in, plotly ``go.Figure`` out. Nothing here shows or saves.

Inputs are the evaluation's tidy ``table`` (or its ``headline()``), its per-item ``examples``,
`workbench.bench.evaluation.bon_frame` / `bon_curve` frames and `calibration_bins`. Notebooks display the
figures and save them with `workbench.data.files.save_figure`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

SCORED = ("scored", "expected value")  # `source` of rows computed here; anything else is a published number


def _errors(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Asymmetric error bars from ``ci_low`` / ``ci_high`` (0 where there is no CI, e.g. expected values)."""
    up = (frame["ci_high"] - frame["value"]).fillna(0).clip(lower=0).to_numpy()
    down = (frame["value"] - frame["ci_low"]).fillna(0).clip(lower=0).to_numpy()
    return {"type": "data", "array": up, "arrayminus": down, "symmetric": False}


def _partial_labels(frame: pd.DataFrame) -> pd.Series:
    """Benchmark names, with `` (partial)`` where the row's aggregate lacks a subset upstream needs."""
    partial = frame["partial"].fillna(False).astype(bool) if "partial" in frame else pd.Series(False, index=frame.index)
    return frame["benchmark"].where(~partial, frame["benchmark"] + " (partial)")


def benchmark_bars(headline: pd.DataFrame, *,
                   title: str = "Benchmarks: headline score per model (95% bootstrap CI)") -> go.Figure:
    """Grouped bars per benchmark for every scored model and baseline; published scores as diamonds.

    Args:
        headline: `Evaluation.headline()` (one row per model x benchmark with ``value``, ``ci_low``,
            ``ci_high``, ``source``, ``partial``). A partial headline is labelled ``<benchmark> (partial)``;
            `workbench.bench.evaluation.evaluate` adds no published number beside it.
    """
    fig = go.Figure()
    headline = headline.assign(benchmark=_partial_labels(headline))
    scored = headline[headline["source"].isin(SCORED)]
    for model, rows in scored.groupby("model", sort=False):
        fig.add_trace(go.Bar(x=rows["benchmark"], y=rows["value"], name=str(model), error_y=_errors(rows),
                             hovertemplate="%{x}: %{y:.3f}<extra>" + str(model) + "</extra>"))
    published = headline[~headline["source"].isin(SCORED)]
    if len(published):
        fig.add_trace(go.Scatter(x=published["benchmark"], y=published["value"], mode="markers", name="published (paper)",
                                 marker={"symbol": "diamond", "size": 9, "color": "black", "opacity": 0.6},
                                 text=published["model"], hovertemplate="%{text}: %{y:.3f}<extra>published</extra>"))
    fig.update_layout(barmode="group", title=title, yaxis={"title": "score", "range": [0, 1.05]}, xaxis_title="benchmark")
    return fig


def rm_bench_levels(table: pd.DataFrame, *, subset: str = "all") -> go.Figure:
    """RM-Bench easy / normal / hard (and their average) per model, with CIs.

    Easy: chosen response in a fancier style than the rejected one; hard: the reverse (style fights substance).
    """
    rows = table[(table["benchmark"] == "rm_bench") & (table["subset"] == subset)
                 & table["metric"].isin(["easy", "normal", "hard", "average"]) & table["source"].isin(SCORED)]
    fig = go.Figure()
    for model, r in rows.groupby("model", sort=False):
        r = r.set_index("metric").reindex(["easy", "normal", "hard", "average"]).dropna(subset=["value"]).reset_index()
        fig.add_trace(go.Bar(x=r["metric"], y=r["value"], name=str(model), error_y=_errors(r)))
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="random")
    partial = "partial" in rows and rows["partial"].fillna(False).astype(bool).any()
    note = " (partial: a domain is missing, not comparable to published RM-Bench numbers)" if partial else ""
    fig.update_layout(barmode="group", title=f"RM-Bench by difficulty ({subset}){note}",
                      yaxis={"title": "accuracy", "range": [0, 1.05]})
    return fig


def bon_curves(frame: pd.DataFrame, *, title: str = "Best-of-N: accuracy of the top-scored response") -> go.Figure:
    """Accuracy of the top-scored of N candidates against N, one line per model.

    Args:
        frame: `workbench.bench.evaluation.bon_frame` output (``model``, ``n``, ``accuracy``, ``ci_low``,
            ``ci_high``) or `bon_curve` output (``n``, ``accuracy``, ``oracle``, ``random``).
    """
    frame = frame if "model" in frame.columns else frame.assign(model="model")
    fig = go.Figure()
    for model, r in frame.groupby("model", sort=False):
        err = _errors(r.rename(columns={"accuracy": "value"})) if {"ci_low", "ci_high"} <= set(r.columns) else None
        fig.add_trace(go.Scatter(x=r["n"], y=r["accuracy"], mode="lines+markers", name=str(model), error_y=err))
    if "oracle" in frame.columns:
        first = frame.drop_duplicates("n")
        fig.add_trace(go.Scatter(x=first["n"], y=first["oracle"], mode="lines", name="oracle (any correct)",
                                 line={"dash": "dash"}))
        fig.add_trace(go.Scatter(x=first["n"], y=first["random"], mode="lines", name="random pick", line={"dash": "dot"}))
    fig.update_layout(title=title, xaxis={"title": "N candidates", "type": "log", "dtick": np.log10(2)},
                      yaxis={"title": "accuracy", "range": [0, 1.05]})
    return fig


def _two_response(examples: pd.DataFrame, benchmark: str | None) -> pd.DataFrame:
    ex = examples if benchmark is None else examples[examples["benchmark"] == benchmark]
    return ex[ex["scores"].map(len) == 2]


def reward_distributions(examples: pd.DataFrame, *, benchmark: str | None = None, nbins: int = 40) -> go.Figure:
    """Histograms of rewards given to chosen vs rejected responses, one panel per model (two-response items)."""
    ex = _two_response(examples, benchmark)
    long = pd.DataFrame({"model": np.repeat(ex["model"].to_numpy(), 2),
                         "side": np.tile(["chosen", "rejected"], len(ex)),
                         "reward": np.concatenate(ex["scores"].map(lambda s: [s[0], s[1]]).to_list()) if len(ex) else []})
    fig = px.histogram(long, x="reward", color="side", facet_col="model", nbins=nbins, barmode="overlay", opacity=0.6,
                       title=f"Reward of chosen vs rejected ({benchmark or 'all pairwise benchmarks'})")
    fig.update_xaxes(matches=None)
    return fig


def length_bias(examples: pd.DataFrame, *, benchmark: str | None = None, bins: int = 10) -> go.Figure:
    """Reward margin (chosen - rejected) against length difference in words, with a binned mean per model.

    A rising line means the model pays for length: it prefers whichever response is longer.
    """
    ex = _two_response(examples, benchmark)
    frame = pd.DataFrame({"model": ex["model"].to_numpy(),
                          "length_diff": ex["lengths"].map(lambda w: w[0] - w[1]).to_numpy(dtype=float),
                          "margin": ex["scores"].map(lambda s: s[0] - s[1]).to_numpy(dtype=float)})
    fig = px.scatter(frame, x="length_diff", y="margin", color="model", opacity=0.25,
                     title=f"Length bias: margin vs length difference ({benchmark or 'all pairwise benchmarks'})")
    for model, r in frame.groupby("model", sort=False):
        if r["length_diff"].nunique() < 2:
            continue
        cuts = pd.qcut(r["length_diff"], q=min(bins, r["length_diff"].nunique()), duplicates="drop")
        means = r.groupby(cuts, observed=True).agg(x=("length_diff", "mean"), y=("margin", "mean"))
        fig.add_trace(go.Scatter(x=means["x"], y=means["y"], mode="lines+markers", name=f"{model} (binned mean)"))
    fig.add_hline(y=0, line_dash="dot")
    fig.update_layout(xaxis_title="words(chosen) - words(rejected)", yaxis_title="reward(chosen) - reward(rejected)")
    return fig


def calibration(bins: pd.DataFrame) -> go.Figure:
    """Reliability diagram of ``p = sigmoid(margin)``: confidence against accuracy per bin, per model.

    Args:
        bins: `workbench.bench.evaluation.calibration_bins` output.
    """
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0.5, 1], y=[0.5, 1], mode="lines", name="perfectly calibrated",
                             line={"dash": "dot", "color": "grey"}))
    for model, r in bins.groupby("model", sort=False):
        fig.add_trace(go.Scatter(x=r["confidence"], y=r["accuracy"], mode="lines+markers",
                                 name=f"{model} (ECE {r['ece'].iat[0]:.3f})",
                                 marker={"size": np.clip(np.sqrt(r["n"].to_numpy()), 4, 20)}, text=r["n"],
                                 hovertemplate="confidence %{x:.2f}, accuracy %{y:.2f}, n=%{text}<extra></extra>"))
    fig.update_layout(title="Calibration of p = sigmoid(reward margin)",
                      xaxis={"title": "confidence max(p, 1-p)", "range": [0.5, 1]},
                      yaxis={"title": "accuracy", "range": [0, 1.02]})
    return fig
