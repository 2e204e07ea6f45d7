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
