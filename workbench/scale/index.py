"""Retrieval over the embeddings of a sharded pool: memory-mapped vectors, exact search, a faiss index (HNSW or IVF), and the
paper's k-rule applied against either."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench.curation.retrieval import neighbours_to_pull, rank_candidates, recall_at_k, top_k
from workbench.data import files as io
from workbench.scale.shards import finished_shards, read_curated, vectors_path


class ShardedVectors:
    """The per-shard float16 embeddings as one row space (nothing is loaded whole).

    A shard is memory-mapped only while rows are read from it (`shard`): a map kept open keeps every page it has
    touched resident in this process, and a sample drawn across 1,000 shards touched them all (5 GB at 10M pairs).
    """

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.names = finished_shards(self.out_dir)
        shapes = [self.shard(i).shape for i in range(len(self.names))]
        self.offsets = np.concatenate([[0], np.cumsum([shape[0] for shape in shapes])])
        self.dim = int(shapes[0][1])

    def shard(self, i: int) -> np.ndarray:
        """Shard ``i``'s float16 vectors, memory-mapped (let it go when done: the map holds its pages)."""
        return np.load(vectors_path(self.out_dir, self.names[i]), mmap_mode="r")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def chunks(self) -> Any:
        """(first global row, float32 block) per shard, each shard read from its file, not through the memory map:
        a pass over every mapped shard leaves all of them resident in this process (5 GB at 10M pairs), which
        counts as its memory; a plain read is freed with the block."""
        for start, name in zip(self.offsets, self.names):
            yield int(start), np.load(vectors_path(self.out_dir, name)).astype(np.float32)

    def rows(self, index: np.ndarray) -> np.ndarray:
        """float32 vectors of global rows ``index``."""
        index = np.asarray(index)
        out = np.empty((len(index), self.dim), dtype=np.float32)
        shard = np.searchsorted(self.offsets, index, side="right") - 1
        for s in np.unique(shard):
            sel = shard == s
            out[sel] = self.shard(s)[index[sel] - self.offsets[s]]
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


INDEX_KINDS = ("hnsw", "ivf", "ivf-sq8", "ivf-refine")
IVF_KINDS = tuple(k for k in INDEX_KINDS if k != "hnsw")  # inverted lists: nlist and nprobe apply


@dataclass(frozen=True)
class IndexConfig:
    """The approximate index over the pool's embeddings (faiss, inner product = cosine on unit vectors).

    Chosen by measurement (``benchmarks/bench_retrieval.py``, 1M pairs, 1,000 queries, k = 8, 2 cores):

    - ``hnsw`` (default): an HNSW graph (32 links) over float16 vectors, ``ef_search`` candidates per query:
      recall@8 0.968 at 16x the fastest exact search (efSearch 256); ~2.5 min to build, 0.78 GB.
    - ``ivf``: IVF with float16 codes over ``nprobe`` of ``nlist`` lists: 0.958 at 9x (nprobe 64); 2 min, 0.52 GB.
    - ``ivf-refine``: IVF with 8-bit codes, the best ``refine_factor * k`` re-ranked on float16 vectors: the
      same recall as ``ivf`` (its misses are lists not probed, which re-ranking cannot fix), 0.78 GB.
    - ``ivf-sq8``: IVF with 8-bit codes and no re-rank: half of ``ivf``'s memory (264 bytes a 256-d vector, 2.6 GB
      at 10M pairs, where HNSW needs 7.8 GB); what the 8-bit rounding costs in recall is measured by
      ``benchmarks/bench_scale.py --index-kind ivf-sq8``.
    """

    kind: str = "hnsw"
    nlist: int = 0  # 0 = 4 * sqrt(n)
    nprobe: int = 64
    refine_factor: int = 4
    ef_search: int = 256
    train_sample: int = 100_000  # vectors the coarse quantizer is trained on
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be one of {list(INDEX_KINDS)}, got {self.kind!r}.")


class ShardedIndex:
    """A faiss index over the pool (row i = global row i of the shards), built shard by shard; saved to disk."""

    def __init__(self, index: Any, n: int, cfg: IndexConfig = IndexConfig()):
        self.index, self.n = index, n
        self.configure(cfg)

    @property
    def kind(self) -> str:
        return f"faiss-{self.cfg.kind}"

    def __len__(self) -> int:
        return self.n

    def configure(self, cfg: IndexConfig) -> None:
        """Apply the search-time settings (nprobe, refine_factor, ef_search) of ``cfg``."""
        import faiss

        self.cfg = cfg
        if isinstance(self.index, faiss.IndexRefine):
            self.index.k_factor = cfg.refine_factor
        if hasattr(self.index, "hnsw"):
            self.index.hnsw.efSearch = cfg.ef_search
        else:
            faiss.extract_index_ivf(self.index).nprobe = cfg.nprobe

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        s, i = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return s.astype(np.float32), i.astype(np.int64)

    @classmethod
    def load(cls, path: str | Path, cfg: IndexConfig = IndexConfig()) -> ShardedIndex:
        import faiss

        index = faiss.read_index(str(path))
        if hasattr(index, "hnsw"):
            kind = "hnsw"
        elif isinstance(index, faiss.IndexRefine):
            kind = "ivf-refine"
        else:
            codes = faiss.downcast_index(faiss.extract_index_ivf(index)).sq.qtype
            kind = "ivf-sq8" if codes == faiss.ScalarQuantizer.QT_8bit else "ivf"
        return cls(index, index.ntotal, replace(cfg, kind=kind))


