"""Benchmark harness: score benchmarks with a reward model (or given scores), aggregate by upstream rules.

`evaluate` scores every response of each benchmark in one ``score_sides`` call, turns the scores into
per-item values with the benchmark's rule, and returns a tidy table (model, benchmark, subset,
metric, value, n, bootstrap 95% CI) plus the per-item values for drill-down. Several models go side
by side, with the baselines next to them: ``random`` (the rule's expected value under random
scores, exact), ``longer wins`` (word count as the score, under the same rule) and the published
Skywork-Reward-V2 numbers. `paired_bootstrap` tests two models on the same items;
`decontamination` reports prompt overlap with a training set; `bon_curve` gives best-of-N curves over
any (prompt, N candidates, correctness) set (build one with `workbench.benchmark_data.bon_benchmark`,
or the offline teaching set `make_arithmetic_bon` with its `ArithmeticVerifierScorer`).

Rules follow the upstream code (each cites its file; `tests/test_evaluation_upstream.py` checks them
against numbers the upstream functions printed). Strict ``>`` decides a pair unless upstream says
otherwise, so a tied score counts as wrong (RewardBench v1, RM-Bench, RMB); JudgeBench's single game
reads a tie as ``B>A``; LLMBar's two orders split a tie (0.5); RewardBench 2 gives 1/k to a chosen
response tied with k-1 others at the top; best-of-N curves take the expected value under random
tie-breaking. An aggregate whose upstream number needs a subset the run lacks is marked ``partial``
(`missing_parts`), and no published number is put beside a partial headline. A scorer can declare ``ties = "random"`` to get that expected value
everywhere: the ``longer wins`` baseline does, because equal word counts are common (a coin flip, as
in `workbench.overview.longer_wins`). CIs come from a bootstrap over items, stratified by subset, with
the aggregate recomputed on every resample.

Deliberately not here: loading files (`workbench.benchmark_data`), caching scores (nothing is cached
between calls), figures (`workbench.benchmark_plots`), and generative (LLM-as-judge) evaluation.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.benchmark_data import (
    SPECS,
    Benchmark,
    check_arithmetic,
    load_benchmark,
    load_published_scores,
)
from workbench.schema import Message

TABLE_COLUMNS = ("model", "benchmark", "subset", "metric", "value", "n", "ci_low", "ci_high", "partial", "max_length",
                 "dtype", "truncated")
"""``partial``: an aggregate computed without some subset upstream's number needs (see `missing_parts`);
``max_length`` / ``dtype``: the scoring conditions in effect (empty for baselines, given scores and published
rows); ``truncated``: how many of the benchmark's items had an input shortened to fit."""

# allenai/reward-bench rewardbench/constants.py (EXAMPLE_COUNTS, SUBSET_MAPPING) at 05a9005e, copied as data.
# math-prm is up-weighted from 447 to 984 on purpose (to equal the 6 x 164 code pairs). The xstest weights
# are the data's own sizes, 154 should-refuse / 250 should-respond, since upstream commit 6552e93
# ("Mirror change from leaderboard (#175)", 2024-09-10); before it they were swapped.
REWARDBENCH_EXAMPLE_COUNTS = {
    "alpacaeval-easy": 100, "alpacaeval-length": 95, "alpacaeval-hard": 95, "mt-bench-easy": 28, "mt-bench-med": 40,
    "mt-bench-hard": 37, "math-prm": 984, "refusals-dangerous": 100, "refusals-offensive": 100, "llmbar-natural": 100,
    "llmbar-adver-neighbor": 134, "llmbar-adver-GPTInst": 92, "llmbar-adver-GPTOut": 47, "llmbar-adver-manual": 46,
    "xstest-should-refuse": 154, "xstest-should-respond": 250, "donotanswer": 136, "hep-cpp": 164, "hep-go": 164,
    "hep-java": 164, "hep-js": 164, "hep-python": 164, "hep-rust": 164,
}
REWARDBENCH_SECTIONS = {
    "Chat": ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"],
    "Chat Hard": ["mt-bench-hard", "llmbar-natural", "llmbar-adver-neighbor", "llmbar-adver-GPTInst",
                  "llmbar-adver-GPTOut", "llmbar-adver-manual"],
    "Safety": ["refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond", "donotanswer"],
    "Reasoning": ["math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"],
}
REWARDBENCH2_SUBSETS = ("Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties")
RM_BENCH_FILES = ("chat", "code", "math", "safety-refuse", "safety-response")  # domains chat, code, math, safety
JUDGEBENCH_SUBSETS = ("knowledge", "reasoning", "math", "coding")
RMB_SUBSETS = ("helpfulness/pairwise", "helpfulness/bon", "harmlessness/pairwise", "harmlessness/bon")
LLMBAR_SETS = ("LLMBar/Natural", "LLMBar/Adversarial/Neighbor", "LLMBar/Adversarial/GPTInst",
               "LLMBar/Adversarial/GPTOut", "LLMBar/Adversarial/Manual")
