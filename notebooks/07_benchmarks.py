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
# # 07 · Benchmarks: where do the run's reward models stand?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rm-curation-workbench/rm-curation-workbench/blob/main/notebooks/07_benchmarks.ipynb)
#
# Scores the reward models of this run on the RM benchmarks that are on disk, with each benchmark's upstream
# scoring rule, 95% bootstrap CIs, and the baselines every RM must beat: **random** (the rule's expected value),
# **longer wins** (word count as the score) and, for reference, the **published Skywork-Reward-V2** numbers
# (paper, Table 1). Here: RewardBench v1 (sections with the upstream weighting), RM-Bench (easy / normal /
# hard), LLMBar and the HH-RLHF test files. RewardBench 2, PPE, RMB and JudgeBench run the same way when their
# files are present (`workbench.bench.data.load_benchmark` says where it looks and what to download).
#
# The demo RMs are a MiniLM (22M parameters) trained on 2,100 pairs for a few minutes on a CPU: expect numbers
# near the baselines. The point is the harness; run it on your own RMs.
#
# Scoring conditions follow allenai/reward-bench's `run_rm.py` (up to 2,048 tokens per input, fp32 on a CPU);
# every table states the `max_length` and `dtype` in effect and how many items were `truncated` (shortened to
# fit: oldest turns first, then inside the texts, never BOS or the role headers).

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
data_dir = ""                 # empty: <repo>/../shared/data, or $WORKBENCH_DATA_DIR
smoke = False
seed = 0
benchmarks = "rewardbench,rm_bench,llmbar,hh_rlhf"   # comma-separated names, see load_benchmark
models = "rm_final,fast_head,stage1_best"            # RMs of this run to compare; missing ones are skipped
extra_model = ""              # a folder or Hub id of any other RM to put beside them
limit_per_subset = 0          # 0: every item; else the first items of each subset (smoke: 12)
hh_limit_per_subset = 500     # HH-RLHF test is large (8.5k pairs); items per split scored
n_boot = 1000
max_length = 2048             # tokens per input, as reward-bench run_rm.py; capped at the model's positions (MiniLM: 512)
dtype = "fp32"                # run_rm.py on a CPU runs fp32; "bf16" on a GPU (Skywork-Reward-V2's release dtype)

# %%
from pathlib import Path

import pandas as pd

from workbench.bench import data as benchmark_data, plots as benchmark_plots, evaluation
from workbench.data import fetch
from workbench.data import files as io
from workbench.runs.stores import EmbeddingCache
from workbench.runs.folder import start_run
from workbench.models import scoring

STEP = "07_benchmarks"
data_dir = str(fetch.ensure_data(data_dir or None))  # found on disk, else fetched once into the user cache
run = start_run(run_dir, {"benchmarks": benchmarks, "models": models, "extra_model": extra_model,
                             "limit_per_subset": limit_per_subset, "n_boot": n_boot}, step=STEP)
limit = 12 if smoke else (limit_per_subset or None)
benches = []
for name in [b.strip() for b in benchmarks.split(",") if b.strip()]:
    cap = limit if name != "hh_rlhf" else min(limit or hh_limit_per_subset, hh_limit_per_subset) or None
    bench = benchmark_data.load_benchmark(name, data_dir=data_dir or None, limit=cap)
    print(f"{name}: {len(bench.items)} items from {bench.source}" + (f" ({'; '.join(bench.notes)})" if bench.notes else ""))
    benches.append(bench)

# %% [markdown]
# ## The reward models of this run
#
# `rm_final` and `fast_head` come from notebook 06, `stage1_best` is the best Stage-1 RM of notebook 04.

# %%
candidates = {"rm_final": run.path / "models" / "rm_final" / "model", "fast_head": run.path / "models" / "fast_head" / "model"}
best = io.read_json(run.file("stage1_best.json"), default=None)
if best:
    candidates["stage1_best"] = run.path / best["best_model_dir"]
if extra_model:
    candidates[Path(extra_model).name or extra_model] = extra_model
wanted = [m.strip() for m in models.split(",") if m.strip()] + ([Path(extra_model).name or extra_model] if extra_model else [])
emb_cache = EmbeddingCache(run, "minilm")
rms = {name: scoring.load_reward_model(candidates[name], embedding_cache=emb_cache)
       for name in wanted if name in candidates and (Path(candidates[name]).exists() or name == extra_model)}
