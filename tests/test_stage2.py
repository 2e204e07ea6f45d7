"""Stage 2: the keep / flip / drop rule on hand-computed scores, provenance through export and reload,
and the curation experiment on the real shared data (smoke size)."""

import numpy as np
import pytest
from conftest import make_pairs

from workbench.curation.review import ReviewStore, apply_labels
from workbench.curation.stage2 import (
    Stage2Config,
    consistency_decisions,
    curate,
    curated_training_set,
    decision_counts,
    human_verified,
    recycle_discarded,
    run_stage2,
    truth_metrics,
)
from workbench.data import files as io
from workbench.data.splits import inject_label_noise
from workbench.runs.folder import start_run
from workbench.runs.stores import EmbeddingCache, ResultStore

# (p_stage1, p_gold, judge) -> decision and rule under the defaults (threshold 0.5, no band, no recycling)
CASES = [
    (0.9, 0.8, None, "keep", "gold RM + Stage-1 RM agree"),
    (0.9, 0.3, None, "drop", "gold RM disagrees"),
    (0.9, 0.5, None, "drop", "gold RM unsure"),  # p = 0.5 is not > 0.5
    (0.3, 0.8, "chosen", "keep", "gold RM + judge agree"),
    (0.3, 0.8, "rejected", "drop", "neither judge nor Stage-1 RM agrees"),
    (0.3, 0.8, "tie", "drop", "neither judge nor Stage-1 RM agrees"),
    (0.3, 0.8, None, "drop", "neither judge nor Stage-1 RM agrees"),
    (0.5, 0.9, "chosen", "keep", "gold RM + judge agree"),  # p = 0.5 is not confident: the judge decides
    (0.2, 0.1, "rejected", "drop", "gold RM disagrees"),
    (0.9, 0.8, "rejected", "keep", "gold RM + Stage-1 RM agree"),  # confident pairs are not judged
]


def test_keep_flip_drop_rule_on_hand_computed_scores():
    ids = [f"p{i}" for i in range(len(CASES))]
    out = consistency_decisions(ids, [c[0] for c in CASES], [c[1] for c in CASES], [c[2] for c in CASES])
    assert out["pair_id"].tolist() == ids
    assert out["stage2_decision"].tolist() == [c[3] for c in CASES]
    assert out["stage2_rule"].tolist() == [c[4] for c in CASES]
    assert out["confident"].tolist() == [p > 0.5 for p, *_ in CASES]


def test_margin_band_makes_near_half_scores_unsure():
    band = Stage2Config(margin_band=0.1)
    out = consistency_decisions(["a", "b", "c", "d"], [0.58, 0.65, 0.65, 0.9], [0.9, 0.55, 0.61, 0.4], None, band)
    # a: Stage-1 p=0.58 is inside the band -> not confident, no judge -> drop
    # b: gold p=0.55 inside the band -> gold unsure -> drop; c: both outside -> keep; d: gold 0.4 < 0.4? no -> unsure
    assert out["stage1_vote"].tolist() == [0, 1, 1, 1]
    assert out["gold_vote"].tolist() == [1, 0, 1, 0]
    assert out["stage2_decision"].tolist() == ["drop", "drop", "keep", "drop"]
    with pytest.raises(ValueError, match="margin_band"):
        Stage2Config(margin_band=0.5)
    with pytest.raises(ValueError, match="recycle"):
        Stage2Config(recycle="some")


def test_recycling_flips_all_or_only_the_consistent_reverse():
    p1, pg, j = [0.9, 0.2, 0.2, 0.9], [0.8, 0.1, 0.7, 0.3], [None, None, None, None]
    everything = consistency_decisions(list("abcd"), p1, pg, j, Stage2Config(recycle="all"))
    assert everything["stage2_decision"].tolist() == ["keep", "flip", "flip", "flip"]
    consistent = consistency_decisions(list("abcd"), p1, pg, j, Stage2Config(recycle="consistent"))
    # b: gold and Stage-1 both prefer the rejected -> flip; c: gold agrees with the label -> drop; d: only gold reverses
    assert consistent["stage2_decision"].tolist() == ["keep", "flip", "drop", "drop"]
    assert consistent.loc[1, "stage2_rule"].startswith("recycled: gold RM disagrees")


def test_lengths_must_match():
    with pytest.raises(ValueError, match="same length"):
        consistency_decisions(["a", "b"], [0.9], [0.9, 0.1])


