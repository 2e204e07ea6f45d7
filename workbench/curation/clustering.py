"""Where does the reward model err? Embeddings of (conversation, attributes), a 2-D map, error clusters.

The paper embeds ``(x, a)`` (conversation plus attributes) to find pairs similar to gold errors. Here the
same embeddings are reduced with UMAP (to 2-D for display, to a few dimensions for clustering) and
clustered with HDBSCAN; each cluster gets the RM's error rate on gold pairs, mean margin, share of
low-confidence pairs (``p`` near 0.5), dominant attributes, c-TF-IDF keywords and its most central
prompts. For large sets UMAP is fitted on a sample and the rest is transformed.

Not here: retrieval of similar unverified pairs (the Stage-1 module) and plotting (`workbench.curation.plots`).
Results are descriptive: clusters depend on the embedder and on UMAP/HDBSCAN settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.data.schema import PairFrame, topic_text
from workbench.models.embedding import embed_texts

CLUSTERERS = ("fast_hdbscan", "hdbscan", "sklearn")


@dataclass(frozen=True)
class ClusterConfig:
    """UMAP and HDBSCAN settings of an error map."""

    n_neighbors: int = 15  # larger keeps more global structure in the map
    min_dist: float = 0.05
    cluster_dims: int = 5  # UMAP dimensions HDBSCAN clusters in (2-D maps over-merge)
    min_cluster_size: int = 15
    min_samples: int | None = None
    fit_sample: int = 20_000  # UMAP is fitted on at most this many points; the rest is transformed
    clusterer: str = "fast_hdbscan"  # fastest in benchmarks/RESULTS.md; same clusters as the others
    low_confidence_band: float = 0.1  # |p - 0.5| <= band counts as low confidence
    seed: int = 0

    def __post_init__(self) -> None:
        if self.min_cluster_size < 2:
            raise ValueError(f"min_cluster_size must be >= 2, got {self.min_cluster_size}; HDBSCAN needs >= 2 points.")
        if self.clusterer not in CLUSTERERS:
            raise ValueError(f"Unknown clusterer {self.clusterer!r}; choose one of {list(CLUSTERERS)}.")
        if self.cluster_dims < 2:
            raise ValueError(f"cluster_dims must be >= 2, got {self.cluster_dims}.")


class IdentityReducer:
    """A reducer that keeps the first ``n_components`` columns: lets tests and smoke runs skip UMAP."""

    def __init__(self, n_components: int = 2):
        self.n_components = n_components

    def fit(self, x: np.ndarray) -> IdentityReducer:
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)[:, : self.n_components]


def pair_text(prompt: Sequence[dict[str, str]], tags: dict[str, Any] | None = None) -> str:
    """The text embedded for a pair: its topic (first and last user turn) plus its attributes."""
    text = topic_text(prompt)
    if tags and isinstance(tags.get("task_category"), str):
        wanted = tags.get("desired_attributes")
        attrs = ", ".join(list(wanted)) if wanted is not None else ""  # a numpy array when read from parquet
        text += f"\n[{tags['task_category']}; {tags.get('objectivity')}; {tags.get('controversiality')}; {attrs}]"
    return text


def embed_pairs(pairs: PairFrame, tags: pd.DataFrame | None = None, *, cache: Any = None, model_name: str = "",
                model: Any = None, progress: bool = True) -> np.ndarray:
    """(n_pairs, dim) embeddings of ``(conversation, attributes)``; cached texts are not encoded again."""
    by_id = {} if tags is None else tags.set_index("pair_id").to_dict("index")
    texts = [pair_text(p, by_id.get(pid)) for pid, p in zip(pairs["pair_id"], pairs["prompt"])]
    return embed_texts(texts, model=model, model_name=model_name, cache=cache, progress=progress)


def _umap(n_components: int, cfg: ClusterConfig, *, will_transform: bool = False) -> Any:
    """A UMAP reducer; ``will_transform``: new points will be placed into it after the fit.

    Why the flag: below 4,096 fitted points UMAP takes its "small data" path, whose ``transform`` computes every
    distance to the fitted points through a Python-level metric call (6M calls, ~15 s for 3,000 points onto 2,000).
    Forcing the approximate (NN-descent) path makes that transform ~10x faster with the numba cache warm.
    """
    import umap

    return umap.UMAP(n_components=n_components, n_neighbors=cfg.n_neighbors, min_dist=cfg.min_dist, metric="cosine",
                     random_state=cfg.seed, low_memory=True, force_approximation_algorithm=will_transform)


def _clusterer(cfg: ClusterConfig) -> Any:
    if cfg.clusterer == "fast_hdbscan":
        import fast_hdbscan

        return fast_hdbscan.HDBSCAN(min_cluster_size=cfg.min_cluster_size, min_samples=cfg.min_samples)
    if cfg.clusterer == "hdbscan":
        import hdbscan

        return hdbscan.HDBSCAN(min_cluster_size=cfg.min_cluster_size, min_samples=cfg.min_samples)
    from sklearn.cluster import HDBSCAN

    return HDBSCAN(min_cluster_size=cfg.min_cluster_size, min_samples=cfg.min_samples)


@dataclass
class ErrorMap:
    """Fitted reducers + cluster labels; ``fit`` once, ``transform`` new points into the same map."""

    cfg: ClusterConfig
    reducer_2d: Any = None
    reducer_kd: Any = None
    xy: np.ndarray | None = None
    clusters: np.ndarray | None = None

    def fit(self, embeddings: np.ndarray) -> ErrorMap:
        """Fit UMAP (on a sample when large), transform everything, cluster in ``cluster_dims`` dimensions."""
        x = np.asarray(embeddings, dtype=np.float32)
        if len(x) < max(self.cfg.min_cluster_size, 3):
            raise ValueError(f"need at least {max(self.cfg.min_cluster_size, 3)} points to map, got {len(x)}.")
        rng = np.random.default_rng(self.cfg.seed)
        sample = x if len(x) <= self.cfg.fit_sample else x[rng.choice(len(x), self.cfg.fit_sample, replace=False)]
        transform = sample is not x  # the points outside the sample are placed by transform
        self.reducer_2d = self.reducer_2d or _umap(2, self.cfg, will_transform=transform)
        self.reducer_kd = self.reducer_kd or _umap(self.cfg.cluster_dims, self.cfg, will_transform=transform)
        self.reducer_2d.fit(sample)
        self.reducer_kd.fit(sample)
        self.xy = self._transform(self.reducer_2d, x, sample)
        low = self._transform(self.reducer_kd, x, sample)
        self.clusters = np.asarray(_clusterer(self.cfg).fit_predict(low), dtype=int)
        return self

    @staticmethod
    def _transform(reducer: Any, x: np.ndarray, sample: np.ndarray) -> np.ndarray:
        if sample is x and hasattr(reducer, "embedding_"):
            return np.asarray(reducer.embedding_)  # UMAP's own coordinates for the points it was fitted on
        return np.asarray(reducer.transform(x))


def c_tf_idf_keywords(docs: Sequence[str], labels: Sequence[int], *, top_k: int = 6) -> dict[int, list[str]]:
    """Keywords per cluster, class-based TF-IDF (BERTopic's c-TF-IDF): a cluster is one big document.

    Example: two clusters about cats and code -> ``{0: ["cat", ...], 1: ["python", ...]}``.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    frame = pd.DataFrame({"doc": list(docs), "label": list(labels)})
    joined = frame.groupby("label")["doc"].apply(" ".join)
    vec = CountVectorizer(stop_words="english", min_df=1, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b")
    try:
        counts = vec.fit_transform(joined.to_numpy()).toarray().astype(float)
    except ValueError:  # only stop words
        return {int(k): [] for k in joined.index}
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    idf = np.log(1 + counts.sum(axis=1).mean() / np.maximum(counts.sum(axis=0), 1))
    scores = tf * idf
    words = np.array(vec.get_feature_names_out())
    return {int(label): words[np.argsort(-scores[i])[:top_k]].tolist() for i, label in enumerate(joined.index)}


def error_frame(pairs: PairFrame, scores: pd.DataFrame, xy: np.ndarray, clusters: np.ndarray, *,
                tags: pd.DataFrame | None = None, cfg: ClusterConfig = ClusterConfig()) -> pd.DataFrame:
    """One row per pair: split, map position, cluster, margin, p, correct, low_confidence and tags."""
    extra = [c for c in ("construction", "source") if c in pairs.columns]
    frame = pairs[["pair_id", "split", "prompt", "chosen", "rejected", *extra]].copy()
    frame = frame.merge(scores[["pair_id", "margin", "p"]], on="pair_id", how="left")
    frame["x"], frame["y"], frame["cluster"] = xy[:, 0], xy[:, 1], clusters
    frame["correct"] = frame["margin"] > 0
    frame["low_confidence"] = (frame["p"] - 0.5).abs() <= cfg.low_confidence_band
    if tags is not None:
        frame = frame.merge(tags[["pair_id", "task_category", "objectivity", "controversiality"]], on="pair_id", how="left")
    return frame


def summarize_clusters(frame: pd.DataFrame, embeddings: np.ndarray | None = None, *, n_central: int = 3,
                       top_k: int = 6) -> pd.DataFrame:
    """Per cluster: size, gold pairs, gold error rate, mean margin, low-confidence share, dominant
    category, keywords and the most central prompts; sorted by gold error rate (worst first).

    Noise (cluster -1) is kept as its own row so nothing disappears from the table.
    """
    docs = frame["prompt"].map(topic_text)
    keywords = c_tf_idf_keywords(docs, frame["cluster"], top_k=top_k)
    rows = []
    for label, g in frame.groupby("cluster"):
        gold = g[g["split"] == "gold"]
        idx = g.index.to_numpy()
        if embeddings is not None:
            centre = embeddings[idx].mean(axis=0)
            central = idx[np.argsort(-(embeddings[idx] @ centre))[:n_central]]
        else:
            centre = g[["x", "y"]].to_numpy().mean(axis=0)
            central = idx[np.argsort(((g[["x", "y"]].to_numpy() - centre) ** 2).sum(axis=1))[:n_central]]
        row = {"cluster": int(label), "size": len(g), "gold_pairs": len(gold),
               "gold_error_rate": float((~gold["correct"]).mean()) if len(gold) else np.nan,
               "error_rate_all": float((~g["correct"]).mean()), "mean_margin": float(g["margin"].mean()),
               "low_confidence_share": float(g["low_confidence"].mean()),
               "keywords": ", ".join(keywords.get(int(label), [])),
               "central_prompts": " | ".join(docs.loc[central].str.slice(0, 80))}
        for col in ("task_category", "objectivity", "controversiality", "construction"):
            if col in g.columns and g[col].notna().any():
                top = g[col].value_counts(normalize=True)
                row[f"top_{col}"] = f"{top.index[0]} ({top.iloc[0]:.0%})"
        rows.append(row)
    table = pd.DataFrame(rows)
    table["noise"] = table["cluster"] == -1
    return table.sort_values(["noise", "gold_error_rate", "error_rate_all"], ascending=[True, False, False],
                             na_position="last").reset_index(drop=True)


def select_pairs(frame: pd.DataFrame, *, clusters: Sequence[int] = (), point_indices: Sequence[int] = (),
                 split: str | None = "train") -> list[str]:
    """pair_ids picked by cluster ids and/or by plot point indices (a lasso/box selection), optionally
    limited to one split (the unverified pool by default): the review queue's input."""
    mask = frame["cluster"].isin(list(clusters)).to_numpy()
    if len(point_indices):
        mask = mask | np.isin(np.arange(len(frame)), list(point_indices))
    picked = frame[mask]
    if split:
        picked = picked[picked["split"] == split]
    return picked["pair_id"].tolist()


def cluster_metrics(frame: pd.DataFrame, summary: pd.DataFrame, proposed: Sequence[str]) -> dict[str, Any]:
    """The error map at a glance: pairs, clusters, unclustered share, worst / best cluster gold error rates and the
    number of pool pairs proposed for review."""
    rates = summary[~summary["noise"] & (summary["gold_pairs"] > 0)]["gold_error_rate"]
    return {"pairs": len(frame), "clusters": int((summary["cluster"] >= 0).sum()),
            "noise_share": float((frame["cluster"] == -1).mean()),
            "worst_cluster_gold_error_rate": float(rates.max()) if len(rates) else None,
            "best_cluster_gold_error_rate": float(rates.min()) if len(rates) else None,
            "proposed_for_review": len(proposed)}
