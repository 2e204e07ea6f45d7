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
import os, subprocess, sys
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
run_dir = "../runs/scratch"
smoke = False
seed = 0
p_threshold = 0.5             # a model agrees with a label when p > p_threshold (the paper's 0.5)
margin_band = 0.0             # p within this distance of p_threshold counts as unsure (neither agrees nor disagrees)
recycle = "none"              # none | all (flip every discarded pair) | consistent (flip only clear reversals)
judge = "none"                # none | llm (your endpoint, silver labels) | simulated (oracle with judge_error_rate)
judge_error_rate = 0.25       # simulated judge only: how often it is wrong
head_epochs = 30              # the gold RM is a fast head, like the Stage-1 RMs
llm_base_url = ""             # llm judge: e.g. http://localhost:8000/v1 ; empty: $WORKBENCH_LLM_BASE_URL
llm_model = ""
llm_api_key_env = "WORKBENCH_LLM_API_KEY"
judge_retry_failed = False    # llm judge: ask again about pairs whose stored judgement failed (no valid answer)

# %%
import pandas as pd

from workbench.curation import clustering, plots, review, stage1, stage2
from workbench.data import files as io
from workbench.runs.stores import EmbeddingCache, ResultStore
from workbench.runs.folder import start_run
from workbench.runs.stores import EmbeddingCache
from workbench.models import scoring, training

STEP = "05_stage2_curation"
cfg = stage2.Stage2Config(p_threshold=p_threshold, margin_band=margin_band, recycle=recycle,
                          head_epochs=5 if smoke else head_epochs, seed=seed)
run = start_run(run_dir, {"stage2": cfg, "judge": judge, "judge_error_rate": judge_error_rate}, step=STEP)
pairs = io.load_pairs(run.path / "pairs.parquet")
pool = io.load_pairs(run.file("stage1_pool.parquet"))           # the pool Stage 1 worked on (04)
gold = pairs[pairs["split"] == "gold"].reset_index(drop=True)
cache = EmbeddingCache(run, "minilm")
if run.file("stage1_labelled.parquet").exists():                # 04 ran unattended: its loop's labels and best RM
    labelled = io.load_pairs(run.file("stage1_labelled.parquet"))
    best = io.read_json(run.file("stage1_best.json"))
else:                                                           # reviewed by hand: labels straight from the log
    labels = review.ReviewStore(run.file("review.sqlite")).labels()
    labelled = review.apply_labels(pool[pool["pair_id"].isin(set(labels["pair_id"]))], labels)
    rm_cfg = training.RMTrainConfig(kind="embedding_head", head_epochs=cfg.head_epochs, seed=seed)
    res1 = training.train_reward_model(stage1.training_set(labelled), gold, cfg=rm_cfg, cache=cache, progress=False,
                                       output_dir=run.path / "models" / "stage2" / "stage1_rm")
    best = {"best_model_dir": str(res1.model_dir.relative_to(run.path)), "gold_accuracy": res1.metrics["gold_accuracy"]}
stage1_rm = scoring.load_reward_model(run.path / best["best_model_dir"], embedding_cache=cache)
print(f"pool {len(pool)} pairs, {len(labelled)} reviewed in Stage 1, gold {len(gold)}; "
      f"best Stage-1 RM {best['best_model_dir']} (gold accuracy {best['gold_accuracy']:.3f})")

# %% [markdown]
# ## Run the filter
#
# The gold RM trains on the gold split (minus a held-out fifth that picks its best epoch) plus every pair a
# person (or the simulated oracle) kept or flipped in Stage 1. Both RMs then score every unreviewed pool pair.

# %%
if judge == "llm":
    from workbench.llm.judge import LLMJudge
    from workbench.llm.client import ChatClient, EndpointConfig
    endpoint = EndpointConfig(base_url=llm_base_url, model=llm_model, api_key_env=llm_api_key_env)
    judge_obj = review.JudgeReviewer(LLMJudge([ChatClient(endpoint.resolved())]), ResultStore(run.file("judge.sqlite"), "judge"),
                                     retry_failed=judge_retry_failed)
elif judge == "simulated":
    if "label_is_true" not in pool.columns:
        raise ValueError("judge='simulated' needs a pool with a known truth (reviewer='oracle' in notebook 04).")
    judge_obj = review.OracleReviewer(name="simulated-llm-judge", kind="llm", error_rate=judge_error_rate, seed=seed + 1000)
elif judge == "none":
    judge_obj = None
else:
    raise ValueError(f"Unknown judge {judge!r}; choose one of ['none', 'llm', 'simulated'].")
all_tags = io.read_frame(run.file("tags.parquet")) if run.file("tags.parquet").exists() else None
pair_cache = EmbeddingCache(run, "pairs-minilm")  # the (conversation, attributes) embeddings of 03 / 04


