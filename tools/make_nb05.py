"""Writes notebooks/05_stage2_curation.ipynb (run from the repo root)."""
import sys

sys.path.insert(0, "tools")
from pathlib import Path

from nbtools import SETUP_CELL, build

cells = [
("md", """
# 05 · Stage 2: dual-RM consistency curation of the whole pool

No people in this stage. The paper's three steps (section 3.3):
1. **Consistency with the best Stage-1 RM** — pool pairs it agrees with (`p > 0.5`) are *confident*; the rest
   are labelled by the LLM judge (silver), when one is configured, with the 8 most similar human-verified
   pairs as few-shot examples (retrieval + judge, as in Stage 1).
2. **Consistency with a gold RM** trained on every human-verified pair (the gold split plus Stage 1's reviewed
   pairs): a pair is **kept** when its label agrees with the gold RM **and** with either the judge or the best
   Stage-1 RM.
3. **Recycling** (optional, the paper's 40M variant): discarded pairs are flipped and added back.

Pairs a reviewer already decided in Stage 1 keep that decision. Every label change records which rule, which
models and which judge made it (`stage2_*` columns, `label_by`); dropped pairs stay in the file, flagged.
The result, `curated.parquet`, is what notebook 06 trains the final RM on.
"""),
("code", SETUP_CELL),
("parameters", """
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
"""),
("code", """
import pandas as pd

from workbench import clustering, io, plots, review, scoring, stage1, stage2, training

STEP = "05_stage2_curation"
cfg = stage2.Stage2Config(p_threshold=p_threshold, margin_band=margin_band, recycle=recycle,
                          head_epochs=5 if smoke else head_epochs, seed=seed)
run = io.start_run(run_dir, {"stage2": cfg, "judge": judge, "judge_error_rate": judge_error_rate}, step=STEP)
pairs = io.load_pairs(run.path / "pairs.parquet")
pool = io.load_pairs(run.file("stage1_pool.parquet"))           # the pool Stage 1 worked on (04)
gold = pairs[pairs["split"] == "gold"].reset_index(drop=True)
cache = io.EmbeddingCache(run, "minilm")
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
"""),
("md", """
## Run the filter

The gold RM trains on the gold split (minus a held-out fifth that picks its best epoch) plus every pair a
person (or the simulated oracle) kept or flipped in Stage 1. Both RMs then score every unreviewed pool pair.
"""),
("code", """
if judge == "llm":
    from workbench.judge import LLMJudge
    from workbench.llm_client import ChatClient, EndpointConfig
    endpoint = EndpointConfig(base_url=llm_base_url, model=llm_model, api_key_env=llm_api_key_env)
    judge_obj = review.JudgeReviewer(LLMJudge([ChatClient(endpoint.resolved())]), io.ResultStore(run.file("judge.sqlite"), "judge"))
elif judge == "simulated":
    if "label_is_true" not in pool.columns:
        raise ValueError("judge='simulated' needs a pool with a known truth (reviewer='oracle' in notebook 04).")
    judge_obj = review.OracleReviewer(name="simulated-llm-judge", kind="llm", error_rate=judge_error_rate, seed=seed + 1000)
elif judge == "none":
    judge_obj = None
else:
    raise ValueError(f"Unknown judge {judge!r}; choose one of ['none', 'llm', 'simulated'].")
all_tags = io.read_frame(run.file("tags.parquet")) if run.file("tags.parquet").exists() else None
pair_cache = io.EmbeddingCache(run, "pairs-minilm")  # the (conversation, attributes) embeddings of 03 / 04


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
"""),
("md", "## Where the filter keeps, flips and drops"),
("code", """
by = "construction" if "construction" in curated_pool.columns else "source"
table = pd.concat({"by part": stage2.decision_counts(curated_pool, by)}, names=["view"])
if "task_category" in curated_pool.columns:
    table = pd.concat([table, pd.concat({"by category": stage2.decision_counts(curated_pool, "task_category")}, names=["view"])])
io.save_table(table, run, "stage2_decisions", title="Stage 2 decisions (keep / flip / drop)", step=STEP)
fig_counts = plots.stage2_decision_counts(curated_pool, by=by)
io.save_figure(fig_counts, run, "stage2_decision_counts", title=f"Stage 2 decisions by {by}", step=STEP)
if "task_category" in curated_pool.columns:
    fig_cat = plots.stage2_decision_counts(curated_pool, by="task_category")
    io.save_figure(fig_cat, run, "stage2_decision_by_category", title="Stage 2 decisions by task category", step=STEP)
    display(fig_cat)
fig_counts
"""),
("code", """
fig_scatter = plots.stage2_margin_scatter(result.decisions)
io.save_figure(fig_scatter, run, "stage2_margin_scatter", title="Gold RM vs Stage-1 RM margins", step=STEP,
               caption="each unreviewed pool pair; top-right quadrant: both RMs agree with the label")
fig_scatter
"""),
("md", """
## Against the truth (simulation only)

When notebook 04 injected label noise (`reviewer = oracle`), we know which pool labels were wrong: how many
did Stages 1 + 2 catch, and how clean is the curated training set?
"""),
("code", """
metrics = {"pool_pairs": len(curated_pool), **{f"decision_{k}": int(v) for k, v in counts.items()},
           "judge": judge if judge != "simulated" else f"simulated (error rate {judge_error_rate})",
           "curated_training_pairs": len(stage2.curated_training_set(curated_pool))}
if "noise_injected" in curated_pool.columns:
    metrics.update(stage2.truth_metrics(curated_pool))
io.save_metrics(metrics, run, "stage2_metrics", title="Stage 2 at a glance", step=STEP)
metrics
"""),
("code", """
# checks
curated_back = io.load_pairs(run.file("curated.parquet"))
assert len(curated_back) == len(pairs[pairs["split"] != "train"]) + len(pool), "nothing may be lost"
assert set(curated_back.loc[curated_back["split"] == "train", "stage2_decision"]) <= {"keep", "flip", "drop"}
assert (curated_back.loc[curated_back["stage2_decision"] == "drop", "label_state"] == "dropped").all()
if "noise_injected" in curated_pool.columns and not smoke:
    assert metrics["curated_label_accuracy"] > metrics["pool_label_accuracy"], metrics
"""),
]
build(cells, Path("notebooks/05_stage2_curation.ipynb"))