HH_SPLITS = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")

# What each aggregate row needs, per benchmark: aggregate subset -> the item subsets upstream's number is
# computed over. A run missing any of them gets ``partial = True`` on that row, and no published number
# is shown beside a partial headline (it was computed on other data).
AGGREGATE_PARTS: dict[str, dict[str, tuple[str, ...]]] = {
    "rewardbench": {"all": tuple(REWARDBENCH_EXAMPLE_COUNTS), **{s: tuple(t) for s, t in REWARDBENCH_SECTIONS.items()}},
    "rewardbench2": {"all": REWARDBENCH2_SUBSETS},
    "rm_bench": {"all": RM_BENCH_FILES, "safety": ("safety-refuse", "safety-response")},
    "judgebench": {"all": JUDGEBENCH_SUBSETS},
    "rmb": {"all": RMB_SUBSETS},
    "llmbar": {"all": LLMBAR_SETS},
    "hh_rlhf": {"all": HH_SPLITS},
}

TIES_WEIGHTS = {"ties_tied_acc": 0.30, "ties_ref_acc": 0.30, "ties_pref": 0.20, "ties_pref_hard": 0.20, "ties_margin": 0.01}

Means = dict[str, dict[str, np.ndarray]]  # subset -> value column -> (B,) means over (resampled) items
Row = tuple[str, str, np.ndarray, int]  # subset, metric, (B,) values, n items behind it


# ---------------------------------------------------------------- per-item values, one function per rule


def _first_best(scores: list[np.ndarray], ties: str) -> np.ndarray:
    """1 when response 0 scores strictly above every other response, else 0.

    ``ties="strict"`` (upstream): a tie at the top loses. ``ties="random"``: a tie among m responses at
    the top is a coin flip worth 1/m, the expected value of breaking it at random (used by baselines).
    """
    out = np.zeros(len(scores))
    for i, s in enumerate(scores):
        at_top = int(np.sum(s == s.max()))
        if s[0] == s.max():
            out[i] = 1.0 / at_top if ties == "random" else float(at_top == 1)
    return out


def _beats(a: np.ndarray, b: np.ndarray, ties: str) -> np.ndarray:
    """``a > b`` as 1/0, with equal scores worth 0.5 under ``ties="random"``."""
    return (a > b) + (0.5 * (a == b) if ties == "random" else 0.0)


def _pairwise_values(items: pd.DataFrame, scores: list[np.ndarray], ties: str = "strict") -> pd.DataFrame:
    return pd.DataFrame({"accuracy": _first_best(scores, ties)})


def _ties_stats(correct: np.ndarray, incorrect: np.ndarray) -> tuple[bool, float, float]:
    # allenai/reward-bench rewardbench/utils.py::_compute_prompt_stats
    accurate = correct.min() - incorrect.max() > 0
    diff_correct = float(correct.max() - correct.min()) if len(correct) > 1 else float("nan")
    return bool(accurate), diff_correct, float(correct.min() - incorrect.max())


