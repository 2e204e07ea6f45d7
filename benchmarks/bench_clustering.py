"""Wall time and peak memory of embed + UMAP + HDBSCAN at 10k and 100k pairs, and the three HDBSCANs side by side.

Texts: real HH-RLHF / RewardBench conversations (first + last user turn, as the error map embeds them),
cycled with a numbered suffix up to N so every text is new (no cache hits). Each size runs in its own
process so peak RSS is per size. Embedding: the offline MiniLM on CPU (bf16 where native). UMAP: fitted
on at most 20k points, the rest transformed (the workbench default). Clusterers, timed on the same
5-D UMAP output: fast_hdbscan (the default), hdbscan, scikit-learn HDBSCAN; agreement measured with the
adjusted Rand index against fast_hdbscan.

Run: .venv/bin/python benchmarks/bench_clustering.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings

warnings.filterwarnings("ignore")


def one_size(n: int) -> dict:
    import numpy as np

    from workbench.curation.clustering import ClusterConfig, ErrorMap, _clusterer
    from workbench.data import files as io
    from workbench.data.schema import topic_text
    from workbench.models.embedding import embed_texts, load_embedder

    data = io.shared_data_dir()
    texts = []
    for name in ("helpful-base", "harmless-base", "helpful-online", "helpful-rejection-sampled"):
        pairs, _ = io.read_pairs(data / "hh_rlhf" / name / "test.jsonl.gz", strict=False)
        texts += [topic_text(p) for p in pairs["prompt"]]
    rb, _ = io.read_pairs(data / "rewardbench" / "filtered.jsonl.gz")
    texts += [topic_text(p) for p in rb["prompt"]]
    texts = [f"{texts[i % len(texts)]} ({i})" for i in range(n)]
    load_embedder()
    out = {"n": n}
    t = time.perf_counter()
    emb = embed_texts(texts, progress=False, batch_size=64)
    out["embed_s"] = time.perf_counter() - t
    cfg = ClusterConfig(min_cluster_size=max(15, n // 2000))
    emap = ErrorMap(cfg)
    t = time.perf_counter()
    from workbench.curation.clustering import _umap

    sample = emb if n <= cfg.fit_sample else emb[np.random.default_rng(0).choice(n, cfg.fit_sample, replace=False)]
    emap.reducer_2d, emap.reducer_kd = _umap(2, cfg).fit(sample), _umap(cfg.cluster_dims, cfg).fit(sample)
    xy = emap._transform(emap.reducer_2d, emb, sample if n > cfg.fit_sample else emb)
    low = emap._transform(emap.reducer_kd, emb, sample if n > cfg.fit_sample else emb)
    out["umap_s"] = time.perf_counter() - t
    labels = {}
    for name in ("fast_hdbscan", "hdbscan", "sklearn"):
        c = _clusterer(ClusterConfig(min_cluster_size=cfg.min_cluster_size, clusterer=name))
        c.fit_predict(low[:2000])  # JIT warm-up, not timed
        t = time.perf_counter()
        labels[name] = np.asarray(c.fit_predict(low))
        out[f"{name}_s"] = time.perf_counter() - t
        out[f"{name}_clusters"] = int(labels[name].max() + 1)
    from sklearn.metrics import adjusted_rand_score

    out["ari_hdbscan_vs_fast"] = adjusted_rand_score(labels["fast_hdbscan"], labels["hdbscan"])
    out["ari_sklearn_vs_fast"] = adjusted_rand_score(labels["fast_hdbscan"], labels["sklearn"])
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    out["xy_shape"] = list(xy.shape)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_size(args.one)))
        return
    rows = []
    for n in args.sizes:
        proc = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if not line:
            print(proc.stderr[-2000:])
            raise SystemExit(f"size {n} failed")
        rows.append(json.loads(line[0][7:]))
        print(rows[-1], flush=True)
    print("\n| pairs | embed s | UMAP s | fast_hdbscan s | hdbscan s | sklearn s | clusters (fast/hdbscan/sklearn) "
          "| ARI vs fast (hdbscan / sklearn) | peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']:,} | {r['embed_s']:.0f} | {r['umap_s']:.0f} | {r['fast_hdbscan_s']:.2f} | {r['hdbscan_s']:.2f} | "
              f"{r['sklearn_s']:.2f} | {r['fast_hdbscan_clusters']}/{r['hdbscan_clusters']}/{r['sklearn_clusters']} | "
              f"{r['ari_hdbscan_vs_fast']:.2f} / {r['ari_sklearn_vs_fast']:.2f} | {r['peak_rss_gb']:.2f} |")
        print(f"  speed-up fast_hdbscan vs hdbscan: {r['hdbscan_s'] / r['fast_hdbscan_s']:.1f}x, "
              f"vs sklearn: {r['sklearn_s'] / r['fast_hdbscan_s']:.1f}x")


if __name__ == "__main__":
    main()
