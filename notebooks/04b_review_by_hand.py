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
# # 04b · Stage 1 by hand: the review panel
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rm-curation-workbench/rm-curation-workbench/blob/main/notebooks/04b_review_by_hand.ipynb)
#
# The same loop as notebook 04, with **you** as the reviewer. The panel shows the next queue: the seed round first
# (pairs notebook 03 proposed from the worst error clusters come first), then pairs pulled by the current RM's gold
# errors. Each pair shows the conversation, both responses, the RM's scores, the gold pair that pulled it and why.
#
# Buttons or keys (click the shortcut strip first): **k** keep · **f** flip · **d** drop · **s** skip · **u** undo.
# Every click is saved in the run's review log before the next pair appears; closing the notebook and coming back
# resumes where you were. Run the notebook again for the next round. Several people can review at once (each with
# their own `reviewer` name): notebook 04 shows their agreement, notebook 05 uses every label in the log.

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
from workbench.curation.stage1 import Stage1Config as C  # the defaults live in the config class

run_dir = "../runs/scratch"
smoke = False
seed = C.seed
reviewer = "your-name"        # your name: every decision in the log carries it
seed_size = C.seed_size       # pool pairs in the seed round
labels_per_iteration = C.labels_per_iteration   # pairs per later queue
k_max = C.k_max
embedder = ""                 # empty: the offline MiniLM (same as notebook 03)

# %%
from IPython.display import Markdown, display

from workbench.curation import pipeline, review, stage1
from workbench.curation.review_ui import ReviewUI
from workbench.runs.folder import start_run
from workbench.runs.stores import EmbeddingCache

STEP = "04b_review_by_hand"
cfg = stage1.Stage1Config(seed_size=seed_size, labels_per_iteration=labels_per_iteration, k_max=k_max, seed=seed)
cfg = cfg.smoke() if smoke else cfg
run = start_run(run_dir, {"stage1": cfg, "reviewer": reviewer}, step=STEP)
pairs, tags = run.load("pairs"), run.load("tags", default=None)
pool = run.load("stage1_pool", default=None)
if pool is None:  # the pool exactly as the data gave it: no simulated noise when people review
    pool = stage1.simulated_pool(pairs.query("split == 'train'").reset_index(drop=True), stage1.SimulationConfig(0.0), seed=seed)
    run.save("stage1_pool", pool)

# %%
embed = pipeline.pair_embedder(tags, cache=EmbeddingCache(run, f"pairs-{embedder or 'minilm'}"),
                               cfg=pipeline.CurationConfig(embedder=embedder))
data = stage1.Stage1Data.from_run_artifacts(pairs, pool, tags, embed, error_map=run.load("error_map", default=None),
                                            selection=run.load("error_cluster_selection", default={"pair_ids": []}))
store = review.ReviewStore(run.file("review.sqlite"))
queue, info = stage1.next_queue(data, store, cfg, output_dir=run.path / "models" / "stage1_interactive",
                                cache=EmbeddingCache(run, "minilm"))
run.save_metrics({**info, "queue": len(queue), "reviewer": reviewer}, "review_queue", title="Next review queue", step=STEP)
info

# %% [markdown]
# ## Review

# %%
ui = ReviewUI(queue, store, reviewer=reviewer)
ui

# %% [markdown]
# ## Conclusions (as of this run; rerun after reviewing)

# %%
labels = store.labels()
mine = store.effective().query("reviewer == @reviewer")["decision"].value_counts()
display(Markdown(
    f"- Round {info['round']} ({info['kind']}): **{len(queue)} pairs** in the queue; {info['labelled_so_far']:,} pool "
    f"pairs labelled before it.\n"
    f"- `{reviewer}` has decided {int(mine.sum()):,} pairs so far: "
    + ", ".join(f"{d} {n}" for d, n in mine.items()) + ".\n"
    f"- The log holds {len(labels):,} labelled pairs from every reviewer; notebook 05 uses all of them."))

# %%
# checks
assert set(queue["pair_id"]) <= set(pool["pair_id"]) and queue["pair_id"].is_unique
assert (len(queue) == 0) == (ui.current is None)
assert len(queue) <= max(cfg.seed_size, cfg.labels_per_iteration) and info["round"] >= 0
