"""What would N pairs cost? A cost model fitted on measured scale runs (`workbench plan`).

The paper tells practitioners to decompose curation cost by stage and budget from it. A measured run
(`MeasuredRun`, written by ``benchmarks/bench_scale.py`` as ``costs.json`` beside each output folder, or read from an
output folder's per-shard summaries by `measured_run_from_folder`) gives seconds per stage, peak memory, disk, LLM
calls and tokens and human reviews at one pool size on one machine. `predict` fits each stage on one or more runs
and projects a pool of N pairs on M machines with C cores each:

* per-shard stages (read, tag, embed, score, filter, write): core-seconds linear in N (``fixed + per_pair * N``,
  least squares; through the origin with one run), spread over every core of every machine;
* the index build, on one machine (a faiss index is built in one process): core-seconds ``per_item * work(N)``, where
  ``work`` follows the index kind the runs built (`index_work`): ``N log2 N`` for HNSW (inserts search a graph of
  depth ~ log N); for the IVF kinds the distance computations of their training and assignment (``nlist`` grows as
  sqrt N, so this grows as N^1.5);
* retrieval for a fixed gold set: its measured seconds (HNSW queries grow as log N: negligible);
* memory: the per-worker curation peak and the index (bytes per vector measured), on the machine that builds it;
  disk: bytes per pair; LLM tokens and human reviews: per pair, as measured (or the reviews given);
* money, when prices are given: core-hours, LLM tokens and review hours.

`Plan.assumptions` lists every one of these, with the numbers it used, so a reader can disagree with them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data import files as io
from workbench.scale.index import IVF_KINDS, IndexConfig, ivf_list_count, ivf_training_points

SHARD_STAGES = ("read", "tag", "embed", "score", "filter", "write")  # `ShardWorker.process`'s clock laps


@dataclass(frozen=True)
class MeasuredRun:
    """One measured scale run: wall seconds per stage on a machine with ``cores`` cores (all of them used)."""

    pairs: int
    cores: int
    stage_seconds: dict[str, float]  # SHARD_STAGES + "index" + "retrieve": wall seconds over the whole run
    peak_memory_gb: float
    disk_gb: float
    index_memory_gb: float = 0.0  # the index's own size (part of the peak)
    llm_calls: int = 0
    llm_tokens: int = 0
    human_reviews: int = 0
    wall_seconds: float = 0.0  # the whole run as timed (stages + start-up): what a prediction is checked against
    note: str = ""
    index_kind: str = ""  # the faiss index it built (`IndexConfig.kind`); "" = not recorded

    def __post_init__(self) -> None:
        if self.pairs <= 0 or self.cores <= 0:
            raise ValueError(f"a measured run needs pairs > 0 and cores > 0, got pairs={self.pairs}, cores={self.cores}.")
        unknown = set(self.stage_seconds) - {*SHARD_STAGES, "index", "retrieve"}
        if unknown:
            raise ValueError(f"unknown stages {sorted(unknown)}; known: {[*SHARD_STAGES, 'index', 'retrieve']}.")

    def save(self, path: str | Path) -> Path:
        io.write_json(asdict(self), Path(path))
        return Path(path)


def load_measured_run(path: str | Path) -> MeasuredRun:
    """A ``costs.json`` (or an output folder holding one); a missing or malformed field is an error naming it."""
    path = Path(path)
    path = path / "costs.json" if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path}: no measured run here (benchmarks/bench_scale.py writes costs.json).")
    raw = json.loads(path.read_text())
    try:
        return MeasuredRun(**raw)
    except TypeError as e:
        raise ValueError(f"{path}: {e} (fields: {list(MeasuredRun.__dataclass_fields__)})") from None


def measured_run_from_folder(out_dir: str | Path, *, cores: int, peak_memory_gb: float, index_seconds: float = 0.0,
                             retrieve_seconds: float = 0.0, index_memory_gb: float = 0.0, wall_seconds: float = 0.0,
                             llm_calls: int = 0, llm_tokens: int = 0, human_reviews: int = 0) -> MeasuredRun:
    """A `MeasuredRun` from a `curate_pool` output folder: the per-shard summaries' stage seconds summed, and the
    folder's size on disk; what the folder cannot know (cores, peak memory, the index) is given."""
    out_dir = Path(out_dir)
    done = [json.loads(p.read_text()) for p in sorted((out_dir / "done").glob("*.json"))]
    if not done:
        raise FileNotFoundError(f"{out_dir}: no finished shards (done/*.json).")
    stages = {s: float(sum(d.get(f"{s}_s", 0.0) for d in done)) for s in SHARD_STAGES}
    stages.update(index=index_seconds, retrieve=retrieve_seconds)
    disk = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    return MeasuredRun(pairs=int(sum(d["pairs"] for d in done)), cores=cores, stage_seconds=stages,
                       peak_memory_gb=peak_memory_gb, disk_gb=disk / 1e9, index_memory_gb=index_memory_gb,
                       llm_calls=llm_calls, llm_tokens=llm_tokens, human_reviews=human_reviews, wall_seconds=wall_seconds)


