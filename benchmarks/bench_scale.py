"""Scale (issues #9, #32): tag + embed + score + Stage-2 filter + index + retrieve on synthetic pools, and the cost
model's check.

Per size, in a fresh process (peak memory = the whole process tree's RSS, polled every 0.2 s):
  curate   `workbench.scale.shards.curate_pool`, local backend: per parquet shard, the embedded tagger, the pair
           embedding, two fast-head RMs (Stage-1 + gold) and the Stage-2 rule; per-stage seconds summed
           from the shard summaries (resumable: a stopped run picks up at the next unfinished shard)
  index    `build_index` with today's default (`IndexConfig()`: HNSW over float16) or ``--index-kind``, filled shard by
           shard (HNSW's graph costs 784 bytes per pair: ~8 GB at 10M; ``--index-kind ivf-sq8`` 264)
  retrieve the paper's k-rule for 2,000 gold pairs against it
  search   at the largest size: the index vs exact search (streamed over the float16 shards) for 1,000 queries,
           recall@8 and speed-up, at efSearch 64 / 128 / 256 (HNSW) or nprobe 16 / 64 / 128 / 256 (IVF)
Each size's measurement is written as ``<out>/costs.json`` (`workbench.scale.plan.MeasuredRun`): what
``workbench plan`` fits. With three or more sizes, the largest is also *predicted* from the smaller ones and the
prediction printed beside the measurement. Cost per pair = stage seconds / pairs; flat means the largest size's
within 1.2x of the smallest's.

Embedder: the scale default (``minilm-static``); ``--embedder hashing`` or ``""`` (MiniLM, ~30 ms per pair here)
for comparison. ``--ray-size N`` also curates the N-pair pool twice more, side by side in fresh folders: the local
backend and Ray (2 actors), curation only; it prints both wall times and checks the outputs are equal.

Run: .venv/bin/python benchmarks/bench_scale.py [--sizes 100000 1000000] [--work /tmp/wb-scale]
     (10M: ``--sizes 100000 1000000 10000000 --index-kind ivf-sq8``; run it again after a stop and it resumes;
     an index kind other than the default gets its own output folders, ``out-<n>-local-<kind>``)
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
    if args.curate_only:
        return out
    t = time.perf_counter()
    vectors = scale.ShardedVectors(args.out)
    index_path = Path(args.out) / "index.faiss"
    index = scale.build_index(vectors, scale.IndexConfig(kind=args.index_kind), path=index_path, progress=False)
    out["index_s"] = time.perf_counter() - t
    out["index_kind"] = index.cfg.kind
    out["index_gb"] = index_path.stat().st_size / 1e9
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
        from dataclasses import replace

        from workbench.curation.retrieval import recall_at_k

        queries = gold_emb[:1_000]
        t = time.perf_counter()
        _, exact = scale.ShardedExactSearch(vectors).search(queries, 8)
        out["exact_search_s"] = time.perf_counter() - t
        knob, values = ("ef_search", (64, 128, 256)) if args.index_kind == "hnsw" else ("nprobe", (16, 64, 128, 256))
        for v in values:
            index.configure(replace(index.cfg, **{knob: v}))
            t = time.perf_counter()
            _, approx = index.search(queries, 8)
            out[f"{knob}{v}_s"] = time.perf_counter() - t
            out[f"recall8_{knob}{v}"] = recall_at_k(approx, exact)
    out["disk_gb"] = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file()) / 1e9
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


def measured(res: dict, peak_gb: float, wall_s: float, n: int) -> dict:
    """The child's result as a `MeasuredRun` record (``costs.json``), on this machine's cores."""
    from workbench.scale.plan import SHARD_STAGES, MeasuredRun

    stages = {k: round(res[f"{k}_s"], 2) for k in (*SHARD_STAGES, "index", "retrieve")}
    run = MeasuredRun(pairs=n, cores=os.cpu_count() or 1, stage_seconds=stages, peak_memory_gb=round(peak_gb, 2),
                      disk_gb=round(res["disk_gb"], 3), index_memory_gb=round(res["index_gb"], 3),
                      wall_seconds=round(wall_s if not res.get("resumed") else sum(stages.values()), 1),
                      note=f"bench_scale {time.strftime('%Y-%m-%d')}, embedder {res['embedder']}, index {res['index_kind']}"
                           + (" (resumed: wall = the stages' sum)" if res.get("resumed") else ""), index_kind=res["index_kind"])
    return run.__dict__


def ray_check(work: Path, n: int, pool: Path, rms: str, embedder: str) -> None:
    """The same pool curated by the local backend and on Ray (2 actors), one after the other in fresh folders (the same
    hour of this machine, curation only): both wall times, their ratio, and whether the outputs are equal."""
    import shutil

    times, outs = {}, {backend: work / f"out-{n}-{backend}-curate" for backend in ("local", "ray")}
    for backend, out in outs.items():
        shutil.rmtree(out, ignore_errors=True)  # a fresh run, not a resumed one
        res, peak, wall = run_child(["--pool", str(pool), "--out", str(out), "--rms", rms, "--embedder", embedder,
                                     "--backend", backend, "--workers", "2", "--curate-only"])
        times[backend] = {"curate_s": round(res["curate_s"], 1), "process_wall_s": round(wall, 1), "peak_gb": round(peak, 2)}
    print(json.dumps({"ray_vs_local_pairs": n, **{f"{b}_{k}": v for b, t in times.items() for k, v in t.items()},
                      "ratio_ray_over_local": round(times["ray"]["process_wall_s"] / times["local"]["process_wall_s"], 2),
                      "identical_outputs": _same_outputs(outs["local"], outs["ray"])}),
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--work", default="/tmp/wb-scale")
    parser.add_argument("--embedder", default=None, help="default: the scale default (minilm-static)")
    parser.add_argument("--ray-size", type=int, default=0, help="also curate this size on Ray (2 actors); 0 skips")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--pool", default="")
    parser.add_argument("--out", default="")
    parser.add_argument("--rms", default="")
    parser.add_argument("--backend", default="local")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--search", action="store_true")
    parser.add_argument("--curate-only", action="store_true", help="child: stop after curation (no index)")
    parser.add_argument("--index-kind", default=None, help="hnsw (the default), ivf, ivf-sq8 or ivf-refine")
    args = parser.parse_args()
    if args.embedder is None:
        from workbench.scale import SCALE_EMBEDDER

        args.embedder = SCALE_EMBEDDER
    from workbench.scale import IndexConfig

    default_kind = IndexConfig().kind
    args.index_kind = args.index_kind or default_kind
    if args.child:
        print(json.dumps(child_pipeline(args)))
        return

    from workbench.data.synthetic import SyntheticConfig, write_synthetic_pool
    from workbench.scale.plan import MeasuredRun, Target, load_measured_run, predict

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rms = ",".join(_rms(work, args.embedder))
    runs = []
    for n in args.sizes:
        pool = work / f"pool-{n}"
        out = work / (f"out-{n}-local" + ("" if args.index_kind == default_kind else f"-{args.index_kind}"))
        if (out / "costs.json").exists():  # measured by an earlier call: reuse it
            runs.append(load_measured_run(out))
            print(json.dumps({"pairs": n, "reused": str(out / "costs.json")}), flush=True)
            if n == args.ray_size:
                ray_check(work, n, pool, rms, args.embedder)
            continue
        t = time.perf_counter()
        write_synthetic_pool(pool, SyntheticConfig(n_pairs=n, shard_size=SHARD), progress=False)  # resumable
        gen_s = time.perf_counter() - t
        resumed = (out / "done").exists() and any((out / "done").iterdir())
        res, peak, wall = run_child(["--pool", str(pool), "--out", str(out), "--rms", rms, "--embedder", args.embedder,
                                     "--index-kind", args.index_kind, *(["--search"] if n == max(args.sizes) else [])])
        res.update(embedder=args.embedder, resumed=resumed)
        record = MeasuredRun(**measured(res, peak, wall, n))
        record.save(out / "costs.json")
        runs.append(record)
        stage_s = sum(record.stage_seconds.values())
        row = {"pairs": n, "generate_s": round(gen_s, 1), "wall_s": round(wall, 1), "peak_gb": round(peak, 2),
               "us_per_pair": round(1e6 * stage_s / n, 1), **{k: (round(v, 3) if isinstance(v, float) else v)
                                                              for k, v in res.items()}}
        print(json.dumps(row), flush=True)
        if n == args.ray_size:
            ray_check(work, n, pool, rms, args.embedder)
    if len(runs) > 1:
        per_pair = [sum(r.stage_seconds.values()) / r.pairs for r in runs]
        print(json.dumps({"cost_per_pair_ratio_largest_over_smallest": round(per_pair[-1] / per_pair[0], 2)}))
    if len(runs) > 2:  # the cost model's check: the largest size predicted from the others
        plan = predict(runs[:-1], Target(pairs=runs[-1].pairs, cores_per_machine=runs[-1].cores))
        big = runs[-1]
        print(json.dumps({"predicted_pairs": big.pairs, "predicted_wall_s": round(plan.wall_seconds, 1),
                          "measured_wall_s": big.wall_seconds, "error": round(plan.wall_seconds / big.wall_seconds - 1, 3),
                          "predicted_peak_gb": round(plan.peak_memory_gb, 2), "measured_peak_gb": big.peak_memory_gb,
                          "predicted_disk_gb": round(plan.disk_gb, 2), "measured_disk_gb": big.disk_gb}), flush=True)


if __name__ == "__main__":
    main()
