"""The benchmark suite on a run's reward models: which benchmarks and models, and the tables notebook 07 shows.

`evaluation.evaluate` does the scoring and statistics; this module picks its inputs from a run folder and turns
its long table into the views people read (headline, RewardBench sections, scoring conditions, paired tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.bench import evaluation
from workbench.bench.data import Benchmark, load_benchmark
from workbench.models.scoring import load_reward_model
from workbench.runs.folder import Run

RUN_MODELS = {"rm_final": ("models", "rm_final", "model"), "fast_head": ("models", "fast_head", "model")}


def names(text: str) -> list[str]:
    """A comma-separated parameter as a list of names."""
    return [n.strip() for n in text.split(",") if n.strip()]


def load_benchmarks(wanted: Sequence[str], *, data_dir: str | None, limit: int | None, hh_limit: int,
                    progress: bool = True) -> list[Benchmark]:
    """The named benchmarks, ``limit`` items per subset (all when None); HH-RLHF (8.5k pairs) at most ``hh_limit``."""
    out = []
    for name in wanted:
        cap = min(limit or hh_limit, hh_limit) if name == "hh_rlhf" else limit
        bench = load_benchmark(name, data_dir=data_dir, limit=cap or None)
        if progress:
            notes = f" ({'; '.join(bench.notes)})" if bench.notes else ""
            print(f"{name}: {len(bench.items)} items from {bench.source}{notes}")
        out.append(bench)
    return out


def run_models(run: Run, wanted: Sequence[str], *, extra_model: str = "", cache: Any = None) -> dict[str, Any]:
    """The reward models of ``run`` named in ``wanted`` that exist (``rm_final`` / ``fast_head`` of notebook 06,
    ``stage1_best`` of notebook 04), plus ``extra_model`` (a folder or Hub id), loaded for scoring."""
    where = {name: run.path.joinpath(*parts) for name, parts in RUN_MODELS.items()}
    best = run.load("stage1_best", default=None)
    if best:
        where["stage1_best"] = run.path / best["best_model_dir"]
    chosen = {name: where[name] for name in wanted if name in where and where[name].exists()}
    if extra_model:
        chosen[Path(extra_model).name or extra_model] = extra_model
    return {name: load_reward_model(path, embedding_cache=cache) for name, path in chosen.items()}


def examples_frame(result: evaluation.Evaluation) -> pd.DataFrame:
    """Per-item scores of every model, storable as parquet (the score lists as text)."""
    ex = result.examples
    return ex.drop(columns=["scores", "lengths"]).assign(scores=ex["scores"].map(list).astype(str))


def scoring_conditions(result: evaluation.Evaluation) -> pd.DataFrame:
    """Per scored (model, benchmark): the max length, the dtype, the runtime and how many items were truncated."""
    scored = result.table[result.table["source"] == "scored"]
    return scored.groupby(["model", "benchmark"], sort=False)[["max_length", "dtype", "runtime", "truncated"]].first()


def rewardbench_sections(table: pd.DataFrame) -> pd.DataFrame:
    """RewardBench v1: Chat, Chat Hard, Safety, Reasoning and overall per model."""
    rb = table[(table["benchmark"] == "rewardbench") & table["metric"].isin(["section", "overall"])]
    return rb.assign(subset=rb["subset"].replace({"all": "overall"})).pivot_table(
        index="model", columns="subset", values="value", sort=False)


def paired_vs_baseline(result: evaluation.Evaluation, models: Sequence[str], benchmarks: Sequence[Benchmark], *,
                       baseline: str = "longer wins", seed: int = 0) -> pd.DataFrame:
    """Paired bootstrap of every model minus ``baseline`` on every benchmark (the same items)."""
    rows = [{"benchmark": b.name, "model": m, "vs": baseline,
             **evaluation.paired_bootstrap(result, m, baseline, benchmark=b.name, seed=seed).to_dict()}
            for b in benchmarks for m in models]
    return pd.DataFrame(rows)


def headline_metrics(headline: pd.DataFrame, models: Sequence[str]) -> dict[str, float]:
    """``model/benchmark -> headline value`` for the scored models and the two baselines."""
    keep = set(models) | {"longer wins", "random"}
    return {f"{r.model}/{r.benchmark}": float(r.value) for r in headline.itertuples() if r.model in keep}
