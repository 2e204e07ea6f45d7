"""The Stage-1 loop on a tiny planted task: seed round, retrieval rounds, oracle flips, exact resume."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_pairs

from workbench.curation.clustering import embed_pairs
from workbench.curation.review import OracleReviewer, ReviewStore
from workbench.curation.stage1 import Stage1Config, Stage1Data, next_queue, run_stage1, training_set
from workbench.data.splits import inject_label_noise
from workbench.runs.folder import start_run
from workbench.runs.stores import EmbeddingCache


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    run = start_run(tmp_path_factory.mktemp("s1"), {}, step="t")
    pairs = make_pairs(200, seed=3)
    pool = inject_label_noise(pairs.iloc[:120].reset_index(drop=True), 0.25, seed=0)
    gold, test = pairs.iloc[120:160].reset_index(drop=True), pairs.iloc[160:].reset_index(drop=True)
    emb = embed_pairs(pairs, cache=EmbeddingCache(run, "pairs"), progress=False)
    return Stage1Data(pool=pool, gold=gold, test=test, pool_emb=emb[:120], gold_emb=emb[120:160]), run


def test_loop_labels_seed_then_retrieved_pairs_and_resumes_exactly(data, tmp_path):
    d, run = data
    cfg = Stage1Config(iterations=2, seed_size=30, labels_per_iteration=20, head_epochs=5)
    store = ReviewStore(tmp_path / "review.sqlite")
    cache = EmbeddingCache(run, "minilm")
    res = run_stage1(d, store, OracleReviewer(), cfg, output_dir=tmp_path / "models", cache=cache, progress=False)
    h = res.history.set_index("iteration")
    assert list(h.index) == [0, 1, 2, 3] and h["final"].tolist() == [False, False, False, True]
    assert h.loc[0, "labelled"] == 30 and h.loc[1, "train_pairs"] == 30
    assert (h.loc[[1, 2], "queued"] <= 20).all() and (h.loc[[1, 2], "retrieved"] >= h.loc[[1, 2], "queued"]).all()
    # a perfect oracle flips exactly the injected noise it is shown; training labels end clean
    rounds = h.loc[[0, 1, 2]]
    assert (rounds["flips_correct"] == rounds["flips_found"]).all() and (rounds["flips_found"] == rounds["noisy_in_queue"]).all()
    assert h["flips_found"].sum() > 0 and h.loc[3, "train_label_error_rate"] == 0.0
    assert h.loc[3, "train_pairs"] == h.loc[[0, 1, 2], "labelled"].sum()
    assert 0.0 <= h.loc[3, "gold_accuracy"] <= 1.0 and res.best_model_dir.exists()
    # pulled pairs carry provenance in the log
    ev = store.events()
    later = ev[ev["iteration"] >= 1]
    assert later["shown"].map(lambda s: s.get("pulled_by") in set(d.gold["pair_id"])).all()
    assert (ev["kind"] == "oracle").all()
    # every labelled pair flipped back to truth
    assert training_set(res.labelled)["label_is_true"].all()
    # resume: the same store gives the same rounds and asks the oracle nothing new
    n_events = len(ev)
    again = run_stage1(d, store, OracleReviewer(), cfg, output_dir=tmp_path / "models2", cache=cache, progress=False)
    assert len(store.events()) == n_events
    cols = ["train_pairs", "queued", "labelled", "flips_found"]
    assert again.history[cols].equals(res.history[cols])
    np.testing.assert_allclose(again.history["gold_accuracy"], res.history["gold_accuracy"])


def test_interactive_queue_starts_with_the_seed_then_retrieves(data, tmp_path):
    d, run = data
    cfg = Stage1Config(seed_size=10, labels_per_iteration=8, head_epochs=3)
    store = ReviewStore(tmp_path / "r.sqlite")
    queue, info = next_queue(d, store, cfg, output_dir=tmp_path / "m", cache=EmbeddingCache(run, "minilm"))
    assert info["kind"] == "seed" and len(queue) == 10 and (queue["pulled_by"] == "seed").all()
    for pid in queue["pair_id"]:
        store.record(pid, "keep", reviewer="ana", iteration=0)
    queue, info = next_queue(d, store, cfg, output_dir=tmp_path / "m", cache=EmbeddingCache(run, "minilm"))
    assert info["kind"] == "retrieval" and info["round"] == 1 and 0 < len(queue) <= 8
    assert not set(queue["pair_id"]) & set(store.labels()["pair_id"])
    assert {"score_chosen", "p", "pulled_by", "similarity", "puller_prompt"} <= set(queue.columns)


def test_stage1_on_real_hh_pairs_finds_injected_noise_and_pulls_same_topic(shared_data, tmp_path):
    """Real HH-RLHF conversations (demo build, smoke size): the loop runs, the oracle's flips are the injected
    noise, and a wrong gold pair pulls pool pairs more similar to it than random pool pairs are."""
    from workbench.data.demo import build_demo_pairs, demo_config

    pairs = build_demo_pairs(shared_data, demo_config(smoke=True)).pairs
    run = start_run(tmp_path / "run", {}, step="t")
    pool = inject_label_noise(pairs[pairs["split"] == "train"].reset_index(drop=True), 0.2, seed=0)
    gold = pairs[pairs["split"] == "gold"].reset_index(drop=True)
    emb = embed_pairs(pd.concat([pool[gold.columns], gold], ignore_index=True), cache=EmbeddingCache(run, "p"),
                      progress=False)
    d = Stage1Data(pool=pool, gold=gold, pool_emb=emb[:len(pool)], gold_emb=emb[len(pool):])
    cfg = Stage1Config(iterations=1, seed_size=40, labels_per_iteration=30, head_epochs=5)
    store = ReviewStore(tmp_path / "r.sqlite")
    res = run_stage1(d, store, OracleReviewer(), cfg, output_dir=tmp_path / "m", cache=EmbeddingCache(run, "minilm"),
                     progress=False)
    h = res.history.set_index("iteration")
    assert h.loc[[0, 1], "flips_found"].tolist() == h.loc[[0, 1], "noisy_in_queue"].tolist()
    assert h.loc[2, "train_label_error_rate"] == 0.0 and h.loc[2, "train_pairs"] == 40 + h.loc[1, "labelled"]
    queue = res.queues[1]
    assert len(queue) > 0
    # retrieved pairs are nearer their puller than the pool on average
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    gold_row = {pid: len(pool) + i for i, pid in enumerate(gold["pair_id"])}
    pool_row = {pid: i for i, pid in enumerate(pool["pair_id"])}
    sims = [unit[gold_row[g]] @ unit[pool_row[p]] for g, p in zip(queue["pulled_by"], queue["pair_id"])]
    baseline = (unit[len(pool):] @ unit[:len(pool)].T).mean()
    assert np.mean(sims) > baseline + 0.1
