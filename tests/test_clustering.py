"""Error maps: the erring topic ranks first, keywords, selection, cached embeddings, figures."""

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.curation import plots
from workbench.curation.clustering import (
    ClusterConfig,
    ErrorMap,
    IdentityReducer,
    c_tf_idf_keywords,
    embed_pairs,
    error_frame,
    select_pairs,
    summarize_clusters,
)
from workbench.data import files as io
from workbench.data.pairs import records_to_pairs
from workbench.runs.folder import start_run
from workbench.runs.stores import EmbeddingCache

TOPICS = {
    "cats": ["my cat", "kitten food", "cat litter", "cat sleeping"],
    "python": ["python list sort", "python dictionary", "python function bug", "python import error"],
    "cooking": ["bake bread", "cook pasta", "roast chicken", "soup recipe"],
}


def _topic_pairs(n_per_topic=30, seed=0):
    rng = np.random.default_rng(seed)
    recs, topics = [], []
    for topic, seeds in TOPICS.items():
        for i in range(n_per_topic):
            recs.append({"prompt": f"Question about {seeds[i % 4]} number {i}?", "chosen": f"good {topic} {i}",
                         "rejected": f"bad {topic} {i}"})
            topics.append(topic)
    pairs = records_to_pairs(list(enumerate(recs, 1)), where="mem", source="mem")[0]
    pairs["split"] = np.where(rng.random(len(pairs)) < 0.5, "gold", "train")
    pairs["topic"] = topics
    return pairs


