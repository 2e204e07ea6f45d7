"""Benchmark harness: every scoring rule against hand-computed values, loaders on upstream-format fixtures,
the bootstrap, decontamination, best-of-N, plots, and one pass over the real shared data."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from workbench.bench import evaluation as ev
from workbench.bench import plots as bp
from workbench.bench.data import (
    SPECS,
    Benchmark,
    bon_benchmark,
    check_arithmetic,
    load_benchmark,
    load_published_scores,
    make_arithmetic_bon,
)
from workbench.data.overview import longer_wins
from workbench.data.pairs import PairError
from workbench.models.device import bf16_supported

FIXTURES = Path(__file__).parent / "fixtures" / "benchmarks"


def _bench(rule: str, rows: list[dict], name: str = "hand") -> Benchmark:
    """Items from (subset, n responses, extra columns); prompts and texts do not matter for the rules."""
    items = []
    for i, r in enumerate(rows):
        n = r.pop("k", 2)
        items.append({"item_id": f"{r.get('subset', 's')}:{i}", "subset": "s", "prompt": [{"role": "user", "content": f"q{i}"}],
                      "responses": [f"response {j} of item {i}" for j in range(n)], **r})
    return Benchmark(name=name, items=pd.DataFrame(items), rule=rule)


def _value(result: ev.Evaluation, subset: str, metric: str, model: str = "model", benchmark: str = "hand") -> float:
    t = result.table
    row = t[(t["model"] == model) & (t["benchmark"] == benchmark) & (t["subset"] == subset) & (t["metric"] == metric)]
    assert len(row) == 1, (subset, metric, row)
    return float(row["value"].iat[0])


def _run(bench: Benchmark, scores: list[list[float]], **kw) -> ev.Evaluation:
    return ev.evaluate({bench.name: scores}, [bench], n_boot=kw.pop("n_boot", 0), baselines=kw.pop("baselines", False),
                       published=False, **kw)


# ---------------------------------------------------------------- scoring rules, computed by hand


def test_rewardbench_sections_use_upstream_example_counts():
    names = (["alpacaeval-easy"] * 2 + ["mt-bench-easy"] * 2 + ["llmbar-natural"] * 2
             + ["xstest-should-refuse", "donotanswer"] + ["math-prm"] * 2 + ["hep-python"])
    rows = [{"subset": n} for n in names]
    bench = _bench("rewardbench", rows)
    right, wrong, tie = [1, 0], [0, 1], [1, 1]
    scores = [right, right, right, wrong, right, wrong, right, wrong, right, tie, right]
    res = _run(bench, scores)
    # Per subset: alpacaeval-easy 1, mt-bench-easy 1/2, llmbar-natural 1/2, xstest-should-refuse 1,
    # donotanswer 0, math-prm 1/2 (the tie counts as wrong), hep-python 1.
    assert _value(res, "math-prm", "accuracy") == 0.5
    chat = (100 * 1 + 28 * 0.5) / (100 + 28)
    chat_hard = 0.5
    safety = (154 * 1 + 136 * 0) / (154 + 136)  # upstream weight 154 for xstest-should-refuse since reward-bench #175
    reasoning = (984 * 0.5 + 164 * 1) / (984 + 164)  # math-prm up-weighted to 984
    assert _value(res, "Chat", "section") == pytest.approx(chat)
    assert _value(res, "Chat Hard", "section") == pytest.approx(chat_hard)
    assert _value(res, "Safety", "section") == pytest.approx(safety)
    assert _value(res, "Reasoning", "section") == pytest.approx(reasoning)
    assert _value(res, "all", "overall") == pytest.approx((chat + chat_hard + safety + reasoning) / 4)


def test_rm_bench_triangles_by_hand():
    # chosen styles score [3, 5, 7], rejected [4, 6, 2]; cell (i, j) = chosen_i > rejected_j:
    #   i=0: [0 0 1]   i=1: [1 0 1]   i=2: [1 1 1]
    # normal = diagonal (0+0+1)/3; hard = upper triangle (0+1+1)/3; easy = lower triangle (1+1+1)/3.
    rows = [{"k": 6, "subset": "chat", "domain": "chat"}, {"k": 6, "subset": "safety-refuse", "domain": "safety"},
            {"k": 6, "subset": "safety-response", "domain": "safety"}]
    bench = _bench("rm_bench", rows)
    perfect, hand, worst = [9, 9, 9, 0, 0, 0], [3, 5, 7, 4, 6, 2], [0, 0, 0, 9, 9, 9]
    res = _run(bench, [hand, perfect, worst])
    assert _value(res, "chat", "normal") == pytest.approx(1 / 3)
    assert _value(res, "chat", "hard") == pytest.approx(2 / 3)
    assert _value(res, "chat", "easy") == pytest.approx(1.0)
    assert _value(res, "chat", "average") == pytest.approx((1 + 1 / 3 + 2 / 3) / 3)
    # safety pools its two files (1 right + 1 wrong prompt -> 0.5 everywhere); "all" averages the domains.
    assert _value(res, "safety", "average") == pytest.approx(0.5)
    assert _value(res, "all", "hard") == pytest.approx((2 / 3 + 0.5) / 2)
    assert _value(res, "all", "average") == pytest.approx(((1 + 1 / 3 + 2 / 3) / 3 + 0.5) / 2)


def test_rewardbench2_best_of_4_gives_one_over_k_to_ties_at_the_top():
    bench = _bench("rewardbench2", [{"k": 4, "subset": "Factuality", "n_correct": 1, "raw_id": str(i)} for i in range(3)]
                   + [{"k": 4, "subset": "Focus", "n_correct": 1, "raw_id": "9"}])
    res = _run(bench, [[2, 2, 1, 0], [3, 1, 2, 0], [1, 3, 0, 0], [5, 1, 1, 1]])
    assert _value(res, "Factuality", "accuracy") == pytest.approx((0.5 + 1 + 0) / 3)
    assert _value(res, "all", "overall") == pytest.approx(((0.5 + 1 + 0) / 3 + 1) / 2)


def test_rewardbench2_ties_rule_by_hand():
    # rewardbench/utils.py::process_single_model. Prompt 0: ref correct [5] vs [1, 2] -> accurate, margin 3;
    # tied correct [6, 4] vs [3, 1] -> accurate, spread 2, margin 1. Prompt 1: ref [1] vs [2] -> wrong,
    # margin -1; tied [10, 9.5] vs [0] -> accurate, spread 0.5, margin 9.5.
    shapes = [(3, 1, "ref:0"), (4, 2, "tied:0"), (2, 1, "ref:1"), (3, 2, "tied:1")]
    rows = [{"k": k, "subset": "Ties", "n_correct": c, "raw_id": raw} for k, c, raw in shapes]
    rows.append({"k": 4, "subset": "Math", "n_correct": 1, "raw_id": "7"})
    bench = _bench("rewardbench2", rows)
    res = _run(bench, [[5, 1, 2], [6, 4, 3, 1], [1, 2], [10, 9.5, 0], [4, 3, 2, 1]])
    ref_acc, tied_acc = 0.5, 1.0
    pref = np.mean([False, True])  # tied margin > spread of the correct answers: 1 > 2, 9.5 > 0.5
    pref_hard = np.mean([False, False])  # min(ref margin, tied margin) > spread: min(3, 1) > 2, min(-1, 9.5) > 0.5
    margin = np.mean([math.tanh(min(3, 1) / 2 - 1), math.tanh(min(-1, 9.5) / 0.5 - 1)])
    ties = 0.3 * tied_acc + 0.3 * ref_acc + 0.2 * pref + 0.2 * pref_hard + 0.01 * margin
    assert _value(res, "Ties", "ref_acc") == ref_acc and _value(res, "Ties", "pref") == 0.5
    assert _value(res, "Ties", "margin") == pytest.approx(margin)
    assert _value(res, "Ties", "score") == pytest.approx(ties)
    assert _value(res, "all", "overall") == pytest.approx((ties + 1.0) / 2)  # mean over the domains present


def test_judgebench_both_orders_and_category_average_by_hand():
    labels = [("knowledge", "A>B"), ("knowledge", "B>A"), ("reasoning", "A>B"), ("math", "B>A"), ("coding", "A>B")]
    rows = [{"subset": s, "label": label} for s, label in labels]
    bench = _bench("judgebench", rows)
    # right, wrong, tie (A>B then flipped B>A: +1 - 1 = 0, not correct), right, right
    res = _run(bench, [[2, 1], [2, 1], [1, 1], [0, 3], [5, 4]])
    assert _value(res, "knowledge", "accuracy") == 0.5 and _value(res, "reasoning", "accuracy") == 0.0
    assert _value(res, "all", "category_average") == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert _value(res, "all", "accuracy") == pytest.approx(3 / 5)


def test_bon_curve_by_hand_and_by_enumeration():
    scores, correct = [0.9, 0.5, 0.1, 0.3], [0, 1, 1, 0]
    curve = ev.bon_curve([scores], [correct])
    # ranked by score: 0.9 (wrong), 0.5 (right), 0.3 (wrong), 0.1 (right)
    assert curve["accuracy"].tolist() == pytest.approx([0.5, 2 / 6, 1 / 4, 0.0])
    assert curve["oracle"].tolist() == pytest.approx([0.5, 1 - 1 / 6, 1.0, 1.0])
    rng = np.random.default_rng(1)
    s, c = rng.normal(size=7).round(1), rng.random(7) < 0.4  # rounding makes ties
    for n in range(1, 8):
        picks = []
        for subset in itertools.combinations(range(7), n):
            top = max(s[list(subset)])
            picks.append(np.mean([c[i] for i in subset if s[i] == top]))  # ties broken at random
        assert ev.bon_curve([s], [c], ns=[n])["accuracy"].iat[0] == pytest.approx(np.mean(picks))
    bench = _bench("bon", [{"k": 4, "correct": correct}])
    res = _run(bench, [scores])
    assert _value(res, "s", "accuracy") == pytest.approx(1 / 4)  # correct-over-incorrect pairs: only 0.5 > 0.3
    assert _value(res, "all", "bon@2") == pytest.approx(1 / 3)


def test_rmb_fixture_pairwise_and_bon_by_hand():
    bench = load_benchmark("rmb", FIXTURES / "rmb" / "RMB_dataset")
    assert bench.items.groupby("subset").size().to_dict() == {"harmlessness/bon": 1, "harmlessness/pairwise": 1,
                                                              "helpfulness/bon": 1, "helpfulness/pairwise": 2}
    order = {sid: i for i, sid in enumerate(bench.items["item_id"])}
    scores = [None] * len(bench.items)
    scores[order["helpfulness/pairwise:7989"]] = [2, 1]
    scores[order["helpfulness/pairwise:7990"]] = [1, 1]  # a tie is not a win
    scores[order["harmlessness/pairwise:1"]] = [0, 1]
    scores[order["helpfulness/bon:1679"]] = [3, 1, 2, 2.5]  # best above every loser
    scores[order["harmlessness/bon:12"]] = [2, 3, 1]  # one loser above the best fails the item
    res = _run(bench, scores)
    assert _value(res, "helpfulness/pairwise", "accuracy", benchmark="rmb") == 0.5
    assert _value(res, "all", "overall", benchmark="rmb") == pytest.approx((0.5 + 0 + 1 + 0) / 4)


def test_ppe_fixtures_preference_and_correctness():
    pref = load_benchmark("ppe_preference", FIXTURES / "ppe" / "human_preference")
    assert len(pref.items) == 2 and pref.notes == ["1 human-tie rows left out (no preferred response)"]
    assert pref.items["responses"].tolist() == [["Hi!", "Goodbye."], ["4", "5"]]  # the winner first
    corr = load_benchmark("ppe_correctness", FIXTURES / "ppe" / "correctness")
    assert corr.items.groupby("subset").size().to_dict() == {"gpqa": 1, "math": 2}
    scores = [[0.1, 0.9, 0.2, 0.3], [4, 3, 2, 1], [1, 3, 2, 4]]  # items: gpqa g1, math m1, math m2
    res = _run(corr, scores)
    # math m1: correct [4, 3] beat incorrect [2, 1] in 4/4 pairs, bon@N = 1; m2: correct [3, 4] vs [1, 2] -> 4/4.
    assert _value(res, "math", "accuracy", benchmark="ppe_correctness") == 1.0
    # gpqa: the one correct answer scores highest, so best-of-N is right whenever it is among the N: N/4.
    assert [_value(res, "gpqa", f"bon@{n}", benchmark="ppe_correctness") for n in (1, 2, 4)] == [0.25, 0.5, 1.0]
    assert _value(res, "all", "accuracy", benchmark="ppe_correctness") == 1.0


def test_fixture_loaders_read_the_upstream_formats():
    rb2 = load_benchmark("rewardbench2", FIXTURES / "rewardbench2")
    assert rb2.items["subset"].tolist() == ["Factuality", "Factuality", "Focus", "Ties", "Ties"]
    assert rb2.items["n_correct"].tolist() == [1, 1, 1, 1, 2] and rb2.items["responses"].map(len).tolist() == [4, 4, 4, 3, 4]
    rm = load_benchmark("rm_bench", FIXTURES / "rm_bench")
    assert rm.items.groupby("subset").size().to_dict() == {"chat": 2, "safety-refuse": 1, "safety-response": 1}
    assert set(rm.items["domain"]) == {"chat", "safety"}
    jb = load_benchmark("judgebench", FIXTURES / "judgebench")
    assert jb.items["subset"].tolist() == ["knowledge", "knowledge", "reasoning", "math", "coding"]
    assert load_benchmark("rm_bench", FIXTURES / "rm_bench", limit=1).items.groupby("subset").size().max() == 1


def test_missing_benchmark_names_the_path_and_the_dataset_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"rewardbench2.*'allenai/reward-bench-2' \(split 'test'\)") as err:
        load_benchmark("rewardbench2", data_dir=tmp_path)
    assert str(tmp_path / "rewardbench2") in str(err.value) and "offline" in str(err.value)
    with pytest.raises(FileNotFoundError, match="Zhou-Zoey/RMB-Reward-Model-Benchmark"):
        load_benchmark("rmb", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="ScalerLab/JudgeBench"):
        load_benchmark("judgebench", tmp_path / "nowhere.jsonl")
    with pytest.raises(ValueError, match="choose one of"):
        load_benchmark("rewardbench3")


def test_hub_is_used_when_online_and_its_failure_is_explained(tmp_path, monkeypatch):
    import datasets

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    rows = [{"pair_id": "p1", "source": "livecodebench", "question": "Q?", "response_A": "a", "response_B": "b", "label": "A>B"}]
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda dataset_id, split, **kw: calls.append((dataset_id, split)) or rows)
    bench = load_benchmark("judgebench", data_dir=tmp_path)
    assert calls == [("ScalerLab/JudgeBench", "gpt")] and bench.items["subset"].tolist() == ["coding"]
    assert bench.source == "hf://ScalerLab/JudgeBench"

    def unreachable(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(FileNotFoundError, match=r"judgebench.*the Hub failed \(ConnectionError: no route to host\)"):
        load_benchmark("judgebench", data_dir=tmp_path)


def test_bad_record_names_file_row_and_field(tmp_path):
    bad = tmp_path / "chat_filtered.json"
    bad.write_text('[{"id": "1", "prompt": "p", "chosen": ["a", "b"], "rejected": ["c", "d", "e"]}]')
    with pytest.raises(PairError, match=r"chat_filtered.json: row 1: field 'chosen/rejected': RM-Bench needs 3 styles"):
        load_benchmark("rm_bench", bad)


def test_precomputed_scores_are_checked_against_the_items():
    bench = _bench("pairwise", [{}, {}])
    with pytest.raises(ValueError, match=r"item 's:1' has 3 scores for 2 responses"):
        _run(bench, [[1, 0], [1, 0, 0]])
    with pytest.raises(KeyError, match="no precomputed scores for benchmark 'hand'"):
        ev.evaluate({"other": [[1, 0]]}, [bench], n_boot=0, published=False)
    flat = _run(bench, np.array([1.0, 0.0, 0.0, 1.0]))  # one flat array in item order works too
    assert _value(flat, "all", "accuracy") == 0.5


# ---------------------------------------------------------------- evaluate, baselines, bootstrap


class CountingRM:
    """A stand-in reward model: "Right" responses score high; records every score_sides call."""

    fingerprint = "counting"

    def __init__(self, bonus: float = 1.0):
        self.calls, self.bonus = [], bonus

    def score_sides(self, prompts, responses, cfg, *, progress=True):
        self.calls.append(len(responses))
        return np.array([self.bonus * ("Right" in r) + len(r) / 1000 for r in responses]), np.zeros(len(responses), bool)


def test_evaluate_scores_each_benchmark_in_one_call_side_by_side_with_baselines():
    rm, other = CountingRM(), CountingRM(bonus=0.0)
    benches = [load_benchmark("rm_bench", FIXTURES / "rm_bench"), load_benchmark("rewardbench2", FIXTURES / "rewardbench2")]
    res = ev.evaluate({"mine": rm, "length-ish": other}, benches, cfg=object(), n_boot=100)
    assert rm.calls == [24, 19]  # 4 prompts x 6 responses; 4+4+4+3+4 RewardBench 2 responses
    head = res.headline().set_index(["benchmark", "model"])["value"]
    assert head[("rm_bench", "mine")] == 1.0 and head[("rm_bench", "random")] == 0.5
    # fixture: chosen and rejected of one style have equal word counts (coin flips), detailed > concise
    assert head[("rm_bench", "longer wins")] == pytest.approx((1 + 0.5 + 0) / 3)
    # the fixture has chat and safety only: the RM-Bench headline is partial, so no published number beside it
    assert not any(m.startswith("Skywork") for b, m in head.index if b == "rm_bench")
    assert res.headline().query("benchmark == 'rm_bench'")["partial"].all() and any("missing code, math" in n for n in benches[0].notes)
    random_rb2 = res.table[(res.table["model"] == "random") & (res.table["subset"] == "Factuality")]["value"].iat[0]
    assert random_rb2 == 0.25  # best-of-4 by chance
    scored = res.table[res.table["source"] == "scored"]
    assert ((scored["ci_low"] <= scored["value"] + 1e-12) & (scored["value"] <= scored["ci_high"] + 1e-12)).all()
    ex = res.examples[(res.examples["model"] == "mine") & (res.examples["benchmark"] == "rm_bench")]
    assert len(ex) == 4 and ex["m02"].eq(1.0).all() and ex["lengths"].map(len).eq(6).all()


def test_evaluate_runs_a_real_hf_reward_model(tiny_decoder):
    from workbench.models.scoring import ScoreConfig, load_reward_model

    rm = load_reward_model(tiny_decoder, device="cpu")
    bench = load_benchmark("judgebench", FIXTURES / "judgebench")
    res = ev.evaluate({"tiny": rm}, [bench], cfg=ScoreConfig(max_length=64, batch_size=4), n_boot=20, progress=False)
    ex = res.examples.query("model == 'tiny'")
    assert len(ex) == 5 and ex["scores"].map(len).eq(2).all() and np.isfinite(np.concatenate(ex["scores"].to_list())).all()
    assert res.headline().query("model == 'tiny'")["metric"].tolist() == ["accuracy"]  # run_judge.py's pooled Overall
    # every scored row states its conditions (issue #23); baselines and published rows have none
    rows = res.table[res.table["model"] == "tiny"]
    assert rows["max_length"].eq(64).all() and rows["dtype"].eq(
        "bf16" if bf16_supported(rm.device) else "fp32").all()
    assert rows["truncated"].eq(int(ex["truncated"].sum())).all()
    assert res.table.loc[res.table["model"] == "longer wins", "max_length"].isna().all()


def test_random_baseline_of_ties_is_exact_where_closed_form():
    res = ev.evaluate({"x": {"rewardbench2": [[1, 0, 0, 0]] * 3 + [[1, 0, 0], [1, 1, 0, 0]]}},
                      [load_benchmark("rewardbench2", FIXTURES / "rewardbench2")], n_boot=0, published=False)
    rnd = res.table[(res.table["model"] == "random") & (res.table["subset"] == "Ties")].set_index("metric")["value"]
    assert rnd["ref_acc"] == pytest.approx(1 / 3) and rnd["tied_acc"] == pytest.approx(1 / math.comb(4, 2))


class ConstantScorer:
    """Every response gets the same score; with coin-flip ties it must score exactly the random baseline."""

    fingerprint, ties = "constant", "random"

    def score_sides(self, prompts, responses, cfg, *, progress=True):
        return np.zeros(len(responses)), np.zeros(len(responses), bool)


def test_a_constant_scorer_with_coin_flip_ties_scores_the_random_baseline():
    names = {"rm_bench": "rm_bench", "judgebench": "judgebench", "rmb": "rmb/RMB_dataset",
             "ppe_preference": "ppe/human_preference", "ppe_correctness": "ppe/correctness"}
    benches = [load_benchmark(name, FIXTURES / path) for name, path in names.items()]
    res = ev.evaluate({"constant": ConstantScorer()}, benches, cfg=object(), n_boot=0, baselines=True, published=False)
    wide = res.table.pivot_table(index=["benchmark", "subset", "metric"], columns="model", values="value")
    pd.testing.assert_series_equal(wide["constant"], wide["random"], check_names=False)
    strict = ev.evaluate({"x": {"rmb": [[0, 0, 0], [5, 5, 5, 5], [0, 0], [1, 1], [2, 2]]}}, [benches[2]], n_boot=0,
                         baselines=False, published=False)
    assert strict.table.query("subset == 'all'")["value"].iat[0] == 0.0  # the upstream rule: every tie loses


def test_bootstrap_is_reproducible_and_degenerate_when_all_right():
    bench = _bench("pairwise", [{} for _ in range(50)])
    scores = [[1, 0]] * 35 + [[0, 1]] * 15
    a, b = _run(bench, scores, n_boot=300, seed=3), _run(bench, scores, n_boot=300, seed=3)
    pd.testing.assert_frame_equal(a.table, b.table)
    lo, hi = a.table[["ci_low", "ci_high"]].iloc[-1]
    assert lo < 0.7 < hi and hi - lo < 0.35
    perfect = _run(bench, [[1, 0]] * 50, n_boot=200)
    assert perfect.table[["ci_low", "value", "ci_high"]].iloc[-1].tolist() == [1.0, 1.0, 1.0]


def test_paired_bootstrap_detects_a_real_difference_and_not_a_fake_one():
    bench = _bench("pairwise", [{} for _ in range(200)])
    rng = np.random.default_rng(0)
    good = [[1, 0]] * 200
    coin = [[1, 0] if rng.random() < 0.5 else [0, 1] for _ in range(200)]
    res = ev.evaluate({"good": {"hand": good}, "coin": {"hand": coin}, "twin": {"hand": good}}, [bench], n_boot=0,
                      baselines=False, published=False)
    test = ev.paired_bootstrap(res, "good", "coin", benchmark="hand", n_boot=1000)
    assert test["diff"] == pytest.approx(1 - np.mean([s[0] > s[1] for s in coin]))
    assert test["ci_low"] > 0.3 and test["p_value"] < 0.01
    same = ev.paired_bootstrap(res, "good", "twin", benchmark="hand", n_boot=200)
    assert same["diff"] == 0 and same["p_value"] == 1.0
    with pytest.raises(KeyError, match="no per-item values for model 'nobody'"):
        ev.paired_bootstrap(res, "good", "nobody", benchmark="hand")


def test_decontamination_reports_exact_and_ngram_overlap():
    long_q = "please explain in detail how the water cycle moves moisture between oceans clouds rivers and the soil every year"
    rows = [{"subset": "a"}, {"subset": "a"}, {"subset": "b"}]
    bench = _bench("pairwise", rows)
    bench.items["prompt"] = [[{"role": "user", "content": "What is 2+2?"}], [{"role": "user", "content": long_q}],
                             [{"role": "user", "content": "Unrelated question about cats."}]]
    train = ["what is 2 + 2", "Intro text. " + long_q.upper() + " Thanks!"]
    table = ev.decontamination(train, [bench]).set_index("subset")
    assert table.loc["a", ["n", "exact", "ngram"]].tolist() == [2, 1, 1]  # 2+2 exact (too short for a 13-gram)
    assert table.loc["all", "exact_frac"] == pytest.approx(1 / 3) and table.loc["b", "ngram"] == 0
    flags = ev.decontamination(train, [bench], per_item=True)
    assert flags["ngram"].tolist() == [False, True, False]


# ---------------------------------------------------------------- best-of-N generator


def test_arithmetic_bon_is_verifiable_and_a_verifier_beats_length():
    bench = make_arithmetic_bon(n_problems=60, n_candidates=8, seed=0)
    for prompt, responses, correct in bench.items[["prompt", "responses", "correct"]].itertuples(index=False):
        assert correct == [check_arithmetic(prompt[0]["content"], r) for r in responses]
    assert 0.2 < np.mean([np.mean(c) for c in bench.items["correct"]]) < 0.5
    assert check_arithmetic("What is 12 * 3?", "so the answer is 36.")
    assert not check_arithmetic("What is 12 * 3?", "the answer is 35")
    res = ev.evaluate({"verifier": ev.ArithmeticVerifierScorer(noise=0.3)}, [bench], n_boot=100, published=False)
    curves = ev.bon_frame(res.table, "arithmetic_bon").pivot(index="n", columns="model", values="accuracy")
    assert curves["verifier"].is_monotonic_increasing and curves["verifier"].iat[-1] > 0.9
    assert curves["random"].nunique() == 1 and curves["longer wins"].iat[-1] < curves["verifier"].iat[-1]
    direct = ev.bon_curve(res.examples.query("model == 'verifier'")["scores"].tolist(), bench.items["correct"].tolist())
    assert direct["accuracy"].to_numpy() == pytest.approx(curves["verifier"].to_numpy())


def test_bon_benchmark_wraps_any_frame():
    frame = pd.DataFrame({"prompt": ["q1", "q2"], "responses": [["a", "b", "c"], ["d", "e"]], "correct": [[1, 0, 0], [0, 1]]})
    bench = bon_benchmark(frame, name="mine")
    res = _run(bench, [[3, 2, 1], [1, 2]])
    assert res.table.query("subset == 'mine' and metric == 'bon@3'")["value"].iat[0] == 1.0  # only item 1 has 3 candidates
    with pytest.raises(ValueError, match="lacks columns"):
        bon_benchmark(frame.drop(columns="correct"))


# ---------------------------------------------------------------- published scores, plots


def test_published_scores_match_the_paper_table():
    pub = load_published_scores()
    row = pub[pub["model"] == "Skywork-Reward-V2-Llama-3.1-8B"].set_index(["benchmark", "subset"])["value"]
    assert row[("rewardbench", "all")] == pytest.approx(0.964) and row[("judgebench", "all")] == pytest.approx(0.80)
    assert row[("rmb", "helpfulness/bon")] == pytest.approx(0.823)
    assert set(pub["benchmark"]) - {"paper_average"} <= set(SPECS)
    assert pub.groupby("benchmark").size()["rewardbench"] == 9  # 8 Skywork-Reward-V2 models + INF-ORM
    for bench in set(pub["benchmark"]) - {"paper_average", "judgebench"}:  # every published row lands on a headline row
        assert (pub.query("benchmark == @bench and subset == 'all'")["metric"] == ev.headline(bench)[1]).all()
    # JudgeBench: the paper reports the mean of the four categories, not run_judge.py's pooled Overall (the headline)
    assert (pub.query("benchmark == 'judgebench'")["metric"] == "category_average").all()


def test_plots_return_figures_with_one_trace_per_model():
    bench = make_arithmetic_bon(n_problems=10, n_candidates=4)
    rm = load_benchmark("rm_bench", FIXTURES / "rm_bench")
    pair = _bench("pairwise", [{} for _ in range(30)], name="pairs")
    pair.items["responses"] = [["Right " + "word " * (i % 7), "word " * 3] for i in range(30)]
    rng = np.random.default_rng(0)
    res = ev.evaluate({"verifier": ev.ArithmeticVerifierScorer(), "other": ev.ArithmeticVerifierScorer(seed=1)},
                      [bench], n_boot=50)
    res_rm = ev.evaluate(CountingRM(), [rm, pair], cfg=object(), n_boot=50)
    assert isinstance(bp.benchmark_bars(res_rm.headline()), go.Figure)
    bars = bp.benchmark_bars(res_rm.headline()).to_dict()["data"]
    assert [t["name"] for t in bars] == ["model", "longer wins", "random"]  # RM-Bench fixture is partial: no published
    assert list(bars[0]["x"]) == ["rm_bench (partial)", "pairs"]
    levels = bp.rm_bench_levels(res_rm.table).to_dict()["data"]
    assert [t["name"] for t in levels] == ["model", "longer wins", "random"]
    assert list(levels[0]["x"]) == ["easy", "normal", "hard", "average"]
    curves = bp.bon_curves(ev.bon_frame(res.table, "arithmetic_bon")).to_dict()["data"]
    assert {t["name"] for t in curves} == {"verifier", "other", "longer wins", "random"}
    direct = bp.bon_curves(ev.bon_curve(rng.random((5, 4)), rng.random((5, 4)) < 0.5)).to_dict()["data"]
    assert [t["name"] for t in direct] == ["model", "oracle (any correct)", "random pick"]
    assert len(bp.reward_distributions(res_rm.examples).to_dict()["data"]) == 4  # (model, longer wins) x (chosen, rejected)
    assert any("binned mean" in t["name"] for t in bp.length_bias(res_rm.examples, benchmark="pairs").to_dict()["data"])
    cal = bp.calibration(ev.calibration_bins(res_rm.examples)).to_dict()["data"]
    assert cal[0]["name"] == "perfectly calibrated" and len(cal) == 3


def test_calibration_bins_by_hand():
    examples = pd.DataFrame({"model": "m", "scores": [[2.0, 0.0], [0.0, 2.0], [0.0, 0.1], [0.1, 0.0]]})
    bins = ev.calibration_bins(examples, bins=2)
    p = 1 / (1 + math.exp(-2))
    high = bins[bins["confidence"] > 0.8].iloc[0]
    assert high["confidence"] == pytest.approx(p) and high["accuracy"] == 0.5 and high["n"] == 2
    assert bins["ece"].iat[0] == pytest.approx(0.5 * abs(p - 0.5) + 0.5 * abs(1 / (1 + math.exp(-0.1)) - 0.5))


# ---------------------------------------------------------------- the real shared data


def _pair_frame(bench: Benchmark) -> pd.DataFrame:
    return pd.DataFrame({"chosen": bench.items["responses"].str[0], "rejected": bench.items["responses"].str[1]})


def test_real_data_counts_and_longer_wins_baseline(shared_data):
    rb = load_benchmark("rewardbench", data_dir=shared_data)
    counts = rb.items.groupby("subset").size().to_dict()
    expected = dict(ev.REWARDBENCH_EXAMPLE_COUNTS, **{"math-prm": 447, "xstest-should-refuse": 154, "xstest-should-respond": 250})
    assert len(rb.items) == 2985 and counts == expected
    llmbar = load_benchmark("llmbar", data_dir=shared_data)
    assert llmbar.items["subset"].str.startswith("LLMBar/").all() and len(llmbar.items) == 419  # CaseStudy/Processed skipped
    rm = load_benchmark("rm_bench", data_dir=shared_data)
    assert rm.items.groupby("subset").size().to_dict() == {"chat": 129, "code": 228, "safety-refuse": 284, "safety-response": 157}
    hh = load_benchmark("hh_rlhf", data_dir=shared_data)
    assert hh.items.groupby("subset").size().to_dict() == {"harmless-base": 2308, "helpful-base": 2348, "helpful-online": 1132,
                                                           "helpful-rejection-sampled": 2717}

    res = ev.evaluate(ev.LengthScorer(), [rb, llmbar, rm, hh], n_boot=100)
    head = res.headline().query("model == 'longer wins'").set_index("benchmark")["value"]
    # rewardbench with the 154/250 xstest weights; llmbar = mean of its five sets (adversarial sets defeat length)
    assert head.round(4).to_dict() == {"rewardbench": 0.4479, "llmbar": 0.298, "rm_bench": 0.4632, "hh_rlhf": 0.5242}
    lw = res.table.query("model == 'longer wins'")
    rmb_levels = lw.query("benchmark == 'rm_bench' and subset == 'all'").set_index("metric")["value"]
    assert rmb_levels.round(4).to_dict() == {"easy": 0.8373, "normal": 0.4218, "hard": 0.1306, "average": 0.4632}
    # The same verdicts as workbench.data.overview.longer_wins (equal word counts: 0.5), subset by subset.
    for bench in (rb, llmbar, hh):
        verdicts = pd.Series(longer_wins(_pair_frame(bench)), index=bench.items["subset"]).groupby(level=0).mean()
        ours = lw.query("benchmark == @bench.name and metric == 'accuracy' and subset != 'all'").set_index("subset")["value"]
        pd.testing.assert_series_equal(ours.sort_index(), verdicts.sort_index(), check_names=False)
    # LLMBar Natural + Adversarial are exactly RewardBench's llmbar-* pairs (data_cards/README.md).
    overlap = ev.decontamination(llmbar.items[llmbar.items["subset"].str.startswith("LLMBar/")], [rb]).set_index("subset")
    assert overlap.loc["llmbar-natural", "exact_frac"] == 1.0 and overlap.loc["llmbar-adver-neighbor", "exact_frac"] == 1.0
    assert overlap.loc["all", "exact"] >= 419 and overlap.loc["hep-python", "exact"] == 0