@pytest.fixture
def pool_and_review(tmp_path):
    pool = inject_label_noise(make_pairs(8, seed=1), 0.25, seed=0)
    store = ReviewStore(tmp_path / "review.sqlite")
    store.record(pool.loc[0, "pair_id"], "flip", reviewer="ana", note="rejected is right")
    store.record(pool.loc[1, "pair_id"], "keep", reviewer="ana")
    human = apply_labels(pool[pool["pair_id"].isin(pool.loc[:1, "pair_id"])], store.labels())
    return pool, human


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_provenance_survives_export_and_reload(pool_and_review, tmp_path, suffix):
    pool, human = pool_and_review
    rest = pool.loc[2:, "pair_id"].tolist()  # 6 pairs decided by the rule
    decisions = consistency_decisions(rest, [0.9, 0.9, 0.2, 0.2, 0.9, 0.2], [0.8, 0.2, 0.9, 0.1, 0.7, 0.9],
                                      [None, None, "chosen", "rejected", None, None], Stage2Config(recycle="consistent"))
    curated = curate(pool, decisions, human_labelled=human, by="stage2:stage1=iter_2;gold=gold_rm;judge=j")
    path = io.write_pairs(curated, tmp_path / f"curated.{suffix}")
    back = io.load_pairs(path).set_index("pair_id")
    assert len(back) == len(pool)  # nothing lost: dropped pairs are in the file, flagged
    orig = pool.set_index("pair_id")
    want = {rest[0]: ("keep", "verified"), rest[1]: ("drop", "dropped"), rest[2]: ("keep", "verified"),
            rest[3]: ("flip", "flipped"), rest[4]: ("keep", "verified"), rest[5]: ("drop", "dropped")}
    for pid, (decision, state) in want.items():
        row = back.loc[pid]
        assert (row["stage2_decision"], row["label_state"]) == (decision, state)
        assert row["label_by"] == row["stage2_by"] == "stage2:stage1=iter_2;gold=gold_rm;judge=j"
        swapped = decision == "flip"
        assert (row["chosen"] == orig.loc[pid, "rejected"]) == swapped and (row["chosen"] == orig.loc[pid, "chosen"]) != swapped
    assert back.loc[rest[3], "stage2_rule"].startswith("recycled: gold RM disagrees")
    assert back.loc[rest[3], "judge_label"] == "rejected" and back.loc[rest[0], "judge_label"] == ""
    assert back.loc[rest[0], "p_stage1"] == pytest.approx(0.9) and back.loc[rest[0], "p_gold"] == pytest.approx(0.8)
    # the person's decisions win over the rule and keep their own provenance
    h0 = back.loc[pool.loc[0, "pair_id"]]
    assert (h0["stage2_decision"], h0["stage2_rule"], h0["label_state"]) == ("flip", "human review", "flipped")
    assert h0["chosen"] == pool.loc[0, "rejected"] and h0["review_note"] == "rejected is right"
    assert h0["stage2_by"] == "review:ana" and h0["label_by"] == "review:ana"
    train = curated_training_set(io.load_pairs(path))
    assert sorted(train["stage2_decision"].value_counts().items()) == [("flip", 2), ("keep", 4)]


def test_recycle_discarded_and_truth_metrics_by_hand(pool_and_review):
    pool, human = pool_and_review
    noisy = pool["noise_injected"].to_numpy()  # 2 of 8 flipped by the noise
    rest = pool.loc[2:, "pair_id"].tolist()
    # the rule: flag (drop) exactly rows 2..7 where noisy, keep the others
    p_gold = [0.1 if noisy[i] else 0.9 for i in range(2, 8)]
    decisions = consistency_decisions(rest, [0.9] * 6, p_gold)
    curated = curate(pool, decisions, human_labelled=human)
    m = truth_metrics(curated)
    flagged = set(pool.loc[2:, "pair_id"][noisy[2:]]) | {pool.loc[0, "pair_id"]}  # row 0 flipped by the person
    truly = set(pool.loc[noisy, "pair_id"])
    tp = len(flagged & truly)
    assert m["flag_count"] == len(flagged)
    assert m["flag_precision"] == pytest.approx(tp / len(flagged)) and m["flag_recall"] == pytest.approx(tp / len(truly))
    assert m["pool_label_accuracy"] == pytest.approx(0.75)
    recycled = recycle_discarded(curated)
    was_dropped = curated["stage2_decision"] == "drop"
    assert (recycled.loc[was_dropped, "stage2_decision"] == "flip").all()
    assert (recycled.loc[was_dropped, "chosen"].to_numpy() == curated.loc[was_dropped, "rejected"].to_numpy()).all()
    # dropped pairs were exactly the noisy ones, so recycling them makes every label true
    assert recycled.loc[was_dropped, "label_is_true"].all()
    counts = decision_counts(curated, "source")
    assert counts.to_numpy().sum() == len(pool)


def test_gold_rm_trains_on_gold_plus_human_keeps_and_flips(pool_and_review):
    pool, human = pool_and_review
    gold = make_pairs(5, seed=9)
    verified = human_verified(gold, human)
    assert len(verified) == 5 + 2
    flipped = verified[verified["pair_id"] == pool.loc[0, "pair_id"]].iloc[0]
    assert flipped["chosen"] == pool.loc[0, "rejected"]  # the corrected label trains the gold RM