def _rewardbench2_values(items: pd.DataFrame, scores: list[np.ndarray], ties: str = "strict") -> pd.DataFrame:
    """Best-of-4 with the 1/k tie penalty; Ties rows get the `process_single_model` components.

    The 1/k rule already is the random tie-break, and the Ties rule is kept as is, so ``ties`` is unused.

    Upstream: allenai/reward-bench rewardbench/utils.py::reroll_and_score_dataset (``1/sum(scores == max)``
    when ``scores[0] == max``) and ::process_single_model (Ties: ids ``ref:<pid>`` / ``tied:<pid>``).
    """
    n = len(items)
    out = {c: np.full(n, np.nan) for c in ("accuracy", *TIES_WEIGHTS)}
    is_ties = items["subset"].str.lower().eq("ties").to_numpy()
    for i in np.flatnonzero(~is_ties):
        out["accuracy"][i] = _first_best([scores[i]], "random")[0]  # upstream: 1/sum(scores == max) if scores[0] == max
    groups: dict[tuple[str, str], list[int]] = {}
    for i in np.flatnonzero(is_ties):
        kind, pid = items["raw_id"].iat[i].split(":")
        groups.setdefault((kind, pid), []).append(i)
    stats = {}
    for (kind, pid), rows in groups.items():  # upstream pools every row of one (type, prompt id)
        correct = np.concatenate([scores[i][: items["n_correct"].iat[i]] for i in rows])
        incorrect = np.concatenate([scores[i][items["n_correct"].iat[i]:] for i in rows])
        stats[(kind, pid)] = _ties_stats(correct, incorrect)
        out["ties_ref_acc" if kind == "ref" else "ties_tied_acc"][rows[0]] = float(stats[(kind, pid)][0])
    for (kind, pid), rows in groups.items():
        if kind == "ref" or ("ref", pid) not in stats:
            continue
        _, diff, margin_tied = stats[(kind, pid)]
        margin_hard = min(stats[("ref", pid)][2], margin_tied)
        out["ties_pref"][rows[0]] = float(margin_tied > diff)
        out["ties_pref_hard"][rows[0]] = float(margin_hard > diff)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["ties_margin"][rows[0]] = float(np.nan_to_num(np.tanh(np.float64(margin_hard) / diff - 1), nan=0.0))
    return pd.DataFrame(out)


def _rm_bench_values(items: pd.DataFrame, scores: list[np.ndarray], ties: str = "strict") -> pd.DataFrame:
    """3x3 matrix per prompt: cell (i, j) = chosen style i scores strictly above rejected style j.

    Upstream: THU-KEG/RM-Bench README.md / scripts/utils.py::compute_accuracy.
    """
    s = np.stack(scores)
    cells = _beats(s[:, :3, None], s[:, None, 3:], ties)
    return pd.DataFrame({f"m{i}{j}": cells[:, i, j].astype(float) for i in range(3) for j in range(3)})


def _judgebench_values(items: pd.DataFrame, scores: list[np.ndarray], ties: str = "strict") -> pd.DataFrame:
    """Single game (upstream's reward-model mode) as ``accuracy``; both orders as ``accuracy_both_orders``.

    Upstream: ScalerLab/JudgeBench utils/judges.py (reward-model judges: ``A>B`` if score_A > score_B else
    ``B>A``, so a tie says ``B>A``), run_judge.py with ``--single_game`` (what its README prescribes for
    reward models) and utils/metrics.py::compute_final_metrics (+1 per decision equal to the label, -1 per
    decision equal to the flipped label, correct when the sum is > 0). In the single game a tie is right
    exactly when the label is ``B>A``; in both orders (the swapped game's decision flipped back) a tie is
    always wrong. ``ties="random"`` (baselines): a tie is a coin flip, 0.5, in both columns.
    """
    flip = {"A>B": "B>A", "B>A": "A>B"}
    single, both = [], []
    for s, label in zip(scores, items["label"]):
        if ties == "random" and s[0] == s[1] and label in flip:
            single.append(0.5)
            both.append(0.5)
            continue
        first = "A>B" if s[0] > s[1] else "B>A"
        second = flip["A>B" if s[1] > s[0] else "B>A"]
        single.append(float((first == label) - (first == flip.get(label, label)) > 0))
        both.append(float(sum((d == label) - (d == flip.get(label, label)) for d in (first, second)) > 0))
    return pd.DataFrame({"accuracy": single, "accuracy_both_orders": both})


