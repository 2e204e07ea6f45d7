"""Wall time and peak memory of embed + UMAP + HDBSCAN at 10k and 100k pairs, and the three HDBSCANs side by side;
then how far each fast embedder's map agrees with the full MiniLM's on real HH pairs.

Texts: real HH-RLHF / RewardBench conversations (first + last user turn, as the error map embeds them),
cycled with a numbered suffix up to N so every text is new (no cache hits). Each size runs in its own
process so peak RSS is per size. Embedding: each of ``--embedders`` ("" = the offline MiniLM on CPU, bf16 where
native; "fp32" = the same through OpenVINO at fp32; "minilm-int8" = the same quantized to int8 by NNCF;
"minilm-static" = model2vec distilled from it; "hashing"). UMAP: fitted
on at most 20k points, the rest transformed (the workbench default). Clusterers, timed on the same
5-D UMAP output: fast_hdbscan (the default), hdbscan, scikit-learn HDBSCAN; agreement measured with the
adjusted Rand index against fast_hdbscan.

Agreement (``--agreement N``): N real HH-RLHF test conversations (no suffixes), embedded by MiniLM through
OpenVINO at fp32 (the reference), MiniLM at the default bf16 and by each other embedder: the share of MiniLM's
10 nearest neighbours an embedder finds (exact cosine search), and the adjusted Rand index of its error-map
clusters (UMAP 5-D + fast_hdbscan, the workbench pipeline) against MiniLM's. The bar for a faster MiniLM
(int8) to count as "the same map": mean ARI >= 0.7 over ``--seeds`` UMAP seeds, each against fp32 at the same seed.
The floor row clusters fp32's own vectors at every pair of those seeds: the ARI the pipeline itself reaches on
unchanged vectors (0.70, 0.65-0.79 over 10 pairs of 5 seeds at 4,000 texts on 2026-12-03).

Run: .venv/bin/python benchmarks/bench_clustering.py [--sizes 10000 100000] [--embedders "" minilm-int8 minilm-static]
     [--agreement 4000] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from dataclasses import replace

warnings.filterwarnings("ignore")


def real_texts() -> list[str]:
    """Topic texts (first + last user turn, as the error map embeds them) of the HH-RLHF and RewardBench tests."""
    from workbench.data import files as io
    from workbench.data.schema import topic_text

    data = io.shared_data_dir()
    texts = []
    for name in ("helpful-base", "harmless-base", "helpful-online", "helpful-rejection-sampled"):
        pairs, _ = io.read_pairs(data / "hh_rlhf" / name / "test.jsonl.gz", strict=False)
        texts += [topic_text(p) for p in pairs["prompt"]]
    rb, _ = io.read_pairs(data / "rewardbench" / "filtered.jsonl.gz")
    return texts + [topic_text(p) for p in rb["prompt"]]


FP32 = "fp32"  # this benchmark's name for the offline MiniLM through OpenVINO at fp32 (the agreement reference)


def bench_embedder(name: str):
    """`load_embedder(name)`, plus ``"fp32"``: the offline MiniLM through OpenVINO at fp32."""
    from workbench.models.embedding import load_embedder

    if name != FP32:
        return load_embedder(name)
    from sentence_transformers import SentenceTransformer

    from workbench.models.embedding import OpenVINOSentenceEmbedder, default_embedder_path

    return OpenVINOSentenceEmbedder(SentenceTransformer(default_embedder_path(), device="cpu"), "fp32")


def label(name: str) -> str:
    return {"": "all-MiniLM-L6-v2 (OpenVINO, default bf16)", FP32: "all-MiniLM-L6-v2 (OpenVINO, fp32)",
            "minilm-int8": "all-MiniLM-L6-v2 (OpenVINO, NNCF int8)"}.get(name, name)


def agreement(n: int, embedders: list[str], seeds: int = 1) -> list[dict]:
    """Neighbour recall@10 and cluster ARI of each embedder against fp32 MiniLM on ``n`` distinct real texts.

    Each embedder's vectors are clustered with UMAP seeds 0..seeds-1 and compared with fp32's clusters at the same
    seed (mean, min and max over seeds). The floor row compares fp32's own clusterings at different seeds (every pair
    of seeds): how far the pipeline itself moves on unchanged vectors, which an embedder cannot be asked to beat.
    """
    import itertools

    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from workbench.curation.clustering import ClusterConfig, ErrorMap
    from workbench.curation.retrieval import top_k
    from workbench.models.embedding import embed_texts

    texts = list(dict.fromkeys(real_texts()))[:n]
    cfg = ClusterConfig(min_cluster_size=15)

    def clusters(emb, seed=0):
        return ErrorMap(replace(cfg, seed=seed)).fit(emb).clusters

    def summary(aris: list[float]) -> dict:
        return {"ari": float(np.mean(aris)), "ari_min": float(min(aris)), "ari_max": float(max(aris)), "ari_n": len(aris)}

    rows, reference = [], None
    for name in dict.fromkeys([FP32, "", *embedders]):
        model = bench_embedder(name)
        embed_texts(texts[:64], model=model, progress=False)  # warm-up (first inference), not timed
        t = time.perf_counter()
        emb = embed_texts(texts, model=model, progress=False)
        row = {"embedder": label(name), "texts_per_s": len(texts) / (time.perf_counter() - t), "dim": emb.shape[1]}
        neighbours = top_k(emb @ emb.T, 11)[1][:, 1:]  # exact cosine; the text itself comes first
        labels = [clusters(emb, seed) for seed in range(seeds)]
        if reference is None:
            reference = (neighbours, labels)
        ref_nb, ref_labels = reference
        row["recall@10"] = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(neighbours, ref_nb)]))
        row |= summary([adjusted_rand_score(r, x) for r, x in zip(ref_labels, labels)])
        row["clusters"] = int(np.mean([x.max() + 1 for x in labels]))
        if name == FP32:  # the floor: the same vectors, other UMAP seeds (HDBSCAN's clusters move with the layout)
            row |= summary([adjusted_rand_score(a, b) for a, b in itertools.combinations(labels, 2)] or [float("nan")])
            row["embedder"] += f", other UMAP seeds (floor, {seeds * (seeds - 1) // 2} pairs of seeds)"
        rows.append(row)
        print(row, flush=True)
    return rows


def one_size(n: int, embedder: str) -> dict:
    import numpy as np

    from workbench.curation.clustering import ClusterConfig, ErrorMap, _clusterer
    from workbench.models.embedding import embed_texts

    texts = real_texts()
    texts = [f"{texts[i % len(texts)]} ({i})" for i in range(n)]
    model = bench_embedder(embedder)  # loading (and building an int8 model the first time) is not timed
    out = {"n": n, "embedder": label(embedder)}
    t = time.perf_counter()
    emb = embed_texts(texts, model=model, progress=False, batch_size=64)
    out["embed_s"] = time.perf_counter() - t
    cfg = ClusterConfig(min_cluster_size=max(15, n // 2000))
    emap = ErrorMap(cfg)
    t = time.perf_counter()
    from workbench.curation.clustering import _umap

    sample = emb if n <= cfg.fit_sample else emb[np.random.default_rng(0).choice(n, cfg.fit_sample, replace=False)]
    transform = n > cfg.fit_sample
    emap.reducer_2d = _umap(2, cfg, will_transform=transform).fit(sample)
    emap.reducer_kd = _umap(cfg.cluster_dims, cfg, will_transform=transform).fit(sample)
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
    ap.add_argument("--embedders", nargs="+", default=["minilm-static", ""],
                    help='"" (MiniLM, default bf16), fp32, minilm-int8, minilm-static, hashing')
    ap.add_argument("--agreement", type=int, default=4000, help="real texts for the agreement table (0: skip)")
    ap.add_argument("--seeds", type=int, default=5, help="UMAP seeds per embedder in the agreement table (>= 2 for a floor)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_size(args.one, args.embedders[0])))
        return
    rows = []
    for n, embedder in [(n, e) for e in args.embedders for n in args.sizes]:
        proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--embedders", embedder], capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if not line:
            print(proc.stderr[-2000:])
            raise SystemExit(f"size {n} failed")
        rows.append(json.loads(line[0][7:]))
        print(rows[-1], flush=True)
    print("\n| embedder | pairs | embed s | UMAP s | fast_hdbscan s | hdbscan s | sklearn s | embed + UMAP + fast_hdbscan s "
          "| clusters (fast/hdbscan/sklearn) | ARI vs fast (hdbscan / sklearn) | peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        total = r["embed_s"] + r["umap_s"] + r["fast_hdbscan_s"]
        print(f"| {r['embedder']} | {r['n']:,} | {r['embed_s']:.1f} | {r['umap_s']:.0f} | {r['fast_hdbscan_s']:.2f} | "
              f"{r['hdbscan_s']:.2f} | "
              f"{r['sklearn_s']:.2f} | {total:.0f} | "
              f"{r['fast_hdbscan_clusters']}/{r['hdbscan_clusters']}/{r['sklearn_clusters']} | "
              f"{r['ari_hdbscan_vs_fast']:.2f} / {r['ari_sklearn_vs_fast']:.2f} | {r['peak_rss_gb']:.2f} |")
        print(f"  speed-up fast_hdbscan vs hdbscan: {r['hdbscan_s'] / r['fast_hdbscan_s']:.1f}x, "
              f"vs sklearn: {r['sklearn_s'] / r['fast_hdbscan_s']:.1f}x")
    if args.agreement:
        fast = [e for e in args.embedders if e] + (["hashing"] if "hashing" not in args.embedders else [])
        table = agreement(args.agreement, fast, args.seeds)
        print(f"\nAgreement with all-MiniLM-L6-v2 (OpenVINO fp32) on {args.agreement:,} real HH-RLHF / RewardBench conversations, "
              f"UMAP seeds 0-{args.seeds - 1}:")
        print("| embedder | dim | texts/s | MiniLM's 10 nearest neighbours found | clusters | cluster ARI vs MiniLM fp32, same seed: "
              "mean (min-max) |")
        print("|---|---|---|---|---|---|")
        for r in table:
            print(f"| {r['embedder']} | {r['dim']} | {r['texts_per_s']:,.0f} | {r['recall@10']:.2f} | {r['clusters']} | "
                  f"{r['ari']:.2f} ({r['ari_min']:.2f}-{r['ari_max']:.2f}) |")
        floor = next(r for r in table if "floor" in r["embedder"])
        for r in table:
            if "int8" in r["embedder"]:
                print(f"{r['embedder']}: mean ARI {r['ari']:.2f} vs the bar 0.7: {'kept' if r['ari'] >= 0.7 else 'NOT kept'} "
                      f"(the floor, fp32's own vectors at other seeds: {floor['ari']:.2f}, {floor['ari_min']:.2f}-{floor['ari_max']:.2f})")


if __name__ == "__main__":
    main()
