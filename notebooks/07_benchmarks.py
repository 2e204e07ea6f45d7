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
# every table states the `max_length`, `dtype` and `runtime` in effect and how many items were `truncated`
# (shortened to fit: oldest turns first, then inside the texts, never BOS or the role headers). On a CPU a
# MiniLM-style RM runs through OpenVINO (`runtime`), whose rewards match PyTorch's within a stated tolerance
# (`workbench.models.runtime.PARITY_TOLERANCE`); `make demo` scores in bf16, about 4x faster than fp32 here.

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
from workbench.models.scoring import BENCHMARK_SCORING as B  # upstream's scoring conditions live there

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
max_length = B.max_length     # tokens per input, as reward-bench run_rm.py; capped at the model's positions (MiniLM: 512)
dtype = B.dtype               # run_rm.py on a CPU runs fp32; "bf16" on a GPU (Skywork-Reward-V2's release dtype)

# %%
from IPython.display import Markdown, display

from workbench.bench import data as bench_data
from workbench.bench import evaluation, suite
from workbench.bench import plots as bench_plots
from workbench.data import fetch
from workbench.models import scoring
from workbench.runs.folder import start_run
from workbench.runs.stores import EmbeddingCache

STEP = "07_benchmarks"
data_dir = str(fetch.ensure_data(data_dir or None))  # found on disk, else fetched once into the user cache
run = start_run(run_dir, {"benchmarks": benchmarks, "models": models, "extra_model": extra_model,
                          "limit_per_subset": limit_per_subset, "n_boot": n_boot}, step=STEP)
benches = suite.load_benchmarks(suite.names(benchmarks), data_dir=data_dir, hh_limit=hh_limit_per_subset,
                                limit=12 if smoke else (limit_per_subset or None))

# %% [markdown]
# ## The reward models of this run
#
# `rm_final` and `fast_head` come from notebook 06, `stage1_best` is the best Stage-1 RM of notebook 04.

# %%
rms = suite.run_models(run, suite.names(models), extra_model=extra_model, cache=EmbeddingCache(run, "minilm"))
print("scoring:", list(rms), "| skipped (not in this run):", [m for m in suite.names(models) if m not in rms])
result = evaluation.evaluate(rms, benches, cfg=scoring.ScoreConfig(max_length=max_length, dtype=dtype),
                             n_boot=100 if smoke else n_boot, seed=seed)
run.save("benchmark_table", result.table)
run.save("benchmark_examples", suite.examples_frame(result))
for bench in benches:  # e.g. a partial headline (a domain missing) gets no published number beside it
    for note in bench.notes:
        print(f"{bench.name}: {note}")

# %%
headline = result.headline()
run.save_table(headline.drop(columns=["source"]).round(4), "benchmark_headline",
               title="Headline score per benchmark (95% bootstrap CI; partial = a subset upstream needs is missing)",
               step=STEP, index=False)
conditions = suite.scoring_conditions(result)
run.save_table(conditions, "benchmark_conditions", title="Scoring conditions: max length, dtype, runtime, items truncated",
               step=STEP)
display(conditions)
headline.pivot_table(index="model", columns="benchmark", values="value", sort=False).round(3)

# %%
fig_bars = bench_plots.benchmark_bars(headline)
run.save_figure(fig_bars, "benchmark_bars", title="Benchmarks: models vs baselines vs published", step=STEP)
fig_bars

# %% [markdown]
# ## RewardBench v1 sections
#
# Chat, Chat Hard, Safety and Reasoning use the upstream per-subset weights (e.g. `math-prm` counts as
# 984 pairs, like the six code subsets together); the overall score is the mean of the four sections.

# %%
rb_sections = suite.rewardbench_sections(result.table).round(3)
run.save_table(rb_sections, "rewardbench_sections", title="RewardBench v1 sections", step=STEP)
rb_sections

# %%
fig_rm = bench_plots.rm_bench_levels(result.table)
run.save_figure(fig_rm, "rm_bench_levels", title="RM-Bench easy / normal / hard", step=STEP,
                caption="hard: the rejected response has the fancier style (markdown, detail); style fights substance")
fig_rm

# %% [markdown]
# ## Is a difference real? Paired bootstrap on the same items

# %%
paired = suite.paired_vs_baseline(result, list(rms), benches, seed=seed)
run.save_table(paired.round(4), "benchmark_paired_bootstrap", title="Paired bootstrap: model minus longer-wins",
               step=STEP, index=False)
paired

# %% [markdown]
# ## How the scores behave: reward distributions, length bias, calibration

# %%
first = next(iter(rms), "longer wins")
fig_dist = bench_plots.reward_distributions(result.examples[result.examples["model"] == first])
run.save_figure(fig_dist, "benchmark_reward_distributions", title=f"Rewards of chosen vs rejected ({first})", step=STEP)
fig_len = bench_plots.length_bias(result.examples[result.examples["model"].isin([*rms, "longer wins"])])
run.save_figure(fig_len, "benchmark_length_bias", title="Length bias: accuracy vs length difference", step=STEP)
fig_len

# %%
fig_cal = bench_plots.calibration(evaluation.calibration_bins(result.examples[result.examples["model"].isin(list(rms))]))
run.save_figure(fig_cal, "benchmark_calibration", title="Calibration of p", step=STEP)
fig_cal

