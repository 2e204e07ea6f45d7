"""The teacher testbed (issue 28): Bradley-Terry labels, robust losses, the gate's arithmetic, pluggable noise, the
teacher cache, and a smoke run of the whole experiment on the real HH-RLHF data (a tiny teacher)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.curation import teacher_experiment as te
from workbench.curation import testbed as tb
from workbench.data import noise
from workbench.models.loss import preference_loss

# ---------------------------------------------------------------- Bradley-Terry labels


def test_bt_sampler_hits_its_agreement_target_on_planted_margins():
    margins = np.random.default_rng(0).exponential(1.0, 40_000)
    pairs = pd.DataFrame({"pair_id": [f"p{i}" for i in range(len(margins))], "teacher_margin": margins,
                          "chosen": "a", "rejected": "b"})
    for target in (0.65, 0.75, 0.9):
        beta = tb.beta_for_agreement(margins, target)
        scale = tb.margin_scale(margins)
        assert tb.agreement_probability(margins, beta, scale).mean() == pytest.approx(target, abs=1e-6)
        labels = tb.bt_labels(pairs, beta=beta, scale=scale, seed=1)
        assert labels["label_is_true"].mean() == pytest.approx(target, abs=0.01)
    # annotators agree more where the teacher is surer: the top margin quartile beats the bottom one
    agree = labels["label_is_true"].to_numpy()
    q = np.quantile(margins, [0.25, 0.75])
    assert agree[margins > q[1]].mean() > agree[margins < q[0]].mean() + 0.05
    # a hand-checkable case: every margin equal to the scale, target sigmoid(1) -> beta 1
    assert tb.beta_for_agreement(np.ones(10), 1 / (1 + math.exp(-1))) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="agreement"):
        tb.beta_for_agreement(margins, 0.4)


# ---------------------------------------------------------------- robust losses


def test_each_robust_loss_equals_its_formula_on_fixed_inputs():
    h, eps = torch.tensor([-1.5, 0.0, 0.7, 3.0]), 0.2
    nll = [math.log1p(math.exp(-x)) for x in h.tolist()]  # -log sigmoid(h)
    rev = [math.log1p(math.exp(x)) for x in h.tolist()]  # -log sigmoid(-h)
    assert preference_loss(h, "bt").item() == pytest.approx(np.mean(nll), rel=1e-6)
    assert preference_loss(h, "smoothing", eps).item() == pytest.approx(
        np.mean([(1 - eps) * a + eps * b for a, b in zip(nll, rev)]), rel=1e-6)
    assert preference_loss(h, "rdpo", eps).item() == pytest.approx(
        np.mean([((1 - eps) * a - eps * b) / (1 - 2 * eps) for a, b in zip(nll, rev)]), rel=1e-6)
    assert preference_loss(h, "sympo").item() == pytest.approx(np.mean([1 / (1 + math.exp(x)) for x in h.tolist()]),
                                                               rel=1e-6)
    # rDPO is unbiased: its expectation under flips at rate eps is the clean BT loss
    expected = (1 - eps) * preference_loss(h, "rdpo", eps) + eps * preference_loss(-h, "rdpo", eps)
    assert expected.item() == pytest.approx(preference_loss(h, "bt").item(), rel=1e-6)
    # the symmetric loss: l(h) + l(-h) = 1
    assert (torch.sigmoid(-h) + torch.sigmoid(h)).allclose(torch.ones(4))
    with pytest.raises(ValueError, match="loss must be one of"):
        preference_loss(h, "hinge")


# ---------------------------------------------------------------- the gate and the crossing factor


def _curve(slope: float, offset: float = 0.0, condition: str = "clean") -> pd.DataFrame:
    sizes = np.array([1000, 2000, 4000, 8000, 16000, 32000, 56000])
    acc = 0.6 + offset + slope * np.log2(sizes / 1000)
    return pd.DataFrame({"condition": condition, "pool_pairs": sizes, "test_accuracy_mean": acc})


def test_the_gate_arithmetic_on_planted_curves():
    cfg = te.TeacherExperimentConfig(noise_models=("length", "cluster"))
    assert te.gain_per_doubling(np.array([4000, 8000, 16000]), np.array([0.70, 0.72, 0.74])) == pytest.approx(0.02)
    full = pd.DataFrame({"noise": ["length"] * 3 + ["cluster"] * 2,
                         "condition": ["clean", "raw", "gold only", "clean", "raw"],
                         "test_accuracy_mean": [0.80, 0.74, 0.70, 0.80, 0.76]})
    good = te.gate(_curve(0.025), full, cfg)
    assert good["value"].iloc[0] == pytest.approx(0.025) and good["value"].iloc[1] == pytest.approx(0.10)
    assert good["passed"].tolist() == [True, True, True, False]  # cluster: 0.04 < 0.05
    flat = te.gate(_curve(0.01), full, cfg)
    assert not flat["passed"].iloc[0]
    assert "cannot discriminate" in te.GATE_FAILED.format(failed="x")


def test_crossing_factor_reads_how_much_more_raw_data_curation_is_worth():
    curve = pd.concat([_curve(0.02, condition="raw"), _curve(0.02, offset=0.04, condition="curated")])
    k = te.crossing_factor(curve, "curated").set_index("pool_pairs")["k"]
    assert k[1000] == pytest.approx(4.0)  # +0.04 at 0.02 per doubling = two doublings
    assert np.isnan(k[56000])  # raw never gets there within the measured sizes


def test_the_finetuned_check_names_only_strict_reversals():
    f = pd.DataFrame({"finetuned_accuracy": [0.921, 0.811, 0.921], "frozen_student_accuracy": [0.721, 0.643, 0.712]},
                     index=["clean", "raw", "curated"])
    assert te.reversed_pairs(f) == []  # a tie (clean = curated fine-tuned) is not a reversal
    f.loc["raw", "finetuned_accuracy"] = 0.95
    assert te.reversed_pairs(f) == ["clean vs raw", "raw vs curated"]


def test_budget_split_and_pool_sizes():
    assert te.budget_split(1000, 4) == (200, 200)
    assert te.budget_split(100, 4) == (20, 20)
    cfg = te.TeacherExperimentConfig()
    # the fine-tuned check's settings do not invalidate the other blocks; every other setting does
    assert te.config_key(replace(cfg, finetune_pool_pairs=7)) == te.config_key(cfg) != te.config_key(replace(cfg, noise_rate=0.1))
    assert te.pool_sizes(cfg, 56_000) == [1000, 2000, 4000, 8000, 16000, 32000, 56000]
    # every training set gets >= min_steps_per_epoch steps: small sets in smaller batches, never below 16 pairs
    assert [cfg.head(n).batch_size for n in (100, 1000, 4000, 56_000)] == [16, 31, 125, 512]
    assert cfg.head(800, epochs=15).epochs == 15 and cfg.head(800).epochs == cfg.student_epochs


# ---------------------------------------------------------------- pluggable noise


PLUGIN = '''
import numpy as np
from workbench.data.noise import register_noise_model

def every_third(pairs, seed, *, rate, **_):
    """A user's noise model: flips every third pair (ignores the rate)."""
    return np.arange(len(pairs)) % 3 == 0

