"""Pure plotting functions: frames in, plotly ``go.Figure`` out. Nothing here shows or saves.

Notebooks display the figure and save it with `workbench.runs.folder.Run.save_figure`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.data.overview import NEAR_DUPLICATE_OVERLAP, pair_lengths, response_overlap
from workbench.data.schema import PairFrame, topic_text


def length_distributions(pairs: PairFrame, *, by: str = "source") -> go.Figure:
    """Box plots of words in prompt / chosen / rejected per ``by`` group (log scale)."""
    lengths = pair_lengths(pairs).assign(group=pairs[by].to_numpy())
    long = lengths.melt(id_vars=["group"], value_vars=["prompt_words", "chosen_words", "rejected_words"],
                        var_name="text", value_name="words")
    long["text"] = long["text"].str.replace("_words", "", regex=False)
    long["words"] = long["words"].clip(lower=1)
    fig = px.box(long, x="group", y="words", color="text", log_y=True, points=False,
                 title=f"Length distributions by {by} (words, log scale)")
    fig.update_layout(xaxis_title=by, legend_title_text="")
    return fig


def source_mix(pairs: PairFrame, *, by: str = "source") -> go.Figure:
    """Stacked bars: pairs per split, coloured by ``by``."""
    counts = pairs.groupby(["split", by]).size().reset_index(name="pairs")
    counts["split"] = counts["split"].replace("", "(unassigned)")
    fig = px.bar(counts, x="split", y="pairs", color=by, title=f"Pairs per split by {by}", text_auto=True)
    fig.update_layout(barmode="stack")
    return fig


def overlap_histogram(pairs: PairFrame, *, by: str = "source") -> go.Figure:
    """Histogram of chosen/rejected word overlap; the dashed line marks the near-tie threshold."""
    frame = pd.DataFrame({"overlap": response_overlap(pairs).to_numpy(), by: pairs[by].to_numpy()})
    fig = px.histogram(frame, x="overlap", color=by, nbins=40, barmode="overlay", opacity=0.6,
                       title="Word overlap of chosen vs rejected (near-ties on the right)")
    fig.add_vline(x=NEAR_DUPLICATE_OVERLAP, line_dash="dash", annotation_text="near-tie")
    fig.update_layout(xaxis_title="Jaccard overlap of word sets", yaxis_title="pairs")
    return fig


def training_curves(history: pd.DataFrame) -> go.Figure:
    """Training loss and gold accuracy against the optimizer step (fine-tune) or epoch (fast head)."""
    from plotly.subplots import make_subplots

    x = "step" if "step" in history.columns else "epoch"
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    loss = history.dropna(subset=["loss"]) if "loss" in history.columns else history.iloc[:0]
    fig.add_trace(go.Scatter(x=loss[x], y=loss["loss"], name="train loss", mode="lines+markers"), secondary_y=False)
    acc_col = "eval_gold_accuracy" if "eval_gold_accuracy" in history.columns else "gold_accuracy"
    if acc_col in history.columns:
        acc = history.dropna(subset=[acc_col])
        fig.add_trace(go.Scatter(x=acc[x], y=acc[acc_col], name="gold accuracy", mode="lines+markers"), secondary_y=True)
    fig.update_layout(title="Training: BT loss and gold accuracy", xaxis_title=x)
    fig.update_yaxes(title_text="loss", secondary_y=False)
    fig.update_yaxes(title_text="gold accuracy", range=[0, 1], secondary_y=True)
    return fig


def accuracy_bars(table: pd.DataFrame, *, title: str = "Accuracy by group") -> go.Figure:
    """Grouped bars from `workbench.models.scoring.compare_accuracy` (one bar per model / baseline per group)."""
    cols = [c for c in table.columns if c != "n"]
    long = table[cols].reset_index().melt(id_vars=table.index.name or "index", var_name="model", value_name="accuracy")
    fig = px.bar(long, x=table.index.name or "index", y="accuracy", color="model", barmode="group", title=title,
                 text_auto=".2f")
    fig.update_yaxes(range=[0, 1])
    return fig


def margin_histogram(scores: pd.DataFrame, pairs: PairFrame | None = None, *, by: str | None = None) -> go.Figure:
    """Histogram of reward margins r_chosen - r_rejected (right of 0 = the RM agrees with the label)."""
    frame = scores[["pair_id", "margin"]]
    if pairs is not None and by:
        frame = frame.merge(pairs[["pair_id", by]], on="pair_id")
    fig = px.histogram(frame, x="margin", color=by if by else None, nbins=50, barmode="overlay", opacity=0.6,
                       title="Reward margin (chosen - rejected)")
    fig.add_vline(x=0, line_dash="dash")
    return fig


def tag_distribution(tags: pd.DataFrame, pairs: PairFrame | None = None, *, by: str | None = None) -> go.Figure:
    """Bars of task categories (stacked by ``by`` when given, e.g. construction or split)."""
    frame = tags[tags["tag_ok"]][["pair_id", "task_category"]]
    if pairs is not None and by:
        frame = frame.merge(pairs[["pair_id", by]], on="pair_id")
    counts = frame.groupby(["task_category"] + ([by] if by and pairs is not None else [])).size().reset_index(name="pairs")
    order = counts.groupby("task_category")["pairs"].sum().sort_values(ascending=False).index.tolist()
    fig = px.bar(counts, x="task_category", y="pairs", color=by if by and pairs is not None else None,
                 category_orders={"task_category": order}, title="Task categories")
    return fig


def objectivity_controversiality(tags: pd.DataFrame) -> go.Figure:
    """Heatmap of pair counts: objectivity x controversiality."""
    ok = tags[tags["tag_ok"]]
    table = pd.crosstab(ok["objectivity"], ok["controversiality"]).reindex(columns=["low", "medium", "high"], fill_value=0)
    fig = px.imshow(table, text_auto=True, color_continuous_scale="Blues", title="Objectivity x controversiality (pairs)")
    return fig


def _hover(frame: pd.DataFrame, chars: int = 120) -> list[str]:
    import html

    def clip(t: str) -> str:
        t = html.escape(t.replace("\n", " "))
        return t if len(t) <= chars else t[:chars] + "…"

    rows = []
    for r in frame.itertuples():
        extra = f"<br>category: {r.task_category}" if "task_category" in frame.columns else ""
        rows.append(f"<b>{r.pair_id}</b> [{r.split}] cluster {r.cluster}<br>prompt: {clip(topic_text(r.prompt))}"
                    f"<br>chosen: {clip(r.chosen)}<br>rejected: {clip(r.rejected)}<br>margin: {r.margin:.3f}{extra}")
    return rows


def error_map(frame: pd.DataFrame, *, color: str = "correct", max_points: int = 20_000) -> go.Figure:
    """2-D map of pairs (from `workbench.curation.clustering.error_frame`), coloured by correct / margin / cluster / a tag.

    Large maps are downsampled for the browser, keeping every RM error.
    """
    if color not in frame.columns:
        raise ValueError(f"color {color!r} is not a column; choose one of {sorted(frame.columns)}.")
    if len(frame) > max_points:
        errors = frame[~frame["correct"]]
        rest = frame[frame["correct"]].sample(max(0, max_points - len(errors)), random_state=0)
        frame = pd.concat([errors, rest])
    data = frame.assign(hover=_hover(frame))
    if color == "correct":
        data = data.assign(correct=data["correct"].map({True: "RM agrees with label", False: "RM error"}))
    if color == "cluster":
        data = data.assign(cluster=data["cluster"].astype(str))
    palette = {"RM error": "#d62728", "RM agrees with label": "#9ecae1"} if color == "correct" else None
    fig = px.scatter(data, x="x", y="y", color=color, symbol="split", hover_name=None, custom_data=["pair_id"],
                     color_continuous_scale="RdBu" if color == "margin" else None, opacity=0.75,
                     color_discrete_map=palette,
                     title=f"Pairs in embedding space (UMAP), colour = {color}")
    fig.update_traces(hovertemplate="%{text}<extra></extra>", marker={"size": 6})
    for trace in fig.data:  # per-trace hover text, aligned with that trace's points
        ids = list(trace.customdata[:, 0]) if trace.customdata is not None else []
        lookup = dict(zip(data["pair_id"], data["hover"]))
        trace.text = [lookup[i] for i in ids]
    fig.update_layout(xaxis_title="UMAP 1", yaxis_title="UMAP 2", legend_title_text="")
    return fig


def cluster_error_bars(summary: pd.DataFrame, *, top: int = 20) -> go.Figure:
    """Clusters ranked by gold error rate (bars), with size and keywords on hover."""
    data = summary[~summary["noise"]].head(top).copy()
    data["label"] = "c" + data["cluster"].astype(str) + ": " + data["keywords"].str.split(", ").str[:3].str.join(", ")
    fig = px.bar(data, x="label", y="gold_error_rate", hover_data=["size", "gold_pairs", "mean_margin", "low_confidence_share"],
                 color="low_confidence_share", color_continuous_scale="Oranges", title="Clusters ranked by RM error rate on gold pairs")
    fig.update_layout(xaxis_title="cluster: keywords", yaxis_title="gold error rate", yaxis_range=[0, 1])
    return fig


class MapSelection:
    """pair_ids selected on an interactive map (lasso / box in a ``go.FigureWidget``)."""

    def __init__(self) -> None:
        self.pair_ids: list[str] = []

    def __call__(self, trace: Any, points: Any, selector: Any) -> None:
        chosen = [trace.customdata[i][0] for i in points.point_inds]
        self.pair_ids = sorted(set(self.pair_ids) | set(chosen))


def error_map_widget(frame: pd.DataFrame, *, color: str = "correct") -> tuple[go.FigureWidget, MapSelection]:
    """The error map as a FigureWidget: lasso or box-select points, read ``selection.pair_ids``."""
    fig = go.FigureWidget(error_map(frame, color=color))
    fig.update_layout(dragmode="lasso")
    selection = MapSelection()
    for trace in fig.data:
        trace.on_selection(selection)
    return fig, selection


def stage1_iterations(history: pd.DataFrame) -> go.Figure:
    """Per Stage-1 round: gold and test accuracy of the round's RM (lines), pairs added and flips found (bars)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=history["iteration"], y=history["labelled"], name="pairs added", opacity=0.45), secondary_y=True)
    fig.add_trace(go.Bar(x=history["iteration"], y=history["flips_found"], name="flips found", opacity=0.7), secondary_y=True)
    trained = history.dropna(subset=["gold_accuracy"])
    for col, name in (("gold_accuracy", "gold accuracy"), ("test_accuracy", "test accuracy")):
        if col in trained.columns:
            fig.add_trace(go.Scatter(x=trained["iteration"], y=trained[col], name=name, mode="lines+markers"),
                          secondary_y=False)
    fig.update_layout(title="Stage 1 rounds: accuracy of each round's RM, pairs labelled in the round",
                      xaxis_title="round (0 = seed; last = final RM on everything)", barmode="group")
    fig.update_yaxes(title_text="accuracy", secondary_y=False)
    fig.update_yaxes(title_text="pairs", secondary_y=True)
    return fig


