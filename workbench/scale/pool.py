"""Run the sharded curation over a whole pool (locally or on Ray), and read its outputs back: curated pairs,
decision summaries, the training set, the error map of the whole pool, and the pool-level reward models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench.curation.clustering import ClusterConfig, ErrorMap, error_frame
from workbench.data import files as io
from workbench.data.schema import PAIR_COLUMNS, PairFrame
from workbench.models.training import RMTrainConfig, train_reward_model
from workbench.runs.export import training_rows
from workbench.scale.index import ShardedVectors
from workbench.scale.ray_backend import curate_on_ray
from workbench.scale.shards import (
    SCALE_EMBEDDER,
    ScaleConfig,
    ShardWorker,
    _check_manifest,
    finished_shards,
    finished_summary,
    list_shards,
    read_curated,
)


def curate_pool(pool_dir: str | Path, out_dir: str | Path, cfg: ScaleConfig, *, progress: bool = True) -> pd.DataFrame:
    """Tag, embed, score and Stage-2-filter every shard of ``pool_dir``; resumable; one summary row per shard.

    Example: ``curate_pool("pools/big", "runs/big", ScaleConfig(stage1_rm=..., gold_rm=..., backend="ray"))``.
    """
    pool_dir, out_dir = Path(pool_dir), Path(out_dir)
    shards = list_shards(pool_dir)
    key = cfg.key()
    _check_manifest(out_dir, key, shards, pool_dir)
    finished = {s.stem: done for s in shards if (done := finished_summary(out_dir, s, key)) is not None}
    todo = [s for s in shards if s.stem not in finished]
    rows = list(finished.values())
    if todo and cfg.backend == "ray":
        rows += curate_on_ray(todo, out_dir, cfg, key)
    elif todo:
        worker = ShardWorker(cfg, out_dir, key)
        rows += [worker.process(s) for s in tqdm(todo, desc="curating shards", unit="shard", disable=not progress)]
    return pd.DataFrame(rows).sort_values("shard").reset_index(drop=True)


# ---------------------------------------------------------------- reading the outputs back


def decision_summary(out_dir: str | Path) -> pd.DataFrame:
    """keep / flip / drop counts per task category (``all`` when untagged), from the shard outputs."""
    out_dir = Path(out_dir)
    frames = []
    for n in finished_shards(out_dir):
        dec = pd.read_parquet(out_dir / "curated" / f"{n}.parquet", columns=["pair_id", "stage2_decision"])
        tag_file = out_dir / "tags" / f"{n}.parquet"
        cat = pd.read_parquet(tag_file, columns=["task_category"])["task_category"] if tag_file.exists() else "all"
        frames.append(dec.assign(task_category=cat).groupby(["task_category", "stage2_decision"]).size())
    table = pd.concat(frames).groupby(level=[0, 1]).sum().unstack(fill_value=0)
    return table.reindex(columns=[c for c in ("keep", "flip", "drop") if c in table.columns], fill_value=0)


def write_training_set(out_dir: str | Path, path: str | Path, *, heldout: PairFrame | None = None) -> tuple[Path, int]:
    """The kept and flipped pairs of every finished shard as one parquet file (flips applied), written shard by
    shard, for notebook 06 (``dataset = "scale_curated"``) or `workbench.runs.export` (the same
    `workbench.runs.export.training_rows`). ``heldout`` (e.g. the run's gold and test splits, which 06
    evaluates on) is appended with empty Stage-2 columns. Returns the path and the number of curated pairs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir, path = Path(out_dir), Path(path)
    written = 0

    def aligned(table: pa.Table, schema: pa.Schema) -> pa.Table:
        return pa.table({f.name: (table.column(f.name).cast(f.type) if f.name in table.column_names
                                  else pa.nulls(table.num_rows, f.type)) for f in schema}, schema=schema)

    def write(tmp: str) -> None:
        nonlocal written
        writer = None
        for name in finished_shards(out_dir):
            table = io._to_arrow(training_rows(io.load_pairs(out_dir / "curated" / f"{name}.parquet")))
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(aligned(table, writer.schema))
            written += table.num_rows
        if heldout is not None and len(heldout) and writer is not None:
            writer.write_table(aligned(io._to_arrow(heldout), writer.schema))
        if writer is not None:
            writer.close()

    io._write_atomically(path, write)
    return path, written


