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
# # 04 · Stage 1: retrieve what the RM gets wrong, review it, repeat
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rm-curation-workbench/rm-curation-workbench/blob/main/notebooks/04_retrieval_and_review.ipynb)
#
# The paper's human-guided loop, unattended. Each round trains a reward model on every pair labelled so far, keeps
# the epoch with the best accuracy on the **gold** set, and for each gold pair computes `p = sigmoid(r_w - r_l)`.
# Gold pairs the RM gets wrong pull their `k_max = 8` most similar unverified pool pairs (by the
# `(conversation, attributes)` embedding); right-but-unsure ones pull `ceil(8 (1 - p))`. A reviewer then
# keeps, flips or drops each retrieved pair; every decision goes into an append-only SQLite log
# (`review.sqlite` in the run), so nothing is lost on a crash and several people can review at once.
#
# **Who reviews** is the `reviewer` parameter:
# - `oracle` — *simulated* reviewers: answer from known true labels with an error rate. The demo takes the pool's
#   labels as truth and injects `noise_rate` label flips so there is something to find. The `routing` rules send
#   each queued pair to simulated **people**, a simulated **LLM judge** or **both**, by its attributes and scores
#   (default: the paper's split, objective maths and coding to the judge, subjective or controversial pairs to
#   people); `routing = []` lets the simulated people label everything.
# - `judge` — the LLM judge on your endpoint labels everything (several models: `llm_model = "a,b,c"`); its labels
#   are *silver*. It sees each pair's attributes and guideline, its up to 8 most similar human-verified pairs as
#   few-shot examples, both candidate orders at random, and votes over several samples per model.
#
# To review **by hand**, open `04b_review_by_hand.ipynb`: it shows the same queues in a review panel. A team that
# annotates in Label Studio pushes the queues there and pulls the answers back (`workbench review push / pull`,
# docs/guides/label-studio.md).

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
from workbench.curation.routing import RoutingConfig as R  # the defaults live in the configs
from workbench.curation.stage1 import SimulationConfig as S
from workbench.curation.stage1 import Stage1Config as C
from workbench.llm.client import EndpointConfig as E

run_dir = "../runs/scratch"
smoke = False
seed = C.seed
reviewer = "oracle"           # oracle (simulated people) or judge (the LLM judge)
iterations = C.iterations     # retrieval rounds after the seed round
seed_size = C.seed_size       # pool pairs labelled in round 0
labels_per_iteration = C.labels_per_iteration   # review budget per round
k_max = C.k_max
noise_rate = S.noise_rate     # oracle runs only: share of pool labels flipped to simulate noise, 0 for none
oracle_error_rate = S.oracle_error_rate   # how often the simulated people answer wrongly
judge_error_rate = S.judge_error_rate     # oracle runs: how often the simulated LLM judge answers wrongly
routing = list(R.rules)       # oracle runs: rules "<condition> -> people, llm or both", first match wins; empty: none
route_budgets = list(R.budgets)   # pairs per round and route, e.g. ["people:100"]; pairs over a budget wait
embedder = ""                 # empty: the offline MiniLM (same as notebook 03)
llm_base_url = E.base_url     # judge: e.g. http://localhost:8000/v1 ; empty: $WORKBENCH_LLM_BASE_URL
llm_model = E.model           # judge: one model, or several comma-separated; empty: $WORKBENCH_LLM_MODEL
llm_api_key_env = E.api_key_env
judge_retry_failed = False    # llm judge: ask again about pairs whose stored judgement failed (no valid answer)

# %%
from IPython.display import Markdown, display

from workbench.curation import pipeline, plots, review, stage1
from workbench.curation.routing import RoutingConfig, route_table, simulated_review
from workbench.runs.folder import start_run
from workbench.runs.stores import EmbeddingCache, ResultStore