def empty_index(dim: int, n: int, cfg: IndexConfig) -> Any:
    """An untrained faiss index of ``cfg.kind`` for ``n`` vectors of ``dim`` dimensions."""
    import faiss

    ip = faiss.METRIC_INNER_PRODUCT
    if cfg.kind == "hnsw":
        return faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, 32, ip)
    nlist = ivf_list_count(n, cfg)
    codes = faiss.ScalarQuantizer.QT_8bit if cfg.kind in ("ivf-sq8", "ivf-refine") else faiss.ScalarQuantizer.QT_fp16
    ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, codes, ip)
    if cfg.kind != "ivf-refine":
        return ivf
    return faiss.IndexRefine(ivf, faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, ip))


def ivf_list_count(n: int, cfg: IndexConfig) -> int:
    """IVF's lists for ``n`` vectors: ``cfg.nlist``, else 4 sqrt(n), at most n / 39 (faiss wants >= 39 training
    points per list)."""
    return cfg.nlist or max(1, min(int(4 * np.sqrt(n)), n // 39))


def ivf_training_points(nlist: int, cfg: IndexConfig) -> int:
    """Vectors IVF's coarse quantizer is trained on: ``cfg.train_sample``, at least 39 per list."""
    return max(cfg.train_sample, 39 * nlist)


def make_index(x: np.ndarray, cfg: IndexConfig = IndexConfig()) -> ShardedIndex:
    """An index of ``cfg.kind`` over in-memory vectors ``x`` (benchmarks; the pool path is `build_index`)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    index = empty_index(x.shape[1], len(x), cfg)
    _train(index, cfg, lambda n: x[np.sort(np.random.default_rng(cfg.seed).choice(len(x), size=min(len(x), n), replace=False))])
    index.add(x)
    return ShardedIndex(index, len(x), cfg)


def _train(index: Any, cfg: IndexConfig, draw: Callable[[int], np.ndarray]) -> None:
    """Train ``index`` on ``draw(n)`` sampled vectors if it needs training: IVF's coarse lists do (at least 39
    points per list, as faiss wants), HNSW over float16 vectors does not, so no sample is read for it."""
    import faiss

    if not index.is_trained:
        index.train(draw(ivf_training_points(faiss.extract_index_ivf(index).nlist, cfg)))


def build_index(vectors: ShardedVectors, cfg: IndexConfig = IndexConfig(), *, path: str | Path | None = None,
                    progress: bool = True) -> ShardedIndex:
    """Train on a sample, then add the vectors one shard at a time, in order (index row = global row).

    Memory per vector: 2 bytes per dimension + 256 bytes of graph links for ``hnsw``, 2 for ``ivf``, 1 for
    ``ivf-sq8``, 3 for ``ivf-refine`` (8-bit codes + the float16 re-rank copy): ~0.8 GB for a million 256-d vectors with the default.
    """
    import faiss

    index = empty_index(vectors.dim, len(vectors), cfg)
    _train(index, cfg, lambda n: vectors.sample(n, seed=cfg.seed)[1])
    # a generator, not a list: a list of every block is the whole pool in float32 (10 GB at 10M pairs)
    for _, block in tqdm(vectors.chunks(), total=len(vectors.names), desc="indexing shards", unit="shard",
                         disable=not progress):
        index.add(block)
    if path is not None:
        io._write_atomically(Path(path), lambda tmp: faiss.write_index(index, tmp))
    return ShardedIndex(index, len(vectors), cfg)


def retrieve_at_scale(gold_ids: Sequence[str], gold_p: np.ndarray, gold_emb: np.ndarray, index: Any,
                      pool_ids: np.ndarray, *, k_max: int = 8) -> pd.DataFrame:
    """The paper's adaptive k-rule (`workbench.curation.retrieval.neighbours_to_pull`) against a sharded index (HNSW / IVF or
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
            "exact_seconds": exact_s, "index_seconds": approx_s, "index": index.kind, "speedup": exact_s / max(approx_s, 1e-9)}