register_noise_model("every_third", every_third, replace=True)
'''


def test_a_registered_noise_model_is_used_by_name(tmp_path):
    plugin = tmp_path / "my_noise.py"
    plugin.write_text(PLUGIN)
    noise.load_plugins([plugin])
    pairs = pd.DataFrame({"pair_id": list("abcdef"), "chosen": list("aaaaaa"), "rejected": list("bbbbbb")})
    noisy = noise.inject_noise(pairs, noise.NoiseConfig(model="every_third"), seed=0)
    assert noisy["noise_injected"].tolist() == [True, False, False, True, False, False]
    with pytest.raises(ValueError, match="already registered"):
        noise.register_noise_model("length", lambda pairs, seed, **_: None)
    noise.register_noise_model("bad_shape", lambda pairs, seed, **_: np.zeros(2, bool), replace=True)
    with pytest.raises(ValueError, match="shape"):
        noise.inject_noise(pairs, noise.NoiseConfig(model="bad_shape"), seed=0)
    with pytest.raises(FileNotFoundError, match="nope.py"):
        noise.load_plugins([tmp_path / "nope.py"])
    with pytest.raises(ValueError, match="register_noise_model"):
        noise.NoiseConfig(model="not_registered")


# ---------------------------------------------------------------- the testbed on the real data (tiny teacher)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory, shared_data):
    return tmp_path_factory.mktemp("testbeds")


@pytest.mark.slow
def test_the_teacher_cache_is_reused_and_invalidated_by_a_changed_config(shared_data, cache_root):
    cfg = te.smoke_config().testbed
    first = tb.build_testbed(cfg, data_dir=shared_data, cache_root=cache_root, progress=False)
    teacher_json = cache_root / f"teacher-{tb.teacher_key(cfg, shared_data)}" / "teacher.json"
    stamp = teacher_json.stat().st_mtime_ns
    again = tb.build_testbed(cfg, data_dir=shared_data, cache_root=cache_root, progress=False)
    pd.testing.assert_frame_equal(first.pairs, again.pairs)
    assert again.key == first.key and teacher_json.stat().st_mtime_ns == stamp  # nothing trained or scored again
    # the teacher on real human labels: its held-out accuracy is reported (a tiny one need not be good)
    assert 0.0 <= first.teacher["teacher_heldout_accuracy"] <= 1.0 and first.teacher["teacher_heldout_pairs"] == 32
    pairs = first.pairs
    assert (pairs["teacher_margin"] >= 0).all() and set(pairs["split"]) == {"train", "gold", "test"}
    hosts = {s: set(g["host"]) for s, g in pairs.groupby("split")}
    assert not (hosts["train"] & hosts["test"]) and not (hosts["gold"] & hosts["test"])
    texts = {s: set(g["chosen"]) | set(g["rejected"]) for s, g in pairs.groupby("split")}
    assert not (texts["train"] & texts["test"])  # no response text crosses from the pool to the test split
    cands = first.candidates
    assert cands[cands["split"] == "test"].groupby("host").size().max() == 16  # best-of-16 on test prompts
    assert cands[cands["split"] == "train"].groupby("host").size().max() == 10
    # a changed pair setting builds a new testbed on the same teacher; a changed teacher setting a new teacher
    other = tb.TestbedConfig(**{**cfg.__dict__, "pairs_per_prompt": cfg.pairs_per_prompt - 5})
    assert tb.testbed_key(other, shared_data) != first.key
    assert tb.teacher_key(other, shared_data) == tb.teacher_key(cfg, shared_data)
    built = tb.build_testbed(other, data_dir=shared_data, cache_root=cache_root, progress=False)
    assert built.folder != first.folder and teacher_json.stat().st_mtime_ns == stamp
    assert built.candidates_folder == first.candidates_folder  # candidates and teacher rewards reused, not rescored
    retaught = tb.TestbedConfig(**{**cfg.__dict__, "teacher": tb.TeacherConfig(**{**cfg.teacher.__dict__,
                                                                                  "learning_rate": 1e-4})})
    assert tb.teacher_key(retaught, shared_data) != tb.teacher_key(cfg, shared_data)
    report = tb.margin_report(pairs)
    assert set(report["split"]) == {"train", "gold", "test"} and (report["margin_q90"] >= report["margin_q10"]).all()


@pytest.mark.slow
def test_a_custom_noise_model_runs_end_to_end_from_the_cli(shared_data, cache_root, tmp_path, monkeypatch, capsys):
    from workbench.cli import main

    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(cache_root / "cache"))
    (cache_root / "cache").mkdir(exist_ok=True)
    target = tb.default_cache_root()
    if not target.exists():  # reuse the tiny teacher the cache test built
        target.symlink_to(cache_root, target_is_directory=True)
    plugin = tmp_path / "my_noise.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / "run"
    code = main(["experiment", "--truth", "teacher", "--smoke", "--plugin", str(plugin), "--noise", "every_third",
                 "--seeds", "0,1", "--out", str(out), "--data-dir", str(shared_data), "--finetune"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "noise models from plugins: every_third" in printed and "Gate" in printed
    # the fine-tuned MiniLM check: three conditions, first seed, the same pairs as the frozen student it checks
    tuned = pd.read_csv(out / "tables" / "teacher_finetuned.csv").set_index("condition")
    smoke = te.smoke_config()
    assert list(tuned.index) == list(te.FINETUNED) and set(tuned["seed"]) == {0}
    assert (tuned["pool_pairs"] == smoke.finetune_pool_pairs).all() and (tuned["test_pairs"] == smoke.finetune_test_pairs).all()
    assert tuned.at["clean", "train_label_accuracy"] == 1.0 > tuned.at["raw", "train_label_accuracy"]
    assert tuned[["finetuned_accuracy", "frozen_student_accuracy"]].stack().between(0, 1).all()
    model_dirs = list((out / "teacher_experiment").glob("*/finetuned-*/curated/model/config.json"))
    assert len(model_dirs) == 1 and "Fine-tuned MiniLM check" in printed
    full = pd.read_csv(out / "tables" / "teacher_full_per_seed.csv")
    assert set(full["noise"]) == {"every_third", "none"} and set(full["seed"]) == {0, 1}
    ev = full[full["noise"] == "every_third"]
    # every_third flips a third of the BT labels' pairs on top: the raw labels are worse than BT alone
    assert ev.loc[ev["condition"] == "raw", "train_label_accuracy"].mean() < \
        full.loc[(full["noise"] == "none") & (full["condition"] == "raw"), "train_label_accuracy"].mean()
    # equal information: every reviewing condition saw gold + the same budget; robust losses and gold only see gold
    gold = int(ev.loc[ev["condition"] == "gold only", "train_pairs"].iloc[0])
    budget = te.smoke_config().budget
    human = ev.groupby("condition")["human_labels"].first()
    for name in ("random review", "curated", "curated, disagreement queue", "raw + human labels"):
        assert human[name] == gold + budget, name
    for name in ("gold only", *te.ROBUST, "+ Stage 2, LLM judge only", "clean"):
        assert human[name] == gold, name
    assert human["raw"] == 0
    assert (full["test_accuracy"].between(0, 1)).all() and full["best_of_n"].notna().all()
    curve = pd.read_csv(out / "tables" / "teacher_curve.csv")
    full_pool = int(ev.loc[ev["condition"] == "clean", "pool_pairs"].iloc[0])
    assert set(curve["pool_pairs"]) == {300, 600, full_pool} and {"clean", "raw", "curated"} <= set(curve["condition"])
    assert (out / "figures" / "teacher_learning_curves.html").exists()
    metrics = json.loads((out / "metrics" / "teacher_metrics.json").read_text())
    assert metrics["agreement_measured"] == pytest.approx(0.75, abs=0.05) and "gate_passed" in metrics
    # a second run resumes every block from disk
    again = main(["experiment", "--truth", "teacher", "--smoke", "--plugin", str(plugin), "--noise", "every_third",
                  "--seeds", "0,1", "--out", str(out), "--data-dir", str(shared_data)])
    assert again == 0 and pd.read_csv(out / "tables" / "teacher_full_per_seed.csv").equals(full)


def test_options_of_the_other_truth_are_refused(capsys):
    from workbench.cli import main

    with pytest.raises(SystemExit, match="--n-padded do not apply to --truth teacher"):
        main(["experiment", "--truth", "teacher", "--n-padded", "10"])


@pytest.mark.slow
def test_blocks_in_two_worker_processes_equal_blocks_in_one(shared_data, cache_root, tmp_path):
    """The parallel path is a faster path only: the same rows, and the best baseline chosen once, for every seed."""
    cfg = replace(te.smoke_config(), seeds=(0, 1), secondary_seeds=1, null_models=("none",))
    one = te.run_teacher_experiment(replace(cfg, workers=1), tmp_path / "one", data_dir=str(shared_data),
                                    cache_root=cache_root, progress=False)
    two = te.run_teacher_experiment(replace(cfg, workers=2), tmp_path / "two", data_dir=str(shared_data),
                                    cache_root=cache_root, progress=False)
    assert (one.timings["workers"], two.timings["workers"]) == (1, 2)
    for name in ("full", "curve", "budget"):
        pd.testing.assert_frame_equal(getattr(one, name), getattr(two, name), obj=name)
    best = one.testbed["best_baseline"]
    assert best in te.BASELINES and set(one.curve.loc[one.curve["condition"] == best, "seed"]) == {0, 1}
    assert set(one.budget["seed"]) == {0} and set(one.budget["budget"]) == {*cfg.budgets, cfg.budget}
