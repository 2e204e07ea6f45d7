"""Scale (issue #9): tag + embed + score + Stage-2 filter + index + retrieve on synthetic pools of 100k and 1M pairs.

Per size, in a fresh process (peak memory = the whole process tree's RSS, polled every 0.2 s):
  curate   `workbench.scale.shards.curate_pool`, local backend: per parquet shard, the embedded tagger, the pair
           embedding, two fast-head RMs (Stage-1 + gold) and the Stage-2 rule; per-stage seconds summed
           from the shard summaries
  index    `build_index`: faiss IVF (fp16 codes) trained on a sample, filled shard by shard
  retrieve the paper's k-rule for 2,000 gold pairs against the IVF index
Cost per pair = wall time / pairs; the goal is flat from 100k to 1M and peak memory < 8 GB at 1M.

Then, at the largest size, faiss IVF vs exact search (streamed over the float16 shards) for 1,000 queries:
speed-up and recall@8. And local vs Ray backend on the same 100k pool: equal outputs, wall-time ratio.

Embedder: ``hashing`` by default. The offline MiniLM runs at ~170 texts/s on this CPU and the stages
embed ~5 texts per pair, so 1M pairs would take ~8 hours; ``--minilm-size`` measures its cost per pair on
a small pool instead, so the projection is a measurement, not a guess.

Run: .venv/bin/python benchmarks/bench_scale.py [--sizes 100000 1000000] [--work /tmp/wb-scale]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
SHARD = 10_000


def _rms(work: Path, embedder: str) -> tuple[str, str]:
    from workbench import scale
    from workbench.data.demo import build_demo_pairs, demo_config

    folder = work / f"rms-{embedder or 'minilm'}"
    if not (folder / "gold_rm" / "model").exists():
        pairs = build_demo_pairs(cfg=demo_config()).pairs
        scale.train_pool_rms(pairs, folder, embedder=embedder, epochs=10, progress=False)
    return str(folder / "stage1_rm" / "model"), str(folder / "gold_rm" / "model")


def child_pipeline(args: argparse.Namespace) -> dict:
    """One size, one process: curate, index, retrieve; prints a JSON line."""
    import pandas as pd

    from workbench import scale
    from workbench.curation.clustering import embed_pairs
    from workbench.curation.tagging import EmbeddedTagger
    from workbench.data.synthetic import SyntheticConfig, heldout_synthetic_pairs, hh_profile
    from workbench.models.scoring import load_reward_model, score_pairs

    stage1, gold = args.rms.split(",")
    cfg = scale.ScaleConfig.from_params(stage1_rm=stage1, gold_rm=gold, embedder=args.embedder, backend=args.backend,
                            workers=args.workers)
    out: dict = {"pairs": 0}
    t = time.perf_counter()
    summary = scale.curate_pool(args.pool, args.out, cfg, progress=False)
    out["curate_s"] = time.perf_counter() - t
    out["pairs"] = int(summary["pairs"].sum())
    for stage in ("read", "tag", "embed", "score", "filter", "write"):
        out[f"{stage}_s"] = float(summary[f"{stage}_s"].sum()) if f"{stage}_s" in summary else float("nan")
    out["decisions"] = {d: int(summary[d].sum()) for d in ("keep", "flip", "drop")}
    if args.backend == "ray":
        return out
    t = time.perf_counter()
    vectors = scale.ShardedVectors(args.out)
    index = scale.build_index(vectors, path=Path(args.out) / "index.faiss", progress=False)
    out["index_s"] = time.perf_counter() - t
    # 2,000 gold pairs: same topics as the pool, not in it; scored by the Stage-1 RM, embedded like the pool.
    golds = heldout_synthetic_pairs(hh_profile(), SyntheticConfig(n_pairs=out["pairs"], shard_size=SHARD), 2_000)
    t = time.perf_counter()
    gold_p = score_pairs(load_reward_model(stage1), golds, progress=False)["p"].to_numpy()
    tags = pd.DataFrame([{"pair_id": pid, **attrs} for pid, (_, attrs, _) in
                         zip(golds["pair_id"], EmbeddedTagger(embedder_name=args.embedder).tag_batch(golds))])
    gold_emb = embed_pairs(golds, tags, model_name=args.embedder, progress=False)  # as the pool: with attributes
    ids = vectors.pair_ids()
    hits = scale.retrieve_at_scale(list(golds["pair_id"]), gold_p, gold_emb, index, ids)
    out["retrieve_s"] = time.perf_counter() - t
    out["retrieved"] = len(hits)
    if args.search:
        queries = gold_emb[:1_000]
        t = time.perf_counter()
        _, exact = scale.ShardedExactSearch(vectors).search(queries, 8)
        out["exact_search_s"] = time.perf_counter() - t
        from workbench.curation.retrieval import recall_at_k

        for nprobe in (8, 32, 128):
            index.index.nprobe = nprobe
            t = time.perf_counter()
            _, approx = index.search(queries, 8)
            out[f"ivf_nprobe{nprobe}_s"] = time.perf_counter() - t
            out[f"recall8_nprobe{nprobe}"] = recall_at_k(approx, exact)
    out["vectors_mb_on_disk"] = sum(p.stat().st_size for p in (Path(args.out) / "vectors").glob("*.npy")) / 2 ** 20
    return out


def run_child(argv: list[str]) -> tuple[dict, float, float]:
    """Run this script as a child; (its JSON result, peak RSS of its process tree in GB, wall seconds)."""
    import psutil

    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", *argv], stdout=subprocess.PIPE, text=True)
    peak = [0]

    def poll() -> None:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root] + root.children(recursive=True)
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    stdout, _ = proc.communicate()
    watcher.join()
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode}): {argv}")
    return json.loads(stdout.strip().splitlines()[-1]), peak[0] / 1e9, time.perf_counter() - t


def _same_outputs(a: Path, b: Path) -> bool:
    import numpy as np
    import pandas as pd

    for f in sorted((a / "curated").glob("*.parquet")):
        x = pd.read_parquet(f).drop(columns="label_at")
        y = pd.read_parquet(b / "curated" / f.name).drop(columns="label_at")
        if not x.equals(y):
            return False
        if not np.array_equal(np.load(a / "vectors" / f"{f.stem}.npy"), np.load(b / "vectors" / f"{f.stem}.npy")):
            return False
        if not pd.read_parquet(a / "tags" / f.name).equals(pd.read_parquet(b / "tags" / f.name)):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--work", default="/tmp/wb-scale")
    parser.add_argument("--embedder", default="hashing")
    parser.add_argument("--ray-size", type=int, default=100_000, help="0 skips local vs Ray")
    parser.add_argument("--minilm-size", type=int, default=2_000, help="0 skips the MiniLM cost-per-pair run")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--pool", default="")
    parser.add_argument("--out", default="")
    parser.add_argument("--rms", default="")
    parser.add_argument("--backend", default="local")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--search", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_pipeline(args)))
        return

    from workbench.data.synthetic import SyntheticConfig, write_synthetic_pool

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rms = ",".join(_rms(work, args.embedder))
    rows = []
    for n in args.sizes:
        pool = work / f"pool-{n}"
        t = time.perf_counter()
        write_synthetic_pool(pool, SyntheticConfig(n_pairs=n, shard_size=SHARD), progress=False)
        gen_s = time.perf_counter() - t
        out = work / f"out-{n}-local"
        res, peak, wall = run_child(["--pool", str(pool), "--out", str(out), "--rms", rms, "--embedder", args.embedder,
                                     *(["--search"] if n == max(args.sizes) else [])])
        total = res["curate_s"] + res["index_s"] + res["retrieve_s"]
        row = {"pairs": n, "generate_s": round(gen_s, 1), "wall_s": round(wall, 1), "peak_gb": round(peak, 2),
               "us_per_pair": round(1e6 * total / n, 1), **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in res.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if n == args.ray_size:
            ray_out = work / f"out-{n}-ray"
            ray_res, ray_peak, ray_wall = run_child(["--pool", str(pool), "--out", str(ray_out), "--rms", rms,
                                                    "--embedder", args.embedder, "--backend", "ray", "--workers", "2"])
            print(json.dumps({"ray_vs_local_pairs": n, "local_curate_s": round(res["curate_s"], 1),
                              "ray_curate_s": round(ray_res["curate_s"], 1), "ray_process_wall_s": round(ray_wall, 1),
                              "ray_peak_gb": round(ray_peak, 2),
                              "overhead_ratio_ray_over_local": round(ray_res["curate_s"] / res["curate_s"], 2),
                              "identical_outputs": _same_outputs(out, ray_out)}), flush=True)
    if len(rows) > 1:
        print(json.dumps({"cost_per_pair_ratio_largest_over_smallest": round(rows[-1]["us_per_pair"] / rows[0]["us_per_pair"], 2)}))
    if args.minilm_size:
        n = args.minilm_size
        pool = work / f"pool-minilm-{n}"
        write_synthetic_pool(pool, SyntheticConfig(n_pairs=n, shard_size=min(SHARD, n)), progress=False)
        minilm_rms = ",".join(_rms(work, ""))
        res, peak, wall = run_child(["--pool", str(pool), "--out", str(work / f"out-minilm-{n}"), "--rms", minilm_rms,
                                     "--embedder", ""])
        per_pair = res["curate_s"] / n
        print(json.dumps({"minilm_pairs": n, "curate_s": round(res["curate_s"], 1), "us_per_pair": round(1e6 * per_pair),
                          "peak_gb": round(peak, 2), "projected_1M_hours": round(per_pair * 1e6 / 3600, 1),
                          **{k: round(res[k], 1) for k in ("tag_s", "embed_s", "score_s")}}), flush=True)


if __name__ == "__main__":
    main()