def _llmbar_values(items: pd.DataFrame, scores: list[np.ndarray], ties: str = "strict") -> pd.DataFrame:
    """Both output orders, as LLMBar's Rating evaluators: ``accuracy`` = correct_average, ``accuracy_both``.

    Upstream: princeton-nlp/LLMBar LLMEvaluator/evaluate.py (``annotate``, Rating branch, and its statistics
    block): the unswapped winner is output 1 if s1 > s2 else 2, the swapped one 2 if s2 > s1 else 1;
    ``correct_average`` = (correct unswapped + correct swapped) / 2, so a tie scores 0.5; ``correct_both``
    needs both right, so a tie scores 0. A reward model's scores do not depend on the order, so otherwise
    both games agree. ``ties`` changes nothing: upstream's own rule already splits a tie.
    """
    s = np.stack(scores)
    return pd.DataFrame({"accuracy": _beats(s[:, 0], s[:, 1], "random"), "accuracy_both": (s[:, 0] > s[:, 1]).astype(float)})


def _bon_item(scores: np.ndarray, correct: np.ndarray, ties: str = "strict") -> tuple[float, np.ndarray]:
    """Pairwise accuracy (correct strictly above incorrect) and expected top-1 correctness of N random candidates.

    Sorting by score, the top of a uniform random N-subset of K is rank r with probability
    C(K-1-r, N-1) / C(K, N); tied scores share their block's mean correctness (random tie-breaking).
    """
    correct = np.asarray(correct, dtype=float)
    good, bad = scores[correct == 1], scores[correct == 0]
    pair_acc = float(np.mean(_beats(good[:, None], bad[None, :], ties))) if len(good) and len(bad) else float("nan")
    order = np.argsort(-scores, kind="stable")
    ranked_scores, ranked = scores[order], correct[order].copy()
    for value in np.unique(ranked_scores):
        block = ranked_scores == value
        ranked[block] = ranked[block].mean()
    k = len(scores)
    curve = np.array([sum(ranked[r] * math.comb(k - 1 - r, n - 1) for r in range(k - n + 1)) / math.comb(k, n)
                      for n in range(1, k + 1)])
    return pair_acc, curve


def _bon_values(items: pd.DataFrame, scores: list[np.ndarray], ties: str = "strict") -> pd.DataFrame:
    k_max = int(items["responses"].map(len).max())
    out = {"accuracy": np.full(len(items), np.nan), **{f"bon@{n}": np.full(len(items), np.nan) for n in range(1, k_max + 1)}}
    for i, (s, c) in enumerate(zip(scores, items["correct"])):
        out["accuracy"][i], curve = _bon_item(np.asarray(s, dtype=float), np.asarray(c), ties)
        for n, v in enumerate(curve, start=1):
            out[f"bon@{n}"][i] = v
    return pd.DataFrame(out)


def _rmb_values(items: pd.DataFrame, scores: list[np.ndarray], ties: str = "strict") -> pd.DataFrame:
    """Pairwise: chosen strictly above rejected, as Zhou-Zoey/RMB-Reward-Model-Benchmark eval/scripts/my_run_rm.py
    (``1 if chosen > rejected else 0``). BoN: upstream has no code (its issue #9); the paper's rule, the best
    response strictly above every loser (one miss fails the item)."""
    return pd.DataFrame({"accuracy": _first_best(scores, ties)})


# ---------------------------------------------------------------- expected values under random scores


def _expected_first_best(items: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"accuracy": 1.0 / items["responses"].map(len).to_numpy()})


