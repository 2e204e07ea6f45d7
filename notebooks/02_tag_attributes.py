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
# # 02 · Tag preference attributes
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rm-curation-workbench/rm-curation-workbench/blob/main/notebooks/02_tag_attributes.ipynb)
#
# Give every pair the paper's 5-tuple: **task category, objectivity, controversiality, desired attributes and an
# annotation guideline**. The default tagger is offline (no LLM): zero-shot similarity to label descriptions
# with the MiniLM plus cheap signals, marked *heuristic*. Point `tagger="llm"` at any OpenAI-compatible endpoint
# (vLLM, SGLang, Ollama, llama.cpp server, OpenAI) for real LLM tags. Results are stored as they arrive, so an
# interrupted run resumes without repeating a request.

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
from workbench.curation.pipeline import CurationConfig as C  # the defaults live in the config classes
from workbench.llm.client import EndpointConfig as E

run_dir = "../runs/scratch"
data_dir = ""                 # empty: <repo>/../shared/data, or $WORKBENCH_DATA_DIR
smoke = False
tagger = C.tagger             # embedded, llm or local
llm_base_url = E.base_url     # e.g. http://localhost:8000/v1 ; empty: $WORKBENCH_LLM_BASE_URL
llm_model = E.model           # empty: $WORKBENCH_LLM_MODEL
llm_api_key_env = E.api_key_env   # NAME of the env var with the key; the key is never written
llm_concurrency = E.concurrency
local_model_path = ""         # tagger local: folder of a causal LM
max_pairs = 0                 # 0: tag every pair of the run
evaluate_on_gold_tags = True  # per-field accuracy on the committed hand-labeled set

# %%
from IPython.display import Markdown, display

from workbench.curation import pipeline, plots, tagging
from workbench.llm.client import EndpointConfig
from workbench.runs.folder import start_run
from workbench.runs.stores import EmbeddingCache, ResultStore

STEP = "02_tag_attributes"
endpoint = EndpointConfig(base_url=llm_base_url, model=llm_model, api_key_env=llm_api_key_env, concurrency=llm_concurrency)
cfg = pipeline.CurationConfig(tagger=tagger, judge=pipeline.JudgeSetup(endpoints=(endpoint,)))
run = start_run(run_dir, {"tagger": tagger, "endpoint": endpoint, "max_pairs": max_pairs}, step=STEP)
pairs = run.load("pairs").head(max_pairs or (40 if smoke else None))
tagger_obj = pipeline.make_tagger_for(cfg, cache=EmbeddingCache(run, "minilm"), local_model_path=local_model_path)
store = ResultStore(run.file("tags.sqlite"), "tags")
tags = pipeline.tag(pairs, tagger_obj, store=store, cfg=cfg)
run.save("tags", tags)
print(f"{int(tags['tag_ok'].sum())} of {len(tags)} pairs tagged by {tagger_obj.fingerprint}")

# %% [markdown]
# ## What the pool is made of

# %%
by = "construction" if "construction" in pairs.columns else "source"
fig_cat = plots.tag_distribution(tags, pairs, by=by)
run.save_figure(fig_cat, "tag_categories", title="Task categories", step=STEP,
                caption="heuristic tags" if tagger_obj.heuristic else f"tags from {tagger_obj.fingerprint}")
fig_cat

# %%
fig_oc = plots.objectivity_controversiality(tags)
run.save_figure(fig_oc, "tag_objectivity_controversiality", title="Objectivity x controversiality", step=STEP)
fig_oc

# %% [markdown]
# ## Examples per category
#
# Read a few prompts per category before trusting the tags; the guideline is what reviewers and the LLM
# judge see later.

# %%
examples = tagging.examples_per_category(tags, pairs, n=3)
run.save_table(examples, "tag_examples", title="Examples per category", step=STEP, index=False)
examples

# %% [markdown]
# ## Failures (recorded with the reason, never dropped)

# %%
failures = tags[~tags["tag_ok"]][["pair_id", "tag_error"]]
run.save_table(failures.head(200), "tag_failures", title=f"Tagging failures ({len(failures)})", step=STEP, index=False)
failures.head(20)

# %% [markdown]
# ## How accurate is the tagger?
#
# Per-field accuracy on the committed hand-labeled set (`data/tagging_gold`, 120 pairs read and labeled by a
# person), against always answering the most common label.

# %%
acc = None
if evaluate_on_gold_tags:
    acc = tagging.gold_accuracy(tagger_obj, store=store, data_dir=data_dir or None, limit=20 if smoke else None)
    run.save_table(acc, "tag_accuracy", title="Tagger accuracy on the hand-labeled set", step=STEP)
    display(acc)
for note in getattr(getattr(tagger_obj, "client", None), "notes", []):
    print("endpoint note:", note)  # e.g. a server that accepts response_format but does not enforce it

# %%
tag_metrics = tagging.tag_metrics(tags, tagger_obj, acc)
run.save_metrics(tag_metrics, "tag_metrics", title="Tagging at a glance", step=STEP)
tag_metrics

# %% [markdown]
# ## Conclusions

# %%
top = tags.loc[tags["tag_ok"], "task_category"].value_counts(normalize=True).head(3)
lines = [f"- **{tag_metrics['tagged']:,} of {len(tags):,} pairs tagged** by `{tagger_obj.fingerprint}`; "
         f"{tag_metrics['failed']:,} failures kept with their reason.",
         "- Most common categories: " + ", ".join(f"{c} {s:.0%}" for c, s in top.items()) + "."]
if acc is not None:
    lines += [f"- `{f}`: accuracy **{r.accuracy:.2f}** vs {r.majority_baseline:.2f} for always answering the most "
              f"common label (n = {r.n})." for f, r in acc.iterrows()]
display(Markdown("\n".join(lines)))

# %%
# checks
from workbench.data import taxonomy

ok = tags[tags["tag_ok"]]
assert len(tags) == len(pairs) and tags["pair_id"].tolist() == pairs["pair_id"].tolist() and run.has("tags")
assert store.count(tagger_obj.fingerprint) >= len(pairs) and tag_metrics["tagged"] + tag_metrics["failed"] == len(tags)
assert ok["task_category"].isin(taxonomy.TASK_CATEGORIES).all() and ok["objectivity"].isin(taxonomy.OBJECTIVITY).all()
assert ok["controversiality"].isin(taxonomy.CONTROVERSIALITY).all() and ok["desired_attributes"].map(len).ge(1).all()
assert tagger != "embedded" or (tags["tag_ok"].all() and tags["heuristic"].all())
if acc is not None:  # the accuracy table is complete, in range, with its baseline beside it
    assert list(acc.index) == ["task_category", "objectivity", "controversiality"] and acc["n"].eq(20 if smoke else 120).all()
    assert acc["accuracy"].between(0, 1).all() and acc["majority_baseline"].between(0, 1).all()
if acc is not None and not smoke:  # on the 120 hand labels (benchmarks/RESULTS.md: 0.58 vs 0.28, 0.77 vs 0.53)
    fields = ["task_category", "objectivity"]
    assert (acc.loc[fields, "accuracy"] > acc.loc[fields, "majority_baseline"]).all(), acc