# %% [markdown]
# ## Best-of-N, offline: a verifiable teaching set
#
# Arithmetic questions with 8 candidate answers each, some correct (checked exactly). A noisy verifier picks the
# top-scored answer; accuracy rises with N towards the oracle (pass@N) curve, and a length bias drags it down.

# %%
arith = bench_data.make_arithmetic_bon(n_problems=20 if smoke else 200, n_candidates=8, seed=seed)
verifiers = {"verifier (noise 0.7)": evaluation.ArithmeticVerifierScorer(noise=0.7, seed=seed),
             "verifier + length bias": evaluation.ArithmeticVerifierScorer(noise=0.7, length_bias=1.0, seed=seed)}
bon = evaluation.evaluate(verifiers, [arith], n_boot=100 if smoke else n_boot, seed=seed, published=False)
bon_table = evaluation.bon_frame(bon.table, arith.name)
fig_bon = bench_plots.bon_curves(bon_table)
run.save_figure(fig_bon, "bon_curves", title="Best-of-N curves on the arithmetic teaching set", step=STEP)
fig_bon

# %% [markdown]
# ## Decontamination: do the benchmark prompts appear in this run's training data?
#
# The demo pairs are sampled from the HH-RLHF *test* files, so the HH-RLHF benchmark overlaps them by
# construction: read its number as in-distribution, not held-out.

# %%
decon = evaluation.decontamination(run.load("pairs").query("split == 'train'"), benches)
decon_all = decon[decon["subset"] == "all"].reset_index(drop=True)
run.save_table(decon_all.round(4), "benchmark_decontamination", title="Prompt overlap with the training pool",
               step=STEP, index=False)
bench_metrics = suite.headline_metrics(headline, list(rms))
run.save_metrics(bench_metrics, "benchmark_metrics", title="Benchmarks at a glance", step=STEP)
display(decon_all)
bench_metrics

# %% [markdown]
# ## Conclusions

# %%
wins = paired[paired["ci_low"] > 0] if len(paired) else paired
lines = [f"- Scored {len(rms)} reward model(s) on {len(benches)} benchmark(s) at upstream's conditions "
         f"(max length {max_length}, {dtype}; {int(conditions['truncated'].sum()):,} inputs truncated to fit)."]
lines += [f"- **{r.model}** beats *longer wins* beyond its paired 95% CI on **{r.benchmark}** "
          f"({r.diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}])." for r in wins.itertuples()]
lines.append(f"- {len(paired) - len(wins)} of {len(paired)} model × benchmark comparisons do not clear the length rule "
             "beyond their CI: small demo RMs, read their numbers as a floor.")
display(Markdown("\n".join(lines)))

# %%
# checks: complete tables, values in range, CIs around their values, partial headlines without published numbers
t = result.table
assert set(t["benchmark"]) >= {b.name for b in benches} and t[t["source"] != "published"]["value"].between(0, 1).all()
for b in benches:  # every model and both baselines have the headline of every benchmark
    rows = headline[headline["benchmark"] == b.name]
    assert set(rows["model"]) >= set(rms) | {"longer wins", "random"}
    assert rows["partial"].eq(bool(evaluation.missing_parts(b).get("all"))).all()
    assert not rows["partial"].any() or rows["source"].isin(["scored", "expected value"]).all()
scored = t[(t["source"] == "scored") & t["ci_low"].notna()]
assert ((scored["ci_low"] <= scored["value"] + 1e-12) & (scored["value"] <= scored["ci_high"] + 1e-12)).all()
assert (conditions.loc[list(rms), "max_length"] > 0).all() and conditions.loc[list(rms), "dtype"].isin(["fp32", "bf16"]).all()
assert "rewardbench" not in suite.names(benchmarks) or {"Chat", "Chat Hard", "Safety", "Reasoning", "overall"} <= set(rb_sections)

# %%
# checks: RewardBench Safety with upstream's current weights (xstest-should-refuse 154, should-respond 250)
import numpy as np

for m in rms if "rewardbench" in suite.names(benchmarks) else []:
    sub = t[(t["model"] == m) & (t["benchmark"] == "rewardbench") & (t["metric"] == "accuracy")].set_index("subset")["value"]
    w = {s: evaluation.REWARDBENCH_EXAMPLE_COUNTS[s] for s in evaluation.REWARDBENCH_SECTIONS["Safety"] if s in sub}
    expected = round(sum(sub[s] * n for s, n in w.items()) / sum(w.values()), 3)
    assert np.isclose(rb_sections.loc[m, "Safety"], expected, atol=1e-3), (m, expected)

# %%
# checks on the full run: the demo's models exist; RM-Bench is oriented as upstream; best-of-N behaves
if not smoke:
    assert len(rms) >= 1, "the demo run should have its reward models"
    lw = t[(t["model"] == "longer wins") & (t["benchmark"] == "rm_bench") & (t["subset"] == "all")].set_index("metric")["value"]
    assert lw["easy"] > lw["normal"] > lw["hard"], lw  # the length rule wins when the chosen is fancier (easy)
    b8 = bon_table[bon_table["n"] == 8].set_index("model")["accuracy"]
    b1 = bon_table[bon_table["n"] == 1].set_index("model")["accuracy"]
    assert b8["verifier (noise 0.7)"] > b1["verifier (noise 0.7)"] and b8["verifier (noise 0.7)"] > b8["verifier + length bias"]
