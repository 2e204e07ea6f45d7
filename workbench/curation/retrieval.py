"""Stage 1, step 2: error-driven adaptive retrieval of unverified pairs similar to the RM's gold errors.

For every gold pair the current RM gives ``p = sigmoid(r_w - r_l)``. Wrong pairs (``p <= 0.5``) pull
``k_max`` neighbours from the unverified pool, right-but-unsure pairs pull ``ceil(k_max * (1 - p))``,
by cosine similarity of the ``(conversation, attributes)`` embeddings (`workbench.curation.clustering.embed_pairs`).
Candidates are deduplicated (a pair pulled by several gold pairs keeps its strongest puller) and ranked:
pairs pulled by the worst errors first, then by similarity.

Search is exact (a matrix product) for small pools and a faiss HNSW index for large ones, behind one
interface (`NeighborIndex`). Not here: labeling the candidates (`workbench.curation.review`) or the loop
(`workbench.curation.stage1`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

INDEX_KINDS = ("auto", "exact", "faiss")


@dataclass(frozen=True)
class RetrievalConfig:
    """How many neighbours each gold pair pulls, and how they are searched."""

    k_max: int = 8  # the paper's value
    index: str = "auto"  # auto | exact | faiss
    exact_max_pool: int = 50_000  # auto: exact search up to this pool size, faiss HNSW above
    hnsw_m: int = 32  # HNSW graph degree (faiss)
    hnsw_ef_search: int = 128  # larger: higher recall, slower search
    min_similarity: float = -1.0  # neighbours below this cosine similarity are not retrieved

    def __post_init__(self) -> None:
        if self.k_max < 1:
            raise ValueError(f"k_max must be >= 1, got {self.k_max}.")
        if self.index not in INDEX_KINDS:
            raise ValueError(f"Unknown index {self.index!r}; choose one of {list(INDEX_KINDS)}.")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def neighbours_to_pull(p: np.ndarray | Sequence[float], k_max: int = 8) -> np.ndarray:
    """The paper's adaptive k: ``k_max`` when wrong (p <= 0.5), else ``ceil(k_max * (1 - p))``.

    Example: with k_max=8, p = [0.2, 0.5, 0.6, 0.9, 1.0] -> [8, 8, 4, 1, 0].
    """
    p = np.asarray(p, dtype=np.float64)
    k = np.ceil(k_max * (1.0 - p) - 1e-9).astype(int)  # tolerance: 8 * (1 - 0.875) must be 1, not 2
    return np.where(p <= 0.5, k_max, np.clip(k, 0, k_max))


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class NeighborIndex:
    """Cosine-similarity search over a pool of embeddings; exact or faiss HNSW, same ``search``.

    Example: ``sims, idx = NeighborIndex(pool_emb).search(query_emb, k=8)``; missing neighbours are
    ``-1`` in ``idx`` (a pool smaller than ``k``).
    """

    def __init__(self, vectors: np.ndarray, cfg: RetrievalConfig = RetrievalConfig()):
        self.cfg = cfg
        self.vectors = _normalised(vectors)
        n = len(self.vectors)
        self.kind = cfg.index if cfg.index != "auto" else ("exact" if n <= cfg.exact_max_pool else "faiss")
        self._faiss = None
        if self.kind == "faiss" and n:
            import faiss

            index = faiss.IndexHNSWFlat(self.vectors.shape[1], cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = max(cfg.hnsw_ef_search, 1)
            index.add(self.vectors)
            self._faiss = index

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int, *, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, indices), each (n_queries, k), best first."""
        q = _normalised(queries)
        k_eff = min(k, len(self))
        sims = np.full((len(q), k), -np.inf, dtype=np.float32)
        idx = np.full((len(q), k), -1, dtype=np.int64)
        if k_eff == 0 or len(q) == 0:
            return sims, idx
        if self._faiss is not None:
            s, i = self._faiss.search(q, k_eff)
            sims[:, :k_eff], idx[:, :k_eff] = s, i
            return sims, idx
        for start in range(0, len(q), chunk):  # bounded memory: (chunk x pool) scores at a time
            rows = slice(start, start + chunk)
            sims[rows, :k_eff], idx[rows, :k_eff] = top_k(q[rows] @ self.vectors.T, k_eff)
        return sims, idx


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, column indices) of the ``k`` largest scores of each row, best first (``k`` capped at the width)."""
    import torch  # torch.topk: 10-40x numpy's argpartition + argsort on (1,000 x 56,000) scores (RESULTS.md)

    k = min(k, scores.shape[1])
    vals, top = torch.topk(torch.as_tensor(np.ascontiguousarray(scores)), k, dim=1, largest=True, sorted=True)
    return vals.numpy(), top.numpy().astype(np.int64, copy=False)


def retrieve_for_gold(gold_ids: Sequence[str], gold_p: np.ndarray, gold_emb: np.ndarray, pool_ids: Sequence[str],
                      pool_emb: np.ndarray, cfg: RetrievalConfig = RetrievalConfig(), *,
                      index: NeighborIndex | None = None, exclude: set[str] | frozenset[str] = frozenset()) -> pd.DataFrame:
    """Candidates for review, one row per pool pair, with provenance.

    ``exclude`` (pairs already reviewed) are skipped and the next-nearest taken instead, so one index
    over the whole pool serves every round. Returns columns ``pair_id``, ``pulled_by`` (the gold pair
    whose error pulled it, the one with the lowest ``p`` when several did), ``puller_p``,
    ``similarity``, ``pullers`` (how many gold pairs pulled it), ``rank`` (0 = review first). Ranked by
    ``puller_p`` ascending, then similarity descending.
    """
    gold_p = np.asarray(gold_p, dtype=np.float64)
    if not (len(gold_ids) == len(gold_p) == len(gold_emb)):
        raise ValueError(f"gold ids ({len(gold_ids)}), p ({len(gold_p)}) and embeddings ({len(gold_emb)}) differ in length.")
    if len(pool_ids) != len(pool_emb):
        raise ValueError(f"pool ids ({len(pool_ids)}) and embeddings ({len(pool_emb)}) differ in length.")
    k = neighbours_to_pull(gold_p, cfg.k_max)
    active = np.flatnonzero(k > 0)
    if len(active) == 0 or len(pool_ids) == 0:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    index = index or NeighborIndex(pool_emb, cfg)
    if len(index) != len(pool_ids):
        raise ValueError(f"the index holds {len(index)} vectors but there are {len(pool_ids)} pool ids.")
    blocked = np.isin(np.asarray(pool_ids), list(exclude)) if exclude else np.zeros(len(pool_ids), bool)
    want = k[active]
    depth = int(want.max())
    while True:  # widen the search until every gold pair has its k open neighbours (or the pool is exhausted)
        sims, idx = index.search(np.asarray(gold_emb)[active], min(depth, len(pool_ids)))
        ok = (idx >= 0) & ~blocked[np.maximum(idx, 0)] & (sims >= cfg.min_similarity)
        if (ok.sum(axis=1) >= want).all() or depth >= len(pool_ids):
            break
        depth *= 2
    rows = []
    for row, g in enumerate(active):
        for j in np.flatnonzero(ok[row])[: int(k[g])]:
            rows.append((pool_ids[idx[row, j]], gold_ids[g], float(gold_p[g]), float(sims[row, j])))
    return rank_candidates(pd.DataFrame(rows, columns=["pair_id", "pulled_by", "puller_p", "similarity"]))


CANDIDATE_COLUMNS = ["pair_id", "pulled_by", "puller_p", "similarity", "pullers", "rank"]


def rank_candidates(hits: pd.DataFrame) -> pd.DataFrame:
    """One row per pulled pool pair from (pair_id, pulled_by, puller_p, similarity) hits: its strongest puller
    (lowest ``puller_p``, then highest similarity), how many gold pairs pulled it, and its review rank."""
    if not len(hits):
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    pullers = hits.groupby("pair_id")["pulled_by"].nunique()
    best = (hits.sort_values(["puller_p", "similarity"], ascending=[True, False], kind="stable")
            .drop_duplicates("pair_id").reset_index(drop=True))
    best["pullers"] = best["pair_id"].map(pullers).astype(int)
    best["rank"] = np.arange(len(best))
    return best[CANDIDATE_COLUMNS + [c for c in best.columns if c not in CANDIDATE_COLUMNS]]


def k_rule_table(gold_p: np.ndarray, k_max: int = 8) -> pd.DataFrame:
    """How many gold pairs pull how many neighbours: the table a notebook shows next to the queue."""
    k = neighbours_to_pull(gold_p, k_max)
    return (pd.DataFrame({"k": k, "wrong": np.asarray(gold_p) <= 0.5}).groupby("k")
            .agg(gold_pairs=("wrong", "size"), wrong=("wrong", "sum")).reset_index())


def recall_at_k(approx_idx: np.ndarray, exact_idx: np.ndarray) -> float:
    """Share of the exact top-k found by an approximate search (row-wise set overlap)."""
    if exact_idx.size == 0:
        return 1.0
    found = sum(len(set(a[a >= 0]) & set(e[e >= 0])) for a, e in zip(approx_idx, exact_idx))
    total = int((exact_idx >= 0).sum())
    return found / max(total, 1)