@dataclass(frozen=True)
class Prices:
    """Unit prices (any currency); zero = not priced."""

    core_hour: float = 0.0
    llm_per_million_tokens: float = 0.0
    review_hour: float = 0.0


@dataclass(frozen=True)
class Target:
    """The pool and the machines a plan is for."""

    pairs: int
    machines: int = 1
    cores_per_machine: int = 2
    seconds_per_review: float = 30.0  # a person's time per pair decision (the paper does not state one)
    human_reviews: int | None = None  # None: the measured runs' reviews per pair, times ``pairs``

    def __post_init__(self) -> None:
        if self.pairs <= 0 or self.machines <= 0 or self.cores_per_machine <= 0:
            raise ValueError(f"pairs, machines and cores_per_machine must be > 0, got {self}.")


@dataclass
class Plan:
    """A prediction: per-stage seconds and the totals, with the assumptions that produced them."""

    target: Target
    stages: pd.DataFrame  # stage, model, core_seconds, wall_seconds
    wall_seconds: float
    peak_memory_gb: float
    disk_gb: float
    llm_tokens: float
    review_hours: float
    money: dict[str, float] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {"pairs": self.target.pairs, "machines": self.target.machines, "cores_per_machine": self.target.cores_per_machine,
                "wall_hours": self.wall_seconds / 3600, "peak_memory_gb": self.peak_memory_gb, "disk_gb": self.disk_gb,
                "llm_tokens": self.llm_tokens, "review_hours": self.review_hours, **self.money}


IVF_KMEANS_ITERATIONS = 10  # faiss's IVF training default (``IndexIVF.cp.niter``)


def index_work(kind: str, n: int) -> float:
    """How the index build's cost grows with the pool, in units the fitted ``per_item`` multiplies.

    HNSW (and a run that did not record its kind): ``N log2 N``. The IVF kinds, with `IndexConfig`'s defaults:
    k-means over ``max(train_sample, 39 nlist)`` sampled vectors against ``nlist = 4 sqrt N`` centroids for
    `IVF_KMEANS_ITERATIONS` passes, then every vector against every centroid to find its list; N log N would
    under-predict it at 10M (the list count triples from 1M to 10M).
    """
    if kind not in IVF_KINDS:
        return n * math.log2(n)
    cfg = IndexConfig(kind=kind)
    nlist = ivf_list_count(n, cfg)
    return (IVF_KMEANS_ITERATIONS * min(n, ivf_training_points(nlist, cfg)) + n) * nlist


def _index_work_label(kind: str) -> str:
    if kind in IVF_KINDS:
        return f"IVF distance computations (({IVF_KMEANS_ITERATIONS} x sample + N) x nlist, nlist = 4 sqrt N)"
    return "N log2 N"


