"""Benchmark harness: score benchmarks with a reward model (or given scores), aggregate by upstream rules.

`evaluate` scores every response of each benchmark in one ``score_sides`` call, turns the scores into
per-item values with the benchmark's rule, and returns a tidy table (model, benchmark, subset,
metric, value, n, bootstrap 95% CI) plus the per-item values for drill-down. Several models go side
by side, with the baselines next to them: ``random`` (the rule's expected value under random
scores, exact), ``longer wins`` (word count as the score, under the same rule) and the published
Skywork-Reward-V2 numbers. `paired_bootstrap` tests two models on the same items;
`decontamination` reports prompt overlap with a training set; `bon_curve` gives best-of-N curves over
any (prompt, N candidates, correctness) set (build one with `workbench.bench.data.bon_benchmark`,
or the offline teaching set `make_arithmetic_bon` with its `ArithmeticVerifierScorer`).

Rules follow the upstream code (each cites its file; `tests/test_evaluation_upstream.py` checks them
against numbers the upstream functions printed). Strict ``>`` decides a pair unless upstream says
otherwise, so a tied score counts as wrong (RewardBench v1, RM-Bench, RMB); JudgeBench's single game
reads a tie as ``B>A``; LLMBar's two orders split a tie (0.5); RewardBench 2 gives 1/k to a chosen
response tied with k-1 others at the top; best-of-N curves take the expected value under random
tie-breaking. An aggregate whose upstream number needs a subset the run lacks is marked ``partial``
(`missing_parts`), and no published number is put beside a partial headline. A scorer can declare
``ties = "random"`` to get that expected value
everywhere: the ``longer wins`` baseline does, because equal word counts are common (a coin flip, as
in `workbench.data.overview.longer_wins`). CIs come from a bootstrap over items, stratified by subset, with
the aggregate recomputed on every resample.

Deliberately not here: loading files (`workbench.bench.data`), caching scores (nothing is cached
between calls), figures (`workbench.bench.plots`), and generative (LLM-as-judge) evaluation.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.bench.data import (
    Benchmark,
    check_arithmetic,
    load_benchmark,
    load_published_scores,
)
from workbench.bench.rules import (  # noqa: F401 - the rules' names, re-exported for callers of evaluation
    AGGREGATE_PARTS,
    HH_SPLITS,
    JUDGEBENCH_SUBSETS,
    LLMBAR_SETS,
    REWARDBENCH2_SUBSETS,
    REWARDBENCH_EXAMPLE_COUNTS,
    REWARDBENCH_SECTIONS,
    RM_BENCH_FILES,
    RMB_SUBSETS,
    RULES,
    TIES_WEIGHTS,
    Means,
    Row,
    Rule,
    _bon_item,
    headline,
    missing_parts,
)
from workbench.data.schema import Message
from workbench.models.scoring import BENCHMARK_SCORING

TABLE_COLUMNS = ("model", "benchmark", "subset", "metric", "value", "n", "ci_low", "ci_high", "partial", "max_length",
                 "dtype", "runtime", "truncated")
"""``partial``: an aggregate computed without some subset upstream's number needs (see `missing_parts`);
``max_length`` / ``dtype``: the scoring conditions in effect (empty for baselines, given scores and published
rows); ``truncated``: how many of the benchmark's items had an input shortened to fit."""



def _subset_indices(subsets: np.ndarray) -> dict[str, np.ndarray]:
    return {s: np.flatnonzero(subsets == s) for s in dict.fromkeys(subsets)}


