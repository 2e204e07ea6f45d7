"""The review log: derived labels, undo, durability under SIGKILL, concurrent writers, agreement, export."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import make_pairs

from workbench.curation.review import (
    OracleReviewer,
    ReviewStore,
    export_reviewed,
    fleiss_kappa,
    people_vs_judge,
    review_with,
    reviewer_agreement,
)
from workbench.data import files as io
from workbench.data.splits import inject_label_noise


def test_labels_are_derived_from_the_log_and_undo_is_an_event(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    store.record("p1", "keep", reviewer="ana")
    store.record("p2", "flip", reviewer="ana", note="rejected is right")
    store.record("p2", "drop", reviewer="ana")  # changes her mind: the latest counts
    store.record("p3", "skip", reviewer="ana")
    store.record("p4", "keep", reviewer="ana")
    undo_id = store.undo("ana")  # cancels p4
    assert undo_id is not None
    labels = store.labels().set_index("pair_id")
    assert labels["decision"].to_dict() == {"p1": "keep", "p2": "drop"}  # skip is no label, p4 undone
    assert store.undo("ana", pair_id="p2") is not None  # undo on a pair: its previous decision comes back
    assert store.labels().set_index("pair_id").loc["p2", "decision"] == "flip"
    ev = store.events()
    assert len(ev) == 7 and (ev["decision"] == "undo").sum() == 2  # nothing deleted
    assert store.reviewed_ids("ana") == {"p1", "p2", "p3"}
    assert store.progress("ana") == {"keep": 1, "flip": 1, "drop": 0, "skip": 1}
    with pytest.raises(ValueError, match="Unknown decision"):
        store.record("p1", "maybe", reviewer="ana")
    with pytest.raises(ValueError, match="reviewer name is empty"):
        store.record("p1", "keep", reviewer=" ")


def test_gold_tier_overrides_silver_and_majority_decides(tmp_path):
    store = ReviewStore(tmp_path / "r.sqlite")
    store.record("p1", "flip", reviewer="judge", kind="llm")
    store.record("p1", "keep", reviewer="ana")
    store.record("p2", "flip", reviewer="judge", kind="llm")
    for name, d in (("ana", "keep"), ("bo", "flip"), ("cy", "flip")):
        store.record("p3", d, reviewer=name)
    labels = store.labels().set_index("pair_id")
    assert labels.loc["p1", ["decision", "tier"]].tolist() == ["keep", "gold"]
    assert labels.loc["p2", ["decision", "tier"]].tolist() == ["flip", "silver"]
    assert labels.loc["p3", ["decision", "n_votes", "unanimous"]].tolist() == ["flip", 3, False]


WRITER = textwrap.dedent("""
    import sys
    from workbench.curation.review import ReviewStore
    store = ReviewStore(sys.argv[1])
    for i in range(int(sys.argv[3])):
        event = store.record(f"pair{i}", "flip" if i % 2 else "keep", reviewer=sys.argv[2], shown={"i": i})
        print(event, f"pair{i}", flush=True)   # acknowledged only after the commit returned
