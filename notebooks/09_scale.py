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
# # 09 · Scale: curate a pool that does not fit in memory (locally or on Ray)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rm-curation-workbench/rm-curation-workbench/blob/main/notebooks/09_scale.ipynb)
#
# Notebooks 02–05 hold the pool in memory, which is right for tens of thousands of pairs. The paper curates
# 40 million. This notebook runs the same stages **one parquet shard at a time**: the attribute tagger, the
# (conversation, attributes) embedding, both reward models (best Stage-1 RM and gold RM) and the Stage-2
# consistency rule. Every shard's results go to disk as soon as it is done (`scale/tags`, `scale/vectors`
# (float16), `scale/curated`, `scale/done`), so memory stays at one shard per worker and a crash or Ctrl-C
# loses only the shards in flight: run it again and finished shards are skipped.
#
# `backend = "ray"` runs the same per-shard worker as Ray Data actors (install the extra:
# `pip install -e ".[scale]"`; `ray_address` joins an existing cluster). The outputs are identical, only the
# `label_at` time stamps differ.
#
# By default the pool is **synthetic** (real HH-RLHF shapes and words, meaningless labels) so the notebook
# shows the machinery at a size you choose; point `pool_dir` at your own shards (`workbench shard my.jsonl
# --out shards/`) and `stage1_rm` / `gold_rm` at the models of notebooks 04 / 05 for a real run. Without
# them, two fast RMs over the `minilm-static` embedder are trained on this run's pool and gold split: the offline
# MiniLM embeds a few hundred texts/s on a laptop CPU; `minilm-static`, distilled from it with model2vec, over
# ten thousand, and it keeps three times as many of MiniLM's nearest neighbours as the model-free `hashing`.

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
from workbench.scale import SCALE_EMBEDDER  # the defaults live in the config classes
from workbench.scale import ScaleConfig as C

run_dir = "../runs/scratch"
smoke = False
seed = 0
pool_dir = ""                 # a folder of parquet shards; empty: write a synthetic pool into the run
synthetic_pairs = 20000       # size of that synthetic pool
shard_size = 5000             # pairs per shard (memory per worker grows with it)
stage1_rm = ""                # the best Stage-1 RM folder (04); empty: a fast head RM trained here
gold_rm = ""                  # the gold RM folder (05); empty: a fast head RM trained on the gold split
embedder = SCALE_EMBEDDER     # minilm-static (fast), hashing (model-free), empty for the offline MiniLM, or a model path
tagger = "embedded"           # embedded, llm or none
llm_base_url = ""             # tagger llm: an OpenAI-compatible endpoint, e.g. http://localhost:8000/v1
llm_model = ""
backend = C.backend           # local or ray
ray_address = C.ray_address   # ray: empty starts a local Ray; auto or ray://head:10001 joins a cluster
workers = C.workers           # ray: actors, one shard each at a time
map_points = 5000             # points drawn on the map (every Stage-1 RM error kept first)
cost_runs = "../benchmarks/scale_costs"   # measured runs for the cost model (costs.json files or a folder of them)
plan_pairs = 40_000_000       # the pool to plan for (the paper's SynPref-40M)
plan_machines = 1
plan_cores = 0                # cores per machine; 0: this machine's

# %%
import time

import numpy as np
from IPython.display import Markdown, display

from workbench import scale
from workbench.curation import plots
from workbench.data.synthetic import SyntheticConfig, write_synthetic_pool
from workbench.runs.folder import start_run

# %%
STEP = "09_scale"
run = start_run(run_dir, {"pool_dir": pool_dir, "synthetic_pairs": synthetic_pairs, "embedder": embedder,
                          "backend": backend, "tagger": tagger}, step=STEP)
n_synthetic = 2000 if smoke else synthetic_pairs
if not pool_dir:
    pool_dir = str(run.path / "scale" / f"synthetic-{n_synthetic}")
    write_synthetic_pool(pool_dir, SyntheticConfig(n_pairs=n_synthetic, shard_size=min(shard_size, n_synthetic), seed=seed))
if not (stage1_rm and gold_rm):
    stage1_rm, gold_rm = scale.train_pool_rms(run.load("pairs"), run.path / "models" / "scale", embedder=embedder,
                                              epochs=5 if smoke else 10, seed=seed, progress=False)
cfg = scale.ScaleConfig.from_params(stage1_rm, gold_rm, embedder=embedder, tagger=tagger, llm_base_url=llm_base_url,
                                    llm_model=llm_model, backend=backend, ray_address=ray_address, workers=workers)
