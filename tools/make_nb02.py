"""Writes notebooks/02_tag_attributes.ipynb (run from the repo root)."""
import sys

sys.path.insert(0, "tools")
from pathlib import Path

from nbtools import SETUP_CELL, build

cells = [
("md", """
# 02 · Tag preference attributes

Give every pair the paper's 5-tuple: **task category, objectivity, controversiality, desired attributes and an
annotation guideline**. The default tagger is offline (no LLM): zero-shot similarity to label descriptions
with the MiniLM plus cheap signals, marked *heuristic*. Point `tagger="llm"` at any OpenAI-compatible endpoint
(vLLM, SGLang, Ollama, llama.cpp server, OpenAI) for real LLM tags. Results are stored as they arrive, so an
interrupted run resumes without repeating a request.
"""),
("code", SETUP_CELL),
("parameters", """
run_dir = "../runs/scratch"
data_dir = ""                 # empty: <repo>/../shared/data, or $WORKBENCH_DATA_DIR
smoke = False
tagger = "embedded"           # embedded | llm | local
llm_base_url = ""             # e.g. http://localhost:8000/v1 ; empty: $WORKBENCH_LLM_BASE_URL
llm_model = ""                # empty: $WORKBENCH_LLM_MODEL
llm_api_key_env = "WORKBENCH_LLM_API_KEY"   # NAME of the env var with the key; the key is never written
llm_concurrency = 8
local_model_path = ""         # tagger local: folder of a causal LM
max_pairs = 0                 # 0: tag every pair of the run
evaluate_on_gold_tags = True  # per-field accuracy on the committed hand-labeled set
"""),
("code", """
from workbench import io, plots, tagging
from workbench.llm_client import EndpointConfig

STEP = "02_tag_attributes"
endpoint = EndpointConfig(base_url=llm_base_url, model=llm_model, api_key_env=llm_api_key_env, concurrency=llm_concurrency)
run = io.start_run(run_dir, {"tagger": tagger, "endpoint": {"base_url": llm_base_url, "model": llm_model},
                             "max_pairs": max_pairs}, step=STEP)
pairs = io.load_pairs(run.path / "pairs.parquet")
if max_pairs or smoke:
    pairs = pairs.head(max_pairs or 40)
tagger_obj = tagging.make_tagger(tagger, endpoint=endpoint, local_model_path=local_model_path,
                                 cache=io.EmbeddingCache(run, "minilm"))
store = io.ResultStore(run.file("tags.sqlite"), "tags")
tags = tagging.tag_pairs(pairs, tagger_obj, store=store)
io.write_frame(tags, run.file("tags.parquet"))
print(f"{int(tags['tag_ok'].sum())} of {len(tags)} pairs tagged by {tagger_obj.fingerprint}")
"""),
("md", "## What the pool is made of"),
("code", """
by = "construction" if "construction" in pairs.columns else "source"
fig_cat = plots.tag_distribution(tags, pairs, by=by)
io.save_figure(fig_cat, run, "tag_categories", title="Task categories", step=STEP,
               caption="heuristic tags" if tagger_obj.heuristic else f"tags from {tagger_obj.fingerprint}")
fig_cat
"""),
("code", """
fig_oc = plots.objectivity_controversiality(tags)
io.save_figure(fig_oc, run, "tag_objectivity_controversiality", title="Objectivity x controversiality", step=STEP)
fig_oc
"""),
("md", """
## Examples per category

Read a few prompts per category before trusting the tags; the guideline is what reviewers and the LLM
judge see later.
"""),
("code", """
examples = tagging.examples_per_category(tags, pairs, n=3)
io.save_table(examples, run, "tag_examples", title="Examples per category", step=STEP, index=False)
examples
"""),
("md", "## Failures (recorded with the reason, never dropped)"),
("code", """
failures = tags[~tags["tag_ok"]][["pair_id", "tag_error"]]
io.save_table(failures.head(200), run, "tag_failures", title=f"Tagging failures ({len(failures)})", step=STEP, index=False)
failures.head(20)
"""),
("md", """
## How accurate is the tagger?

Per-field accuracy on the committed hand-labeled set (`data/tagging_gold`, 120 pairs read and labeled by a
person), against always answering the most common label.
"""),
("code", """
tag_metrics = {"tagger": tagger_obj.fingerprint, "pairs": len(tags), "tagged": int(tags["tag_ok"].sum()),
               "failed": int((~tags["tag_ok"]).sum())}
if evaluate_on_gold_tags:
    gold_pairs, gold_labels = tagging.load_tagging_gold(data_dir or None)
    if smoke:
        gold_pairs, gold_labels = gold_pairs.head(20), gold_labels.head(20)
    gold_tags = tagging.tag_pairs(gold_pairs, tagger_obj, store=store, progress=False)
    acc = tagging.tag_accuracy(gold_tags, gold_labels)
    acc["majority_baseline"] = [tagging.majority_baseline(gold_labels)[f] for f in acc.index]
    io.save_table(acc, run, "tag_accuracy", title="Tagger accuracy on the hand-labeled set", step=STEP)
    tag_metrics.update({f"gold_{f}_accuracy": float(acc.loc[f, "accuracy"]) for f in acc.index})
    display(acc)
usage = getattr(getattr(tagger_obj, "client", None), "usage", None)
if usage:
    tag_metrics.update({f"llm_{k}": v for k, v in dict(usage).items()})
io.save_metrics(tag_metrics, run, "tag_metrics", title="Tagging at a glance", step=STEP)
tag_metrics
"""),
("code", """
# checks
assert len(tags) == len(pairs) and tags["pair_id"].tolist() == pairs["pair_id"].tolist()
assert (run.path / "tags.parquet").exists() and store.count(tagger_obj.fingerprint) >= len(pairs)
if tagger == "embedded":
    assert tags["tag_ok"].all() and tags["heuristic"].all()
if evaluate_on_gold_tags and not smoke:
    assert tag_metrics["gold_task_category_accuracy"] > tagging.majority_baseline(gold_labels)["task_category"]
"""),
]
build(cells, Path("notebooks/02_tag_attributes.ipynb"))
