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
# # 01 · Prepare the preference data
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rm-curation-workbench/rm-curation-workbench/blob/main/notebooks/01_prepare_data.ipynb)
#
# Load the pairs this run will curate, check every row, and split them into an **unverified pool** (`train`),
# a **gold** set (stands in for human-verified pairs) and a held-out **test** set, grouped by prompt so no
# conversation crosses splits. By default this builds the bundled demo from `shared/data`: HH-RLHF human
# preferences (noisy labels) plus two parts whose labels are *true by construction* (`cross_prompt`,
# `truncated`; see `data_cards/demo.md`). Point `pairs_path` at your own file to use your data instead.

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
from workbench.data.demo import DemoDataConfig as D  # the defaults live in the config class

run_dir = "../runs/scratch"   # every output of the run goes here
data_dir = ""                 # empty: <repo>/../shared/data, $WORKBENCH_DATA_DIR, or fetched once into the user cache
pairs_path = ""               # empty: the demo build; else your own pairs (JSONL/JSON/parquet/CSV, .gz ok, hf://...)
pairs_format = "auto"         # auto, hh, conversational, prompt_strings or llmbar
smoke = False                 # tiny sizes for tests
seed = D.seed
n_hh_helpful = D.n_hh_helpful
n_hh_harmless = D.n_hh_harmless
n_cross_prompt = D.n_cross_prompt
n_truncated = D.n_truncated
train_fraction = D.train_fraction
gold_fraction = D.gold_fraction
test_fraction = D.test_fraction

# %%
from IPython.display import Markdown, display

from workbench.curation import plots
from workbench.data import demo, fetch, overview
from workbench.data.files import write_rejects
from workbench.runs.folder import start_run

STEP = "01_prepare_data"
if not pairs_path:  # the demo's public data: found on disk, else fetched once into the user cache (workbench data)
    data_dir = str(fetch.ensure_data(data_dir or None))
cfg = demo.demo_config(smoke=smoke, seed=seed, n_hh_helpful=n_hh_helpful, n_hh_harmless=n_hh_harmless,
                       n_cross_prompt=n_cross_prompt, n_truncated=n_truncated, train_fraction=train_fraction,
                       gold_fraction=gold_fraction, test_fraction=test_fraction)
run = start_run(run_dir, cfg, step=STEP)
build = demo.build_user_pairs(pairs_path, cfg, fmt=pairs_format) if pairs_path else demo.build_demo_pairs(data_dir, cfg)
pairs = build.pairs
print(f"{len(pairs)} pairs -> {run.path}")

# %% [markdown]
# ## What was read, and what was rejected
#
# Every source row either became a pair or is listed in `rejects.jsonl` with the field and the reason
# (empty responses, identical chosen/rejected, ...). *Quirks* are rows kept on purpose but worth knowing
# about: HH-RLHF responses that ramble on into fake `Human:` / `Assistant:` turns.

# %%
read_table = overview.read_report_table(build.read_reports)
run.save_table(read_table, "read_report", title="Rows read and rejected per source file", step=STEP)
write_rejects(build.read_reports, run.file("rejects.jsonl"))
read_table

# %% [markdown]
# ## Splits and composition
#
# Pairs per split and construction; the data-card numbers per construction (lengths, multi-turn share,
# how often the chosen response is the longer one, near-ties).

# %%
split_table = pairs.groupby(["split", "construction"]).size().unstack(fill_value=0)
summary = overview.summarize_pairs(pairs, by="construction")
run.save_table(split_table, "demo_pairs", title="Pairs per split and construction", step=STEP)
run.save_table(summary, "pair_summary", title="Data card numbers per construction", step=STEP,
               caption="chosen_longer_share: accuracy of 'the longer response wins' on these labels.")
display(split_table, summary)

# %%
metrics = overview.build_metrics(pairs, build.read_reports, build.dedup)
run.save_metrics(metrics, "data_metrics", title="Data at a glance", step=STEP)
metrics

# %% [markdown]
# ## Lengths, mix and near-ties
#
# Length is the cheapest shortcut a reward model can learn: compare chosen vs rejected lengths per part.
# `truncated` pairs are separable by length alone, by design; `cross_prompt` pairs are length-matched, so an
# RM has to judge relevance.

# %%
fig_len = plots.length_distributions(pairs, by="construction")
run.save_figure(fig_len, "length_distributions", title="Length distributions", step=STEP)
fig_len

# %%
fig_mix = plots.source_mix(pairs, by="construction")
run.save_figure(fig_mix, "source_mix", title="Pairs per split", step=STEP)
fig_mix

# %%
fig_overlap = plots.overlap_histogram(pairs, by="construction")
run.save_figure(fig_overlap, "response_overlap", title="Chosen vs rejected word overlap", step=STEP)
fig_overlap

# %% [markdown]
# ## Save the pairs for the next steps

# %%
pairs_file = run.save("pairs", pairs)
reloaded = run.load("pairs")
print(f"wrote {pairs_file} ({pairs_file.stat().st_size / 1e6:.1f} MB)")

# %% [markdown]
# ## Conclusions

# %%
splits = pairs["split"].value_counts()
display(Markdown(
    f"- **{metrics['pairs']:,} pairs** from {metrics['rows_read']:,} source rows: {metrics['rows_rejected']:,} rows "
    f"rejected with their reason, {metrics['duplicates_removed']:,} duplicates removed "
    f"({metrics['label_conflicts']:,} label conflicts).\n"
    f"- Splits: pool {splits.get('train', 0):,}, gold {splits.get('gold', 0):,}, test {splits.get('test', 0):,} "
    f"(grouped by prompt).\n"
    f"- {metrics['known_true_share']:.0%} of labels are true by construction; the rest are as the source gave them.\n"
    f"- *The longer response wins* would score **{metrics['longer_wins_accuracy']:.3f}** on these labels: any RM "
    f"must be read against that baseline."))

# %%
# checks: the notebook's own assertions (run by the smoke test and by `make demo`)
assert len(reloaded) == len(pairs) and reloaded["pair_id"].is_unique
assert set(pairs["split"]) <= {"train", "gold", "test"} and (pairs["split"] == "train").any()
assert pairs.groupby(pairs["prompt"].map(str))["split"].nunique().max() == 1, "a prompt crosses splits"
assert pairs_path or set(pairs["construction"]) == {"hh_human", "cross_prompt", "truncated"}
assert (run.path / "figures" / "length_distributions.html").exists()
assert metrics["pairs"] == len(pairs) and 0 <= metrics["longer_wins_accuracy"] <= 1
