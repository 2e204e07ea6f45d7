# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Where does the reward model err? Error clusters in embedding space
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rm-curation-workbench/rm-curation-workbench/blob/main/notebooks/03_error_clusters.ipynb)
#
# Score the gold set and the unverified pool with a Stage-1 reward model, embed every pair as
# **(conversation, attributes)** (the paper's `(x, a)`), map the embeddings to 2-D with UMAP and cluster them with
# HDBSCAN. Clusters where the RM is often wrong on gold, or unsure (`p` near 0.5), are where Stage 1 retrieves
# similar unverified pairs for review. Select points with the lasso in the interactive map, or pick clusters.

# %%
# Setup (Colab / Kaggle only): clone and install the workbench, fetch the public data. Elsewhere: nothing.
import os
import subprocess
import sys

if "google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
    _url = os.environ.get("WORKBENCH_REPO_URL", "https://github.com/rm-curation-workbench/rm-curation-workbench")
    _run = print if os.environ.get("WORKBENCH_SETUP_DRY_RUN") else subprocess.check_call  # tests: show, do not run
    _repo = os.path.abspath("..") if os.path.exists("../pyproject.toml") else os.path.abspath("rm-curation-workbench")
    if not os.path.exists(os.path.join(_repo, "pyproject.toml")):
        _run(["git", "clone", "--depth", "1", _url, _repo])
    _run([sys.executable, "-m", "pip", "install", "-q", "-e", _repo])
    sys.path.insert(0, _repo)  # this kernel sees the editable install without a restart
    _run([sys.executable, "-m", "workbench", "data", "ensure"])  # ~10 MB from the Hub / GitHub, licenses printed
    if os.path.isdir(os.path.join(_repo, "notebooks")):
        os.chdir(os.path.join(_repo, "notebooks"))  # relative paths (run_dir) as in the repository

# %% tags=["parameters"]
from workbench.curation.clustering import ClusterConfig as C  # the defaults live in the config classes
from workbench.curation.pipeline import CurationConfig as P

run_dir = "../runs/scratch"
smoke = False
seed = C.seed
rm_path = ""                  # empty: train a fast Stage-1 RM (embedding head) on the train split; else a saved RM folder
embedder = P.embedder         # sentence-transformers model for the map; empty: the offline MiniLM
n_neighbors = C.n_neighbors
cluster_dims = C.cluster_dims
min_cluster_size = C.min_cluster_size
clusterer = C.clusterer       # fast_hdbscan, hdbscan or sklearn
review_clusters = 3           # the worst clusters whose pool pairs are proposed for review

# %%
from IPython.display import Markdown, display

from workbench.curation import clustering, pipeline, plots
from workbench.models import scoring, training
from workbench.runs.folder import start_run
from workbench.runs.stores import EmbeddingCache, ScoreCache

# %%
STEP = "03_error_clusters"
cfg = clustering.ClusterConfig(n_neighbors=n_neighbors, cluster_dims=cluster_dims, seed=seed, clusterer=clusterer,
                               min_cluster_size=min(min_cluster_size, 5) if smoke else min_cluster_size)
run = start_run(run_dir, {"cluster": cfg, "rm_path": rm_path, "embedder": embedder}, step=STEP)
pairs = run.load("pairs").query("split in ['train', 'gold']").reset_index(drop=True)
tags = run.load("tags", default=None)
emb_cache = EmbeddingCache(run, "minilm")
rm = (scoring.load_reward_model(rm_path, embedding_cache=emb_cache) if rm_path else training.fast_head_rm(
    pairs.query("split == 'train'"), pairs.query("split == 'gold'"), output_dir=run.path / "models" / "stage1_fast",
    cache=emb_cache, seed=seed, epochs=5 if smoke else 30, progress=True)[0])
scores = scoring.score_pairs(rm, pairs, cache=ScoreCache(run, scoring.settings_key(rm, scoring.ScoreConfig())))
print(f"{len(pairs)} pairs scored; gold accuracy {(scores['margin'][pairs['split'] == 'gold'] > 0).mean():.3f}")

# %% [markdown]
# ## Embed (conversation, attributes) and map