out_dir = run.path / "scale" / f"out-{pool_dir.rstrip('/').split('/')[-1]}"
print(f"{len(scale.list_shards(pool_dir))} shards in {pool_dir}; outputs in {out_dir}")

# %% [markdown]
# ## Curate every shard
#
# Resumable: re-running this cell skips finished shards. The table is one row per shard with the seconds each
# stage took.

# %%
t0 = time.perf_counter()
summary = scale.curate_pool(pool_dir, out_dir, cfg)
wall = time.perf_counter() - t0
n_pairs = int(summary["pairs"].sum())
print(f"{n_pairs} pairs in {wall:.1f} s this call ({backend}); "
      f"keep {summary['keep'].sum()}, flip {summary['flip'].sum()}, drop {summary['drop'].sum()}")
run.save_table(summary.drop(columns=["key"]), "scale_shards", title="Per shard: pairs, decisions, seconds per stage",
               step=STEP, index=False)
summary.drop(columns=["key"]).head(10)

# %% [markdown]
# Where the time goes, as microseconds per pair (flat per pair is what makes 40M pairs a matter of machines, not memory):

# %%
fig_cost = plots.scale_stage_costs(summary, title=f"Cost per pair by stage ({backend} backend, {n_pairs} pairs)")
run.save_figure(fig_cost, "scale_cost_per_pair", title="Cost per pair by stage", step=STEP)
fig_cost

# %%
decisions = scale.decision_summary(out_dir)
run.save_table(decisions, "scale_decisions", title="Stage-2 decisions by task category (sharded run)", step=STEP)
decisions

# %% [markdown]
# ## Retrieval over the whole pool: an approximate index vs exact search
#
# The float16 vectors stay on disk (memory-mapped). The index (`IndexConfig`: by default an HNSW graph over
# float16 vectors, the fastest at recall@8 >= 0.95 in `benchmarks/bench_retrieval.py`; IVF on request) is
# filled shard by shard; exact search streams the shards. Recall@8 says how much of the exact top 8 the index
# finds.

# %%
vectors = scale.ShardedVectors(out_dir)
t_index = time.perf_counter()
index = scale.build_index(vectors, path=out_dir / "index.faiss", progress=False)
index_s = time.perf_counter() - t_index
retrieval = scale.compare_with_exact(vectors, index, queries=500, k=8, seed=seed)
retrieval

# %% [markdown]
# ## The error map at scale
#
# UMAP is fitted on a sample and the rest of the drawn points are transformed into the same map. The map draws
# every pair the Stage-1 RM gets wrong (up to `map_points`) and fills up with a random sample of the rest; only
# those rows' texts are read from disk.

# %%
frame, fitted = scale.error_map_frame(out_dir, max_points=200 if smoke else map_points, seed=seed)
fig_map = plots.error_map(frame, color="correct")
run.save_figure(fig_map, "scale_error_map", title="Stage-1 RM errors over the sharded pool (sampled map)", step=STEP,
                caption=f"{len(frame)} of {len(vectors)} pairs drawn; every drawn error is kept")
fig_map

# %% [markdown]
# The same fitted map places every pair of the pool, shard by shard (`scale/out-*/map/<shard>.npy`, resumable):
# coordinates to select regions of a pool too large to draw.

# %%
map_paths = scale.map_whole_pool(out_dir, fitted.reducer_2d)
mapped = sum(len(np.load(p)) for p in map_paths)
print(f"{mapped} pairs placed on the map in {len(map_paths)} shard files")

# %% [markdown]
# ## Train on the curated pool
#
# The kept and flipped pairs, written shard by shard into one parquet file with this run's gold and test splits
# appended: notebook 06 trains on it with `dataset = "scale_curated"` (TRL reads it as well).

# %%
heldout = run.load("pairs").query("split in ['gold', 'test']")
train_path, n_train = scale.write_training_set(out_dir, run.path_of("scale_curated"), heldout=heldout)
print(f"{n_train} curated training pairs (+ gold and test) in {train_path}")
metrics = scale.scale_metrics(summary, backend=backend, embedder=embedder, wall_s=wall, retrieval=retrieval,
                              map_points=len(frame), training_pairs=n_train)
run.save_metrics(metrics, "scale_metrics", title="Scale run at a glance", step=STEP)
metrics