DECISION_COLORS = {"keep": "#1a7f37", "flip": "#9a6700", "drop": "#cf222e"}


def stage2_decision_counts(curated: PairFrame, *, by: str = "source") -> go.Figure:
    """Stacked bars: Stage-2 keep / flip / drop counts per ``by`` value (human-reviewed pairs included)."""
    counts = curated.groupby([by, "stage2_decision"]).size().reset_index(name="pairs")
    fig = px.bar(counts, x=by, y="pairs", color="stage2_decision", color_discrete_map=DECISION_COLORS, text_auto=True,
                 category_orders={"stage2_decision": ["keep", "flip", "drop"]}, title=f"Stage 2 decisions by {by}")
    fig.update_layout(barmode="stack", legend_title_text="decision")
    return fig


def _logit(p: pd.Series) -> pd.Series:
    import numpy as np

    q = p.astype(float).clip(1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def stage2_margin_scatter(decisions: pd.DataFrame, *, max_points: int = 20_000) -> go.Figure:
    """Gold-RM margin vs Stage-1-RM margin (``r_chosen - r_rejected`` under the pair's label), coloured by decision.

    Top-right: both models agree with the label (kept); top-left: only the gold RM agrees, so the judge decides;
    bottom half: the gold RM disagrees (dropped, or flipped with ``recycle``).
    """
    frame = decisions.head(max_points).assign(margin_stage1=lambda d: _logit(d["p_stage1"]),
                                              margin_gold=lambda d: _logit(d["p_gold"]))
    fig = px.scatter(frame, x="margin_stage1", y="margin_gold", color="stage2_decision", color_discrete_map=DECISION_COLORS,
                     hover_data=["pair_id", "stage2_rule", "judge_label"], opacity=0.6,
                     category_orders={"stage2_decision": ["keep", "flip", "drop"]},
                     title="Stage 2: gold RM vs best Stage-1 RM margins, by decision")
    fig.add_hline(y=0, line_dash="dot", line_color="#888")
    fig.add_vline(x=0, line_dash="dot", line_color="#888")
    fig.update_layout(xaxis_title="best Stage-1 RM margin", yaxis_title="gold RM margin", legend_title_text="decision")
    return fig


def experiment_conditions(summary: pd.DataFrame) -> go.Figure:
    """Test accuracy per training condition, one panel per noise model, one colour per schedule: mean over seeds
    with its 95% CI; the dotted line is *longer wins* on the same test split."""
    noises = list(dict.fromkeys(summary["noise"]))
    fig = make_subplots(rows=1, cols=len(noises), shared_yaxes=True, subplot_titles=[f"noise: {n}" for n in noises])
    colours = {"fixed": "#4c78a8", "best on gold": "#f58518"}
    for k, noise in enumerate(noises, start=1):
        for schedule, colour in colours.items():
            s = summary[(summary["noise"] == noise) & (summary["schedule"] == schedule)]
            fig.add_trace(go.Bar(x=s["condition"], y=s["test_accuracy_mean"], name=schedule, marker_color=colour,
                                 legendgroup=schedule, showlegend=k == 1,
                                 error_y={"type": "data", "symmetric": False, "array": s["ci_high"] - s["test_accuracy_mean"],
                                          "arrayminus": s["test_accuracy_mean"] - s["ci_low"]}), row=1, col=k)
        fig.add_hline(y=float(summary["test_longer_wins"].iloc[0]), line_dash="dot", row=1, col=k,
                      annotation_text="longer wins" if k == 1 else None)
    lo = float(summary["ci_low"].min())
    fig.update_yaxes(range=[max(0.0, lo - 0.05), 1.0], title_text="test accuracy", row=1, col=1)
    fig.update_layout(title="Clean test accuracy by training set and noise model (mean, 95% CI over seeds)",
                      barmode="group", height=480)
    return fig


def experiment_enrichment(enrichment: pd.DataFrame) -> go.Figure:
    """Noise share of the Stage-1 review queues vs the pool vs random queues of the same size, per noise model:
    error-driven retrieval pays only where its bars stand above the random ones."""
    parts = {"Stage-1 queues": "queue_noise_share", "pool (unreviewed)": "pool_noise_share",
             "random queue, same size": "random_queue_noise_share"}
    x = [f"{n}<br>{q} queue" for n, q in zip(enrichment["noise"], enrichment["queue"])]
    fig = go.Figure([go.Bar(x=x, y=enrichment[col], name=name) for name, col in parts.items()])
    fig.update_layout(title="Retrieval enrichment: share of noisy labels in what people review", barmode="group",
                      xaxis_title="noise model", yaxis_title="share of flipped labels")
    return fig


def scale_stage_costs(summary: pd.DataFrame, *, title: str = "Cost per pair by stage") -> go.Figure:
    """Microseconds per pair of each stage of a sharded run (`workbench.scale.shards.curate_pool`'s ``*_s`` columns)."""
    stages = [c for c in summary.columns if c.endswith("_s")]
    cost = summary[stages].sum() / max(int(summary["pairs"].sum()), 1) * 1e6
    frame = pd.DataFrame({"stage": [c[:-2] for c in stages], "microseconds per pair": cost.to_numpy()})
    return px.bar(frame, x="stage", y="microseconds per pair", title=title, text_auto=".0f")


def cost_projection(measured: pd.DataFrame, predicted: pd.DataFrame, *, highlight: int | None = None,
                    title: str = "Wall time by pool size: measured runs and the cost model's projection") -> go.Figure:
    """Measured scale runs (markers) beside `workbench.scale.plan.projection`'s line (log-log), ``highlight`` marked."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=predicted["pairs"], y=predicted["wall_hours"], mode="lines", name="cost model",
                             line={"dash": "dash", "color": COLOURS[0]}))
    fig.add_trace(go.Scatter(x=measured["pairs"], y=measured["wall_hours"], mode="markers", name="measured",
                             marker={"size": 11, "color": COLOURS[1]}, text=measured.get("note"),
                             hovertemplate="%{x:,} pairs: %{y:.2f} h<br>%{text}"))
    if highlight is not None:
        row = predicted.loc[(predicted["pairs"] - highlight).abs().idxmin()]
        fig.add_annotation(x=float(np.log10(row["pairs"])), y=float(np.log10(row["wall_hours"])),
                           text=f"{row['pairs'] / 1e6:,.0f}M pairs: {row['wall_hours']:,.1f} h, {row['peak_memory_gb']:.1f} GB",
                           showarrow=True, arrowhead=2)
    fig.update_xaxes(type="log", title_text="pool pairs")
    fig.update_yaxes(type="log", title_text="wall hours")
    fig.update_layout(title=title, height=420)
    return fig


def _band(fig: go.Figure, x: Any, lo: Any, hi: Any, colour: str, name: str, **where: Any) -> None:
    """A shaded 95% CI band under a line (legend entry shared with the line)."""
    fig.add_trace(go.Scatter(x=list(x) + list(x)[::-1], y=list(hi) + list(lo)[::-1], fill="toself", fillcolor=colour,
                             mode="lines", opacity=0.18, line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=name),
                  **where)


COLOURS = px.colors.qualitative.D3


def _ci_lines(frame: pd.DataFrame, x: str, *, xaxis_title: str, title: str, height: int) -> go.Figure:
    """One line per condition of ``test_accuracy_mean`` against ``x`` (log axis), with its 95% CI band."""
    fig = go.Figure()
    for k, (name, g) in enumerate(frame.groupby("condition", sort=False)):
        g = g.sort_values(x)
        colour = COLOURS[k % len(COLOURS)]
        _band(fig, g[x], g["ci_low"], g["ci_high"], colour, name)
        fig.add_trace(go.Scatter(x=g[x], y=g["test_accuracy_mean"], mode="lines+markers", name=name,
                                 line={"color": colour}, legendgroup=name))
    fig.update_xaxes(type="log", title_text=xaxis_title)
    fig.update_layout(title=title, yaxis_title="test accuracy", height=height)
    return fig


def learning_curves(curve: pd.DataFrame, *, title: str = "") -> go.Figure:
    """Test accuracy against pool pairs (log scale) per condition: mean over seeds with its 95% CI band.
    ``curve``: columns condition, pool_pairs, test_accuracy_mean, ci_low, ci_high."""
    return _ci_lines(curve, "pool_pairs", xaxis_title="pool pairs (log scale)", height=480,
                     title=title or "Learning curves: test accuracy against the teacher (mean, 95% CI over seeds)")


def ablation_bars(ablation: pd.DataFrame) -> go.Figure:
    """The paper's ablation, additively: each step's mean test accuracy with its 95% CI; the hover text carries the
    paired difference to the step before. ``ablation``: step, test_accuracy_mean, ci_low, ci_high, diff_mean."""
    fig = go.Figure(go.Bar(
        x=ablation["step"], y=ablation["test_accuracy_mean"], marker_color="#4c78a8",
        error_y={"type": "data", "symmetric": False, "array": ablation["ci_high"] - ablation["test_accuracy_mean"],
                 "arrayminus": ablation["test_accuracy_mean"] - ablation["ci_low"]},
        text=[("" if pd.isna(d) else f"{d:+.3f}") for d in ablation["diff_mean"]], textposition="outside",
        hovertemplate="%{x}: %{y:.3f}<br>vs step before: %{text}<extra></extra>"))
    lo = float(ablation["ci_low"].min())
    fig.update_layout(title="Ablation, step by step (bar: mean, 95% CI; label: paired difference to the step before)",
                      yaxis={"range": [max(0.0, lo - 0.05), min(1.0, float(ablation["ci_high"].max()) + 0.05)],
                             "title": "test accuracy"}, height=450)
    return fig


def budget_curves(budget: pd.DataFrame) -> go.Figure:
    """Test accuracy against the number of human reviews, one line per queue (mean, 95% CI band)."""
    return _ci_lines(budget, "budget", xaxis_title="human reviews (log scale)", height=450,
                     title="Review budget: test accuracy against reviews spent (mean, 95% CI over seeds)")


def teacher_margins(pairs: PairFrame) -> go.Figure:
    """The teacher-margin distribution per split (in units of the pool's RMS margin): easy pairs sit on the right."""
    import numpy as np

    scale = float(np.sqrt(np.mean(pairs.loc[pairs["split"] == "train", "teacher_margin"] ** 2))) or 1.0
    frame = pd.DataFrame({"margin / RMS": pairs["teacher_margin"] / scale, "split": pairs["split"]})
    fig = px.histogram(frame, x="margin / RMS", color="split", histnorm="probability", barmode="overlay", nbins=60,
                       title="Teacher margins per split (units of the pool's RMS margin)")
    fig.update_traces(opacity=0.6)
    return fig
