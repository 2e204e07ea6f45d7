"""Writes notebooks/03_error_clusters.ipynb (run from the repo root)."""
import sys

sys.path.insert(0, "tools")
from pathlib import Path

from nbtools import SETUP_CELL, build

cells = [
("md", """
# 03 · Where does the reward model err? Error clusters in embedding space

Score the gold set and the unverified pool with a Stage-1 reward model, embed every pair as
**(conversation, attributes)** (the paper's `(x, a)`), map the embeddings to 2-D with UMAP and cluster them with
HDBSCAN. Clusters where the RM is often wrong on gold, or unsure (`p` near 0.5), are where Stage 1 retrieves
similar unverified pairs for review. Select points with the lasso in the interactive map, or pick clusters.
"""),
("code", SETUP_CELL),
("parameters", """
run_dir = "../runs/scratch"
smoke = False
seed = 0
rm_path = ""                  # empty: train a fast Stage-1 RM (embedding head) on the train split; else a saved RM folder
embedder = ""                 # sentence-transformers model for the map; empty: the offline MiniLM
n_neighbors = 15
cluster_dims = 5
min_cluster_size = 15
clusterer = "fast_hdbscan"    # fast_hdbscan | hdbscan | sklearn
review_clusters = 3           # the worst clusters whose pool pairs are proposed for review
"""),
("code", """
from workbench import clustering, io, plots, scoring, training

STEP = "03_error_clusters"
cfg = clustering.ClusterConfig(n_neighbors=n_neighbors, cluster_dims=cluster_dims, seed=seed, clusterer=clusterer,
                               min_cluster_size=min(min_cluster_size, 5) if smoke else min_cluster_size)
run = io.start_run(run_dir, {"cluster": cfg, "rm_path": rm_path, "embedder": embedder}, step=STEP)
pairs = io.load_pairs(run.path / "pairs.parquet")
pairs = pairs[pairs["split"].isin(["train", "gold"])].reset_index(drop=True)
tags = io.read_frame(run.path / "tags.parquet") if (run.path / "tags.parquet").exists() else None
emb_cache = io.EmbeddingCache(run, "minilm")
if rm_path:
    rm = scoring.load_reward_model(rm_path, embedding_cache=emb_cache)
else:
    head_cfg = training.RMTrainConfig(kind="embedding_head", seed=seed, head_epochs=5 if smoke else 30)
    stage1 = training.train_reward_model(pairs[pairs["split"] == "train"], pairs[pairs["split"] == "gold"], cfg=head_cfg,
                                         output_dir=run.path / "models" / "stage1_fast", cache=emb_cache)
    rm = scoring.load_reward_model(stage1.model_dir, embedding_cache=emb_cache)
score_cfg = scoring.ScoreConfig()
scores = scoring.score_pairs(rm, pairs, cfg=score_cfg, cache=io.ScoreCache(run, scoring.settings_key(rm, score_cfg)))
print(f"{len(pairs)} pairs scored; gold accuracy {(scores['margin'][pairs['split'] == 'gold'] > 0).mean():.3f}")
"""),
("md", "## Embed (conversation, attributes) and map"),
("code", """
emb = clustering.embed_pairs(pairs, tags, cache=io.EmbeddingCache(run, f"pairs-{embedder or 'minilm'}"), model_name=embedder)
emap = clustering.ErrorMap(cfg).fit(emb)
frame = clustering.error_frame(pairs, scores, emap.xy, emap.clusters, tags=tags, cfg=cfg)
summary = clustering.summarize_clusters(frame, emb)
io.write_frame(frame.drop(columns=["prompt", "chosen", "rejected"]), run.file("error_map.parquet"))
io.save_table(summary, run, "error_clusters", title="Clusters ranked by RM error rate on gold", step=STEP, index=False)
summary.head(15)
"""),
("md", """
## The map

Red points are pairs where the RM disagrees with the label. Hover for the prompt, both responses and the margin.
"""),
("code", """
fig_map = plots.error_map(frame, color="correct")
io.save_figure(fig_map, run, "error_map", title="Error map (colour: RM agrees with the label?)", step=STEP)
fig_map
"""),
("code", """
fig_clusters = plots.error_map(frame, color="cluster")
io.save_figure(fig_clusters, run, "error_map_clusters", title="Error map (colour: cluster)", step=STEP)
fig_bars = plots.cluster_error_bars(summary)
io.save_figure(fig_bars, run, "error_cluster_bars", title="Clusters ranked by gold error rate", step=STEP)
fig_bars
"""),
("md", """
## Pick pairs for review

Interactively: draw a lasso on the widget below, then read `selection.pair_ids`. Unattended: the pool pairs
of the `review_clusters` worst clusters are proposed and saved for the Stage-1 review queue.
"""),
("code", """
widget, selection = plots.error_map_widget(frame, color="correct")
worst = summary[~summary["noise"]].head(review_clusters)["cluster"].tolist()
proposed = clustering.select_pairs(frame, clusters=worst)
io.write_json({"clusters": worst, "pair_ids": proposed}, run.file("error_cluster_selection.json"))
rates = summary[~summary["noise"] & (summary["gold_pairs"] > 0)]["gold_error_rate"]
cluster_metrics = {"pairs": len(frame), "clusters": int((summary["cluster"] >= 0).sum()),
                   "noise_share": float((frame["cluster"] == -1).mean()),
                   "worst_cluster_gold_error_rate": float(rates.max()) if len(rates) else None,
                   "best_cluster_gold_error_rate": float(rates.min()) if len(rates) else None,
                   "proposed_for_review": len(proposed)}
io.save_metrics(cluster_metrics, run, "cluster_metrics", title="Error clusters at a glance", step=STEP)
cluster_metrics
"""),
("code", """
# checks
assert len(frame) == len(pairs) and frame["cluster"].notna().all()
assert (run.path / "figures" / "error_map.html").exists() and (run.path / "error_cluster_selection.json").exists()
if not smoke:
    assert cluster_metrics["clusters"] >= 2, "the demo should give several clusters"
    assert cluster_metrics["worst_cluster_gold_error_rate"] > cluster_metrics["best_cluster_gold_error_rate"]
"""),
]
build(cells, Path("notebooks/03_error_clusters.ipynb"))
