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
# # 08 · Does curation beat scale? The paper's ablation, against a known truth
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rm-curation-workbench/rm-curation-workbench/blob/main/notebooks/08_curation_experiment.ipynb)
#
# The paper's central claim: a smaller curated set trains better RMs than a larger raw one. Here we test it at
# CPU scale where the truth is known. The demo build's **constructed** pairs are true by construction (a
# complete vs a cut-off response; the real answer vs one written for another conversation). We flip a share
# `noise_rate` of the pool labels (seeded), then run tagging → Stage 1 (the *simulated* oracle reviewer with a
# budget of human labels) → Stage 2, and train the same RM on:
#
# | condition | training set |
# |---|---|
# | raw noisy | the whole pool with its noisy labels |
# | curated | Stage 1's reviewed pairs + Stage 2's kept pairs |
# | random same size | a random subset of the noisy pool as large as *curated* |
# | curated + recycled | *curated* plus Stage 2's discarded pairs, flipped |
# | clean (ceiling) | the whole pool with its true labels |
#
# Every RM is the fast embedding head (seconds each). Stage 1 and the gold RM pick their best epoch on the gold
# split, as curation does; the compared RMs train a fixed schedule, as the paper's do (picking epochs on a clean
# gold set would itself hide most label noise; `select_on_gold = True` shows that). Same command line:
# `workbench experiment --out runs/experiment`.

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
from workbench.curation.experiment import ExperimentConfig as C  # the defaults live in the config class

run_dir = "../runs/scratch"
data_dir = ""                 # empty: <repo>/../shared/data, or $WORKBENCH_DATA_DIR
smoke = False
noise_rate = C.noise_rate     # share of pool labels flipped
seeds = list(C.seeds)         # noise, oracle and RM seeds; mean and spread are over these
n_cross_prompt = C.n_cross_prompt   # known-truth pairs built from the shared HH-RLHF conversations
n_truncated = C.n_truncated
seed_size = C.seed_size       # human labels: Stage-1 round 0 ...
labels_per_iteration = C.labels_per_iteration   # ... plus this many per retrieval round
iterations = C.iterations
budget_curve = list(C.budget_curve)   # smaller human budgets for the accuracy-vs-labels curve
oracle_error_rate = C.oracle_error_rate   # the simulated people's own error rate
judge_error_rate = C.judge_error_rate     # 0 or more: a simulated LLM judge labels Stage 2's unsure pairs; -1: none
select_on_gold = C.select_on_gold         # True: compared RMs keep their best gold epoch
head_epochs = C.head_epochs

# %%
from IPython.display import Markdown, display

from workbench.curation import experiment as ce, plots
from workbench.runs.folder import start_run

STEP = "08_curation_experiment"
cfg = ce.ExperimentConfig(noise_rate=noise_rate, seeds=tuple(seeds), n_cross_prompt=n_cross_prompt, n_truncated=n_truncated,
                          seed_size=seed_size, labels_per_iteration=labels_per_iteration, iterations=iterations,
                          budget_curve=tuple(budget_curve), oracle_error_rate=oracle_error_rate,
                          judge_error_rate=judge_error_rate, select_on_gold=select_on_gold, head_epochs=head_epochs)
cfg = ce.smoke_config(cfg) if smoke else cfg
run = start_run(run_dir, cfg, step=STEP)
print(f"{len(cfg.seeds)} seeds x human budgets {cfg.budgets()}; noise rate {cfg.noise_rate}")
result = ce.run_experiment(cfg, run.path / "curation_experiment", data_dir=data_dir or None)
print(f"clean-label RM on the test split: {result.clean_check['clean_test_accuracy']:.3f} (chance 0.5): the truth is learnable")

# %% [markdown]
# ## Test accuracy by training set
#
# Mean over seeds with min-max whiskers, at the full human budget.

# %%
run.save_table(result.summary, "experiment_summary", title="Curation experiment: clean test accuracy by training set",
               step=STEP, index=False)
fig_cond = plots.experiment_conditions(result.summary)
run.save_figure(fig_cond, "experiment_conditions", title="Curated vs raw vs same-size random", step=STEP)
display(result.summary)
fig_cond

# %% [markdown]
# ## Did the pipeline find the injected flips?
#
# A pair counts as *flagged* when Stage 1 or 2 flipped or dropped it. `curated_label_accuracy` is the share of
# the curated training set whose label is true; `pool_label_accuracy` is `1 - noise_rate`.

# %%
run.save_table(result.detection, "experiment_detection", title="Flip detection against the injected truth", step=STEP,
               index=False)
result.detection

# %%
fig_curve = plots.human_budget_curve(result.curve)
run.save_figure(fig_curve, "experiment_budget_curve", title="Test accuracy vs human labels", step=STEP)
fig_curve

# %%
full = result.detection[result.detection["budget"] == cfg.human_budget]
metrics = ce.headline_metrics(result, cfg)
run.save_metrics(metrics, "experiment_metrics", title="Curation experiment at a glance", step=STEP)
metrics

# %% [markdown]
# ## Conclusions

# %%
s = result.summary.set_index("condition")["test_accuracy_mean"]
verdict = ", ".join(f"{'beats' if metrics.get(f'beats_{o}') else 'does not beat'} {o.replace('_', ' ')} "
                    f"({metrics[f'curated_minus_{o}']:+.3f}, seed spread {metrics[f'spread_vs_{o}']:.3f})"
                    for o in ("raw_noisy", "random_same_size") if f"curated_minus_{o}" in metrics)
display(Markdown(
    f"- Conditions: {cfg.noise_rate:.0%} symmetric label noise, simulated reviewer error {cfg.oracle_error_rate}, "
    f"{cfg.human_budget} human labels, {len(cfg.seeds)} seeds.\n"
    f"- Clean test accuracy: curated **{s.get('curated', float('nan')):.3f}**, raw noisy {s.get('raw noisy', float('nan')):.3f}, "
    f"clean ceiling {s.get('clean (ceiling)', float('nan')):.3f}.\n"
    f"- Curated {verdict}.\n"
    f"- Stage 1 + 2 raised the training labels' accuracy from {full['pool_label_accuracy'].mean():.3f} to "
    f"{full['curated_label_accuracy'].mean():.3f} (flag F1 {full['flag_f1'].mean():.2f})."))

# %%
# checks
assert set(result.summary["condition"]) == set(ce.CONDITIONS) and (result.summary["seeds"] == len(cfg.seeds)).all()
assert (full["curated_label_accuracy"] > full["pool_label_accuracy"]).all(), full
assert result.clean_check["clean_test_accuracy"] >= cfg.min_clean_accuracy