def embed(frame):  # the judge's few-shot examples: the 8 most similar human-verified pairs of each unsure pair
    return clustering.embed_pairs(frame, all_tags, cache=pair_cache, progress=False)


result = stage2.run_stage2(pool, gold, stage1_rm, cfg, human_labelled=labelled, judge=judge_obj,
                           output_dir=run.path / "models" / "stage2", cache=cache,
                           stage1_name=best["best_model_dir"], embed=embed)
curated_pool = result.curated
if all_tags is not None:
    tags = all_tags[["pair_id", "task_category"]]
    curated_pool = curated_pool.drop(columns=["task_category"], errors="ignore").merge(tags, on="pair_id", how="left")
    curated_pool["task_category"] = curated_pool["task_category"].fillna("untagged")
io.write_pairs(curated_pool, run.file("curated_pool.parquet"))
io.write_pairs(stage2.with_heldout(curated_pool, pairs), run.file("curated.parquet"))
io.write_frame(result.decisions, run.file("stage2_decisions.parquet"))
counts = curated_pool["stage2_decision"].value_counts().reindex(["keep", "flip", "drop"], fill_value=0)
print(f"keep {counts['keep']}, flip {counts['flip']}, drop {counts['drop']} of {len(curated_pool)}; "
      f"gold RM: {result.gold_model_dir.relative_to(run.path)}")
display(result.decisions["stage2_rule"].value_counts().rename("pairs").to_frame())
judge_outcomes = result.decisions["judge_label"].fillna("not asked").value_counts().rename("pairs").to_frame()
display(judge_outcomes)  # "failed": no valid answer, decided without the judge (rerun with judge_retry_failed)
for client in getattr(getattr(judge_obj, "judge", None), "clients", []):
    for note in client.notes:
        print("endpoint note:", note)

# %% [markdown]
# ## Where the filter keeps, flips and drops

# %%
by = "construction" if "construction" in curated_pool.columns else "source"
table = pd.concat({"by part": stage2.decision_counts(curated_pool, by)}, names=["view"])
if "task_category" in curated_pool.columns:
    table = pd.concat([table, pd.concat({"by category": stage2.decision_counts(curated_pool, "task_category")}, names=["view"])])
run.save_table(table, "stage2_decisions", title="Stage 2 decisions (keep / flip / drop)", step=STEP)
fig_counts = plots.stage2_decision_counts(curated_pool, by=by)
run.save_figure(fig_counts, "stage2_decision_counts", title=f"Stage 2 decisions by {by}", step=STEP)
if "task_category" in curated_pool.columns:
    fig_cat = plots.stage2_decision_counts(curated_pool, by="task_category")
    run.save_figure(fig_cat, "stage2_decision_by_category", title="Stage 2 decisions by task category", step=STEP)
    display(fig_cat)
fig_counts

# %%
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
metrics = {"pool_pairs": len(curated_pool), **{f"decision_{k}": int(v) for k, v in counts.items()},
           "judge": judge if judge != "simulated" else f"simulated (error rate {judge_error_rate})",
           "curated_training_pairs": len(stage2.curated_training_set(curated_pool)),
           "judge_failed": int((result.decisions["judge_label"] == "failed").sum())}
if "noise_injected" in curated_pool.columns:
    metrics.update(stage2.truth_metrics(curated_pool))
run.save_metrics(metrics, "stage2_metrics", title="Stage 2 at a glance", step=STEP)
metrics

# %%
# checks
curated_back = io.load_pairs(run.file("curated.parquet"))
assert len(curated_back) == len(pairs[pairs["split"] != "train"]) + len(pool), "nothing may be lost"
assert set(curated_back.loc[curated_back["split"] == "train", "stage2_decision"]) <= {"keep", "flip", "drop"}
assert (curated_back.loc[curated_back["stage2_decision"] == "drop", "label_state"] == "dropped").all()
assert sum(metrics[f"decision_{d}"] for d in ("keep", "flip", "drop")) == metrics["pool_pairs"] == len(pool)
assert metrics["curated_training_pairs"] == metrics["pool_pairs"] - metrics["decision_drop"]
assert set(result.decisions["pair_id"]) <= set(pool["pair_id"]) and result.decisions["stage2_rule"].ne("").all()
if "noise_injected" in curated_pool.columns:
    assert all(0 <= metrics[k] <= 1 for k in ("flag_precision", "flag_recall", "curated_label_accuracy", "pool_label_accuracy"))
if "noise_injected" in curated_pool.columns and not smoke:
    assert metrics["curated_label_accuracy"] > metrics["pool_label_accuracy"], metrics
    # flips hit injected noise far more often than a random flip would (the pool's noise rate)
    assert metrics["flip_precision"] > 1 - metrics["pool_label_accuracy"], metrics