def test_run_stage2_curates_a_planted_pool(tmp_path):
    """A tiny planted task with a trained Stage-1 RM: Stage 2 keeps mostly true labels and drops most injected flips."""
    from workbench.models import scoring, training

    run = start_run(tmp_path / "run", {}, step="t")
    cache = EmbeddingCache(run, "minilm")
    pairs = make_pairs(260, seed=5)
    pool = inject_label_noise(pairs.iloc[:160].reset_index(drop=True), 0.25, seed=0)
    gold = pairs.iloc[160:].reset_index(drop=True)
    s1 = training.train_reward_model(pairs.iloc[200:].reset_index(drop=True), None, output_dir=tmp_path / "s1", cache=cache,
                                     cfg=training.RMTrainConfig(kind="embedding_head", head_epochs=20), progress=False)
    stage1_rm = scoring.load_reward_model(s1.model_dir, embedding_cache=cache)
    res = run_stage2(pool, gold, stage1_rm, Stage2Config(head_epochs=20), output_dir=tmp_path / "s2", cache=cache)
    assert len(res.decisions) == len(pool) and len(res.curated) == len(pool)
    m = truth_metrics(res.curated)
    assert m["curated_label_accuracy"] > 0.95 > m["pool_label_accuracy"] and m["flag_recall"] > 0.8
    assert (res.gold_model_dir / "workbench_rm.json").exists()
    assert set(res.curated["label_by"]) == {"stage2:stage1=stage1-best;gold=s2/gold_rm"}


WORDS = ["apple", "river", "guitar", "planet", "window", "coffee", "tiger", "castle"]  # make_pairs' topics


def _topic(prompt) -> str:
    return next(w for w in WORDS if w in prompt[-1]["content"])


class StubJudge:
    """An LLM judge stand-in: right on the planted task (the chosen answer names the prompt's topic); records
    the few-shot examples it was given."""

    fingerprint = "stub-judge"

    def __init__(self):
        self.seen = {}

    def judge_batch(self, pairs, *, attributes=None, examples=None):
        out = []
        for _, pair in pairs.iterrows():
            self.seen[pair["pair_id"]] = list((examples or {}).get(pair["pair_id"], ()))
            right = _topic(pair["prompt"]) in pair["chosen"]
            out.append({"judge_label": "chosen" if right else "rejected", "votes_chosen": int(right),
                        "votes_rejected": int(not right), "n_valid": 1, "model_labels": {}, "raw": []})
        return out


class CoinRM:
    """A reward model that knows nothing: a fixed pseudo-random reward per response text."""

    name = fingerprint = "coin"

    def score_sides(self, prompts, responses, cfg=None, *, progress=True):
        import hashlib

        r = [int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) / 2**32 for t in responses]
        return np.array(r, dtype=np.float32), np.zeros(len(r), dtype=bool)


def test_stage2_judge_sees_similar_verified_pairs_and_rescues_unsure_ones(tmp_path):
    """Unsure pairs go to the judge with their 8 most similar human-verified pairs as few-shot examples."""
    from workbench.curation.review import JudgeReviewer

    def embed(frame):  # topic one-hot: same-topic pairs are the nearest
        return np.stack([np.eye(len(WORDS))[WORDS.index(_topic(p))] for p in frame["prompt"]]).astype(np.float32)

    run = start_run(tmp_path / "run", {}, step="t")
    cache = EmbeddingCache(run, "minilm")
    pairs = make_pairs(260, seed=5)
    pool = inject_label_noise(pairs.iloc[:160].reset_index(drop=True), 0.25, seed=0)
    gold = pairs.iloc[160:].reset_index(drop=True)
    stage1_rm = CoinRM()  # a Stage-1 RM that knows nothing: about half the pool is not confident
    stub = StubJudge()
    judge = JudgeReviewer(stub, ResultStore(tmp_path / "judge.sqlite", "judge"), name="stub")
    res = run_stage2(pool, gold, stage1_rm, Stage2Config(head_epochs=20), judge=judge, output_dir=tmp_path / "s2",
                     cache=cache, embed=embed)
    judged = res.decisions[~res.decisions["confident"]]
    assert len(judged) > 0 and set(stub.seen) == set(judged["pair_id"])
    topic_of = dict(zip(pool["pair_id"], pool["prompt"].map(_topic)))
    gold_topics = gold["prompt"].map(_topic).value_counts()
    for pid, examples in stub.seen.items():
        same = min(8, int(gold_topics[topic_of[pid]]))  # all same-topic verified pairs come first
        assert len(examples) == 8 and [_topic(ex["prompt"]) for ex in examples[:same]] == [topic_of[pid]] * same
    assert (judged["judge_label"].isin(["chosen", "rejected"])).all()
    rescued = res.decisions[res.decisions["stage2_rule"] == "gold RM + judge agree"]
    assert len(rescued) > 0 and (rescued["judge_label"] == "chosen").all()
    assert set(res.curated["stage2_by"]) == {"stage2:stage1=stage1-best;gold=s2/gold_rm;judge=stub"}


def test_experiment_cli_rejects_bad_options_by_name(capsys):
    from workbench.cli import main

    with pytest.raises(SystemExit):
        main(["experiment", "--seeds", "0,x"])
    assert "--seeds" in capsys.readouterr().err
    assert main(["experiment", "--noise-rate", "0.7"]) == 2  # one line, no traceback (--debug shows it)
    assert "noise rate must be in" in capsys.readouterr().err
    with pytest.raises(ValueError, match="noise rate must be in"):
        main(["--debug", "experiment", "--noise-rate", "0.7"])