def _means(values: pd.DataFrame, groups: Mapping[str, np.ndarray], draws: Mapping[str, np.ndarray] | None) -> Means:
    """Per subset and value column, the (nan)mean over items: of the data (``draws=None``) or of each resample."""
    data, out = values.to_numpy(dtype=float), {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resamples (e.g. Ties columns) stay NaN
        for s, rows in groups.items():
            pick = np.arange(len(rows))[None] if draws is None else draws[s]
            block = data[rows]
            # chunks of resamples keep memory at ~256 x n items per column, whatever n_boot is
            out[s] = {c: np.concatenate([np.nanmean(block[pick[i: i + 256], k], axis=1) for i in range(0, len(pick), 256)])
                      for k, c in enumerate(values.columns)}
    return out


def _draws(groups: Mapping[str, np.ndarray], n_boot: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {s: rng.integers(0, len(rows), size=(n_boot, len(rows)), dtype=np.int32) for s, rows in groups.items()}


def _summaries(bench: Benchmark, values: pd.DataFrame, *, n_boot: int, seed: int) -> pd.DataFrame:
    rule = RULES[bench.rule]
    groups = _subset_indices(bench.items["subset"].to_numpy())
    counts = {s: len(r) for s, r in groups.items()}
    point = rule.summarize(_means(values, groups, None), counts, bench.items)
    out = pd.DataFrame([(s, m, float(v[0]), n) for s, m, v, n in point], columns=["subset", "metric", "value", "n"])
    out["partial"] = out["subset"].map(lambda s: bool(missing_parts(bench).get(s)))
    out["ci_low"] = out["ci_high"] = np.nan
    if n_boot:
        boot = rule.summarize(_means(values, groups, _draws(groups, n_boot, np.random.default_rng(seed))), counts, bench.items)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ci = np.array([np.nanpercentile(v, [2.5, 97.5]) for _, _, v, _ in boot])
        out["ci_low"], out["ci_high"] = ci[:, 0], ci[:, 1]
    return out


# ---------------------------------------------------------------- scorers


class LengthScorer:
    """Scores a response by its word count: the "longer response wins" baseline, under each benchmark's rule.

    Equal word counts are common (22% of RewardBench pairs, mostly code that differs by a token), so the
    baseline breaks ties by a coin flip (``ties = "random"``, its expected value) instead of losing them,
    as `workbench.data.overview.longer_wins` does.
    """

    fingerprint = "longer-wins"
    ties = "random"  # evaluate() reads this: how the rules treat equal scores for this scorer

    def score_sides(self, prompts: Sequence[list[Message]], responses: Sequence[str], cfg: Any = None, *,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        # Same word count as workbench.data.overview.longer_wins (str.split).
        return np.array([len(r.split()) for r in responses], dtype=float), np.zeros(len(responses), dtype=bool)


Scores = Mapping[str, Any]
"""Precomputed scores: benchmark name -> one score sequence per item (in `Benchmark.items` order, one
score per response), or a flat array of all responses in item order."""


def _is_scorer(obj: Any) -> bool:
    return hasattr(obj, "score_sides") or (isinstance(obj, Mapping) and not _is_model_map(obj))


def _is_model_map(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        hasattr(v, "score_sides") or isinstance(v, Mapping) for v in obj.values())


def _split_scores(bench: Benchmark, given: Any, model: str) -> list[np.ndarray]:
    sizes = bench.items["responses"].map(len).to_numpy()
    flat = np.asarray(given, dtype=object)
    if flat.ndim == 1 and len(flat) == sizes.sum() and not isinstance(flat[0], (list, tuple, np.ndarray)):
        return np.split(flat.astype(float), np.cumsum(sizes)[:-1])
    if len(given) != len(sizes):
        raise ValueError(f"model {model!r}, benchmark {bench.name!r}: {len(given)} score rows for {len(sizes)} items; "
                         f"give one score per response of every item ({sizes.sum()} in all), in items order.")
    out = [np.asarray(s, dtype=float) for s in given]
    bad = next((i for i, (s, k) in enumerate(zip(out, sizes)) if s.shape != (k,)), None)
    if bad is not None:
        raise ValueError(f"model {model!r}, benchmark {bench.name!r}: item {bench.items['item_id'].iat[bad]!r} has "
                         f"{out[bad].size} scores for {sizes[bad]} responses.")
    return out


def _score(scorer: Any, bench: Benchmark, model: str, cfg: Any, progress: bool) -> tuple[list[np.ndarray], np.ndarray]:
    """Scores per item and a per-item truncated flag; a model scores the whole benchmark in one call."""
    sizes = bench.items["responses"].map(len).to_numpy()
    if isinstance(scorer, Mapping):
        if bench.name not in scorer:
            raise KeyError(f"model {model!r}: no precomputed scores for benchmark {bench.name!r}; it has {sorted(scorer)}.")
        return _split_scores(bench, scorer[bench.name], model), np.zeros(len(sizes), dtype=bool)
    if cfg is None and not isinstance(scorer, LengthScorer):
        cfg = _benchmark_scoring()
    prompts = [p for p, k in zip(bench.items["prompt"], sizes) for _ in range(k)]
    responses = [r for rs in bench.items["responses"] for r in rs]
    rewards, truncated = scorer.score_sides(prompts, responses, cfg, progress=progress)
    cuts = np.cumsum(sizes)[:-1]
    flags = np.array([t.any() for t in np.split(np.asarray(truncated, dtype=bool), cuts)])
    if flags.any():
        warnings.warn(f"{model} on {bench.name}: {int(flags.sum())} of {len(flags)} items had a response longer than "
                      "max_length (truncated, see the `truncated` column); raise max_length to score them whole.", stacklevel=3)
    return np.split(np.asarray(rewards, dtype=float), cuts), flags


# ---------------------------------------------------------------- evaluate


@dataclass
class Evaluation:
    """What `evaluate` returns: the tidy table, per-item values for drill-down, and the benchmarks scored."""

    table: pd.DataFrame
    examples: pd.DataFrame
    benchmarks: dict[str, Benchmark] = field(default_factory=dict)
    value_columns: dict[str, list[str]] = field(default_factory=dict)  # benchmark -> its rule's per-item columns

    def headline(self) -> pd.DataFrame:
        """One row per (model, benchmark): the benchmark's headline metric (see `headline`)."""
        keys = pd.DataFrame([(b, *headline(bench)) for b, bench in self.benchmarks.items()],
                            columns=["benchmark", "subset", "metric"])
        return self.table.merge(keys, on=["benchmark", "subset", "metric"]).reset_index(drop=True)


def _conditions(scorer: Any, cfg: Any, truncated: np.ndarray) -> dict[str, Any]:
    """Scoring conditions for the table: the length and dtype a reward model used (see `TABLE_COLUMNS`)."""
    describe = getattr(scorer, "scoring_conditions", None)
    if describe is None:  # baselines and given scores: nothing was tokenised here
        return {"max_length": np.nan, "dtype": "", "runtime": "", "truncated": np.nan}
    return {**describe(cfg if cfg is not None else _benchmark_scoring()), "truncated": int(np.sum(truncated))}


def _benchmark_scoring() -> Any:
    """`workbench.models.scoring.BENCHMARK_SCORING`, imported when a model is scored: scoring pulls in torch, which
    evaluating given scores never needs."""
    return BENCHMARK_SCORING


def _as_benchmark(b: Benchmark | str) -> Benchmark:
    return b if isinstance(b, Benchmark) else load_benchmark(b)


def evaluate(models: Any, benchmarks: Sequence[Benchmark | str], *, cfg: Any = None, n_boot: int = 1000, seed: int = 0,
             baselines: bool = True, published: bool = True, progress: bool = True) -> Evaluation:
    """Score benchmarks with one or several models and aggregate them by each benchmark's upstream rule.

    Args:
        models: a reward model (anything with ``score_sides(prompts, responses, cfg, progress=)``, e.g.
            `workbench.models.scoring.load_reward_model`), precomputed `Scores`, or a mapping of model name ->
            either of those for a side-by-side comparison.
        benchmarks: `Benchmark` objects or names for `workbench.bench.data.load_benchmark`.
        cfg: `workbench.models.scoring.ScoreConfig` for reward models; None: `workbench.models.scoring.BENCHMARK_SCORING`
            (reward-bench run_rm.py's max length 2048, fp32 on CPU). The table states what was in effect.
        n_boot: bootstrap resamples for the 95% CIs (0: no CIs).
        seed: bootstrap seed; every model gets the same resamples, so their CIs are comparable.
        baselines: add ``random`` (the rule's expected value under random scores) and ``longer wins``
            (word count as the score; equal counts are coin flips) rows.
        published: add the published Skywork-Reward-V2 headline numbers of these benchmarks, except where
            this run's headline is partial (a subset or domain missing; the benchmark's notes say which).

    Returns:
        `Evaluation` with ``table`` (`TABLE_COLUMNS` + ``source``) and ``examples`` (one row per
        model x item: ``scores``, ``lengths`` in words, ``truncated`` and the rule's value columns).

    Example: ``res = evaluate({"mine": rm}, ["rewardbench", "rm_bench"]); res.headline()``.
    """
    benches = {b.name: b for b in map(_as_benchmark, benchmarks)}
    if _is_model_map(models):
        scorers = dict(models)
    elif _is_scorer(models):
        scorers = {getattr(models, "name", "") or "model": models}
    else:
        raise TypeError(f"models must be a reward model (with score_sides), precomputed scores (benchmark -> scores) "
                        f"or a mapping name -> either; got {type(models).__name__}.")
    if baselines:
        scorers.setdefault("longer wins", LengthScorer())
    tables, examples, columns = [], [], {}
    for bench in benches.values():
        rule = RULES[bench.rule]
        lengths = bench.items["responses"].map(lambda rs: [len(r.split()) for r in rs])
        for name, scorer in scorers.items():
            scores, truncated = _score(scorer, bench, name, cfg, progress)
            values = rule.values(bench.items, scores, ties=getattr(scorer, "ties", "strict"))
            columns[bench.name] = list(values.columns)
            summary = _summaries(bench, values, n_boot=n_boot, seed=seed)
            tables.append(summary.assign(model=name, benchmark=bench.name, source="scored",
                                         **_conditions(scorer, cfg, truncated)))
            examples.append(pd.concat([pd.DataFrame({
                "model": name, "benchmark": bench.name, "subset": bench.items["subset"].to_numpy(),
                "item_id": bench.items["item_id"].to_numpy(), "scores": [list(s) for s in scores],
                "lengths": lengths.to_numpy(), "truncated": truncated}), values], axis=1))
        if baselines:
            tables.append(_summaries(bench, rule.expected(bench.items), n_boot=0, seed=seed)
                          .assign(model="random", benchmark=bench.name, source="expected value"))
    table = pd.concat(tables, ignore_index=True)
    table["partial"] = table["partial"].astype(bool)
    table["max_length"] = table["max_length"].astype(float) if "max_length" in table else np.nan
    for text_column in ("dtype", "runtime"):
        table[text_column] = table[text_column].fillna("") if text_column in table else ""
    table["truncated"] = table["truncated"].astype(float) if "truncated" in table else np.nan
    if published:
        paper = load_published_scores()
        comparable = []
        for bench in benches.values():
            lacking = missing_parts(bench).get(headline(bench)[0])
            if lacking:  # a published number computed on other data is never shown beside this one
                bench.notes.append(f"published numbers not shown: the headline is partial (missing {', '.join(lacking)})")
            else:
                comparable.append(bench.name)
        table = pd.concat([table, paper[paper["benchmark"].isin(comparable)].assign(
            n=np.nan, ci_low=np.nan, ci_high=np.nan, partial=False)], ignore_index=True)
    table = table[[*TABLE_COLUMNS, "source"]]
    return Evaluation(table=table, examples=pd.concat(examples, ignore_index=True), benchmarks=benches, value_columns=columns)


def _item_values(result: Evaluation, model: str, bench: Benchmark) -> pd.DataFrame:
    ex = result.examples[(result.examples["model"] == model) & (result.examples["benchmark"] == bench.name)]
    if ex.empty:
        raise KeyError(f"no per-item values for model {model!r} on {bench.name!r}; "
                       f"models here: {sorted(result.examples['model'].unique())}.")
    return ex.set_index("item_id").loc[bench.items["item_id"], result.value_columns[bench.name]].reset_index(drop=True)


def paired_bootstrap(result: Evaluation, model_a: str, model_b: str, *, benchmark: str, subset: str | None = None,
                     metric: str | None = None, n_boot: int = 2000, seed: int = 0) -> pd.Series:
    """Paired bootstrap of ``model_a - model_b`` on the same items (resampled jointly, stratified by subset).

    Returns a Series: ``value_a``, ``value_b``, ``diff``, ``ci_low``, ``ci_high`` (95% CI of the
    difference), ``p_value`` (two-sided: twice the share of resampled differences on the other side
    of 0, capped at 1) and ``n`` items. ``subset``/``metric`` default to the benchmark's headline.
    """
    bench = result.benchmarks[benchmark]
    rule = RULES[bench.rule]
    default = rule.headline
    subset, metric = subset or default[0], metric or default[1]
    groups = _subset_indices(bench.items["subset"].to_numpy())
    counts = {s: len(r) for s, r in groups.items()}
    draws = _draws(groups, n_boot, np.random.default_rng(seed))

    def pick(rows: list[Row]) -> tuple[np.ndarray, int]:
        hit = [(v, n) for s, m, v, n in rows if (s, m) == (subset, metric)]
        if not hit:
            raise KeyError(f"{benchmark}: no ({subset!r}, {metric!r}) row; rows are {sorted({(s, m) for s, m, _, _ in rows})}.")
        return hit[0]

    point, boot = {}, {}
    for model in (model_a, model_b):
        values = _item_values(result, model, bench)
        point[model], n = pick(rule.summarize(_means(values, groups, None), counts, bench.items))
        boot[model], _ = pick(rule.summarize(_means(values, groups, draws), counts, bench.items))
    diffs = boot[model_a] - boot[model_b]
    diffs = diffs[~np.isnan(diffs)]
    p = min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))) if len(diffs) else float("nan")
    lo, hi = np.percentile(diffs, [2.5, 97.5]) if len(diffs) else (np.nan, np.nan)
    return pd.Series({"benchmark": benchmark, "subset": subset, "metric": metric, "model_a": model_a, "model_b": model_b,
                      "value_a": float(point[model_a][0]), "value_b": float(point[model_b][0]),
                      "diff": float(point[model_a][0] - point[model_b][0]), "ci_low": float(lo), "ci_high": float(hi),
                      "p_value": float(p), "n": n})


