"""Retrieval over the embeddings of a sharded pool: memory-mapped vectors, exact search, a faiss IVF index, and the
paper's k-rule applied against either."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench.curation.retrieval import neighbours_to_pull, rank_candidates, recall_at_k, top_k
from workbench.data import files as io
from workbench.scale.shards import finished_shards, read_curated


class ShardedVectors:
    """The per-shard float16 embeddings as one row space, memory-mapped (nothing is loaded whole)."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.names = finished_shards(self.out_dir)
        self.arrays = [np.load(self.out_dir / "vectors" / f"{n}.npy", mmap_mode="r") for n in self.names]
        self.offsets = np.concatenate([[0], np.cumsum([len(a) for a in self.arrays])])
        self.dim = int(self.arrays[0].shape[1])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def chunks(self) -> Any:
        """(first global row, float32 block) per shard."""
        for start, block in zip(self.offsets, self.arrays):
            yield int(start), np.asarray(block, dtype=np.float32)

    def rows(self, index: np.ndarray) -> np.ndarray:
        """float32 vectors of global rows ``index``."""
        index = np.asarray(index)
        out = np.empty((len(index), self.dim), dtype=np.float32)
        shard = np.searchsorted(self.offsets, index, side="right") - 1
        for s in np.unique(shard):
            sel = shard == s
            out[sel] = self.arrays[s][index[sel] - self.offsets[s]]
        return out

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(global rows, vectors) of ``n`` rows drawn without replacement."""
        rows = np.sort(np.random.default_rng(seed).choice(len(self), size=min(n, len(self)), replace=False))
        return rows, self.rows(rows)

    def pair_ids(self) -> np.ndarray:
        """pair_id of every global row (strings only, not the texts)."""
        return read_curated(self.out_dir, ["pair_id"])["pair_id"].to_numpy()


class ShardedExactSearch:
    """Exact cosine search, streamed shard by shard over the memory-mapped vectors (the baseline)."""

    kind = "exact"

    def __init__(self, vectors: ShardedVectors):
        self.vectors = vectors

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, global rows), each (n_queries, k), best first; like `NeighborIndex.search`."""
        q = np.asarray(queries, dtype=np.float32)
        best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
        best_i = np.full((len(q), k), -1, dtype=np.int64)
        for start, block in self.vectors.chunks():
            s, i = top_k(q @ block.T, k)
            merged_s, merged_i = np.concatenate([best_s, s], axis=1), np.concatenate([best_i, i + start], axis=1)
            best_s, pos = top_k(merged_s, k)
            best_i = np.take_along_axis(merged_i, pos, axis=1)
        return best_s, best_i


@dataclass(frozen=True)
class IndexConfig:
    """faiss IVF over float16 vectors: ``nlist`` lists (0 = 4 * sqrt(n)), ``nprobe`` searched per query."""

    nlist: int = 0
    nprobe: int = 32
    train_sample: int = 100_000  # vectors the coarse quantizer is trained on
    seed: int = 0


class ShardedIVFIndex:
    """A faiss ``IndexIVFScalarQuantizer`` (fp16 codes, inner product) built shard by shard; saved to disk."""

    kind = "faiss-ivf"

    def __init__(self, index: Any, n: int):
        self.index, self.n = index, n

    def __len__(self) -> int:
        return self.n

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        s, i = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return s.astype(np.float32), i.astype(np.int64)

    @classmethod
    def load(cls, path: str | Path, nprobe: int = 32) -> ShardedIVFIndex:
        import faiss

        index = faiss.read_index(str(path))
        index.nprobe = nprobe
        return cls(index, index.ntotal)


def build_ivf_index(vectors: ShardedVectors, cfg: IndexConfig = IndexConfig(), *, path: str | Path | None = None,
                    progress: bool = True) -> ShardedIVFIndex:
    """Train the coarse quantizer on a sample, then add the vectors one shard at a time (global row ids).

    The codes are float16, so the index takes 2 bytes per dimension: 0.8 GB for a million 384-d vectors.
    """
    import faiss

    n = len(vectors)
    nlist = cfg.nlist or max(1, min(int(4 * np.sqrt(n)), n // 39))  # faiss wants >= 39 training points per list
    quantizer = faiss.IndexFlatIP(vectors.dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, vectors.dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                          faiss.METRIC_INNER_PRODUCT)
    _, sample = vectors.sample(max(cfg.train_sample, 39 * nlist), seed=cfg.seed)
    index.train(sample)
    for start, block in tqdm(list(vectors.chunks()), desc="indexing shards", unit="shard", disable=not progress):
        index.add_with_ids(block, np.arange(start, start + len(block), dtype=np.int64))
    index.nprobe = cfg.nprobe
    if path is not None:
        io._write_atomically(Path(path), lambda tmp: faiss.write_index(index, tmp))
    return ShardedIVFIndex(index, n)


def retrieve_at_scale(gold_ids: Sequence[str], gold_p: np.ndarray, gold_emb: np.ndarray, index: Any,
                      pool_ids: np.ndarray, *, k_max: int = 8) -> pd.DataFrame:
    """The paper's adaptive k-rule (`workbench.curation.retrieval.neighbours_to_pull`) against a sharded index (IVF or
    exact): the review queue of `workbench.curation.retrieval.retrieve_for_gold` (one row per pulled pair, its strongest
    puller, ``pullers``, ``rank``) plus ``row``, the pair's global row in the shard outputs."""
    k = neighbours_to_pull(gold_p, k_max)
    active = np.flatnonzero(k > 0)
    if len(active) == 0:
        return rank_candidates(pd.DataFrame(columns=["pair_id", "pulled_by", "puller_p", "similarity", "row"]))
    sims, rows = index.search(np.asarray(gold_emb, dtype=np.float32)[active], int(k.max()))
    hits = [(pool_ids[rows[r, j]], gold_ids[g], float(gold_p[g]), float(sims[r, j]), int(rows[r, j]))
            for r, g in enumerate(active) for j in range(int(k[g])) if rows[r, j] >= 0]
    return rank_candidates(pd.DataFrame(hits, columns=["pair_id", "pulled_by", "puller_p", "similarity", "row"]))




def compare_with_exact(vectors: ShardedVectors, index: Any, *, queries: int = 500, k: int = 8, seed: int = 0) -> dict[str, Any]:
    """Recall@k of ``index`` against exact search on ``queries`` pool vectors, and both search times (seconds)."""
    _, q = vectors.sample(min(queries, len(vectors)), seed=seed)
    start = time.perf_counter()
    _, exact = ShardedExactSearch(vectors).search(q, k)
    exact_s = time.perf_counter() - start
    start = time.perf_counter()
    _, approx = index.search(q, k)
    approx_s = time.perf_counter() - start
    return {"pool_pairs": len(vectors), "queries": len(q), f"recall_at_{k}": recall_at_k(approx, exact),
            "exact_seconds": exact_s, "ivf_seconds": approx_s, "speedup": exact_s / max(approx_s, 1e-9)}
