"""Pure plotting functions: frames in, plotly ``go.Figure`` out. Nothing here shows or saves.

Notebooks display the figure and save it with `workbench.io.save_figure`.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from workbench.overview import NEAR_DUPLICATE_OVERLAP, pair_lengths, response_overlap
from workbench.schema import PairFrame


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
    """Grouped bars from `workbench.scoring.compare_accuracy` (one bar per model / baseline per group)."""
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