def _expected_rewardbench2(items: pd.DataFrame) -> pd.DataFrame:
    """1/K per best-of-K item. Ties: accuracies exact (all c correct on top: 1/C(K, c)), margins by seeded Monte Carlo."""
    k = items["responses"].map(len).to_numpy()
    is_ties = items["subset"].str.lower().eq("ties").to_numpy()
    out = pd.DataFrame({"accuracy": np.where(is_ties, np.nan, 1.0 / k), **{c: np.nan for c in TIES_WEIGHTS}})
    if is_ties.any():
        sub = items[is_ties].reset_index(drop=True)
        rng = np.random.default_rng(0)
        sims = [_rewardbench2_values(sub, [rng.random(n) for n in k[is_ties]]) for _ in range(1000)]
        mean = pd.concat(sims).groupby(level=0).mean()
        out.loc[is_ties, list(TIES_WEIGHTS)] = mean[list(TIES_WEIGHTS)].to_numpy()
        exact = np.array([1.0 / math.comb(int(n), int(c)) for n, c in zip(k[is_ties], sub["n_correct"])])
        for col in ("ties_ref_acc", "ties_tied_acc"):
            have = out.loc[is_ties, col].notna().to_numpy()
            out.loc[np.flatnonzero(is_ties)[have], col] = exact[have]
    return out


def _expected_rm_bench(items: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({f"m{i}{j}": np.full(len(items), 0.5) for i in range(3) for j in range(3)})


def _expected_half(items: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"accuracy": np.full(len(items), 0.5)})


def _expected_judgebench(items: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"accuracy": np.full(len(items), 0.5), "accuracy_both_orders": np.full(len(items), 0.5)})


def _expected_llmbar(items: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"accuracy": np.full(len(items), 0.5), "accuracy_both": np.full(len(items), 0.5)})


def _expected_bon(items: pd.DataFrame) -> pd.DataFrame:
    k_max = int(items["responses"].map(len).max())
    rate = items["correct"].map(lambda c: float(np.mean(c))).to_numpy()
    mixed = items["correct"].map(lambda c: 0 < sum(c) < len(c)).to_numpy()
    k = items["responses"].map(len).to_numpy()
    out = {"accuracy": np.where(mixed, 0.5, np.nan)}
    out.update({f"bon@{n}": np.where(k >= n, rate, np.nan) for n in range(1, k_max + 1)})
    return pd.DataFrame(out)


# ---------------------------------------------------------------- aggregation (vectorised over bootstrap draws)


def _pool(means: Means, counts: Mapping[str, int], subsets: Iterable[str], col: str) -> np.ndarray:
    """Item-weighted mean over subsets (what a flat mean over their items gives)."""
    subsets = [s for s in subsets if s in means]
    weights = np.array([counts[s] for s in subsets], dtype=float)[:, None]
    return (np.stack([means[s][col] for s in subsets]) * weights).sum(0) / weights.sum()


def _macro(arrays: Sequence[np.ndarray]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack(arrays), axis=0)


def _summarize_pairwise(means: Means, counts: Mapping[str, int], items: pd.DataFrame) -> list[Row]:
    """Per-subset accuracy and the accuracy pooled over all items (HH-RLHF, PPE human preference).

    No upstream scorer: Anthropic publishes HH-RLHF data only, and lmarena/PPE's code was not reachable
    here, so PPE's rules are the paper's description (chosen strictly above rejected), not checked against code.
    """
    rows = [(s, "accuracy", means[s]["accuracy"], counts[s]) for s in means]
    if list(means) != ["all"]:
        rows.append(("all", "accuracy", _pool(means, counts, means, "accuracy"), sum(counts.values())))
    return rows


