"""Curate a pool too large for memory: the tag -> embed -> score -> Stage-2 stages, one parquet shard at a time.

The pool is a folder of parquet shards (`shard_pair_file` cuts any pair file into them;
`workbench.synthetic` writes synthetic ones). `curate_pool` runs every shard through
`ShardWorker.process` and writes per shard::

    out_dir/tags/<shard>.parquet      the attributes (tags/<shard>.sqlite: the tagger's durable log)
    out_dir/vectors/<shard>.npy       float16 (conversation, attributes) embeddings, rows = curated rows
    out_dir/curated/<shard>.parquet   the pairs with Stage-2 decisions and provenance (`stage2.curate`)
    out_dir/judge/<shard>.sqlite      with ``judge="llm"``: the judge's answers on the unsure pairs (durable)
    out_dir/done/<shard>.json         written last: the shard is finished (resume skips it)

Memory is bounded by one shard per worker, whatever the pool size. A crash or Ctrl-C loses at most the
shards in flight (an LLM tagger's finished chunks are kept in the sqlite log). ``backend="ray"`` runs the
same `ShardWorker` as Ray Data actors (`workbench.ray_backend`): same files, same bytes.

After the shards: `ShardedVectors` reads the embeddings back memory-mapped, `build_ivf_index` builds a faiss
IVF index over them in chunks, `ShardedExactSearch` is the exact baseline, `retrieve_at_scale` applies the
paper's k-rule against either, `map_sample` draws the error map from a sample with every error kept, and
`map_whole_pool` places every pair on that map (``out_dir/map/<shard>.npy``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench import io
from workbench.export import training_rows
from workbench.retrieval import top_k
from workbench.schema import PAIR_COLUMNS, PairFrame, validate_pair_frame
from workbench.stage2 import Stage2Config, consistency_decisions, curate

BACKENDS = ("local", "ray")
TAGGERS = ("embedded", "llm", "none")
JUDGES = ("none", "llm")


@dataclass(frozen=True)
class ScaleConfig:
    """What `curate_pool` runs (notebook 09's parameters map onto it).

    The two RMs are folders written by `workbench.training.train_reward_model` (any kind; fast embedding
    heads keep a million pairs to minutes). ``embedder`` embeds the pair map and the embedded tagger;
    ``"hashing"`` is the model-free embedder for very large pools on CPUs.
    """

    stage1_rm: str
    gold_rm: str
    embedder: str = ""  # "" = offline MiniLM; "hashing" = `workbench.embedding.HashingEmbedder`
    tagger: str = "embedded"  # embedded | llm | none
    judge: str = "none"  # none | llm: the LLM judge labels the pairs the Stage-1 RM is not confident on
    llm_base_url: str = ""  # tagger or judge "llm": an OpenAI-compatible endpoint (see README)
    llm_model: str = ""
    llm_api_key_env: str = "WORKBENCH_LLM_API_KEY"
    backend: str = "local"  # local | ray
    ray_address: str = ""  # backend="ray": "" starts a local Ray; "auto" or "ray://host:10001" joins a cluster
    workers: int = 2  # backend="ray": actors, each holding the models and working on one shard at a time
    stage2: Stage2Config = field(default_factory=Stage2Config)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"Unknown backend {self.backend!r}; choose one of {list(BACKENDS)}.")
        if self.tagger not in TAGGERS:
            raise ValueError(f"Unknown tagger {self.tagger!r}; choose one of {list(TAGGERS)}.")
        if self.judge not in JUDGES:
            raise ValueError(f"Unknown judge {self.judge!r}; choose one of {list(JUDGES)}.")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}.")
        for name in ("stage1_rm", "gold_rm"):
            if not Path(getattr(self, name)).exists():
                raise FileNotFoundError(f"{name}={getattr(self, name)!r}: no reward model folder there; train one first "
                                        "(notebooks 04/05, or workbench.training.train_reward_model).")

    def key(self) -> str:
        """What the outputs depend on: models, embedder, tagger, thresholds (not the backend or workers)."""
        from workbench.scoring import load_reward_model

        parts = {k: v for k, v in asdict(self).items() if k not in ("backend", "ray_address", "workers")}
        parts["stage1_rm"] = load_reward_model(self.stage1_rm).fingerprint
        parts["gold_rm"] = load_reward_model(self.gold_rm).fingerprint
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def list_shards(pool_dir: str | Path) -> list[Path]:
    """The pool's parquet shards, in name order (the order of rows in every output)."""
    pool_dir = Path(pool_dir)
    if not pool_dir.is_dir():
        raise FileNotFoundError(f"{pool_dir}: not a folder of parquet shards (use workbench.scale.shard_pair_file "
                                "to cut a pair file into shards).")
    shards = sorted(pool_dir.glob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"{pool_dir}: no *.parquet shards in this folder.")
    return shards


def shard_pair_file(path: str | Path, out_dir: str | Path, *, shard_size: int = 10_000, fmt: str = "auto",
                    split: str = "train", strict: bool = False) -> list[Path]:
    """Cut a pair file (any format `workbench.io.read_pairs` reads) into canonical parquet shards, reading it
    record by record (JSONL and parquet never whole).

    Lenient by default, like `workbench.io.read_pairs(strict=False)`: a bad row is rejected with its file, row,
    field and reason into ``out_dir/rejects.jsonl`` and every good row is kept; ``strict=True`` stops at the
    first bad row instead (`workbench.pairs.PairError`). A pair seen before (same ``pair_id``: same conversation
    and responses, in either label order) is skipped and counted; only the ids are kept in memory."""
    import warnings

    from workbench.pairs import records_to_pairs

    path, out_dir = Path(path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, written, seen, repeated, reports = io.iter_records(path), [], set(), 0, []
    for index in itertools.count():
        chunk = list(itertools.islice(records, shard_size))
        if not chunk:
            break
        pairs, report = records_to_pairs(chunk, where=str(path), source=path.name.split(".")[0], fmt=fmt, strict=strict)
        reports.append(report)
        fmt = report.fmt  # detected on the first chunk, then fixed for the rest of the file
        again = pairs["pair_id"].isin(seen)
        repeated += int(again.sum())
        pairs = pairs[~again].assign(split=split)
        seen.update(pairs["pair_id"])
        written.append(io.write_pairs(pairs, out_dir / f"shard-{index:05d}.parquet"))
    io.write_rejects(reports, out_dir / "rejects.jsonl")
    rejected = sum(r.n_rejected for r in reports)
    if rejected or repeated:
        warnings.warn(f"{path}: {rejected} rows rejected (reasons in {out_dir / 'rejects.jsonl'}) and {repeated} pairs "
                      "repeated across shards skipped; every other row is in the shards.", stacklevel=2)
    return written


def _load_shard(path: Path) -> PairFrame:
    pairs = io.load_pairs(path)
    validate_pair_frame(pairs, where=str(path))
    return pairs


@dataclass
class ShardWorker:
    """Holds the models once (per process or Ray actor) and curates one shard per `process` call."""

    cfg: ScaleConfig
    out_dir: Path
    key: str = ""

    def __post_init__(self) -> None:
        from workbench.scoring import load_reward_model

        self.out_dir = Path(self.out_dir)
        self.key = self.key or self.cfg.key()
        self.stage1 = load_reward_model(self.cfg.stage1_rm)
        self.gold = load_reward_model(self.cfg.gold_rm)
        self.tagger = self._tagger()
        self.judge = self._judge()

    def _endpoint(self) -> Any:
        from workbench.llm.client import EndpointConfig

        return EndpointConfig(base_url=self.cfg.llm_base_url, model=self.cfg.llm_model, api_key_env=self.cfg.llm_api_key_env)

    def _tagger(self) -> Any:
        from workbench.tagging import EmbeddedTagger, make_tagger

        if self.cfg.tagger == "embedded":
            return EmbeddedTagger(embedder_name=self.cfg.embedder)
        if self.cfg.tagger == "llm":
            return make_tagger("llm", endpoint=self._endpoint())
        return None

    def _judge(self) -> Any:
        if self.cfg.judge == "none":
            return None
        from workbench.judge import LLMJudge
        from workbench.llm.client import ChatClient
        from workbench.review import JudgeReviewer

        return JudgeReviewer(LLMJudge([ChatClient(self._endpoint().resolved())]), results=None)

    def _judge_labels(self, shard: Path, pool: PairFrame, p_stage1: np.ndarray, tags: pd.DataFrame | None) -> Any:
        """The judge on this shard's unsure pairs, its answers durable in ``judge/<shard>.sqlite``."""
        from dataclasses import replace

        from workbench.stage2 import judge_labels

        if self.judge is None:
            return None
        attributes = None
        if tags is not None:
            ok = tags[tags["tag_ok"]].set_index("pair_id")
            attributes = ok[["task_category", "objectivity", "controversiality", "desired_attributes",
                             "annotation_guideline"]].to_dict("index")
        store = io.ResultStore(self.out_dir / "judge" / f"{shard.stem}.sqlite", "judge")
        try:
            return judge_labels(pool, p_stage1, replace(self.judge, results=store, attributes=attributes), self.cfg.stage2)
        finally:
            store.close()


    def process(self, shard: str | Path) -> dict[str, Any]:
        """Curate one shard (or return its summary if an earlier run finished it)."""
        from workbench.clustering import embed_pairs
        from workbench.embedding import MemoryEmbeddingCache
        from workbench.scoring import score_pairs
        from workbench.tagging import TagConfig, tag_pairs

        shard = Path(shard)
        done = finished_summary(self.out_dir, shard, self.key)
        if done is not None:
            return done
        clock = _StageClock()
        pool = _load_shard(shard)
        clock.lap("read")
        cache = MemoryEmbeddingCache()  # one shard's texts are embedded once, shared by tagger, map and both RMs
        tags = None
        if self.tagger is not None:
            if hasattr(self.tagger, "cache"):
                self.tagger.cache = cache
            store = io.ResultStore(self.out_dir / "tags" / f"{shard.stem}.sqlite", "tags")
            try:
                tags = tag_pairs(pool, self.tagger, store=store, cfg=TagConfig(chunk_size=1024), progress=False)
            finally:
                store.close()
        clock.lap("tag")
        vectors = embed_pairs(pool, tags, cache=cache, model_name=self.cfg.embedder, progress=False)
        clock.lap("embed")
        p = {}
        for name, rm in (("stage1", self.stage1), ("gold", self.gold)):
            if hasattr(rm, "cache"):
                rm.cache = cache
            p[name] = score_pairs(rm, pool, progress=False)["p"].to_numpy()
        clock.lap("score")
        judge_label = self._judge_labels(shard, pool, p["stage1"], tags)
        clock.lap("judge")
        decisions = consistency_decisions(pool["pair_id"], p["stage1"], p["gold"], judge_label, self.cfg.stage2)
        curated = curate(pool, decisions, by=f"stage2-scale:{self.key}")
        clock.lap("filter")
        if tags is not None:
            io.write_frame(tags, self.out_dir / "tags" / f"{shard.stem}.parquet")
        io.write_array_atomic(np.asarray(vectors, dtype=np.float16), self.out_dir / "vectors" / f"{shard.stem}.npy")
        io.write_frame(curated, self.out_dir / "curated" / f"{shard.stem}.parquet")
        clock.lap("write")
        counts = curated["stage2_decision"].value_counts()
        summary = {"shard": shard.stem, "key": self.key, "pairs": len(pool), "seconds": clock.total(),
                   **{d: int(counts.get(d, 0)) for d in ("keep", "flip", "drop")}, **clock.seconds}
        io.write_json(summary, _done_path(self.out_dir, shard))  # the commit point: the shard is finished
        return summary


def _done_path(out_dir: Path, shard: Path) -> Path:
    return out_dir / "done" / f"{shard.stem}.json"


def finished_summary(out_dir: Path, shard: Path, key: str) -> dict[str, Any] | None:
    """The summary of ``shard`` if a run with this configuration ``key`` finished it, else None."""
    done = io.read_json(_done_path(out_dir, shard))
    return done if done is not None and done.get("key") == key else None


class _StageClock:
    """Seconds per stage of one shard (``read_s``, ``tag_s``, ...), for the summary and the benchmarks."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[f"{stage}_s"] = now - self._last
        self._last = now

    def total(self) -> float:
        return sum(self.seconds.values())


def _check_manifest(out_dir: Path, key: str, shards: Sequence[Path], pool_dir: Path) -> None:
    """An output folder belongs to one pool and one configuration: refuse to mix outputs of another. New shards
    added to the pool are fine (they are curated on the next run); shards that disappeared are not."""
    manifest = out_dir / "manifest.json"
    want = {"key": key, "pool_dir": str(pool_dir.resolve()), "shards": [s.stem for s in shards]}
    have = io.read_json(manifest)
    if have is not None:
        changed = [k for k in ("key", "pool_dir") if have.get(k) != want[k]]
        missing = sorted(set(have.get("shards", [])) - set(want["shards"]))
        if missing:
            changed.append(f"shards {missing[:3]} are gone from the pool")
        if changed:
            raise ValueError(f"{out_dir} holds outputs of another run ({', '.join(changed)}). "
                             "Use a new out_dir, or delete this one to start over.")
    if have != want:
        out_dir.mkdir(parents=True, exist_ok=True)
        io.write_json(want, manifest)


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
        from workbench.ray_backend import curate_on_ray

        rows += curate_on_ray(todo, out_dir, cfg, key)
    elif todo:
        worker = ShardWorker(cfg, out_dir, key)
        rows += [worker.process(s) for s in tqdm(todo, desc="curating shards", unit="shard", disable=not progress)]
    return pd.DataFrame(rows).sort_values("shard").reset_index(drop=True)


# ---------------------------------------------------------------- reading the outputs back


def _finished(out_dir: Path) -> list[str]:
    names = sorted(p.stem for p in (out_dir / "done").glob("*.json"))
    if not names:
        raise FileNotFoundError(f"{out_dir}: no finished shards; run workbench.scale.curate_pool first.")
    return names


def read_curated(out_dir: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Columns of every finished curated shard, concatenated (ask only for the columns you need: at 1M
    pairs the texts alone are gigabytes)."""
    out_dir = Path(out_dir)
    return pd.concat([pd.read_parquet(out_dir / "curated" / f"{n}.parquet", columns=list(columns) if columns else None)
                      for n in _finished(out_dir)], ignore_index=True)


def decision_summary(out_dir: str | Path) -> pd.DataFrame:
    """keep / flip / drop counts per task category (``all`` when untagged), from the shard outputs."""
    out_dir = Path(out_dir)
    frames = []
    for n in _finished(out_dir):
        dec = pd.read_parquet(out_dir / "curated" / f"{n}.parquet", columns=["pair_id", "stage2_decision"])
        tag_file = out_dir / "tags" / f"{n}.parquet"
        cat = pd.read_parquet(tag_file, columns=["task_category"])["task_category"] if tag_file.exists() else "all"
        frames.append(dec.assign(task_category=cat).groupby(["task_category", "stage2_decision"]).size())
    table = pd.concat(frames).groupby(level=[0, 1]).sum().unstack(fill_value=0)
    return table.reindex(columns=[c for c in ("keep", "flip", "drop") if c in table.columns], fill_value=0)


def write_training_set(out_dir: str | Path, path: str | Path, *, heldout: PairFrame | None = None) -> tuple[Path, int]:
    """The kept and flipped pairs of every finished shard as one parquet file (flips applied), written shard by
    shard, for notebook 06 (``pairs_file``) or `workbench.export` (the same `workbench.export.training_rows`). ``heldout`` (e.g. the run's gold and test splits, which 06
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
        for name in _finished(out_dir):
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


class ShardedVectors:
    """The per-shard float16 embeddings as one row space, memory-mapped (nothing is loaded whole)."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.names = _finished(self.out_dir)
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
    """The paper's adaptive k-rule (`workbench.retrieval.neighbours_to_pull`) against a sharded index (IVF or
    exact): the review queue of `workbench.retrieval.retrieve_for_gold` (one row per pulled pair, its strongest
    puller, ``pullers``, ``rank``) plus ``row``, the pair's global row in the shard outputs."""
    from workbench.retrieval import neighbours_to_pull, rank_candidates

    k = neighbours_to_pull(gold_p, k_max)
    active = np.flatnonzero(k > 0)
    if len(active) == 0:
        return rank_candidates(pd.DataFrame(columns=["pair_id", "pulled_by", "puller_p", "similarity", "row"]))
    sims, rows = index.search(np.asarray(gold_emb, dtype=np.float32)[active], int(k.max()))
    hits = [(pool_ids[rows[r, j]], gold_ids[g], float(gold_p[g]), float(sims[r, j]), int(rows[r, j]))
            for r, g in enumerate(active) for j in range(int(k[g])) if rows[r, j] >= 0]
    return rank_candidates(pd.DataFrame(hits, columns=["pair_id", "pulled_by", "puller_p", "similarity", "row"]))


def map_sample(out_dir: str | Path, *, max_points: int = 20_000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """The pairs an error map of the whole pool draws, and their vectors: every pair the Stage-1 RM gets
    wrong (``p_stage1 < 0.5``; a random subset if there are more than ``max_points``) plus a random sample of
    the rest. Texts are read only for these rows. Feed to `workbench.clustering.ErrorMap` (UMAP is fitted on
    at most ``fit_sample`` of them, the rest transformed) and `workbench.plots.error_map`."""
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
    for name, block in tqdm(list(zip(vectors.names, vectors.arrays)), desc="mapping shards", unit="shard",
                            disable=not progress):
        path = out_dir / "map" / f"{name}.npy"
        if not path.exists():
            io.write_array_atomic(np.asarray(reducer.transform(np.asarray(block, dtype=np.float32)), dtype=np.float32), path)
        paths.append(path)
    return paths


def train_pool_rms(pairs: PairFrame, out_dir: str | Path, *, embedder: str = "hashing", epochs: int = 10,
                   seed: int = 0, progress: bool = True) -> tuple[Path, Path]:
    """Two fast embedding-head RMs for `ScaleConfig` when a run has none yet: a *Stage-1* RM trained on the
    ``train`` split's labels as they are and a *gold* RM trained on the ``gold`` split. Returns their folders
    (``out_dir/stage1_rm/model``, ``out_dir/gold_rm/model``). In the full pipeline these come from
    notebooks 04 and 05 instead."""
    from workbench.training import RMTrainConfig, train_reward_model

    out_dir = Path(out_dir)
    cfg = RMTrainConfig(kind="embedding_head", backbone=embedder, head_epochs=epochs, seed=seed)
    folders = []
    for name, split in (("stage1_rm", "train"), ("gold_rm", "gold")):
        part = pairs[pairs["split"] == split]
        if len(part) < 2:
            raise ValueError(f"train_pool_rms: need >= 2 '{split}' pairs for the {name}, got {len(part)}.")
        folders.append(train_reward_model(part, None, cfg=cfg, output_dir=out_dir / name, progress=progress).model_dir)
    return folders[0], folders[1]
