"""The paper's "curation beats scale" ablation at small scale, measured against a known truth.

Take pairs whose true label is known (the demo build's constructed parts by default: a complete vs a
truncated response, the real response vs one written for another conversation), inject label flips
at rate ``noise_rate`` into the unverified pool (seeded), then run tagging -> Stage 1 (the simulated
oracle reviewer with a budget of human labels) -> Stage 2, and measure:

* flip detection (precision / recall / F1 against the injected flips) and the accuracy of the curated labels;
* the clean test accuracy of fast RMs trained on (a) the raw noisy pool, (b) the curated set, (c) a random
  subset of the noisy pool the size of (b), (d) curated + recycled, and, as the ceiling, (e) the pool with
  its true labels; over several seeds;
* a curve of the curated RM's test accuracy against the number of human labels spent.

Before any noise is injected, a clean-label RM must clearly beat chance on the test split
(``min_clean_accuracy``): otherwise the truth is not learnable here and the comparison means nothing.

Every RM is the fast embedding head (`workbench.models.fast_rm`), so a run takes minutes on a CPU. Stage 1 and the
gold RM pick their best epoch on the gold split, as curation does; the RMs compared at the end train a fixed
schedule like the paper's (no checkpoint picked on gold): picking the best epoch on a clean gold set is itself
a strong defence against label noise and would hide what the labels are worth (``select_on_gold`` turns it on).

Entry points: `run_experiment`, the notebook ``08_curation_experiment`` and ``workbench experiment`` on the
command line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench.curation import pipeline, stage1, stage2
from workbench.curation.review import OracleReviewer, ReviewStore
from workbench.data import files as io
from workbench.data import splits
from workbench.data.demo import DemoDataConfig, build_demo_pairs
from workbench.data.schema import PairFrame
from workbench.models import scoring, training
from workbench.runs.folder import Run, start_run
from workbench.runs.stores import EmbeddingCache, ResultStore

CONDITIONS = ("raw noisy", "curated", "random same size", "curated + recycled", "clean (ceiling)")


@dataclass(frozen=True)
class ExperimentConfig:
    """The experiment's data, noise, human budget and seeds."""

    noise_rate: float = 0.2  # share of pool labels flipped (seeded per seed)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_cross_prompt: int = 700  # demo-build parts whose truth is known by construction
    n_truncated: int = 700
    seed_size: int = 60  # human labels in Stage-1 round 0
    labels_per_iteration: int = 40  # human labels per retrieval round
    iterations: int = 3  # -> 60 + 3 * 40 = 180 human labels at the full budget
    budget_curve: tuple[int, ...] = (40, 100)  # smaller total human budgets for the curve (the full one is added)
    oracle_error_rate: float = 0.0  # the simulated people's own error rate
    judge_error_rate: float = -1.0  # >= 0: a *simulated* LLM judge with this error rate labels Stage 2's unsure pairs
    p_threshold: float = 0.5
    margin_band: float = 0.0
    head_epochs: int = 30
    select_on_gold: bool = False  # condition RMs: False = a fixed schedule, as the paper trains (no checkpoint picking);
    #                               True = keep the epoch best on the clean gold split, which hides most label noise
    min_clean_accuracy: float = 0.6  # the clean-label RM must reach this on the test split
    data_seed: int = 0  # the demo build (same pairs for every seed)

    def __post_init__(self) -> None:
        if not 0.0 <= self.noise_rate < 0.5:
            raise ValueError(f"noise_rate must be in [0, 0.5), got {self.noise_rate}; at 0.5 the labels carry no signal.")
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one seed (three for a spread).")
        if self.seed_size < 1:
            raise ValueError(f"seed_size must be >= 1, got {self.seed_size}.")
        stage1.Stage1Config(iterations=self.iterations, seed_size=self.seed_size, labels_per_iteration=self.labels_per_iteration)
        stage2.Stage2Config(p_threshold=self.p_threshold, margin_band=self.margin_band)

    @property
    def human_budget(self) -> int:
        return self.seed_size + self.iterations * self.labels_per_iteration

    def budgets(self) -> list[int]:
        return sorted({*[b for b in self.budget_curve if 0 < b < self.human_budget], self.human_budget})

    def curation_for(self, budget: int, seed: int) -> pipeline.CurationConfig:
        """The chain's config for one run: Stage 1 spends ``budget`` human labels in the same proportions as the
        full budget; Stage 2 uses the experiment's thresholds; a simulated judge when ``judge_error_rate >= 0``."""
        share = budget / self.human_budget
        seed_size = max(1, int(round(self.seed_size * share)))
        per_round = max(0, (budget - seed_size) // max(self.iterations, 1))
        s1 = stage1.Stage1Config(iterations=self.iterations, seed_size=seed_size, labels_per_iteration=per_round,
                                 head_epochs=self.head_epochs, seed=seed)
        s2 = stage2.Stage2Config(p_threshold=self.p_threshold, margin_band=self.margin_band,
                                 head_epochs=self.head_epochs, seed=seed)
        judge = pipeline.JudgeSetup(kind="simulated", error_rate=self.judge_error_rate) if self.judge_error_rate >= 0 \
            else pipeline.JudgeSetup()
        return pipeline.CurationConfig(stage1=s1, stage2=s2, judge=judge)


@dataclass
class ExperimentData:
    """Pairs with a known truth, their tags and (conversation, attributes) embeddings: built once, shared by seeds."""

    pairs: PairFrame
    tags: pd.DataFrame
    emb: np.ndarray  # rows aligned with ``pairs``

    def split(self, name: str) -> tuple[PairFrame, np.ndarray]:
        mask = (self.pairs["split"] == name).to_numpy()
        return self.pairs[mask].reset_index(drop=True), self.emb[mask]


@dataclass
class ExperimentResult:
    per_seed: pd.DataFrame  # one row per (seed, budget, condition): test accuracy, pairs trained on
    detection: pd.DataFrame  # one row per (seed, budget): flip detection and curated-label accuracy
    summary: pd.DataFrame  # mean / std / min / max over seeds per condition, at the full budget
    curve: pd.DataFrame  # human labels spent -> curated RM test accuracy (mean, std over seeds)
    clean_check: dict[str, float]
    config: dict[str, Any] = field(default_factory=dict)


def prepare_data(cfg: ExperimentConfig, run: Run, *, data_dir: str | None = None,
                 pairs: PairFrame | None = None, progress: bool = True) -> ExperimentData:
    """Build (or take) the known-truth pairs, tag them with the offline tagger and embed them, all cached in ``run``."""
    if pairs is None:
        build = build_demo_pairs(data_dir, DemoDataConfig(n_hh_helpful=0, n_hh_harmless=0, n_cross_prompt=cfg.n_cross_prompt,
                                                          n_truncated=cfg.n_truncated, seed=cfg.data_seed))
        pairs = build.pairs
    if "label_known_true" in pairs.columns and not pairs["label_known_true"].astype(bool).all():
        raise ValueError("the experiment needs pairs whose label is known to be true (label_known_true); "
                         f"{int((~pairs['label_known_true'].astype(bool)).sum())} are not.")
    curation = pipeline.CurationConfig()
    tagger = pipeline.make_tagger_for(curation, cache=EmbeddingCache(run, "minilm"))
    tags = pipeline.tag(pairs, tagger, store=ResultStore(run.file("tags.sqlite"), "tags"), cfg=curation, progress=progress)
    emb = pipeline.embed(pairs, tags, cache=EmbeddingCache(run, "pairs-minilm"), cfg=curation, progress=progress)
    return ExperimentData(pairs=pairs.reset_index(drop=True), tags=tags, emb=emb)


def _fast_rm(train: PairFrame, gold: PairFrame, out: Path, cfg: ExperimentConfig, seed: int, cache: Any) -> Any:
    """A condition's RM: the fast head, ``head_epochs`` epochs, best gold epoch only with ``select_on_gold``."""
    return training.fast_head_rm(train, gold if cfg.select_on_gold else None, output_dir=out, cache=cache,
                                 epochs=cfg.head_epochs, seed=seed)[0]


def heldout_accuracy(rm: Any, test: PairFrame) -> float:
    """Share of test pairs the RM orders right (a tie counts as wrong)."""
    return float((stage2.p_of(rm, test) > 0.5).mean())


def clean_check(data: ExperimentData, cfg: ExperimentConfig, run: Run) -> dict[str, float]:
    """A clean-label RM on the pool, tested on the test split; raises when it does not clearly beat chance."""
    pool, _ = data.split("train")
    gold, _ = data.split("gold")
    test, _ = data.split("test")
    rm = _fast_rm(pool, gold, run.file("experiment", "clean_check"), cfg, cfg.seeds[0], EmbeddingCache(run, "minilm"))
    acc = heldout_accuracy(rm, test)
    out = {"clean_test_accuracy": acc, "test_pairs": len(test), "chance": 0.5}
    if acc < cfg.min_clean_accuracy:
        raise ValueError(f"a clean-label RM reaches only {acc:.3f} on the test split (< min_clean_accuracy="
                         f"{cfg.min_clean_accuracy}): the truth is not learnable by this RM, so injected noise and its "
                         "curation cannot be measured. Use pairs with a learnable truth or a stronger RM.")
    return out


def config_key(cfg: ExperimentConfig) -> str:
    """Short hash of everything that shapes a (seed, budget) run: a rerun with other settings in the same folder
    gets fresh review logs instead of resuming oracle answers given to differently-noised labels."""
    fields = {k: v for k, v in asdict(cfg).items() if k not in ("seeds", "budget_curve")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]


def run_once(data: ExperimentData, cfg: ExperimentConfig, run: Run, *, seed: int, budget: int,
             all_conditions: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One seed at one human budget: noise -> Stage 1 (oracle) -> Stage 2 -> RMs per condition."""
    cache = EmbeddingCache(run, "minilm")
    work = run.path / "experiment" / config_key(cfg) / f"seed{seed}_budget{budget}"
    work.mkdir(parents=True, exist_ok=True)
    pool, pool_emb = data.split("train")
    gold, gold_emb = data.split("gold")
    test, _ = data.split("test")
    noisy = splits.inject_label_noise(pool, cfg.noise_rate, seed=seed)
    s1cfg = cfg.curation_for(budget, seed).stage1
    s1data = stage1.Stage1Data(pool=noisy, gold=gold, pool_emb=pool_emb, gold_emb=gold_emb, test=None, tags=data.tags)
    with ReviewStore(work / "review.sqlite") as store:
        s1 = stage1.run_stage1(s1data, store, OracleReviewer(error_rate=cfg.oracle_error_rate, seed=seed), s1cfg,
                               output_dir=work / "stage1", cache=cache, progress=False)
    stage1_rm = scoring.load_reward_model(s1.best_model_dir, embedding_cache=cache)
    curation = cfg.curation_for(budget, seed)
    judge = pipeline.make_judge(curation.judge, seed=seed)
    s2 = pipeline.curate(noisy, stage1_rm=stage1_rm, cfg=curation, gold=gold, tags=data.tags, judge=judge,
                         pair_cache=EmbeddingCache(run, "pairs-minilm"), cache=cache, human_labelled=s1.labelled,
                         output_dir=work, stage1_name=s1.best_model_dir.parent.name).stage2
    io.write_pairs(s2.curated, work / "curated.parquet")
    curated = stage2.curated_training_set(s2.curated)
    human = int(s1.history["labelled"].sum())
    detection = {"seed": seed, "budget": budget, "human_labels": human, **stage2.truth_metrics(s2.curated),
                 "best_stage1_gold_accuracy": float(s1.history["gold_accuracy"].max())}
    trainsets: dict[str, PairFrame] = {"curated": curated}
    if all_conditions:
        rng = np.random.default_rng(seed + 7)
        trainsets["raw noisy"] = noisy
        trainsets["random same size"] = noisy.iloc[np.sort(rng.permutation(len(noisy))[: len(curated)])]
        trainsets["curated + recycled"] = stage2.curated_training_set(stage2.recycle_discarded(s2.curated))
        trainsets["clean (ceiling)"] = pool
    rows = []
    for name in [c for c in CONDITIONS if c in trainsets]:
        train = trainsets[name].reset_index(drop=True)
        rm = _fast_rm(train, gold, work / "rm" / name.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "plus"),
                      cfg, seed, cache)
        truth = train["label_is_true"].astype(bool).mean() if "label_is_true" in train else 1.0
        rows.append({"seed": seed, "budget": budget, "human_labels": human, "condition": name, "train_pairs": len(train),
                     "train_label_accuracy": float(truth), "test_accuracy": heldout_accuracy(rm, test)})
    return rows, detection


def summarize(per_seed: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Mean, std, min and max of test accuracy over seeds per condition at ``budget``, best first."""
    at = per_seed[per_seed["budget"] == budget]
    out = at.groupby("condition").agg(test_accuracy_mean=("test_accuracy", "mean"), test_accuracy_std=("test_accuracy", "std"),
                                      test_accuracy_min=("test_accuracy", "min"), test_accuracy_max=("test_accuracy", "max"),
                                      train_pairs=("train_pairs", "mean"), train_label_accuracy=("train_label_accuracy", "mean"),
                                      seeds=("seed", "nunique"))
    return out.reindex([c for c in CONDITIONS if c in out.index]).reset_index()


def verdict(summary: pd.DataFrame) -> dict[str, Any]:
    """Does curated beat raw noisy and same-size random by more than the seed spread (std)?"""
    s = summary.set_index("condition")
    out: dict[str, Any] = {}
    for other in ("raw noisy", "random same size"):
        if "curated" in s.index and other in s.index:
            gap = float(s.loc["curated", "test_accuracy_mean"] - s.loc[other, "test_accuracy_mean"])
            spread = float(np.nanmax([s.loc["curated", "test_accuracy_std"], s.loc[other, "test_accuracy_std"], 0.0]))
            out[f"curated_minus_{other.replace(' ', '_')}"] = gap
            out[f"spread_vs_{other.replace(' ', '_')}"] = spread
            out[f"beats_{other.replace(' ', '_')}"] = bool(gap > spread)
    return out


def headline_metrics(result: ExperimentResult, cfg: ExperimentConfig) -> dict[str, Any]:
    """The numbers a report shows: settings, clean check, verdict, per-condition mean / std, detection at full budget."""
    full = result.detection[result.detection["budget"] == cfg.human_budget]
    return {"noise_rate": cfg.noise_rate, "seeds": len(cfg.seeds), "human_budget": cfg.human_budget,
            **result.clean_check, **verdict(result.summary),
            **{f"{r.condition}/test_accuracy_mean": r.test_accuracy_mean for r in result.summary.itertuples()},
            **{f"{r.condition}/test_accuracy_std": r.test_accuracy_std for r in result.summary.itertuples()},
            **{f"{m}_mean": float(full[m].mean())
               for m in ("flag_f1", "flag_precision", "flag_recall", "curated_label_accuracy")}}


def run_experiment(cfg: ExperimentConfig, run_dir: str | Path, *, data_dir: str | None = None,
                   pairs: PairFrame | None = None, progress: bool = True) -> ExperimentResult:
    """The whole ablation; every model, review log and curated set is written under
    ``<run_dir>/experiment/<config_key>/seed<s>_budget<b>/``; a rerun with the same settings resumes the review logs.

    Example: ``res = run_experiment(ExperimentConfig(seeds=(0, 1, 2)), "runs/exp")``; ``res.summary``.
    """
    run = start_run(run_dir, cfg, step="curation_experiment")
    data = prepare_data(cfg, run, data_dir=data_dir, pairs=pairs, progress=progress)
    check = clean_check(data, cfg, run)
    rows, detections = [], []
    jobs = [(seed, budget) for seed in cfg.seeds for budget in cfg.budgets()]
    for seed, budget in tqdm(jobs, desc="experiment", unit="run", disable=not progress):
        r, d = run_once(data, cfg, run, seed=seed, budget=budget, all_conditions=budget == cfg.human_budget)
        rows += r
        detections.append(d)
    per_seed, detection = pd.DataFrame(rows), pd.DataFrame(detections)
    summary = summarize(per_seed, cfg.human_budget)
    cur = per_seed[per_seed["condition"] == "curated"]
    curve = (cur.groupby("budget").agg(human_labels=("human_labels", "mean"), test_accuracy_mean=("test_accuracy", "mean"),
                                       test_accuracy_std=("test_accuracy", "std")).reset_index())
    raw = per_seed[per_seed["condition"] == "raw noisy"]["test_accuracy"]
    curve = pd.concat([pd.DataFrame([{"budget": 0, "human_labels": 0, "test_accuracy_mean": raw.mean(),
                                      "test_accuracy_std": raw.std()}]), curve], ignore_index=True)
    return ExperimentResult(per_seed=per_seed, detection=detection, summary=summary, curve=curve, clean_check=check,
                            config=asdict(cfg))


def smoke_config(cfg: ExperimentConfig = ExperimentConfig()) -> ExperimentConfig:
    """A tiny version for tests and papermill smoke runs."""
    return replace(cfg, n_cross_prompt=min(cfg.n_cross_prompt, 60), n_truncated=min(cfg.n_truncated, 60),
                   seeds=cfg.seeds[:2], seed_size=10, labels_per_iteration=8, iterations=1, budget_curve=(8,),
                   head_epochs=5, min_clean_accuracy=min(cfg.min_clean_accuracy, 0.55))