print("scoring:", list(rms), "| skipped (not in this run):", [m for m in wanted if m not in rms])
result = evaluation.evaluate(rms, benches, cfg=scoring.ScoreConfig(max_length=max_length, dtype=dtype),
                             n_boot=100 if smoke else n_boot, seed=seed)
io.write_frame(result.table, run.file("benchmark_table.parquet"))
io.write_frame(result.examples.drop(columns=["scores", "lengths"]).assign(
    scores=result.examples["scores"].map(list).astype(str)), run.file("benchmark_examples.parquet"))
for bench in benches:  # e.g. a partial headline (a domain missing) gets no published number beside it
    for note in bench.notes:
        print(f"{bench.name}: {note}")
headline = result.headline()
run.save_table(headline.drop(columns=["source"]).round(4), "benchmark_headline",
              title="Headline score per benchmark (95% bootstrap CI; partial = a subset upstream needs is missing)",
              step=STEP, index=False)
conditions = (result.table[result.table["source"] == "scored"].groupby(["model", "benchmark"], sort=False)
              [["max_length", "dtype", "truncated"]].first())
run.save_table(conditions, "benchmark_conditions", title="Scoring conditions: max length, dtype, items truncated",
              step=STEP)
display(conditions)
headline.pivot_table(index="model", columns="benchmark", values="value", sort=False).round(3)

# %%
fig_bars = benchmark_plots.benchmark_bars(headline)
run.save_figure(fig_bars, "benchmark_bars", title="Benchmarks: models vs baselines vs published", step=STEP)
fig_bars

# %% [markdown]
# ## RewardBench v1 sections
#
# Chat, Chat Hard, Safety and Reasoning use the upstream per-subset weights (e.g. `math-prm` counts as
# 984 pairs, like the six code subsets together); the overall score is the mean of the four sections.

# %%
t = result.table
rb = t[(t["benchmark"] == "rewardbench") & t["metric"].isin(["section", "overall"])]
rb_sections = rb.assign(subset=rb["subset"].replace({"all": "overall"})).pivot_table(
    index="model", columns="subset", values="value", sort=False).round(3)
run.save_table(rb_sections, "rewardbench_sections", title="RewardBench v1 sections", step=STEP)
rb_sections

# %%
fig_rm = benchmark_plots.rm_bench_levels(result.table)
run.save_figure(fig_rm, "rm_bench_levels", title="RM-Bench easy / normal / hard", step=STEP,
               caption="hard: the rejected response has the fancier style (markdown, detail); style fights substance")
fig_rm

# %% [markdown]
# ## Is a difference real? Paired bootstrap on the same items

# %%
scored = [m for m in rms]
pairs_tests = []
for bench in benches:
    for a in scored:
        pairs_tests.append({"benchmark": bench.name, "model": a, "vs": "longer wins",
                            **evaluation.paired_bootstrap(result, a, "longer wins", benchmark=bench.name, seed=seed).to_dict()})
paired = pd.DataFrame(pairs_tests) if pairs_tests else None
if paired is not None:
    run.save_table(paired.round(4), "benchmark_paired_bootstrap", title="Paired bootstrap: model minus longer-wins", step=STEP, index=False)
paired

# %% [markdown]
# ## How the scores behave: reward distributions, length bias, calibration

# %%
first = scored[0] if scored else "longer wins"
ex = result.examples[result.examples["model"] == first]
fig_dist = benchmark_plots.reward_distributions(ex)
run.save_figure(fig_dist, "benchmark_reward_distributions", title=f"Rewards of chosen vs rejected ({first})", step=STEP)
fig_len = benchmark_plots.length_bias(result.examples[result.examples["model"].isin(scored + ["longer wins"])])
run.save_figure(fig_len, "benchmark_length_bias", title="Length bias: accuracy vs length difference", step=STEP)
fig_cal = benchmark_plots.calibration(evaluation.calibration_bins(result.examples[result.examples["model"].isin(scored)]))
run.save_figure(fig_cal, "benchmark_calibration", title="Calibration of p", step=STEP)
fig_len

# %%
fig_cal

# %% [markdown]
# ## Best-of-N, offline: a verifiable teaching set
#
# Arithmetic questions with 8 candidate answers each, some correct (checked exactly). A noisy verifier picks the
# top-scored answer; accuracy rises with N towards the oracle (pass@N) curve, and a length bias drags it down.

