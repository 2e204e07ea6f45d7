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
# # 08 · Does curation beat the data we have? Against a known truth, with fair baselines
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/rm-curation-workbench/rm-curation-workbench/blob/main/notebooks/08_curation_experiment.ipynb)
#
# Pairs whose true label is known (built from real HH-RLHF conversations: a relevant vs an off-topic response, a
# complete vs a truncated one — longer wins —, a complete one vs the same plus an off-topic paragraph — longer
# loses — in equal numbers, so *longer wins* scores about 0.5 on the test split). Label noise is injected by a
# **noise model**: `length` (a verbosity-biased annotator flips mostly the pairs whose better answer is shorter),
# `cluster` (a bad annotator batch flips mostly a few topics) or `symmetric` (uniform flips, the reference). The
# simulated people who review answer wrongly at `oracle_error_rate`.
#
# Every condition gets the **same information** — the gold split plus one review budget — the same RM, seeds and
# schedules: raw noisy (the floor), raw + the human labels, gold only, **random review** (the budget spent on
# random pairs, then the same Stage 2: isolates error-driven retrieval), **cleanlab** (confident learning on
# out-of-fold RM probabilities: the field's standard label-noise tool), the pipeline (curated, + recycled) and the
# clean ceiling. Two schedules: `fixed` (gold joins the training set) and `best on gold` (gold picks the epoch).
# And, cheaply, **routing**: does sending each reviewed pair to people or an LLM judge by its attributes beat
# sending all of them to one?

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
from workbench.curation.experiment import ExperimentConfig as C  # the defaults live in the config class

run_dir = "../runs/scratch"
data_dir = ""                 # empty: <repo>/../shared/data, or $WORKBENCH_DATA_DIR
smoke = False
noise_models = list(C.noise_models)   # length, cluster and/or symmetric; the first is the headline
noise_rate = C.noise_rate     # share of pool labels flipped
noise_concentration = C.noise_concentration   # length / cluster: share of the flips on the targeted pairs
seeds = list(C.seeds)         # noise, reviewer and RM seeds; CIs are over these
n_cross_prompt = C.n_cross_prompt   # known-truth pairs of each construction
n_truncated = C.n_truncated
n_padded = C.n_padded
seed_size = C.seed_size       # the review budget: Stage-1 round 0 ...
labels_per_iteration = C.labels_per_iteration   # ... plus this many per retrieval round
iterations = C.iterations
oracle_error_rate = C.oracle_error_rate   # the simulated people's own error rate
judge_error_rate = C.judge_error_rate     # 0 or more: a simulated LLM judge labels Stage 2's unsure pairs; -1: none
head_epochs = C.head_epochs
cleanlab_folds = C.cleanlab_folds

# %%
from IPython.display import Markdown, display

from workbench.curation import experiment as ce
from workbench.runs.folder import start_run

# %%
STEP = "08_curation_experiment"
cfg = ce.ExperimentConfig(noise_models=tuple(noise_models), noise_rate=noise_rate, noise_concentration=noise_concentration,
                          seeds=tuple(seeds), n_cross_prompt=n_cross_prompt, n_truncated=n_truncated, n_padded=n_padded,
                          seed_size=seed_size, labels_per_iteration=labels_per_iteration, iterations=iterations,
                          oracle_error_rate=oracle_error_rate, judge_error_rate=judge_error_rate,
                          head_epochs=head_epochs, cleanlab_folds=cleanlab_folds)
cfg = ce.smoke_config(cfg) if smoke else cfg
run = start_run(run_dir, cfg, step=STEP)
print(f"{len(cfg.noise_models)} noise models x {len(cfg.seeds)} seeds; review budget {cfg.human_budget}")
result = ce.run_experiment(cfg, run.path / "curation_experiment", data_dir=data_dir or None)
out = ce.save_outputs(run, result, cfg, step=STEP)
result.clean_check

# %% [markdown]
# ## Test accuracy by condition, noise model and schedule
#
# Mean over seeds with its 95% CI; the dotted line is *longer wins* on the same test split.

# %%
out["conditions"]

# %%
result.summary.pivot_table(index="condition", columns=["noise", "schedule"], values="test_accuracy_mean",
                           sort=False).round(3)

# %% [markdown]
# ## Curated vs the strongest baseline, paired over seeds
#
# For each noise model and schedule, the strongest of raw noisy, raw + human labels, gold only, random review and
# cleanlab, and the pipeline's difference to it on the same seeds (95% t-interval).

# %%
result.paired.round(3)

# %% [markdown]
# ## The mechanism: does error-driven retrieval find the noise? Does Stage 2 find it better than cleanlab?
#
# The share of flipped labels in each Stage-1 review queue, in the pool not yet reviewed, and in a random queue of
# the same size. Then flip detection (precision / recall / F1 against the injected flips) of Stage 1 + 2 and of
# cleanlab, and test accuracy per construction.

# %%
out["enrichment"]

# %%
cols = ["stage2_flag_precision", "stage2_flag_recall", "stage2_flag_f1", "cleanlab_precision", "cleanlab_recall",
        "cleanlab_f1", "flip_rate_targeted", "flip_rate_elsewhere"]
display(result.detection.groupby("noise", sort=False)[cols].mean().round(3))
ce.per_construction(result.per_seed).round(3)

# %% [markdown]
# ## Who should review: routing vs everything to people or to the judge
#
# One review budget of pool pairs, the same pairs for three policies: **routed** by the pairs' attributes
# (`ExperimentConfig.routing`: objective tasks to the judge, subjective or controversial ones to people), **all to
# people**, **all to llm**. The simulated people err more on objective tasks (facts, maths, code), the simulated
# judge on subjective and controversial ones. Label accuracy against the truth, and the labels each side gave.

# %%
ce.routing_summary(result.routing).round(3)

# %% [markdown]
# ## Conclusions

# %%
display(Markdown("\n".join(f"- {line}" for line in ce.conclusions(result, cfg))))

# %%
# checks: complete and consistent tables (every noise model, seed, schedule and condition; CIs around means)
n_runs = len(cfg.noise_models) * len(cfg.seeds)
assert len(result.per_seed) == n_runs * len(ce.SCHEDULES) * len(ce.CONDITIONS) and len(result.detection) == n_runs
assert (result.summary["seeds"] == len(cfg.seeds)).all()
assert len(result.summary) == len(cfg.noise_models) * len(ce.CONDITIONS) * len(ce.SCHEDULES)
assert ((result.summary["ci_low"] <= result.summary["test_accuracy_mean"] + 1e-12)
        & (result.summary["test_accuracy_mean"] <= result.summary["ci_high"] + 1e-12)).all()
same = result.per_seed[result.per_seed["condition"].isin(ce.SAME_REVIEW)].groupby(["noise", "seed", "schedule"])
assert (same["human_ids"].nunique() == 1).all(), "the conditions built on Stage 1's review saw the same human labels"
assert set(result.enrichment["noise"]) == set(cfg.noise_models) and result.clean_check["clean_test_accuracy"] >= cfg.min_clean_accuracy
assert result.detection["stage2_curated_label_accuracy"].mean() > result.detection["stage2_pool_label_accuracy"].mean()
assert len(result.routing) == n_runs * 3 and (result.routing.query("policy == 'all to people'")["judge_labels"] == 0).all()

# %%
# checks on the full run: the truth is not solvable by length; every pipeline condition has its paired comparison
if not smoke:
    assert 0.45 <= result.clean_check["test_longer_wins"] <= 0.55, result.clean_check
    assert len(result.paired) == len(cfg.noise_models) * len(ce.SCHEDULES) * len(ce.PIPELINE)
