"""Issue #17: the curation experiment's noise models, its cleanlab baseline, equal information, and a real run."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import make_pairs

from workbench.curation import experiment as ce
from workbench.data import files as io
from workbench.data.noise import NoiseConfig, inject_noise, noise_profile, shorter_wins
from workbench.runs.folder import start_run
from workbench.runs.stores import EmbeddingCache


def _planted(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Pairs where the chosen is shorter in exactly 30% of rows, in 10 topics."""
    rng = np.random.default_rng(seed)
    short = rng.random(n) < 0.3
    rows = [{"pair_id": f"p{i}", "prompt": [{"role": "user", "content": f"q{i}"}],
             "chosen": "ok" if s else "a long and complete answer", "rejected": "a long but worse answer here" if s else "no"}
            for i, s in enumerate(short)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("model", ["symmetric", "length", "cluster"])
def test_each_noise_model_flips_its_rate_and_lands_where_it_should(model):
    pairs = _planted()
    groups = np.arange(len(pairs)) % 10
    noisy = inject_noise(pairs, NoiseConfig(model=model, rate=0.2, concentration=0.8), seed=3, groups=groups)
    flipped = noisy["noise_injected"].to_numpy()
    assert flipped.sum() == 200  # the overall rate is the rate, whatever the model
    moved = noisy["chosen"].to_numpy() != pairs["chosen"].to_numpy()
    assert (moved == flipped).all() and (noisy["label_is_true"] == ~noisy["noise_injected"]).all()
    prof = noise_profile(noisy)
    if model == "symmetric":
        assert noisy["noise_target"].all()
    elif model == "length":  # 80% of the 200 flips on the 30% of pairs whose true winner is the shorter one
        assert (noisy["noise_target"].to_numpy() == shorter_wins(pairs)).all()
        assert flipped[shorter_wins(pairs)].sum() == 160
        assert prof["flip_rate_targeted"] > 0.5 > 0.1 > prof["flip_rate_elsewhere"]
    else:  # 2 of the 10 topics take 80% of the flips
        bad = np.unique(groups[noisy["noise_target"].to_numpy()])
        assert len(bad) == 2 and flipped[np.isin(groups, bad)].sum() == 160
    again = inject_noise(pairs, NoiseConfig(model=model, rate=0.2), seed=3, groups=groups)
    assert (again["noise_injected"] == noisy["noise_injected"]).all()  # seeded


def test_noise_config_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="noise model"):
        NoiseConfig(model="random")
    with pytest.raises(ValueError, match="needs groups"):
        inject_noise(_planted(10), NoiseConfig(model="cluster"), seed=0)


def test_cleanlab_finds_planted_flips_on_an_easy_pool(tmp_path):
    """Topic-word pairs (the chosen names the prompt's topic): learnable, so out-of-fold probabilities expose flips."""
    pairs = make_pairs(300, seed=1)
    pool, gold = pairs.iloc[:240].reset_index(drop=True), pairs.iloc[240:].reset_index(drop=True)
    noisy = inject_noise(pool, NoiseConfig(model="symmetric", rate=0.2), seed=0)
    cfg = replace(ce.ExperimentConfig(), head_epochs=20, cleanlab_folds=4)
    cache = EmbeddingCache(start_run(tmp_path / "run"), "minilm")
    flags = ce.cleanlab_flags(noisy, gold, set(), cfg, 0, tmp_path / "cl", cache)
    det = ce.detection(flags, noisy["noise_injected"].to_numpy())
    assert det["precision"] > 0.6 and det["recall"] > 0.5, det  # random flagging: precision 0.2
    reviewed = set(noisy["pair_id"].iloc[:50])
    flags = ce.cleanlab_flags(noisy, gold, reviewed, cfg, 0, tmp_path / "cl2", cache)
    assert not flags[:50].any()  # human-reviewed pairs are never flagged


def test_mean_ci_and_paired_difference():
    m, lo, hi = ce.mean_ci(np.array([0.8, 0.82, 0.78, 0.81, 0.79]))
    assert m == pytest.approx(0.8) and lo < m < hi and hi - lo == pytest.approx(2 * 2.776 * 0.01581 / np.sqrt(5), rel=1e-3)
    per_seed = pd.DataFrame([{"noise": "length", "schedule": "fixed", "seed": s, "condition": c, "test_accuracy": a,
                              "train_pairs": 1, "train_label_accuracy": 1.0, "human_labels": 1}
                             for s in range(5) for c, a in (("cleanlab", 0.7 + s / 100), ("gold only", 0.6),
                                                            ("curated", 0.75 + s / 100), ("curated + recycled", 0.7 + s / 100),
                                                            ("raw noisy", 0.5), ("raw + human labels", 0.65),
                                                            ("random review", 0.66),
                                                            ("curated, disagreement queue", 0.72 + s / 100))])
    paired = ce.paired_vs_strongest(per_seed, ce.summarize(per_seed, 0.5))
    cur = paired.set_index("condition").loc["curated"]
    assert cur["strongest_baseline"] == "cleanlab" and cur["diff_mean"] == pytest.approx(0.05) and cur["beats_beyond_ci"]
    assert not paired.set_index("condition").loc["curated + recycled", "beats_beyond_ci"]