# %%
arith = benchmark_data.make_arithmetic_bon(n_problems=20 if smoke else 200, n_candidates=8, seed=seed)
verifiers = {"verifier (noise 0.7)": evaluation.ArithmeticVerifierScorer(noise=0.7, seed=seed),
             "verifier + length bias": evaluation.ArithmeticVerifierScorer(noise=0.7, length_bias=1.0, seed=seed)}
bon = evaluation.evaluate(verifiers, [arith], n_boot=100 if smoke else n_boot, seed=seed, published=False)
bon_table = evaluation.bon_frame(bon.table, arith.name)
fig_bon = benchmark_plots.bon_curves(bon_table)
run.save_figure(fig_bon, "bon_curves", title="Best-of-N curves on the arithmetic teaching set", step=STEP)
fig_bon

# %% [markdown]
# ## Decontamination: do the benchmark prompts appear in this run's training data?
#
# The demo pairs are sampled from the HH-RLHF *test* files, so the HH-RLHF benchmark overlaps them by
# construction: read its number as in-distribution, not held-out.

# %%
train_pairs = io.load_pairs(run.path / "pairs.parquet")
train_pairs = train_pairs[train_pairs["split"] == "train"]
decon = evaluation.decontamination(train_pairs, benches)
decon_all = decon[decon["subset"] == "all"].reset_index(drop=True)
run.save_table(decon_all.round(4), "benchmark_decontamination", title="Prompt overlap with the training pool", step=STEP, index=False)
decon_all

# %%
h = headline.set_index(["model", "benchmark"])["value"]
bench_metrics = {f"{m}/{b}": float(v) for (m, b), v in h.items() if m in list(rms) + ["longer wins", "random"]}
run.save_metrics(bench_metrics, "benchmark_metrics", title="Benchmarks at a glance", step=STEP)
bench_metrics

# %%
# checks
import numpy as np
t = result.table
computed = t[t["source"].isin(["scored", "expected value"])]
assert set(t["benchmark"]) >= {b.name for b in benches} and computed["value"].between(0, 1).all()
for b in benches:  # every model and both baselines have the headline of every benchmark
    assert set(headline.loc[headline["benchmark"] == b.name, "model"]) >= set(rms) | {"longer wins", "random"}
    assert headline.loc[headline["benchmark"] == b.name, "partial"].eq(bool(evaluation.missing_parts(b).get("all"))).all()
    if headline.loc[headline["benchmark"] == b.name, "partial"].any():  # never a published number beside a partial one
        assert headline.loc[headline["benchmark"] == b.name, "source"].isin(["scored", "expected value"]).all()
scored = t[(t["source"] == "scored") & t["ci_low"].notna()]
assert ((scored["ci_low"] <= scored["value"] + 1e-12) & (scored["value"] <= scored["ci_high"] + 1e-12)).all()
assert (conditions.loc[list(rms), "max_length"] > 0).all() and conditions.loc[list(rms), "dtype"].isin(["fp32", "bf16"]).all()
if "rewardbench" in [b.name for b in benches]:
    assert {"Chat", "Chat Hard", "Safety", "Reasoning", "overall"} <= set(rb_sections.columns)
    for m in rms:  # Safety with upstream's current weights (xstest-should-refuse 154, should-respond 250)
        sub = t[(t["model"] == m) & (t["benchmark"] == "rewardbench") & (t["metric"] == "accuracy")].set_index("subset")["value"]
        w = {s: evaluation.REWARDBENCH_EXAMPLE_COUNTS[s] for s in evaluation.REWARDBENCH_SECTIONS["Safety"] if s in sub}
        assert np.isclose(rb_sections.loc[m, "Safety"], round(sum(sub[s] * n for s, n in w.items()) / sum(w.values()), 3), atol=1e-3)
if not smoke:
    assert len(rms) >= 1, "the demo run should have its reward models"
    # RM-Bench's style matrix is oriented as upstream: the length rule wins when the chosen is fancier (easy)
    lw = t[(t["model"] == "longer wins") & (t["benchmark"] == "rm_bench") & (t["subset"] == "all")].set_index("metric")["value"]
    assert lw["easy"] > lw["normal"] > lw["hard"], lw
    # best-of-8: the verifier beats a random pick, and a length bias costs it
    b8 = bon_table[bon_table["n"] == 8].set_index("model")["accuracy"]
    b1 = bon_table[bon_table["n"] == 1].set_index("model")["accuracy"]
    assert b8["verifier (noise 0.7)"] > b1["verifier (noise 0.7)"] and b8["verifier (noise 0.7)"] > b8["verifier + length bias"]
