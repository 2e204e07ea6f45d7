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
# # 05 · Stage 2: dual-RM consistency curation of the whole pool
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rm-curation-workbench/rm-curation-workbench/blob/main/notebooks/05_stage2_curation.ipynb)
#
# No people in this stage. The paper's three steps (section 3.3):
# 1. **Consistency with the best Stage-1 RM** — pool pairs it agrees with (`p > 0.5`) are *confident*; the rest
#    are labelled by the LLM judge (silver), when one is configured, with the 8 most similar human-verified
#    pairs as few-shot examples (retrieval + judge, as in Stage 1).
# 2. **Consistency with a gold RM** trained on every human-verified pair (the gold split plus Stage 1's reviewed
#    pairs): a pair is **kept** when its label agrees with the gold RM **and** with either the judge or the best
#    Stage-1 RM.
# 3. **Recycling** (optional, the paper's 40M variant): discarded pairs are flipped and added back.
#
# Pairs a reviewer already decided in Stage 1 keep that decision. Every label change records which rule, which
# models and which judge made it (`stage2_*` columns, `label_by`); dropped pairs stay in the file, flagged.
# The result, `curated.parquet`, is what notebook 06 trains the final RM on.

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
from workbench.curation.pipeline import JudgeSetup as J  # the defaults live in the config classes
from workbench.curation.stage2 import Stage2Config as C
from workbench.llm.client import EndpointConfig as E

run_dir = "../runs/scratch"
smoke = False
seed = C.seed
p_threshold = C.p_threshold   # a model agrees with a label when p > p_threshold (the paper's 0.5)
margin_band = C.margin_band   # p within this distance of p_threshold counts as unsure (neither agrees nor disagrees)
recycle = C.recycle           # none, all (flip every discarded pair) or consistent (flip only clear reversals)
judge = J.kind                # none, llm (your endpoint, silver labels) or simulated (oracle with judge_error_rate)
judge_error_rate = J.error_rate   # simulated judge only: how often it is wrong
head_epochs = C.head_epochs   # the gold RM is a fast head, like the Stage-1 RMs
llm_base_url = E.base_url     # llm judge: e.g. http://localhost:8000/v1 ; empty: $WORKBENCH_LLM_BASE_URL
llm_model = E.model           # llm judge: one model, or several comma-separated; empty: $WORKBENCH_LLM_MODEL
llm_api_key_env = E.api_key_env
judge_retry_failed = False    # llm judge: ask again about pairs whose stored judgement failed (no valid answer)

# %%
import pandas as pd
from IPython.display import Markdown, display

from workbench.curation import pipeline, plots, review, stage1, stage2
from workbench.models import scoring, training
from workbench.runs.folder import start_run
from workbench.runs.stores import EmbeddingCache, ResultStore

# %%
STEP = "05_stage2_curation"
s2 = stage2.Stage2Config(p_threshold=p_threshold, margin_band=margin_band, recycle=recycle, seed=seed,
                         head_epochs=5 if smoke else head_epochs)
setup = pipeline.JudgeSetup.from_params(judge, base_url=llm_base_url, models=llm_model, api_key_env=llm_api_key_env,
                                        error_rate=judge_error_rate, retry_failed=judge_retry_failed)
cfg = pipeline.CurationConfig(stage2=s2, judge=setup)
run = start_run(run_dir, {"curation": cfg}, step=STEP)
pairs, pool, tags = run.load("pairs"), run.load("stage1_pool"), run.load("tags", default=None)
gold = pairs[pairs["split"] == "gold"].reset_index(drop=True)
cache = EmbeddingCache(run, "minilm")

# %% [markdown]
# ## The best Stage-1 RM and the human labels
#
# From notebook 04's loop when it ran; after a review by hand (04b), the labels come straight from the log and a
# Stage-1 RM is trained on them here.

# %%
if run.has("stage1_labelled"):  # 04 ran the loop: its labels and its best RM
    labelled, best = run.load("stage1_labelled"), run.load("stage1_best")
    stage1_rm = scoring.load_reward_model(run.path / best["best_model_dir"], embedding_cache=cache)
else:  # reviewed by hand: every label in the log, and an RM trained on them
    labelled = stage1.labelled_from_log(pool, review.ReviewStore(run.file("review.sqlite")))
    stage1_rm, res1 = training.fast_head_rm(stage1.training_set(labelled), gold, cache=cache, seed=seed,
                                            output_dir=run.path / "models" / "stage2" / "stage1_rm", epochs=s2.head_epochs)
    best = {"best_model_dir": str(res1.model_dir.relative_to(run.path)), "gold_accuracy": res1.metrics["gold_accuracy"]}
print(f"pool {len(pool)} pairs, {len(labelled)} reviewed in Stage 1, gold {len(gold)}; "
      f"best Stage-1 RM {best['best_model_dir']} (gold accuracy {best['gold_accuracy']:.3f})")

# %% [markdown]
# ## Run the filter
#
# The gold RM trains on the gold split (minus a held-out fifth that picks its best epoch) plus every pair a
# person (or the simulated oracle) kept or flipped in Stage 1. Both RMs then score every unreviewed pool pair;
# the judge (when configured) labels the pairs the Stage-1 RM is unsure of, with their attributes and their 8 most
# similar human-verified pairs as few-shot examples.