# %% [markdown]
# ## What would the paper's 40M pairs cost?
#
# The cost model (`workbench plan`, `workbench.scale.plan`) fits each stage on measured runs: the per-shard
# stages linear in pairs and spread over every core, the index on one machine (`N log N` for HNSW, ~N^1.5 for
# IVF, whose lists grow as sqrt N), memory = one shard per worker + the index, disk per pair. The measured points
# are `benchmarks/bench_scale.py`'s runs on a 2-core machine (`cost_runs`); this run is measured too, and the model
# predicts it from the others before it is compared.
# Change `plan_machines` / `plan_cores` to plan for your cluster.

# %%
import os
import resource

from workbench.scale import plan as cost

this_run = cost.measured_run_from_folder(out_dir, cores=os.cpu_count() or 1, index_seconds=index_s,
                                         peak_memory_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                                         index_memory_gb=(out_dir / "index.faiss").stat().st_size / 1e9)
cores = plan_cores or os.cpu_count() or 1
proj = cost.project(cost.load_measured_runs(cost_runs) if cost_runs else [], this_run,
                    cost.Target(pairs=plan_pairs, machines=plan_machines, cores_per_machine=cores))
plan = proj.plan

# %%
fig_plan = plots.cost_projection(proj.points, proj.curve, highlight=plan_pairs)
run.save_figure(fig_plan, "scale_cost_projection", title="Measured scale runs and the cost model's projection", step=STEP,
                caption=f"{len(proj.points) - 1} recorded runs + this run; {plan_machines} machine(s) x {cores} cores")
plan_table = plan.stages.assign(core_hours=lambda d: d["core_seconds"] / 3600, wall_hours=lambda d: d["wall_seconds"] / 3600)
run.save_table(plan_table, "scale_plan", title=f"Cost model: {plan_pairs:,} pairs by stage", step=STEP, index=False)
display(Markdown("**Assumptions**\n\n" + "\n".join(f"- {a}" for a in plan.assumptions)))
fig_plan

# %% [markdown]
# ## Conclusions

# %%
m, check = metrics, proj.check_seconds()
display(Markdown(
    f"- **{m['pairs']:,} pairs** in {m['shards']} shards curated in {m['wall_seconds_this_call']:.0f} s this call "
    f"({m['backend']} backend, `{m['embedder']}` embedder): {m['microseconds_per_pair']:.0f} µs per pair over all stages.\n"
    f"- Stage 2 kept {m['decision_keep']:,}, flipped {m['decision_flip']:,}, dropped {m['decision_drop']:,}; "
    f"{m['curated_training_pairs']:,} pairs written for training.\n"
    f"- faiss `{m['retrieval_index']}` recall@8 **{m['retrieval_recall_at_8']:.3f}** at {m['retrieval_speedup']:.1f}x exact search "
    f"({m['retrieval_queries']} queries).\n"
    f"- Cost model ({max(len(proj.points) - 1, 1)} measured run(s)): **{plan_pairs:,} pairs** on {plan_machines} x "
    f"{cores} cores would take **{plan.wall_seconds / 3600:,.1f} h**, {plan.peak_memory_gb:.1f} GB peak, {plan.disk_gb:,.0f} GB of disk. "
    f"Fitted on the recorded runs, it predicts {check[0]:.0f} s for this run's stages; they took {check[1]:.0f} s "
    f"({check[1] / check[0]:.2f}x the prediction)."))

# %%
# checks
import pandas as pd

assert n_pairs == sum(len(pd.read_parquet(s, columns=["pair_id"])) for s in scale.list_shards(pool_dir)), "every pair once"
curated = scale.read_curated(out_dir, ["pair_id", "stage2_decision", "label_state", "p_stage1"])
assert len(curated) == n_pairs and curated["pair_id"].is_unique
assert (curated.loc[curated["stage2_decision"] == "drop", "label_state"] == "dropped").all()
assert retrieval["recall_at_8"] >= 0.8, retrieval
assert mapped == n_pairs, "every pair placed on the map"
exported = run.load("scale_curated")
assert (exported["split"] == "train").sum() == n_train == metrics["decision_keep"] + metrics["decision_flip"]
assert {"gold", "test"} <= set(exported["split"]), "notebook 06 needs the gold and test splits"
assert (~frame["correct"]).sum() == min((curated["p_stage1"] < 0.5).sum(), len(frame))
assert this_run.pairs == n_pairs and this_run.stage_seconds["index"] > 0 and plan.wall_seconds > proj.predicted_check.wall_seconds
assert set(plan.stages["stage"]) == {*cost.SHARD_STAGES, "index", "retrieve"} and len(plan.assumptions) >= 5