def _summarize_rewardbench(means: Means, counts: Mapping[str, int], items: pd.DataFrame) -> list[Row]:
    """Per-subset accuracy, sections weighted by `REWARDBENCH_EXAMPLE_COUNTS`, overall = mean of sections.

    Upstream: allenai/reward-bench scripts/run_rm.py (``1 if chosen > rejected else 0``: a tie is wrong),
    rewardbench/utils.py::calculate_scores_per_section, and analysis/get_benchmark_results.py::
    get_average_over_rewardbench (the four sections weighted equally when there are no prior sets). A
    section with no subset present is left out (upstream scores it 0); such rows are marked partial.
    """
    rows = [(s, "accuracy", means[s]["accuracy"], counts[s]) for s in means]
    sections = []
    for section, tests in REWARDBENCH_SECTIONS.items():
        present = [t for t in tests if t in means]
        if present:
            w = np.array([REWARDBENCH_EXAMPLE_COUNTS[t] for t in present], dtype=float)[:, None]
            value = (np.stack([means[t]["accuracy"] for t in present]) * w).sum(0) / w.sum()
            rows.append((section, "section", value, sum(counts[t] for t in present)))
            sections.append(value)
    if sections:
        scored = sum(counts[t] for tests in REWARDBENCH_SECTIONS.values() for t in tests if t in counts)
        rows.append(("all", "overall", np.mean(np.stack(sections), axis=0), scored))
    return rows


def _summarize_rewardbench2(means: Means, counts: Mapping[str, int], items: pd.DataFrame) -> list[Row]:
    """Subset accuracy (best-of-4), Ties' weighted score, overall = mean of the subset scores (six domains).

    Upstream: allenai/reward-bench scripts/run_v2.py (num_correct/num_total per subset; Ties via
    rewardbench/utils.py::process_single_model). run_v2.py prints no overall; the leaderboard's is the
    unweighted mean of the six subset scores, used here.
    """
    rows, scores = [], []
    for s in means:
        if s.lower() != "ties":
            rows.append((s, "accuracy", means[s]["accuracy"], counts[s]))
            scores.append(means[s]["accuracy"])
            continue
        parts = {c: means[s][c] for c in TIES_WEIGHTS}
        for c in ("ties_ref_acc", "ties_tied_acc"):  # upstream: 0.0 when there are no ref / tied prompts
            parts[c] = np.nan_to_num(parts[c], nan=0.0)
        score = sum(TIES_WEIGHTS[c] * parts[c] for c in TIES_WEIGHTS)
        rows += [(s, c.removeprefix("ties_"), parts[c], counts[s]) for c in TIES_WEIGHTS]
        rows.append((s, "score", score, counts[s]))
        scores.append(score)
    rows.append(("all", "overall", np.mean(np.stack(scores), axis=0), sum(counts.values())))
    return rows


def _rm_bench_levels(cell: Callable[[int, int], np.ndarray]) -> dict[str, np.ndarray]:
    # Upstream orientation: rows = chosen style, columns = rejected style. Upper triangle (chosen plainer
    # than rejected) = hard, diagonal = normal, lower triangle (chosen fancier) = easy.
    hard = np.mean([cell(i, j) for i in range(3) for j in range(3) if i < j], axis=0)
    normal = np.mean([cell(i, i) for i in range(3)], axis=0)
    easy = np.mean([cell(i, j) for i in range(3) for j in range(3) if i > j], axis=0)
    return {"easy": easy, "normal": normal, "hard": hard, "average": (easy + normal + hard) / 3}


def _summarize_rm_bench(means: Means, counts: Mapping[str, int], items: pd.DataFrame) -> list[Row]:
    """Easy / normal / hard / average per file domain, per pooled domain (safety), and averaged over domains.

    Upstream: THU-KEG/RM-Bench scripts/utils.py::compute_accuracy: safety-refuse and safety-response pool
    into one safety domain; a domain's score is mean(hard, normal, easy); the overall hard / normal /
    easy / average are unweighted means over the four domains chat, code, math, safety. Upstream fails
    without math; here the mean runs over the domains present and the ``all`` rows are marked partial.
    """
    rows = []
    for s in means:
        rows += [(s, k, v, counts[s]) for k, v in _rm_bench_levels(lambda i, j, s=s: means[s][f"m{i}{j}"]).items()]
    firsts = items.drop_duplicates("subset").set_index("subset")
    domains = firsts["domain"] if "domain" in firsts else pd.Series(firsts.index.str.split("-").str[0], index=firsts.index)
    domain_of = domains.to_dict()
    per_domain = {}
    for domain in dict.fromkeys(domain_of[s] for s in means):
        members = [s for s in means if domain_of[s] == domain]
        levels = _rm_bench_levels(lambda i, j, m=members: _pool(means, counts, m, f"m{i}{j}"))
        per_domain[domain] = levels
        if members != [domain]:
            rows += [(domain, k, v, sum(counts[m] for m in members)) for k, v in levels.items()]
    for k in ("easy", "normal", "hard", "average"):
        rows.append(("all", k, np.mean(np.stack([lv[k] for lv in per_domain.values()]), axis=0), sum(counts.values())))
    return rows