# %%
judge_obj = pipeline.make_judge(setup, store=ResultStore(run.file("judge.sqlite"), "judge"), tags=tags, seed=seed)
result = pipeline.stage2(pool, gold, stage1_rm, cfg, judge=judge_obj, tags=tags, cache=cache,
                         pair_cache=EmbeddingCache(run, "pairs-minilm"), human_labelled=labelled,
                         output_dir=run.path / "models" / "stage2", stage1_name=best["best_model_dir"])
curated_pool = stage2.with_categories(result.curated, tags)
run.save("curated_pool", curated_pool)
run.save("curated", stage2.with_heldout(curated_pool, pairs))
run.save("stage2_decisions", result.decisions)
for note in pipeline.endpoint_notes(judge_obj):
    print("endpoint note:", note)  # e.g. a server that accepts response_format but does not enforce it
display(result.decisions["stage2_rule"].value_counts().rename("pairs").to_frame(),
        result.decisions["judge_label"].fillna("not asked").value_counts().rename("pairs").to_frame())

# %% [markdown]
# ## Where the filter keeps, flips and drops

# %%
by = "construction" if "construction" in curated_pool.columns else "source"
views = {"by part": stage2.decision_counts(curated_pool, by)}
if tags is not None:
    views["by category"] = stage2.decision_counts(curated_pool, "task_category")
run.save_table(pd.concat(views, names=["view"]), "stage2_decisions", title="Stage 2 decisions (keep / flip / drop)",
               step=STEP)
fig_counts = plots.stage2_decision_counts(curated_pool, by=by)
run.save_figure(fig_counts, "stage2_decision_counts", title=f"Stage 2 decisions by {by}", step=STEP)
fig_counts

# %%
if tags is not None:
    fig_cat = plots.stage2_decision_counts(curated_pool, by="task_category")
    run.save_figure(fig_cat, "stage2_decision_by_category", title="Stage 2 decisions by task category", step=STEP)
    display(fig_cat)
fig_scatter = plots.stage2_margin_scatter(result.decisions)
run.save_figure(fig_scatter, "stage2_margin_scatter", title="Gold RM vs Stage-1 RM margins", step=STEP,
                caption="each unreviewed pool pair; top-right quadrant: both RMs agree with the label")
fig_scatter

# %% [markdown]
# ## Against the truth (simulation only)
#
# When notebook 04 injected label noise (`reviewer = oracle`), we know which pool labels were wrong: how many
# did Stages 1 + 2 catch, and how clean is the curated training set?

# %%
judge_name = judge if judge != "simulated" else f"simulated (error rate {judge_error_rate})"
metrics = stage2.stage2_metrics(curated_pool, result.decisions, judge_name)
run.save_metrics(metrics, "stage2_metrics", title="Stage 2 at a glance", step=STEP)
metrics

# %% [markdown]
# ## Conclusions

# %%
lines = [f"- Of {metrics['pool_pairs']:,} pool pairs, Stage 2 **kept {metrics['decision_keep']:,}, flipped "
         f"{metrics['decision_flip']:,} and dropped {metrics['decision_drop']:,}** (judge: {judge_name}); "
         f"{metrics['curated_training_pairs']:,} pairs go on to training (notebook 06)."]
if "curated_label_accuracy" in metrics:
    lines.append(f"- Against the injected truth: label accuracy {metrics['pool_label_accuracy']:.3f} in the pool → "
                 f"**{metrics['curated_label_accuracy']:.3f}** after curation; flips were right "
                 f"{metrics['flip_precision']:.0%} of the time (a random flip: {1 - metrics['pool_label_accuracy']:.0%}).")
display(Markdown("\n".join(lines)))

# %%
# checks
curated_back = run.load("curated")
assert len(curated_back) == len(pairs[pairs["split"] != "train"]) + len(pool), "nothing may be lost"
assert set(curated_back.loc[curated_back["split"] == "train", "stage2_decision"]) <= {"keep", "flip", "drop"}
assert (curated_back.loc[curated_back["stage2_decision"] == "drop", "label_state"] == "dropped").all()
assert sum(metrics[f"decision_{d}"] for d in ("keep", "flip", "drop")) == metrics["pool_pairs"] == len(pool)
assert metrics["curated_training_pairs"] == metrics["pool_pairs"] - metrics["decision_drop"]
assert set(result.decisions["pair_id"]) <= set(pool["pair_id"]) and result.decisions["stage2_rule"].ne("").all()
truth = ("flag_precision", "flag_recall", "curated_label_accuracy", "pool_label_accuracy")
assert "noise_injected" not in curated_pool or all(0 <= metrics[k] <= 1 for k in truth)
if "noise_injected" in curated_pool.columns and not smoke:  # curation cleans; flips hit noise far above chance
    assert metrics["curated_label_accuracy"] > metrics["pool_label_accuracy"], metrics
    assert metrics["flip_precision"] > 1 - metrics["pool_label_accuracy"], metrics