# ---------------------------------------------------------------- decontamination


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def _prompt_string(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else " ".join(m["content"] for m in prompt)


def decontamination(train: pd.DataFrame | Iterable[Any], benchmarks: Sequence[Benchmark | str], *, n: int = 13,
                    per_item: bool = False) -> pd.DataFrame:
    """Prompt overlap between a training set and each benchmark: exact (normalized text) and word n-gram.

    Texts are lower-cased with punctuation removed; a benchmark prompt counts as n-gram contaminated
    when it shares at least one run of ``n`` words with any training prompt (13 as in GPT-3's check;
    prompts shorter than ``n`` words are checked exactly only).

    Args:
        train: a pair frame (its ``prompt`` column) or an iterable of prompt strings / message lists.
        benchmarks: `Benchmark` objects or names.

    Returns:
        Per benchmark x subset (plus ``all``): ``n``, ``exact``, ``exact_frac``, ``ngram``, ``ngram_frac``;
        with ``per_item=True`` one row per item with boolean ``exact`` / ``ngram`` flags instead.
    """
    prompts = train["prompt"] if isinstance(train, pd.DataFrame) else train
    exact, grams = set(), set()
    for p in prompts:
        words = _normalize(_prompt_string(p)).split()
        exact.add(" ".join(words))
        grams.update(" ".join(words[i: i + n]) for i in range(len(words) - n + 1))
    rows = []
    for bench in map(_as_benchmark, benchmarks):
        for item_id, subset, p in zip(bench.items["item_id"], bench.items["subset"], bench.items["prompt"]):
            words = _normalize(_prompt_string(p)).split()
            hit = any(" ".join(words[i: i + n]) in grams for i in range(len(words) - n + 1))
            rows.append((bench.name, subset, item_id, " ".join(words) in exact, hit))
    items = pd.DataFrame(rows, columns=["benchmark", "subset", "item_id", "exact", "ngram"])
    if per_item:
        return items
    summary = pd.concat([items, items.assign(subset="all")])
    summary = (summary.groupby(["benchmark", "subset"], sort=False)
               .agg(n=("item_id", "size"), exact=("exact", "sum"), ngram=("ngram", "sum")).reset_index())
    return summary.assign(exact_frac=summary["exact"] / summary["n"], ngram_frac=summary["ngram"] / summary["n"])


# ---------------------------------------------------------------- best-of-N


def bon_curve(scores: Sequence[Sequence[float]], correct: Sequence[Sequence[bool]], *,
              ns: Sequence[int] | None = None) -> pd.DataFrame:
    """Best-of-N curve: expected correctness of the top-scored of N random candidates, for each N.

    Exact expectation over uniform N-subsets (no sampling); ties split at random. Also gives
    ``oracle`` (some candidate of the N is correct, pass@N) and ``random`` (a random pick).

    Example: ``bon_curve([[0.9, 0.5, 0.1, 0.3]], [[0, 1, 1, 0]])["accuracy"]`` -> 0.5, 1/3, 0.25, 0.
    """
    k_min = min(len(s) for s in scores)
    ns = list(ns or range(1, k_min + 1))
    if max(ns) > k_min or min(ns) < 1:
        raise ValueError(f"ns must lie in 1..{k_min} (the fewest candidates of an item), got {ns}.")
    curves, oracle, rate = [], [], []
    for s, c in zip(scores, correct):
        c = np.asarray(c, dtype=float)
        curves.append(_bon_item(np.asarray(s, dtype=float), c)[1])
        k, m = len(c), int(c.sum())
        oracle.append([1 - math.comb(k - m, n) / math.comb(k, n) for n in range(1, k + 1)])
        rate.append(c.mean())
    return pd.DataFrame({"n": ns, "accuracy": [np.mean([cv[n - 1] for cv in curves]) for n in ns],
                         "oracle": [np.mean([o[n - 1] for o in oracle]) for n in ns], "random": float(np.mean(rate))})


class ArithmeticVerifierScorer:
    """A demo scorer for `workbench.bench.data.make_arithmetic_bon`: the verifier's verdict plus noise and
    an optional length bias."""

    def __init__(self, *, noise: float = 0.7, length_bias: float = 0.0, seed: int = 0, name: str = "verifier"):
        self.noise, self.length_bias, self.seed, self.name = noise, length_bias, seed, name
        self.fingerprint = f"arith-verifier-{noise}-{length_bias}-{seed}"

    def score_sides(self, prompts: Sequence[list[Message]], responses: Sequence[str], cfg: Any = None, *,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)  # fresh per call: the same inputs always get the same scores
        verdict = np.array([check_arithmetic(p[-1]["content"], r) for p, r in zip(prompts, responses)], dtype=float)
        words = np.array([len(r.split()) for r in responses], dtype=float)
        return verdict + self.length_bias * words / 10 + rng.normal(0, self.noise, len(responses)), np.zeros(len(responses), bool)


def calibration_bins(examples: pd.DataFrame, *, bins: int = 10) -> pd.DataFrame:
    """Reliability of ``p = sigmoid(s_chosen - s_rejected)`` on two-response items, symmetrised.

    Every pair is scored in its labelled order, so "chosen" is always right; instead each pair's
    confidence is ``max(p, 1 - p)`` and it is right when the more likely side is the chosen one.
    Returns per model and confidence bin: ``confidence`` (mean), ``accuracy``, ``n``, plus ``ece``.
    """
    two = examples[examples["scores"].map(len) == 2]
    margin = np.array([s[0] - s[1] for s in two["scores"]], dtype=float)
    p = 1 / (1 + np.exp(-margin))
    frame = pd.DataFrame({"model": two["model"].to_numpy(), "confidence": np.maximum(p, 1 - p), "right": (p > 0.5).astype(float)})
    frame["bin"] = np.minimum(((frame["confidence"] - 0.5) * 2 * bins).astype(int), bins - 1)
    out = (frame.groupby(["model", "bin"])
           .agg(confidence=("confidence", "mean"), accuracy=("right", "mean"), n=("right", "size")).reset_index())
    totals = out.groupby("model")["n"].transform("sum")
    ece = (out["n"] / totals * (out["confidence"] - out["accuracy"]).abs()).groupby(out["model"]).transform("sum")
    return out.assign(ece=ece)


def bon_frame(table: pd.DataFrame, benchmark: str, *, subset: str = "all") -> pd.DataFrame:
    """The ``bon@N`` rows of an evaluation table as (model, n, accuracy, ci_low, ci_high) for plotting."""
    rows = table[(table["benchmark"] == benchmark) & (table["subset"] == subset) & table["metric"].str.startswith("bon@")]
    rows = rows.assign(n=rows["metric"].str.removeprefix("bon@").astype(int)).rename(columns={"value": "accuracy"})
    return rows[["model", "n", "accuracy", "ci_low", "ci_high"]].sort_values(["model", "n"]).reset_index(drop=True)


__all__ = [
    "RULES", "ArithmeticVerifierScorer", "Evaluation", "LengthScorer", "bon_curve", "bon_frame", "calibration_bins",
    "decontamination", "evaluate", "headline", "missing_parts", "paired_bootstrap",
]