def test_the_experiment_on_real_data_smoke(shared_data, tmp_path):
    """Real HH-RLHF conversations, three constructions, three noise models, 2 seeds: complete tables, equal
    information, a clean RM above chance, curation cleaning the labels."""
    cfg = ce.smoke_config(ce.ExperimentConfig())
    res = ce.run_experiment(cfg, tmp_path / "exp", data_dir=str(shared_data), progress=False)
    assert res.clean_check["clean_test_accuracy"] >= cfg.min_clean_accuracy
    n = len(cfg.noise_models) * len(cfg.seeds)
    assert len(res.per_seed) == n * len(ce.CONDITIONS) * len(ce.SCHEDULES)
    assert set(res.summary["condition"]) == set(ce.CONDITIONS) and (res.summary["seeds"] == len(cfg.seeds)).all()
    # equal information: Stage 1's review is the same set for every condition built on it; random review spends
    # the same budget on other pairs; the floor (raw noisy, fixed) has none
    for _, g in res.per_seed.groupby(["noise", "seed", "schedule"]):
        by = g.set_index("condition")
        assert by.loc[list(ce.SAME_REVIEW), "human_ids"].nunique() == 1
        assert (by.loc[list(ce.SAME_BUDGET), "human_labels"] == by.loc["curated", "human_labels"]).all()
    raw_fixed = res.per_seed[(res.per_seed["condition"] == "raw noisy") & (res.per_seed["schedule"] == "fixed")]
    assert (raw_fixed["human_labels"] == 0).all()
    d = res.detection
    assert np.allclose(d["flip_rate"], cfg.noise_rate, atol=0.01)
    assert d["stage2_curated_label_accuracy"].mean() > d["stage2_pool_label_accuracy"].mean()  # tiny: on average
    assert set(res.enrichment["noise"]) == set(cfg.noise_models) and res.enrichment["queued"].gt(0).all()
    assert len(res.paired) == len(cfg.noise_models) * len(ce.SCHEDULES) * len(ce.PIPELINE)
    assert (res.paired["ci_low"] <= res.paired["diff_mean"]).all()
    assert len(list((tmp_path / "exp" / "experiment").glob("*/length_seed0/review.sqlite"))) == 1
    # other settings in the same folder never resume the first run's oracle answers
    assert ce.config_key(replace(cfg, noise_rate=0.3)) != ce.config_key(cfg) == ce.config_key(replace(cfg, seeds=(5,)))
    # routing vs one reviewer on the same pairs: each policy pays for what it routed (+ 2 queue kinds, detection, routing)
    assert len(ce.conclusions(res, cfg)) == 1 + len(res.paired) + 4 * len(cfg.noise_models)
    r = res.routing
    assert len(r) == n * 3 and set(r["policy"]) == {"routed", "all to people", "all to llm"} and (r["pairs"] == cfg.human_budget).all()
    assert (r.loc[r["policy"] == "all to people", "judge_labels"] == 0).all()
    assert (r.loc[r["policy"] == "all to llm", "people_labels"] == 0).all()
    routed = r[r["policy"] == "routed"]
    assert ((routed["people_labels"] > 0) & (routed["judge_labels"] > 0)).all()
    mean = r.groupby("policy")["label_accuracy"].mean()
    assert mean["routed"] >= max(mean["all to people"], mean["all to llm"]) - 0.05, mean  # each reviewer gets its strengths


def test_the_truth_is_not_solvable_by_length(shared_data):
    """The experiment's default pairs: longer-wins on the test split within 0.45-0.55 (truncated and padded cancel)."""
    from workbench.data.overview import length_bias

    pairs = ce.experiment_pairs(ce.ExperimentConfig(), str(shared_data))
    test = pairs[pairs["split"] == "test"]
    assert 0.45 <= length_bias(test) <= 0.55
    assert set(pairs["construction"]) == {"cross_prompt", "truncated", "padded"}
    assert test["construction"].value_counts().nunique() == 1  # the same number of each construction


def test_experiment_cli_writes_tables_figures_and_conclusions(shared_data, tmp_path, capsys):
    from workbench.cli import main

    out = tmp_path / "exp"
    rc = main(["experiment", "--out", str(out), "--data-dir", str(shared_data), "--noise", "length",
               "--n-cross-prompt", "40", "--n-truncated", "40", "--n-padded", "40", "--seeds", "0", "--seed-size", "10",
               "--labels-per-iteration", "6", "--iterations", "1", "--head-epochs", "5", "--cleanlab-folds", "2",
               "--min-clean-accuracy", "0.55"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "strongest baseline" in printed and "cleanlab" in printed and "enrichment" in printed
    summary = pd.read_csv(out / "tables" / "experiment_summary.csv")
    assert len(summary) == len(ce.CONDITIONS) * len(ce.SCHEDULES) and (summary["seeds"] == 1).all()
    assert (out / "figures" / "experiment_conditions.html").exists() and (out / "figures" / "experiment_enrichment.html").exists()
    assert io.read_json(out / "config_curation_experiment.json")["config"]["noise_models"] == ["length"]
