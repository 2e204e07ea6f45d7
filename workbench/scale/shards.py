"""Curate a pool too large for memory: the tag -> embed -> score -> Stage-2 stages, one parquet shard at a time.

The pool is a folder of parquet shards (`shard_pair_file` cuts any pair file into them;
`workbench.data.synthetic` writes synthetic ones). `curate_pool` runs every shard through
`ShardWorker.process` and writes per shard::

    out_dir/tags/<shard>.parquet      the attributes (tags/<shard>.sqlite: the tagger's durable log)
    out_dir/vectors/<shard>.npy       float16 (conversation, attributes) embeddings, rows = curated rows
    out_dir/curated/<shard>.parquet   the pairs with Stage-2 decisions and provenance (`stage2.curate`)
    out_dir/judge/<shard>.sqlite      with ``judge="llm"``: the judge's answers on the unsure pairs (durable)
    out_dir/done/<shard>.json         written last: the shard is finished (resume skips it)

Memory is bounded by one shard per worker, whatever the pool size. A crash or Ctrl-C loses at most the
shards in flight (an LLM tagger's finished chunks are kept in the sqlite log). ``backend="ray"`` runs the
same `ShardWorker` as Ray Data actors (`workbench.scale.ray_backend`): same files, same bytes.

After the shards: `ShardedVectors` reads the embeddings back memory-mapped, `build_index` builds a faiss
index (HNSW by default) over them in chunks, `ShardedExactSearch` is the exact baseline, `retrieve_at_scale` applies the
paper's k-rule against either, `map_sample` draws the error map from a sample with every error kept, and
`map_whole_pool` places every pair on that map (``out_dir/map/<shard>.npy``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.curation import pipeline
from workbench.curation.pipeline import CurationConfig, JudgeSetup
from workbench.curation.stage2 import Stage2Config
from workbench.curation.tagging import TagConfig
from workbench.data import files as io
from workbench.data.pairs import records_to_pairs
from workbench.data.schema import PairFrame, validate_pair_frame
from workbench.data.synthetic import SyntheticConfig
from workbench.models.embedding import MemoryEmbeddingCache
from workbench.models.scoring import load_reward_model
from workbench.runs.stores import ResultStore

BACKENDS = ("local", "ray")
SCALE_EMBEDDER = "minilm-static"  # static MiniLM (model2vec): ~10^4 texts/s on a CPU, 3x hashing's share of MiniLM's neighbours
TAGGERS = ("embedded", "llm", "none")
JUDGES = ("none", "llm")


@dataclass(frozen=True)
class ScaleConfig:
    """What `curate_pool` runs (notebook 09's parameters map onto it, through `from_params`).

    The two RMs are folders written by `workbench.models.training.train_reward_model` (any kind; fast embedding
    heads keep a million pairs to minutes). ``curation`` is the chain's one config (`CurationConfig`): its
    ``embedder`` embeds the pair map and the embedded tagger (default ``"minilm-static"``, distilled from MiniLM;
    ``"hashing"``: model-free; ``""``: the full MiniLM, hours per million pairs on a CPU), its ``tagger`` is
    embedded | llm | none, its ``judge`` labels the pairs the Stage-1 RM is unsure of.
    """

    stage1_rm: str
    gold_rm: str
    curation: CurationConfig = CurationConfig()
    backend: str = "local"  # local | ray
    ray_address: str = ""  # backend="ray": "" starts a local Ray; "auto" or "ray://host:10001" joins a cluster
    workers: int = 2  # backend="ray": actors, each holding the models and working on one shard at a time
    verified_pairs: str = ""  # judge "llm": a pair file of human-verified pairs (e.g. a run's gold + Stage-1 labels):
    #                           each unsure pair's nearest ones are the judge's few-shot examples

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"Unknown backend {self.backend!r}; choose one of {list(BACKENDS)}.")
        if self.curation.tagger not in TAGGERS:
            raise ValueError(f"Unknown tagger {self.curation.tagger!r}; choose one of {list(TAGGERS)}.")
        if self.curation.judge.kind not in JUDGES:
            raise ValueError(f"Unknown judge {self.curation.judge.kind!r}; choose one of {list(JUDGES)}.")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}.")
        for name in ("stage1_rm", "gold_rm"):
            if not Path(getattr(self, name)).exists():
                raise FileNotFoundError(f"{name}={getattr(self, name)!r}: no reward model folder there; train one first "
                                        "(notebooks 04/05, or workbench.models.training.train_reward_model).")

    @classmethod
    def from_params(cls, stage1_rm: str, gold_rm: str, *, embedder: str = SCALE_EMBEDDER, tagger: str = "embedded",
                    judge: str = "none", llm_base_url: str = "", llm_model: str = "", llm_api_key_env: str = "",
                    stage2: Stage2Config | None = None, **rest: Any) -> ScaleConfig:
        """From flat notebook / CLI parameters (``llm_model`` may list several judge models, comma-separated)."""
        judge_setup = JudgeSetup.from_params(judge, base_url=llm_base_url, models=llm_model, api_key_env=llm_api_key_env)
        curation = CurationConfig(tagger=tagger, embedder=embedder, stage2=stage2 or Stage2Config(), judge=judge_setup,
                                  tag=TagConfig(chunk_size=1024))  # one durable commit per 1,024 pairs at scale
        return cls(stage1_rm=str(stage1_rm), gold_rm=str(gold_rm), curation=curation, **rest)

    def key(self) -> str:
        """What the outputs depend on: models, embedder, tagger, thresholds (not the backend or workers)."""
        parts = {k: v for k, v in asdict(self).items() if k not in ("backend", "ray_address", "workers")}
        parts["stage1_rm"] = load_reward_model(self.stage1_rm).fingerprint
        parts["gold_rm"] = load_reward_model(self.gold_rm).fingerprint
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def list_shards(pool_dir: str | Path) -> list[Path]:
    """The pool's parquet shards, in name order (the order of rows in every output)."""
    pool_dir = Path(pool_dir)
    if not pool_dir.is_dir():
        raise FileNotFoundError(f"{pool_dir}: not a folder of parquet shards (use workbench.scale.shards.shard_pair_file "
                                "to cut a pair file into shards).")
    shards = sorted(pool_dir.glob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"{pool_dir}: no *.parquet shards in this folder.")
    return shards


def shard_pair_file(path: str | Path, out_dir: str | Path, *, shard_size: int = SyntheticConfig.shard_size, fmt: str = "auto",
                    split: str = "train", strict: bool = False) -> list[Path]:
    """Cut a pair file (any format `workbench.data.files.read_pairs` reads) into canonical parquet shards, reading it
    record by record (JSONL and parquet never whole).

    Lenient by default, like `workbench.data.files.read_pairs(strict=False)`: a bad row is rejected with its file, row,
    field and reason into ``out_dir/rejects.jsonl`` and every good row is kept; ``strict=True`` stops at the
    first bad row instead (`workbench.data.pairs.PairError`). A pair seen before (same ``pair_id``: same conversation
    and responses, in either label order) is skipped and counted; only the ids are kept in memory."""
    import warnings

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
        self.out_dir = Path(self.out_dir)
        self.key = self.key or self.cfg.key()
        self.stage1 = load_reward_model(self.cfg.stage1_rm)
        self.gold = load_reward_model(self.cfg.gold_rm)
        self.tagger = pipeline.make_tagger_for(self.cfg.curation)
        self.judge = pipeline.make_judge(self.cfg.curation.judge)
        # a user's file: read and checked like any pair file (a bad row is an error naming file, row and field)
        self.verified = io.read_pairs(self.cfg.verified_pairs)[0] if self.cfg.verified_pairs else None

    def process(self, shard: str | Path) -> dict[str, Any]:
        """Curate one shard (or return its summary if an earlier run finished it)."""
        shard = Path(shard)
        done = finished_summary(self.out_dir, shard, self.key)
        if done is not None:
            return done
        clock = _StageClock()
        pool = _load_shard(shard)
        clock.lap("read")
        # one shard's texts are embedded once per embedder, shared by the tagger, the map and both RMs that use it
        caches: dict[str, MemoryEmbeddingCache] = defaultdict(MemoryEmbeddingCache)
        for model in (self.tagger, self.stage1, self.gold):
            if hasattr(model, "cache"):
                model.cache = caches[getattr(model, "embedder_name", "")]
        cache = caches[self.cfg.curation.embedder]
        tag_store = ResultStore(self.out_dir / "tags" / f"{shard.stem}.sqlite", "tags") if self.tagger else None
        judge_store = ResultStore(self.out_dir / "judge" / f"{shard.stem}.sqlite", "judge") if self.judge else None
        judge = replace(self.judge, results=judge_store) if self.judge else None
        try:
            result = pipeline.curate(pool, stage1_rm=self.stage1, gold_rm=self.gold, gold=self.verified, cfg=self.cfg.curation,
                                     tagger=self.tagger, tag_store=tag_store, judge=judge, pair_cache=cache,
                                     output_dir=self.out_dir, provenance=f"stage2-scale:{self.key}", lap=clock.lap)
        finally:
            for store in (tag_store, judge_store):
                if store is not None:
                    store.close()
        curated = result.stage2.curated
        if result.tags is not None:
            io.write_frame(result.tags, self.out_dir / "tags" / f"{shard.stem}.parquet")
        io.write_array_atomic(np.asarray(result.vectors, dtype=np.float16), vectors_path(self.out_dir, shard.stem))
        io.write_frame(curated, self.out_dir / "curated" / f"{shard.stem}.parquet")
        clock.lap("write")
        counts = curated["stage2_decision"].value_counts()
        summary = {"shard": shard.stem, "key": self.key, "pairs": len(pool), "seconds": clock.total(),
                   **{d: int(counts.get(d, 0)) for d in ("keep", "flip", "drop")}, **clock.seconds}
        io.write_json(summary, _done_path(self.out_dir, shard))  # the commit point: the shard is finished
        return summary


def _done_path(out_dir: Path, shard: Path) -> Path:
    return out_dir / "done" / f"{shard.stem}.json"


def vectors_path(out_dir: Path, name: str) -> Path:
    """Where shard ``name``'s float16 embeddings live (written by the worker, read by the index)."""
    return out_dir / "vectors" / f"{name}.npy"


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


def finished_shards(out_dir: Path) -> list[str]:
    """Names of the shards whose ``done`` marker exists (a clear error when none has finished)."""
    names = sorted(p.stem for p in (out_dir / "done").glob("*.json"))
    if not names:
        raise FileNotFoundError(f"{out_dir}: no finished shards; run workbench.scale.pool.curate_pool first.")
    return names


def read_curated(out_dir: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Columns of every finished curated shard, concatenated (ask only for the columns you need: at 1M
    pairs the texts alone are gigabytes)."""
    out_dir = Path(out_dir)
    return pd.concat([pd.read_parquet(out_dir / "curated" / f"{n}.parquet", columns=list(columns) if columns else None)
                      for n in finished_shards(out_dir)], ignore_index=True)