# %%
curation = pipeline.CurationConfig(embedder=embedder)
emb = pipeline.embed(pairs, tags, cache=EmbeddingCache(run, f"pairs-{embedder or 'minilm'}"), cfg=curation)
emap = clustering.ErrorMap(cfg).fit(emb)
frame = clustering.error_frame(pairs, scores, emap.xy, emap.clusters, tags=tags, cfg=cfg)
summary = clustering.summarize_clusters(frame, emb)
run.save("error_map", frame.drop(columns=["prompt", "chosen", "rejected"]))
run.save_table(summary, "error_clusters", title="Clusters ranked by RM error rate on gold", step=STEP, index=False)
summary.head(15)

# %% [markdown]
# ## The map
#
# Red points are pairs where the RM disagrees with the label. Hover for the prompt, both responses and the margin.

# %%
fig_map = plots.error_map(frame, color="correct")
run.save_figure(fig_map, "error_map", title="Error map (colour: RM agrees with the label?)", step=STEP)
fig_map

# %%
fig_clusters = plots.error_map(frame, color="cluster")
run.save_figure(fig_clusters, "error_map_clusters", title="Error map (colour: cluster)", step=STEP)
fig_bars = plots.cluster_error_bars(summary)
run.save_figure(fig_bars, "error_cluster_bars", title="Clusters ranked by gold error rate", step=STEP)
fig_bars

# %% [markdown]
# ## Pick pairs for review
#
# Interactively: draw a lasso on the widget below, then read `selection.pair_ids`. Unattended: the pool pairs
# of the `review_clusters` worst clusters are proposed and saved for the Stage-1 review queue.

# %%
widget, selection = plots.error_map_widget(frame, color="correct")
worst = summary[~summary["noise"]].head(review_clusters)["cluster"].tolist()
proposed = clustering.select_pairs(frame, clusters=worst)
run.save("error_cluster_selection", {"clusters": worst, "pair_ids": proposed})
cluster_metrics = clustering.cluster_metrics(frame, summary, proposed)
run.save_metrics(cluster_metrics, "cluster_metrics", title="Error clusters at a glance", step=STEP)
cluster_metrics

# %% [markdown]
# ## Conclusions

# %%
gold_error_rate = float((~frame.loc[frame["split"] == "gold", "correct"]).mean())
m = cluster_metrics
lines = [f"- The RM gets **{gold_error_rate:.1%}** of gold pairs wrong; the map groups {m['pairs']:,} pairs into "
         f"**{m['clusters']} clusters** ({m['noise_share']:.0%} unclustered).",
         f"- {m['proposed_for_review']:,} pool pairs of the {len(worst)} worst clusters are proposed for the Stage-1 "
         "review (notebook 04)."]
if m["worst_cluster_gold_error_rate"] is not None:
    lines.insert(1, f"- Gold error rate by cluster: worst **{m['worst_cluster_gold_error_rate']:.1%}**, best "
                    f"{m['best_cluster_gold_error_rate']:.1%}, against {gold_error_rate:.1%} overall.")
display(Markdown("\n".join(lines)))

# %%
# checks
assert len(frame) == len(pairs) and frame["cluster"].notna().all() and run.has("error_cluster_selection")
assert (run.path / "figures" / "error_map.html").exists()
assert cluster_metrics["clusters"] >= 1 and 0 <= cluster_metrics["noise_share"] < 1
ranked = summary[~summary["noise"]]["gold_error_rate"].dropna()
assert ranked.is_monotonic_decreasing and ranked.between(0, 1).all(), "clusters are ranked worst first"
in_worst = frame["cluster"].isin(worst) & (frame["split"] == "train")
assert sorted(proposed) == sorted(frame.loc[in_worst, "pair_id"]), "the review proposal is the worst clusters' pool pairs"
if not smoke:  # errors concentrate: the worst cluster is worse than the RM's gold error rate overall, the best better
    assert cluster_metrics["clusters"] >= 2, "the demo should give several clusters"
    assert m["worst_cluster_gold_error_rate"] > gold_error_rate > m["best_cluster_gold_error_rate"]
