"""Retrieval at 1M pairs: approximate indexes vs exact search, side by side in one run (issue #19, goal 5).

Vectors: the pair embeddings of a synthetic pool (`workbench synth`'s generator: real HH-RLHF lengths and word
frequencies, 500 topics) embedded by ``--embedder`` (default ``minilm-static``, the scale path's embedder), float16
as the scale path stores them; queries: held-out synthetic pairs (same topics, not in the pool), as Stage 1's gold
pairs. The vectors are cached under ``--work`` so a rerun only searches.

Exact baselines, both measured: faiss ``IndexFlatIP`` (float32 in memory, BLAS; the ground truth) and the
workbench's streamed ``ShardedExactSearch``-style scan over float16 shards. Every candidate index is timed on the
same queries after a warm-up search; recall@k against the exact neighbours; memory = the index's serialized size.

Run: .venv/bin/python benchmarks/bench_retrieval.py [--pairs 1000000] [--queries 1000] [--work /tmp/wb-retrieval]
     [--indexes ivf:32 ivf-refine:64 hnsw:256 ...]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
SHARD = 10_000


def pool_vectors(n: int, embedder: str, work: Path) -> np.ndarray:
    """(n, d) float16 pair embeddings of the synthetic pool, built shard by shard and cached."""
    from tqdm.auto import tqdm

    from workbench.curation.clustering import embed_pairs
    from workbench.data.synthetic import SyntheticConfig, hh_profile, synthetic_shard

    path = work / f"pool-{embedder or 'minilm'}-{n}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r")
    profile, cfg = hh_profile(), SyntheticConfig(n_pairs=n, shard_size=SHARD)
    blocks = [embed_pairs(synthetic_shard(profile, cfg, s), None, model_name=embedder, progress=False).astype(np.float16)
              for s in tqdm(range((n + SHARD - 1) // SHARD), desc="embedding the synthetic pool", unit="shard")]
    work.mkdir(parents=True, exist_ok=True)
    np.save(path, np.concatenate(blocks)[:n])
    return np.load(path, mmap_mode="r")


def query_vectors(n_pool: int, n: int, embedder: str) -> np.ndarray:
    from workbench.curation.clustering import embed_pairs
    from workbench.data.synthetic import SyntheticConfig, heldout_synthetic_pairs, hh_profile

    golds = heldout_synthetic_pairs(hh_profile(), SyntheticConfig(n_pairs=n_pool, shard_size=SHARD), n)
    return embed_pairs(golds, None, model_name=embedder, progress=False).astype(np.float32)


def timed(search, queries: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    search(queries[:50], k)  # warm-up
    start = time.perf_counter()
    _, rows = search(queries, k)
    return time.perf_counter() - start, rows


def streamed_exact(vectors: np.ndarray):
    """The workbench's exact scan: float16 blocks of one shard, converted and multiplied, top-k merged."""
    from workbench.curation.retrieval import top_k

    def search(q, k):
        best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
        best_i = np.full((len(q), k), -1, dtype=np.int64)
        for start in range(0, len(vectors), SHARD):
            s, i = top_k(q @ np.asarray(vectors[start: start + SHARD], dtype=np.float32).T, k)
            merged_s, merged_i = np.concatenate([best_s, s], axis=1), np.concatenate([best_i, i + start], axis=1)
            best_s, pos = top_k(merged_s, k)
            best_i = np.take_along_axis(merged_i, pos, axis=1)
        return best_s, best_i

    return search


def index_bytes(index) -> int:
    import faiss

    return int(faiss.serialize_index(index).size)


def main() -> None:
    import faiss

    from workbench.curation.retrieval import recall_at_k
    from workbench.scale.index import IndexConfig, make_index

    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--embedder", default="minilm-static")
    ap.add_argument("--work", default="/tmp/wb-retrieval")
    ap.add_argument("--indexes", nargs="+", default=["ivf:32", "ivf:64", "ivf:128", "ivf-refine:64", "ivf-refine:128",
                                                      "hnsw:128", "hnsw:256"],
                    help="kind:nprobe (IVF) or kind:efSearch (HNSW); one build per kind (HNSW: minutes at 1M on 2 cores)")
    args = ap.parse_args()
    faiss.omp_set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    t = time.perf_counter()
    vectors = pool_vectors(args.pairs, args.embedder, Path(args.work))
    queries = query_vectors(args.pairs, args.queries, args.embedder)
    print(f"{len(vectors):,} pool vectors ({vectors.shape[1]}-d, {args.embedder}), {len(queries):,} queries, "
          f"k = {args.k}; faiss threads {faiss.omp_get_max_threads()}; vectors ready in {time.perf_counter() - t:.0f} s")

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    exact_s, exact = timed(flat.search, queries, args.k)
    streamed_s, streamed = timed(streamed_exact(vectors), queries, args.k)
    rows = [("exact: faiss IndexFlatIP, float32 (ground truth)", 0.0, exact_s, 1.0, x.nbytes),
            ("exact: workbench streamed scan over float16 shards", 0.0, streamed_s, recall_at_k(streamed, exact), vectors.nbytes)]
    candidates = []
    for spec in args.indexes:
        kind, value = spec.split(":")
        candidates.append(IndexConfig(kind=kind, ef_search=int(value)) if kind == "hnsw" else IndexConfig(kind=kind, nprobe=int(value)))
    built = {}
    for cfg in candidates:
        key = (cfg.kind, cfg.nlist)
        if key not in built:
            start = time.perf_counter()
            built[key] = (make_index(x, cfg), time.perf_counter() - start)
        index, build_s = built[key]
        index.configure(cfg)
        search_s, found = timed(index.search, queries, args.k)
        label = {"ivf": f"IVF fp16 codes, nprobe {cfg.nprobe}",
                 "ivf-refine": f"IVF 8-bit codes + fp16 re-rank of {cfg.refine_factor}k, nprobe {cfg.nprobe}",
                 "hnsw": f"HNSW32 over fp16, efSearch {cfg.ef_search}"}[cfg.kind]
        rows.append((label, build_s, search_s, recall_at_k(found, exact), index_bytes(index.index)))
        print(rows[-1], flush=True)

    print(f"\n| search ({len(queries):,} queries, k = {args.k}, {len(vectors):,} vectors) | build s | search s | "
          f"speed-up vs faiss flat | vs streamed scan | recall@{args.k} | memory |")
    print("|---|---|---|---|---|---|---|")
    for label, build_s, search_s, recall, nbytes in rows:
        print(f"| {label} | {build_s:.0f} | {search_s:.3f} | {exact_s / search_s:.1f}x | {streamed_s / search_s:.1f}x | "
              f"{recall:.3f} | {nbytes / 1e9:.2f} GB |")


if __name__ == "__main__":
    main()