""")


def test_every_acknowledged_decision_survives_sigkill(tmp_path):
    db = tmp_path / "review.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), "ana", "100000"], stdout=subprocess.PIPE, text=True)
    acked = []
    try:
        while len(acked) < 60:
            line = proc.stdout.readline()
            assert line, "writer ended early"
            acked.append(line.split())
        os.kill(proc.pid, signal.SIGKILL)  # part-way through a review, no cleanup
    finally:
        proc.kill()
        proc.wait()
    events = ReviewStore(db).events()
    stored = set(zip(events["event_id"].astype(str), events["pair_id"]))
    assert all(tuple(a) in stored for a in acked)
    assert len(events) >= len(acked)


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    db = tmp_path / "review.sqlite"
    ReviewStore(db).close()  # create the schema first
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), name, "150"], stdout=subprocess.PIPE, text=True)
             for name in ("ana", "bo")]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    events = ReviewStore(db).events()
    assert len(events) == 300 and events.groupby("reviewer").size().to_dict() == {"ana": 150, "bo": 150}
    assert sum(len(o.splitlines()) for o in outs) == 300 and events["event_id"].is_unique


def test_fleiss_kappa_worked_example():
    # Fleiss (1971) / Wikipedia: 10 items, 14 raters, 5 categories -> kappa = 0.210
    table = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                      [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)


def test_agreement_between_reviewers_and_with_the_judge(tmp_path):
    store = ReviewStore(tmp_path / "r.sqlite")
    ana = ["keep", "keep", "flip", "flip", "keep", "drop"]
    bo = ["keep", "flip", "flip", "flip", "keep", "drop"]
    judge = ["keep", "flip", "flip", "keep", "keep", "skip"]
    for i in range(6):
        store.record(f"p{i}", ana[i], reviewer="ana")
        store.record(f"p{i}", bo[i], reviewer="bo")
        store.record(f"p{i}", judge[i], reviewer="judge", kind="llm")
    agree = reviewer_agreement(store.effective(), ["ana", "bo"])
    row = agree["pairwise"].iloc[0]
    # hand: 5/6 agree; marginals ana (k3,f2,d1), bo (k2,f3,d1): pe = (6+6+1)/36 -> kappa = (5/6 - 13/36)/(1 - 13/36)
    assert row["agreement"] == pytest.approx(5 / 6)
    assert row["cohen_kappa"] == pytest.approx((5 / 6 - 13 / 36) / (1 - 13 / 36))
    assert agree["disagreements"]["pair_id"].tolist() == ["p1"]
    assert agree["fleiss_kappa"] is not None and agree["n_common"] == 6
    cats = pd.Series({f"p{i}": ("chat" if i < 3 else "coding") for i in range(6)})
    vs = people_vs_judge(store.effective(), cats).set_index("task_category")
    # people (gold tier, mode of ana+bo; ties -> last sorted): judge decided 5 pairs (p5 skipped)
    assert vs.loc["all", "n"] == 5
    assert set(vs.index) == {"all", "chat", "coding"}


def test_oracle_answers_truth_with_its_error_rate_and_is_marked_simulated(tmp_path):
    pairs = pd.DataFrame({"pair_id": [f"p{i}" for i in range(2000)], "chosen": "a", "rejected": "b"})
    noisy = inject_label_noise(pairs, 0.3, seed=1)
    assert noisy["noise_injected"].sum() == 600 and (noisy.loc[noisy["noise_injected"], "chosen"] == "b").all()
    perfect = OracleReviewer(error_rate=0.0).decide(noisy)
    assert [d.decision == "flip" for d in perfect] == noisy["noise_injected"].tolist()
    sloppy = OracleReviewer(name="sloppy", error_rate=0.1, seed=3).decide(noisy)
    wrong = np.mean([(d.decision == "flip") != f for d, f in zip(sloppy, noisy["noise_injected"])])
    assert 0.08 < wrong < 0.12
    store = ReviewStore(tmp_path / "r.sqlite")
    review_with(OracleReviewer(), noisy.head(100), store, iteration=0)
    review_with(OracleReviewer(), noisy.head(150), store, iteration=1)  # resumes: the first 100 are not asked again
    ev = store.events()
    assert len(ev) == 150 and set(ev["kind"]) == {"oracle"} and ev["note"].str.contains("simulated").all()
    with pytest.raises(ValueError, match="label_is_true"):
        OracleReviewer().decide(pairs)


def test_export_carries_provenance_through_write_and_reload(tmp_path):
    pairs = make_pairs(4)
    ids = pairs["pair_id"].tolist()
    store = ReviewStore(tmp_path / "r.sqlite")
    store.record(ids[0], "keep", reviewer="ana", shown={"pulled_by": "g1", "similarity": 0.8})
    store.record(ids[1], "flip", reviewer="ana", note="swap", shown={"pulled_by": "g2", "similarity": 0.7})
    store.record(ids[2], "drop", reviewer="judge", kind="llm")
    out = export_reviewed(pairs, store)
    io.write_pairs(out, tmp_path / "reviewed.parquet")
    back = io.load_pairs(tmp_path / "reviewed.parquet").set_index("pair_id")
    assert len(back) == 3
    assert back.loc[ids[1], "chosen"] == pairs.set_index("pair_id").loc[ids[1], "rejected"]
    assert back.loc[ids[1], ["label_state", "label_by", "review_note", "pulled_by"]].tolist() == [
        "flipped", "review:ana", "swap", "g2"]
    assert back.loc[ids[0], "similarity"] == pytest.approx(0.8)
    assert back.loc[ids[2], ["label_state", "review_tier", "review_kinds"]].tolist() == ["dropped", "silver", "llm"]
    assert export_reviewed(pairs, store, tiers=("gold",))["pair_id"].tolist() == ids[:2]