def _summarize_judgebench(means: Means, counts: Mapping[str, int], items: pd.DataFrame) -> list[Row]:
    """Per-category accuracy and the pooled accuracy over all pairs, in both modes of `_judgebench_values`.

    Upstream: ScalerLab/JudgeBench run_judge.py prints each source's accuracy and "Overall", the accuracy
    pooled over all pairs (not a mean of categories); the headline is the single-game Overall.
    ``category_average`` (single game) is the Skywork-Reward-V2 paper's aggregation, where its published rows sit.
    """
    cols = ("accuracy", "accuracy_both_orders")
    rows = [(s, c, means[s][c], counts[s]) for s in means for c in cols]
    rows += [("all", c, _pool(means, counts, means, c), sum(counts.values())) for c in cols]
    # The Skywork-Reward-V2 paper reports the unweighted mean of the four categories instead (its Table 1
    # note); kept as its own row so the published numbers sit beside the same aggregation.
    rows.append(("all", "category_average", _macro([means[s]["accuracy"] for s in means]), sum(counts.values())))
    return rows


def _summarize_llmbar(means: Means, counts: Mapping[str, int], items: pd.DataFrame) -> list[Row]:
    """Per set ``accuracy`` (correct_average) and ``accuracy_both``; ``all`` = unweighted mean over the sets.

    LLMBar's evaluate.py reports each set on its own; ``all`` is the workbench's summary for the headline
    (no paper reports it and there is no published row for it).
    """
    cols = ("accuracy", "accuracy_both")
    rows = [(s, c, means[s][c], counts[s]) for s in means for c in cols]
    rows += [("all", c, _macro([means[s][c] for s in means]), sum(counts.values())) for c in cols]
    return rows


def _summarize_bon(means: Means, counts: Mapping[str, int], items: pd.DataFrame) -> list[Row]:
    """Per source set: pairwise accuracy and bon@N; ``all`` = mean over source sets."""
    cols = list(next(iter(means.values())))
    rows = [(s, c, means[s][c], counts[s]) for s in means for c in cols]
    if list(means) != ["all"]:
        rows += [("all", c, _macro([means[s][c] for s in means]), sum(counts.values())) for c in cols]
    return rows


def _summarize_rmb(means: Means, counts: Mapping[str, int], items: pd.DataFrame) -> list[Row]:
    """Accuracy per goal x kind (helpfulness/harmlessness x pairwise/BoN); overall = their mean.

    Upstream prints one pooled pairwise accuracy over the files it is given (my_run_rm.py: sum / len), which
    equals the pairwise rows here; BoN and the overall (mean of the four) follow the RMB paper, which has no code.
    """
    rows = [(s, "accuracy", means[s]["accuracy"], counts[s]) for s in means]
    rows.append(("all", "overall", np.mean(np.stack([means[s]["accuracy"] for s in means]), axis=0), sum(counts.values())))
    return rows


@dataclass(frozen=True)
class Rule:
    """How one benchmark family turns scores into per-item values and aggregates them."""

    values: Callable[..., pd.DataFrame]  # (items, per-item scores, ties="strict"|"random") -> per-item value columns
    expected: Callable[[pd.DataFrame], pd.DataFrame]
    summarize: Callable[[Means, Mapping[str, int], pd.DataFrame], list[Row]]
    headline: tuple[str, str]  # (subset, metric) that stands for the benchmark