class FakeEmbedder:
    """Deterministic vectors: one well-separated blob per topic word; counts encode calls."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls, self.texts = 0, 0

    def get_embedding_dimension(self):
        return 8

    def encode(self, texts, **kw):
        self.calls += 1
        self.texts += len(texts)
        out = []
        for t in texts:
            k = 0 if "cat" in t or "kitten" in t else 1 if "python" in t else 2
            rng = np.random.default_rng(abs(hash(t)) % 2**32)
            v = rng.normal(0, 0.05, 8)
            v[k] += 3.0
            out.append(v / np.linalg.norm(v))
        return np.array(out, dtype=np.float32)


def test_the_erring_topic_has_the_highest_error_rate():
    pairs = _topic_pairs()
    emb = embed_pairs(pairs, model=FakeEmbedder(), progress=False)
    cfg = ClusterConfig(min_cluster_size=10, cluster_dims=8)
    emap = ErrorMap(cfg, reducer_2d=IdentityReducer(2), reducer_kd=IdentityReducer(8)).fit(emb)
    # The RM errs only on "python" pairs (plus nowhere else).
    margin = np.where(pairs["topic"] == "python", -1.0, 1.0) * np.linspace(0.5, 1.5, len(pairs))
    scores = pd.DataFrame({"pair_id": pairs["pair_id"], "margin": margin, "p": 1 / (1 + np.exp(-margin))})
    frame = error_frame(pairs, scores, emap.xy, emap.clusters, cfg=cfg).assign(topic=pairs["topic"].to_numpy())
    summary = summarize_clusters(frame, emb)
    assert (summary["cluster"] >= 0).sum() == 3
    worst = summary.iloc[0]
    assert worst["gold_error_rate"] == 1.0 and "python" in worst["keywords"]
    assert set(frame[frame["cluster"] == worst["cluster"]]["topic"]) == {"python"}
    assert summary.iloc[1]["gold_error_rate"] == 0.0
    picked = select_pairs(frame, clusters=[int(worst["cluster"])])
    assert picked and set(pairs.set_index("pair_id").loc[picked, "topic"]) == {"python"}
    assert set(pairs.set_index("pair_id").loc[picked, "split"]) == {"train"}
    fig = plots.error_map(frame, color="correct")
    names = {t.name for t in fig.data}
    assert any("RM error" in n for n in names) and any("agrees" in n for n in names)
    assert all("margin:" in t.text[0] for t in fig.data)
    bars = plots.cluster_error_bars(summary)
    assert bars.data[0].y[0] == 1.0


def test_rerun_reuses_cached_embeddings(tmp_path):
    pairs = _topic_pairs(5)
    run = start_run(tmp_path / "run")
    enc = FakeEmbedder()
    first = embed_pairs(pairs, cache=EmbeddingCache(run, "fake"), model=enc, progress=False)
    assert enc.texts == len(pairs)
    again = embed_pairs(pairs, cache=EmbeddingCache(run, "fake"), model=enc, progress=False)
    assert enc.texts == len(pairs) and enc.calls == 1  # no encoder call at all on the re-run
    np.testing.assert_allclose(first, again, atol=1e-3)  # float16 on disk
    more = pd.concat([pairs, _topic_pairs(6).iloc[[5]]], ignore_index=True)
    embed_pairs(more, cache=EmbeddingCache(run, "fake"), model=enc, progress=False)
    assert enc.texts == len(pairs) + 1  # only the new pair


def test_c_tf_idf_keywords():
    kw = c_tf_idf_keywords(["cats purr softly", "cats sleep", "python code compiles", "python code runs"], [0, 0, 1, 1], top_k=2)
    assert kw[0][0] == "cats" and kw[1][0] in ("python", "code")


def test_map_selection_and_config_errors():
    frame = pd.DataFrame({"pair_id": ["a", "b", "c"], "cluster": [0, 1, 1], "split": ["train", "gold", "train"]})
    assert select_pairs(frame, point_indices=[0, 1]) == ["a"]
    assert select_pairs(frame, clusters=[1], split=None) == ["b", "c"]
    with pytest.raises(ValueError, match="min_cluster_size must be >= 2"):
        ClusterConfig(min_cluster_size=1)
    with pytest.raises(ValueError, match="Unknown clusterer"):
        ClusterConfig(clusterer="kmeans")
    with pytest.raises(ValueError, match="need at least"):
        ErrorMap(ClusterConfig(), reducer_2d=IdentityReducer(), reducer_kd=IdentityReducer()).fit(np.zeros((4, 3)))


def test_selection_widget_collects_pair_ids():
    from types import SimpleNamespace

    frame = pd.DataFrame({"pair_id": ["a", "b"], "x": [0.0, 1.0], "y": [0.0, 1.0], "cluster": [0, 0], "split": ["train", "train"],
                          "prompt": [[{"role": "user", "content": "q"}]] * 2, "chosen": ["c", "c"], "rejected": ["r", "r"],
                          "margin": [1.0, -1.0], "correct": [True, False]})
    fig, selection = plots.error_map_widget(frame)
    trace = fig.data[0]
    selection(trace, SimpleNamespace(point_inds=[0]), None)
    assert selection.pair_ids == [trace.customdata[0][0]]


@pytest.mark.slow
def test_real_data_code_errors_form_the_worst_cluster(shared_data):
    """Real pairs, real MiniLM + UMAP + HDBSCAN: RewardBench code prompts vs HH-RLHF chit-chat; the RM
    is made to err only on the code pairs, and the worst cluster must be made of code pairs."""
    rb, _ = io.read_pairs(shared_data / "rewardbench" / "filtered.jsonl.gz", keep=["subset"])
    hh, _ = io.read_pairs(shared_data / "hh_rlhf" / "helpful-base" / "test.jsonl.gz", strict=False)
    code = rb[rb["subset"] == "hep-python"].head(60).assign(topic="code")
    chat = hh.head(60).assign(topic="chat")
    pairs = pd.concat([code, chat], ignore_index=True)
    pairs["split"] = ["gold" if i % 2 else "train" for i in range(len(pairs))]
    emb = embed_pairs(pairs, progress=False)
    cfg = ClusterConfig(min_cluster_size=8, n_neighbors=10, cluster_dims=3)
    emap = ErrorMap(cfg).fit(emb)
    margin = np.where(pairs["topic"] == "code", -1.0, 1.0)
    scores = pd.DataFrame({"pair_id": pairs["pair_id"], "margin": margin, "p": 1 / (1 + np.exp(-margin))})
    frame = error_frame(pairs, scores, emap.xy, emap.clusters, cfg=cfg).assign(topic=pairs["topic"].to_numpy())
    summary = summarize_clusters(frame, emb)
    worst = summary.iloc[0]
    members = frame[frame["cluster"] == worst["cluster"]]
    assert worst["gold_error_rate"] >= 0.9 and (members["topic"] == "code").mean() >= 0.9
    assert summary[~summary["noise"]]["gold_error_rate"].min() <= 0.1