STEP = "04_retrieval_and_review"
cfg = stage1.Stage1Config(iterations=iterations, seed_size=seed_size, labels_per_iteration=labels_per_iteration, k_max=k_max,
                          seed=seed, routing=RoutingConfig.from_params(routing, route_budgets, where="04 parameter routing"))
cfg = cfg.smoke() if smoke else cfg
sim = stage1.SimulationConfig(noise_rate if reviewer == "oracle" else 0.0, oracle_error_rate, judge_error_rate)
run = start_run(run_dir, {"stage1": cfg, "reviewer": reviewer, "simulation": sim}, step=STEP)
pairs, tags = run.load("pairs"), run.load("tags", default=None)
pool = stage1.simulated_pool(pairs.query("split == 'train'").reset_index(drop=True), sim, seed=seed)
run.save("stage1_pool", pool)
print(f"simulation: {int(pool['noise_injected'].sum())} of {len(pool)} pool labels flipped (noise_rate={sim.noise_rate})")

# %% [markdown]
# ## Embed `(conversation, attributes)`
#
# The same embeddings as the error map of notebook 03 (cached in the run, so free when 03 ran). Pairs in the
# worst error clusters that 03 proposed are reviewed first, in the seed round.

# %%
curation = pipeline.CurationConfig(embedder=embedder, stage1=cfg)
embed = pipeline.pair_embedder(tags, cache=EmbeddingCache(run, f"pairs-{embedder or 'minilm'}"), cfg=curation)
data = stage1.Stage1Data.from_run_artifacts(pairs, pool, tags, embed, error_map=run.load("error_map", default=None),
                                            selection=run.load("error_cluster_selection", default={"pair_ids": []}))
store = review.ReviewStore(run.file("review.sqlite"))
print(f"pool {len(data.pool)}, gold {len(data.gold)}, test {len(data.test)}; "
      f"{len(data.priority_ids)} pairs proposed by the error map")

# %% [markdown]
# ## The loop
#
# Round 0 labels the seed; rounds 1..n train, evaluate on gold, retrieve and label; the last row is a final RM
# trained on everything labelled. `test accuracy` is on the held-out test split that is never curated.

# %%
judge = pipeline.JudgeSetup.from_params("llm", base_url=llm_base_url, models=llm_model, api_key_env=llm_api_key_env,
                                        retry_failed=judge_retry_failed)
labeller = (simulated_review(cfg.routing, people_error=sim.oracle_error_rate, judge_error=sim.judge_error_rate, seed=seed)
            if reviewer == "oracle" else
            pipeline.make_judge(judge, store=ResultStore(run.file("judge.sqlite"), "judge"), tags=tags, embed=embed,
                                verified=lambda: stage1.verified_so_far(data, store)))
result = stage1.run_stage1(data, store, labeller, cfg, output_dir=run.path / "models" / "stage1",
                           cache=EmbeddingCache(run, "minilm"))
history = result.history.drop(columns=["model_dir"])
run.save_table(history, "stage1_history", title="Stage 1 rounds", step=STEP, index=False)
run.save("stage1_labelled", result.labelled)
run.save("stage1_best", {"best_model_dir": str(result.best_model_dir.relative_to(run.path)),
                         "gold_accuracy": float(history["gold_accuracy"].max())})
history

# %%
fig_rounds = plots.stage1_iterations(result.history)
run.save_figure(fig_rounds, "stage1_rounds", title="Stage 1: accuracy and labels per round", step=STEP)
fig_rounds

# %% [markdown]
# ## Who reviewed what: the routes
#
# Each queued pair went where the first matching `routing` rule sent it (`waiting`: over its route's budget in
# that round). `accuracy`: the share of kept or flipped labels that are right against the injected truth; the
# route of every decision is in the review log (`route` column of `review.sqlite`).

# %%
truth = pool.set_index("pair_id")["label_is_true"] if sim.noise_rate > 0 else None
routes = route_table(result.queues, store, truth=truth)  # empty when nothing was routed (reviewer = judge)
run.save_table(routes, "stage1_routes", title="Stage 1: pairs and label accuracy per route", step=STEP, index=False)
routes

