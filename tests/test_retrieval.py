"""Error-driven adaptive retrieval: the k rule, topic neighbours, dedup/ranking, exact vs faiss."""

import numpy as np
import pytest

from workbench.curation.retrieval import NeighborIndex, RetrievalConfig, k_rule_table, neighbours_to_pull, recall_at_k, retrieve_for_gold


def test_k_rule_matches_the_paper():
    p = np.array([0.0, 0.3, 0.5, 0.51, 0.6, 0.75, 0.875, 0.9, 0.99, 1.0])
    # p <= 0.5 -> k_max; else ceil(8 * (1 - p)): 0.51 -> ceil(3.92)=4, 0.75 -> 2, 0.875 -> 1, 0.99 -> 1, 1.0 -> 0
    assert neighbours_to_pull(p, 8).tolist() == [8, 8, 8, 4, 4, 2, 1, 1, 1, 0]
    assert neighbours_to_pull([0.2, 0.7], 3).tolist() == [3, 1]
    table = k_rule_table(np.array([0.1, 0.2, 0.9]), 8)
    assert table.set_index("k")["gold_pairs"].to_dict() == {1: 1, 8: 2}


def _topic_pool(rng, n_topics=4, per_topic=30, dim=16):
    centres = rng.normal(size=(n_topics, dim)) * 5
    topics = np.repeat(np.arange(n_topics), per_topic)
    emb = centres[topics] + rng.normal(size=(len(topics), dim))
    return centres, topics, emb


def test_neighbours_of_a_wrong_prediction_come_from_its_topic():
    rng = np.random.default_rng(0)
    centres, topics, pool = _topic_pool(rng)
    pool_ids = [f"pool{i}" for i in range(len(pool))]
    gold = centres[[2, 0]] + rng.normal(size=(2, 16)) * 0.5
    # gold 0 (topic 2) is wrong -> 8 neighbours; gold 1 (topic 0) right with p=0.9 -> 1 neighbour
    cands = retrieve_for_gold(["g_wrong", "g_sure"], np.array([0.2, 0.9]), gold, pool_ids, pool)
    assert cands.groupby("pulled_by").size().to_dict() == {"g_wrong": 8, "g_sure": 1}
    topic_of = dict(zip(pool_ids, topics))
    assert {topic_of[i] for i in cands.loc[cands["pulled_by"] == "g_wrong", "pair_id"]} == {2}
    assert {topic_of[i] for i in cands.loc[cands["pulled_by"] == "g_sure", "pair_id"]} == {0}
    # ranked: the worst error's pulls first, by similarity within it
    assert cands["rank"].tolist() == list(range(9))
    first = cands[cands["pulled_by"] == "g_wrong"]
    assert first["rank"].max() < cands.loc[cands["pulled_by"] == "g_sure", "rank"].min()
    assert np.all(np.diff(first["similarity"].to_numpy()) <= 1e-6)


def test_a_pair_pulled_twice_is_listed_once_with_its_strongest_puller():
    pool = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    gold = np.array([[1.0, 0.1], [0.9, 0.2]])
    cands = retrieve_for_gold(["a", "b"], np.array([0.4, 0.1]), gold, ["x", "y", "z"], pool, RetrievalConfig(k_max=2))
    assert sorted(cands["pair_id"]) == ["x", "z"]  # both gold pairs pull x and z
    assert set(cands["pulled_by"]) == {"b"}  # b (p=0.1) is the worse error
    assert cands["pullers"].tolist() == [2, 2]


def test_confident_gold_pairs_pull_nothing_and_empty_pools_are_fine():
    assert retrieve_for_gold(["a"], np.array([1.0]), np.ones((1, 2)), ["x"], np.ones((1, 2))).empty
    assert retrieve_for_gold(["a"], np.array([0.1]), np.ones((1, 2)), [], np.zeros((0, 2))).empty
    with pytest.raises(ValueError, match="differ in length"):
        retrieve_for_gold(["a", "b"], np.array([0.1]), np.ones((1, 2)), ["x"], np.ones((1, 2)))


def test_faiss_index_matches_exact_search():
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(3000, 32)).astype(np.float32)
    queries = rng.normal(size=(50, 32)).astype(np.float32)
    exact = NeighborIndex(pool, RetrievalConfig(index="exact"))
    approx = NeighborIndex(pool, RetrievalConfig(index="faiss"))
    assert (exact.kind, approx.kind) == ("exact", "faiss")
    s_e, i_e = exact.search(queries, 8)
    s_a, i_a = approx.search(queries, 8)
    assert recall_at_k(i_a, i_e) >= 0.95
    # exact similarities are true cosines, best first
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    p = pool / np.linalg.norm(pool, axis=1, keepdims=True)
    np.testing.assert_allclose(s_e[:, 0], (q @ p.T).max(axis=1), rtol=1e-5)
    assert NeighborIndex(pool, RetrievalConfig(exact_max_pool=100)).kind == "faiss"
    # a pool smaller than k: missing slots are -1
    _, idx = NeighborIndex(pool[:3]).search(queries[:2], 5)
    assert (idx[:, 3:] == -1).all() and (idx[:, :3] >= 0).all()


def test_reviewed_pairs_are_skipped_for_the_next_nearest():
    pool = np.array([[1.0, 0.0], [0.95, 0.1], [0.9, 0.2], [0.0, 1.0]])
    ids = ["a", "b", "c", "d"]
    cfg = RetrievalConfig(k_max=2)
    assert retrieve_for_gold(["g"], np.array([0.1]), np.array([[1.0, 0.0]]), ids, pool, cfg)["pair_id"].tolist() == ["a", "b"]
    cands = retrieve_for_gold(["g"], np.array([0.1]), np.array([[1.0, 0.0]]), ids, pool, cfg, exclude={"a", "b"})
    assert cands["pair_id"].tolist() == ["c", "d"]
    assert retrieve_for_gold(["g"], np.array([0.1]), np.array([[1.0, 0.0]]), ids, pool, cfg, exclude=set(ids)).empty