def map_sample(out_dir: str | Path, *, max_points: int = 20_000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """The pairs an error map of the whole pool draws, and their vectors: every pair the Stage-1 RM gets
    wrong (``p_stage1 < 0.5``; a random subset if there are more than ``max_points``) plus a random sample of
    the rest. Texts are read only for these rows. Feed to `workbench.curation.clustering.ErrorMap` (UMAP is fitted on
    at most ``fit_sample`` of them, the rest transformed) and `workbench.curation.plots.error_map`."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    scores = read_curated(out_dir, ["pair_id", "p_stage1"])
    wrong = np.flatnonzero(scores["p_stage1"].to_numpy() < 0.5)
    right = np.setdiff1d(np.arange(len(scores)), wrong)
    if len(wrong) > max_points:
        wrong = rng.choice(wrong, size=max_points, replace=False)
    right = rng.choice(right, size=min(len(right), max_points - len(wrong)), replace=False)
    rows = np.sort(np.concatenate([wrong, right]).astype(np.int64))
    vectors = ShardedVectors(out_dir)
    keep = set(scores["pair_id"].to_numpy()[rows])
    wanted = list(PAIR_COLUMNS) + ["stage2_decision", "p_stage1", "p_gold"]
    frames = []
    for n in vectors.names:
        shard = pd.read_parquet(out_dir / "curated" / f"{n}.parquet", columns=wanted)
        frames.append(shard[shard["pair_id"].isin(keep)])
    pairs = pd.concat(frames, ignore_index=True)
    pairs["prompt"] = [list(p) for p in pairs["prompt"]]
    return pairs, vectors.rows(rows)


def map_whole_pool(out_dir: str | Path, reducer: Any, *, progress: bool = True) -> list[Path]:
    """Transform every shard's vectors into a fitted map (``ErrorMap.reducer_2d``, fitted on a sample) and save
    the 2-D coordinates as ``map/<shard>.npy`` (rows = curated rows); shards already mapped are skipped. For
    selecting regions of a pool too large to draw; the drawn map itself comes from `map_sample`."""
    out_dir = Path(out_dir)
    vectors = ShardedVectors(out_dir)
    paths = []
    for i, name in enumerate(tqdm(vectors.names, desc="mapping shards", unit="shard", disable=not progress)):
        path = out_dir / "map" / f"{name}.npy"
        if not path.exists():
            block = np.asarray(vectors.shard(i), dtype=np.float32)
            io.write_array_atomic(np.asarray(reducer.transform(block), dtype=np.float32), path)
        paths.append(path)
    return paths


def train_pool_rms(pairs: PairFrame, out_dir: str | Path, *, embedder: str = SCALE_EMBEDDER, epochs: int = 10,
                   seed: int = 0, progress: bool = True) -> tuple[Path, Path]:
    """Two fast embedding-head RMs for `ScaleConfig` when a run has none yet: a *Stage-1* RM trained on the
    ``train`` split's labels as they are and a *gold* RM trained on the ``gold`` split. Returns their folders
    (``out_dir/stage1_rm/model``, ``out_dir/gold_rm/model``). In the full pipeline these come from
    notebooks 04 and 05 instead."""
    out_dir = Path(out_dir)
    cfg = RMTrainConfig(kind="embedding_head", backbone=embedder, head_epochs=epochs, seed=seed)
    folders = []
    for name, split in (("stage1_rm", "train"), ("gold_rm", "gold")):
        part = pairs[pairs["split"] == split]
        if len(part) < 2:
            raise ValueError(f"train_pool_rms: need >= 2 '{split}' pairs for the {name}, got {len(part)}.")
        folders.append(train_reward_model(part, None, cfg=cfg, output_dir=out_dir / name, progress=progress).model_dir)
    return folders[0], folders[1]


def error_map_frame(out_dir: str | Path, *, max_points: int, seed: int = 0) -> tuple[pd.DataFrame, Any]:
    """The error map of a curated pool: `map_sample`'s pairs placed by an `ErrorMap` fitted on at most 2,000 of them,
    coloured by whether the Stage-1 RM agrees with the label. Returns (frame for `plots.error_map`, the fitted map)."""
    pairs, vectors = map_sample(out_dir, max_points=max_points, seed=seed)
    fitted = ErrorMap(ClusterConfig(fit_sample=min(2000, len(vectors)), min_cluster_size=10, seed=seed)).fit(vectors)
    p1 = pairs["p_stage1"].clip(1e-6, 1 - 1e-6)
    scores = pd.DataFrame({"pair_id": pairs["pair_id"], "margin": np.log(p1 / (1 - p1)), "p": pairs["p_stage1"]})
    return error_frame(pairs, scores, fitted.xy, fitted.clusters), fitted


def scale_metrics(summary: pd.DataFrame, *, backend: str, embedder: str, wall_s: float, retrieval: dict[str, Any],
                  map_points: int, training_pairs: int) -> dict[str, Any]:
    """A scale run at a glance: pairs, shards, time per pair over all stages, decisions, retrieval, map, training."""
    stages = [c for c in summary.columns if c.endswith("_s")]
    n = int(summary["pairs"].sum())
    return {"pairs": n, "shards": len(summary), "backend": backend, "embedder": embedder or "all-MiniLM-L6-v2",
            "wall_seconds_this_call": wall_s, "microseconds_per_pair": float(summary[stages].sum().sum() / n * 1e6),
            **{f"decision_{d}": int(summary[d].sum()) for d in ("keep", "flip", "drop")},
            **{f"retrieval_{k}": v for k, v in retrieval.items()}, "map_points": map_points,
            "curated_training_pairs": training_pairs}