def fit_linear(sizes: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """(fixed, per_unit) least squares of ``values ~ fixed + per_unit * sizes``, both kept >= 0: a negative intercept
    (two noisy points) is refitted through the origin, a negative slope as a constant; one point: through the origin."""
    x, y = np.asarray(sizes, float), np.asarray(values, float)
    if len(set(x)) >= 2:
        per, fixed = np.polyfit(x, y, 1)
        if per < 0:
            return float(max(y.mean(), 0.0)), 0.0
        if fixed >= 0:
            return float(fixed), float(per)
    return 0.0, float((x * y).sum() / (x * x).sum())


def predict(runs: Sequence[MeasuredRun], target: Target, prices: Prices = Prices()) -> Plan:
    """Fit every stage on ``runs`` and project ``target`` (see the module docstring for the model)."""
    if not runs:
        raise ValueError("predict needs at least one measured run.")
    kinds = sorted({r.index_kind for r in runs if r.index_kind})
    if len(kinds) > 1:  # the index stage and its bytes per pair differ by kind: one fit over both predicts neither
        raise ValueError(f"the measured runs built different indexes {kinds}; fit on runs with one index kind.")
    n, m, c = target.pairs, target.machines, target.cores_per_machine
    sizes = [r.pairs for r in runs]
    rows, notes = [], []
    for stage in SHARD_STAGES:
        fixed, per = fit_linear(sizes, [r.stage_seconds.get(stage, 0.0) * r.cores for r in runs])
        core_s = fixed + per * n
        rows.append({"stage": stage, "model": f"{fixed:.3g} + {per * 1e6:.3g} us x N core-s", "core_seconds": core_s,
                     "wall_seconds": core_s / (m * c)})
    kind = kinds[0] if kinds else ""
    _, per_item = fit_linear([index_work(kind, r.pairs) for r in runs], [r.stage_seconds.get("index", 0.0) * r.cores for r in runs])
    index_core_s = per_item * index_work(kind, n)
    rows.append({"stage": "index", "model": f"{per_item * 1e6:.3g} us x {_index_work_label(kind)} core-s, one machine",
                 "core_seconds": index_core_s, "wall_seconds": index_core_s / c})
    retrieve = float(np.mean([r.stage_seconds.get("retrieve", 0.0) for r in runs]))
    rows.append({"stage": "retrieve", "model": "measured seconds (fixed gold set)", "core_seconds": retrieve * c,
                 "wall_seconds": retrieve})
    stages = pd.DataFrame(rows)
    # start-up (loading models, reading the pool's listing) = measured wall minus the stages, linear like the shards
    overhead = [max(r.wall_seconds - sum(r.stage_seconds.values()), 0.0) if r.wall_seconds else 0.0 for r in runs]
    o_fixed, o_per = fit_linear(sizes, overhead) if any(overhead) else (0.0, 0.0)
    wall = float(stages["wall_seconds"].sum()) + o_fixed + o_per * n / m
    idx_fixed, idx_per = fit_linear(sizes, [r.index_memory_gb for r in runs])
    curation_peak = max(r.peak_memory_gb - r.index_memory_gb for r in runs)
    memory = curation_peak + idx_fixed + idx_per * n
    d_fixed, d_per = fit_linear(sizes, [r.disk_gb for r in runs])
    tokens_per_pair = sum(r.llm_tokens for r in runs) / sum(sizes)
    reviews = target.human_reviews if target.human_reviews is not None else sum(r.human_reviews for r in runs) / sum(sizes) * n
    review_hours = reviews * target.seconds_per_review / 3600
    core_hours = (float(stages["core_seconds"].sum()) + (o_fixed + o_per * n) * c) / 3600
    money = {}
    if prices.core_hour or prices.llm_per_million_tokens or prices.review_hour:
        money = {"compute_cost": core_hours * prices.core_hour,
                 "llm_cost": tokens_per_pair * n / 1e6 * prices.llm_per_million_tokens,
                 "review_cost": review_hours * prices.review_hour}
        money["total_cost"] = sum(money.values())
    notes += [
        f"fitted on {len(runs)} measured run(s): {', '.join(f'{s:,}' for s in sizes)} pairs "
        f"({', '.join(sorted({f'{r.cores} cores' for r in runs}))})",
        "per-shard stages scale linearly with pairs and perfectly with cores and machines (shards are independent; "
        "each worker holds its own models)",
        f"the index ({kind or 'kind not recorded'}) is built on one machine, cost ~ {_index_work_label(kind)} "
        f"({per_item * 1e6:.3g} us per unit)",
        f"retrieval for the gold set: {retrieve:.1f} s as measured, whatever N",
        f"peak memory = the curation peak ({curation_peak:.2f} GB, one shard per worker) + the index "
        f"({idx_per * 1e9:.0f} bytes per pair), on the machine that builds the index",
        f"disk: {d_per * 1e9:,.0f} bytes per pair; LLM tokens: {tokens_per_pair:.1f} per pair; reviews: "
        f"{reviews:,.0f} at {target.seconds_per_review:.0f} s each",
        f"start-up outside the stages: {o_fixed:.1f} s + {o_per * 1e6:.3g} us per pair",
    ]
    return Plan(target=target, stages=stages, wall_seconds=wall, peak_memory_gb=memory, disk_gb=d_fixed + d_per * n,
                llm_tokens=tokens_per_pair * n, review_hours=review_hours, money=money,
                assumptions=notes)


def measured_points(runs: Sequence[MeasuredRun]) -> pd.DataFrame:
    """One row per measured run: pairs, wall hours (the stages' sum where no whole-run wall was timed), peak, disk."""
    return pd.DataFrame([{"pairs": r.pairs, "cores": r.cores, "wall_hours": (r.wall_seconds or sum(r.stage_seconds.values())) / 3600,
                          "peak_memory_gb": r.peak_memory_gb, "disk_gb": r.disk_gb, "note": r.note} for r in runs])


def projection(runs: Sequence[MeasuredRun], sizes: Sequence[int], *, machines: int = 1, cores_per_machine: int = 2
               ) -> pd.DataFrame:
    """The plan's wall hours, memory and disk at each of ``sizes`` (for a figure beside `measured_points`)."""
    rows = []
    for n in sizes:
        plan = predict(runs, Target(pairs=int(n), machines=machines, cores_per_machine=cores_per_machine))
        rows.append({"pairs": int(n), "wall_hours": plan.wall_seconds / 3600, "peak_memory_gb": plan.peak_memory_gb,
                     "disk_gb": plan.disk_gb})
    return pd.DataFrame(rows)


def load_measured_runs(paths: str | Sequence[str | Path]) -> list[MeasuredRun]:
    """Measured runs from ``costs.json`` files, folders holding one, or folders of ``*.json`` records (comma-separated
    in one string, as a notebook parameter gives them), smallest first."""
    items = [p.strip() for p in paths.split(",") if p.strip()] if isinstance(paths, str) else list(paths)
    runs = []
    for item in map(Path, items):
        if item.is_dir() and not (item / "costs.json").exists():
            found = sorted(item.glob("*.json"))
            if not found:
                raise FileNotFoundError(f"{item}: no measured runs (*.json) in this folder.")
            runs += [load_measured_run(f) for f in found]
        else:
            runs.append(load_measured_run(item))
    return sorted(runs, key=lambda r: r.pairs)


@dataclass
class Projection:
    """A plan for ``target`` beside the measured points it came from, and what it predicts for one more run."""

    plan: Plan
    points: pd.DataFrame  # `measured_points` of the recorded runs and the checked run
    curve: pd.DataFrame  # `projection` from the smallest measured size to the target
    predicted_check: Plan  # the plan for the checked run's size (on its cores), before comparing
    points_run: MeasuredRun | None = None  # the checked run itself

    def check_seconds(self) -> tuple[float, float]:
        """(predicted, measured) wall seconds of the checked run, over the stages it measured (start-up excluded)."""
        measured = {s: v for s, v in self.points_run.stage_seconds.items() if v > 0}
        predicted = self.predicted_check.stages.set_index("stage")["wall_seconds"]
        return float(predicted[list(measured)].sum()), float(sum(measured.values()))


def project(recorded: Sequence[MeasuredRun], check: MeasuredRun, target: Target) -> Projection:
    """Plan ``target`` from ``recorded`` (or from ``check`` alone when nothing is recorded) and predict ``check``."""
    basis = list(recorded) or [check]
    sizes = np.unique(np.geomspace(min(r.pairs for r in [*basis, check]), target.pairs, 24).astype(int))
    points = measured_points([*recorded, check])
    points.loc[points.index[-1], "note"] = "this run"
    return Projection(plan=predict(basis, target), points=points,
                      curve=projection(basis, sizes, machines=target.machines, cores_per_machine=target.cores_per_machine),
                      predicted_check=predict(basis, Target(pairs=check.pairs, cores_per_machine=check.cores)),
                      points_run=check)