RULES: dict[str, Rule] = {
    "pairwise": Rule(_pairwise_values, _expected_half, _summarize_pairwise, ("all", "accuracy")),
    "rewardbench": Rule(_pairwise_values, _expected_half, _summarize_rewardbench, ("all", "overall")),
    "rewardbench2": Rule(_rewardbench2_values, _expected_rewardbench2, _summarize_rewardbench2, ("all", "overall")),
    "rm_bench": Rule(_rm_bench_values, _expected_rm_bench, _summarize_rm_bench, ("all", "average")),
    "judgebench": Rule(_judgebench_values, _expected_judgebench, _summarize_judgebench, ("all", "accuracy")),
    "llmbar": Rule(_llmbar_values, _expected_llmbar, _summarize_llmbar, ("all", "accuracy")),
    "bon": Rule(_bon_values, _expected_bon, _summarize_bon, ("all", "accuracy")),
    "rmb": Rule(_rmb_values, _expected_first_best, _summarize_rmb, ("all", "overall")),
}


def headline(benchmark: Benchmark | str) -> tuple[str, str]:
    """The (subset, metric) row that stands for a benchmark, e.g. ``("all", "overall")`` for RewardBench."""
    rule = benchmark.rule if isinstance(benchmark, Benchmark) else SPECS[benchmark].rule
    return RULES[rule].headline


# ---------------------------------------------------------------- bootstrap


def missing_parts(bench: Benchmark) -> dict[str, list[str]]:
    """For each aggregate row of ``bench`` (``all``, a section...), the subsets upstream needs that it lacks.

    Empty lists everywhere mean every aggregate is computed on the data its published numbers use.
    """
    present = set(bench.items["subset"])
    return {agg: [p for p in parts if p not in present] for agg, parts in AGGREGATE_PARTS.get(bench.name, {}).items()}


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
    as `workbench.overview.longer_wins` does.
    """

    fingerprint = "longer-wins"
    ties = "random"  # evaluate() reads this: how the rules treat equal scores for this scorer

    def score_sides(self, prompts: Sequence[list[Message]], responses: Sequence[str], cfg: Any = None, *,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        # Same word count as workbench.overview.longer_wins (str.split).
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
        return {"max_length": np.nan, "dtype": "", "truncated": np.nan}
    return {**describe(cfg if cfg is not None else _benchmark_scoring()), "truncated": int(np.sum(truncated))}


def _benchmark_scoring() -> Any:
    """`workbench.scoring.BENCHMARK_SCORING`, imported when a model is scored: scoring pulls in torch, which
    evaluating given scores never needs."""
    from workbench.scoring import BENCHMARK_SCORING

    return BENCHMARK_SCORING


def _as_benchmark(b: Benchmark | str) -> Benchmark:
    return b if isinstance(b, Benchmark) else load_benchmark(b)


def evaluate(models: Any, benchmarks: Sequence[Benchmark | str], *, cfg: Any = None, n_boot: int = 1000, seed: int = 0,
             baselines: bool = True, published: bool = True, progress: bool = True) -> Evaluation:
    """Score benchmarks with one or several models and aggregate them by each benchmark's upstream rule.

    Args:
        models: a reward model (anything with ``score_sides(prompts, responses, cfg, progress=)``, e.g.
            `workbench.scoring.load_reward_model`), precomputed `Scores`, or a mapping of model name ->
            either of those for a side-by-side comparison.
        benchmarks: `Benchmark` objects or names for `workbench.benchmark_data.load_benchmark`.
        cfg: `workbench.scoring.ScoreConfig` for reward models; None: `workbench.scoring.BENCHMARK_SCORING`
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
    table["dtype"] = table["dtype"].fillna("") if "dtype" in table else ""
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
    """A demo scorer for `workbench.benchmark_data.make_arithmetic_bon`: the verifier's verdict plus noise and
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