# %% [markdown]
# ## What the last round retrieved, and why
#
# Each candidate carries the gold pair that pulled it, that gold pair's `p`, and the similarity.

# %%
last = result.queues[max(result.queues)]
shown = ["pair_id", "route", "pulled_by", "puller_p", "similarity", "pullers", "p", "task_category", "cluster", "source"]
last[[c for c in shown if c in last]].head(10)

# %% [markdown]
# ## Agreement
#
# Several reviewers can label the same pairs (from separate processes: the log is safe for that). With the
# simulated reviewer, a second one with a higher error rate double-checks one round, to show Cohen's kappa and the
# list of disagreements; with an LLM judge in the log, people vs judge agreement is shown per task category.

# %%
if reviewer == "oracle" and len(result.queues) > 1:
    second = review.OracleReviewer(name="oracle-b", error_rate=min(0.5, 3 * sim.oracle_error_rate + 0.05), seed=seed + 1)
    review.review_with(second, result.queues[1], store, iteration=cfg.iterations + 1)  # after the loop's last round
    agreement = review.reviewer_agreement(store.effective(), ["oracle", "oracle-b"])
    run.save_table(agreement["pairwise"], "stage1_agreement", title="Agreement between reviewers (simulated)",
                   step=STEP, index=False)
    display(agreement["pairwise"], agreement["disagreements"].head())
categories = tags.set_index("pair_id")["task_category"] if tags is not None else None
review.people_vs_judge(store.effective(), categories)

# %%
metrics = stage1.stage1_metrics(result, store, pool, cfg, reviewer=reviewer)
run.save_metrics(metrics, "stage1_metrics", title="Stage 1 at a glance", step=STEP)
metrics

# %% [markdown]
# ## Conclusions

# %%
lines = [f"- {metrics['rounds']} rounds, **{metrics['pairs_labelled']:,} pairs labelled** by `{reviewer}`: "
         f"{metrics['flips_found']:,} flipped, {metrics['drops']:,} dropped.",
         f"- The Stage-1 RM: gold accuracy {metrics['first_rm_gold_accuracy']:.3f} after round 1 → "
         f"**{metrics['final_rm_gold_accuracy']:.3f}** at the end; test accuracy {metrics['first_rm_test_accuracy']:.3f} "
         f"→ **{metrics['final_rm_test_accuracy']:.3f}**."]
for r in routes.itertuples():
    lines.append(f"- Route `{r.route}`: {r.queued:,} pairs queued, {r.labelled:,} labelled"
                 + (f", label accuracy **{r.accuracy:.1%}**." if r.accuracy == r.accuracy else "."))
if "flip_precision" in metrics:
    lines.append(f"- Against the injected truth: {metrics['flip_precision']:.0%} of flips were real noise; the training "
                 f"set's label error is {metrics['train_label_error_rate_final']:.1%} vs {metrics['pool_noise_rate']:.1%} "
                 "in the pool.")
display(Markdown("\n".join(lines)))

# %%
# checks
assert len(history) == cfg.iterations + 2 and history["labelled"].iloc[0] == min(cfg.seed_size, len(pool))
assert run.has("stage1_labelled") and run.has("stage1_best") and metrics["review_events"] >= metrics["pairs_labelled"]
if reviewer == "oracle" and cfg.routing:
    assert routes["queued"].sum() == len(set().union(*(set(q["pair_id"]) for q in result.queues.values())))
    assert store.events().query("decision != 'undo'")["route"].isin(["people", "llm", "both"]).all()
if reviewer == "oracle" and sim.noise_rate > 0:
    assert metrics["flip_precision"] > 0.8, "a 5%-error oracle should flip mostly injected noise"
    assert metrics["train_label_error_rate_final"] < sim.noise_rate
