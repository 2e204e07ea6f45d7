"""Stage 1, the loop: train on labelled pairs -> best checkpoint by gold accuracy -> retrieve -> label -> add.

Iteration 0 labels a random seed of the unverified pool (there is no RM yet). Every later iteration
trains a fast reward model (a head over frozen sentence embeddings, `workbench.models.fast_rm`; seconds on a
CPU) on every pair labelled in *earlier* iterations, keeps the epoch with the best gold accuracy,
computes ``p`` for each gold pair, retrieves similar unreviewed pool pairs (`workbench.curation.retrieval`) and
has them labelled into the review log (`workbench.curation.review`). A final RM is trained on everything.

Labels come from the review log only, filtered by iteration, so a crashed or interrupted run that is
started again recomputes the same RMs and queues and asks no reviewer twice. Unattended runs label with
the oracle (simulated) or the LLM judge; a person labels the same queues in `workbench.curation.review_ui`.

Not here: the embeddings (`workbench.curation.clustering.embed_pairs`) and plotting (`workbench.curation.plots`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.curation.retrieval import NeighborIndex, RetrievalConfig, retrieve_for_gold
from workbench.curation.review import ReviewStore, apply_labels, review_with
from workbench.curation.routing import RoutingConfig, route_pairs
from workbench.data.schema import PairFrame, prompt_text
from workbench.data.splits import inject_label_noise
from workbench.models import scoring, training


@dataclass(frozen=True)
class Stage1Config:
    """The loop's budget and knobs (a notebook's parameters map onto it)."""

    iterations: int = 3  # retrieve-and-label rounds after the seed round
    seed_size: int = 200  # pool pairs labelled in round 0, before any RM exists
    labels_per_iteration: int = 150  # review budget per round; the best-ranked candidates are labelled
    k_max: int = 8  # the paper's value
    index: str = "auto"  # exact | faiss | auto (faiss above 50k pool pairs)
    head_epochs: int = 30  # the fast RM's epochs; the best epoch on gold is kept
    # Which retrieved candidates fill the round's budget: "puller" (the paper: strongest gold error first, then the
    # most similar) or "disagreement" (the pairs the round's RM disagrees with most under their current label).
    rank_by: str = "puller"
    # Who reviews which queued pair (people, the LLM judge, both) by its attributes and scores; None: one reviewer
    # labels everything. `workbench.curation.routing.RoutingConfig()` is the paper's split.
    routing: RoutingConfig | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("iterations", "seed_size", "labels_per_iteration"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        RetrievalConfig(k_max=self.k_max, index=self.index)  # validates both
        if self.rank_by not in ("puller", "disagreement"):
            raise ValueError(f"rank_by must be 'puller' or 'disagreement', got {self.rank_by!r}.")

    def smoke(self) -> Stage1Config:
        """The same loop at test size: at most 2 rounds, 20 seed labels, 15 labels a round, 5 epochs."""
        return replace(self, iterations=min(self.iterations, 2), seed_size=min(self.seed_size, 20),
                       labels_per_iteration=min(self.labels_per_iteration, 15), head_epochs=min(self.head_epochs, 5))


@dataclass(frozen=True)
class SimulationConfig:
    """An unattended run against a known truth: label noise injected into the pool (seeded) and simulated reviewers
    who answer from the truth, wrong at ``oracle_error_rate``. Only for measuring curation, never for real labels."""

    noise_rate: float = 0.2  # share of pool labels flipped; 0 for none
    oracle_error_rate: float = 0.05  # how often the simulated reviewer answers wrongly
    judge_error_rate: float = 0.1  # routed runs: how often the simulated LLM judge answers wrongly


@dataclass
class Stage1Data:
    """Everything an iteration needs, computed once: the pool, gold (and test) pairs and their embeddings."""

    pool: PairFrame  # unverified pool; a ``label_is_true`` column enables the oracle and noise metrics
    gold: PairFrame  # human-verified: model selection and retrieval queries
    pool_emb: np.ndarray  # (conversation, attributes) embeddings, rows aligned with ``pool``
    gold_emb: np.ndarray
    test: PairFrame | None = None  # never curated: honest accuracy of each iteration's RM
    tags: pd.DataFrame | None = None  # joined into queues for the reviewer
    clusters: pd.Series | None = None  # pair_id -> error-map cluster, when notebook 03 ran
    priority_ids: list[str] = field(default_factory=list)  # e.g. pool pairs of the worst error clusters (03): seeded first

    @classmethod
    def from_run_artifacts(cls, pairs: PairFrame, pool: PairFrame, tags: pd.DataFrame | None,
                           embed: Callable[[PairFrame], np.ndarray], *, error_map: pd.DataFrame | None = None,
                           selection: dict[str, Any] | None = None) -> Stage1Data:
        """From a run's artifacts: the (noised) pool, gold and test from ``pairs``, their embeddings by ``embed``,
        and notebook 03's clusters and review proposal when it ran."""
        gold = pairs[pairs["split"] == "gold"].reset_index(drop=True)
        test = pairs[pairs["split"] == "test"].reset_index(drop=True)
        emb = embed(pd.concat([pool[gold.columns.intersection(pool.columns)], gold], ignore_index=True))
        clusters = None if error_map is None else error_map.set_index("pair_id")["cluster"]
        return cls(pool=pool, gold=gold, test=test, pool_emb=emb[:len(pool)], gold_emb=emb[len(pool):], tags=tags,
                   clusters=clusters, priority_ids=list((selection or {}).get("pair_ids", [])))


@dataclass
class Stage1Result:
    history: pd.DataFrame  # one row per iteration
    best_model_dir: Path  # the iteration RM with the best gold accuracy
    labelled: PairFrame  # pool pairs with their review labels applied (dropped ones included)
    queues: dict[int, pd.DataFrame] = field(default_factory=dict)


def labelled_pool(data: Stage1Data, store: ReviewStore, *, before_iteration: int | None = None) -> PairFrame:
    """Pool pairs with a current label from rounds before ``before_iteration`` (all rounds if None)."""
    labels = store.labels(before_iteration=before_iteration)
    reviewed = data.pool[data.pool["pair_id"].isin(set(labels["pair_id"]))]
    return apply_labels(reviewed, labels).reset_index(drop=True)


def training_set(labelled: PairFrame) -> PairFrame:
    """What an RM learns from: kept and flipped pairs (silver and gold tier); dropped pairs are out."""
    return labelled[labelled["review_decision"].isin(["keep", "flip"])].reset_index(drop=True)


def human_verified(gold: PairFrame, human_labelled: PairFrame | None) -> PairFrame:
    """Every human-verified pair: the gold split plus gold-tier (people, oracle) Stage-1 labels, kept or flipped."""
    parts = [gold]
    if human_labelled is not None and len(human_labelled):
        ok = human_labelled["review_decision"].isin(["keep", "flip"]) & (human_labelled["review_tier"] == "gold")
        parts.append(human_labelled[ok][gold.columns.intersection(human_labelled.columns)])
    return pd.concat(parts, ignore_index=True)



def verified_so_far(data: Stage1Data, store: ReviewStore) -> PairFrame:
    """The human-verified pairs at this moment: gold plus every gold-tier label in the review log (the LLM judge's
    few-shot pool in Stage 1, read each time it is asked, so it grows with the rounds)."""
    return human_verified(data.gold, labelled_pool(data, store))


def score_frame(rm: Any, pairs: PairFrame) -> pd.DataFrame:
    """``score_chosen``, ``score_rejected``, ``margin`` and ``p`` per pair (indexed like ``pairs``)."""
    columns = ["pair_id", "score_chosen", "score_rejected", "margin", "p"]
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    s = scoring.score_pairs(rm, pairs, progress=False).rename(columns={"r_chosen": "score_chosen",
                                                                       "r_rejected": "score_rejected"})
    return s[columns].set_index(pairs.index)


def _decorate(queue: pd.DataFrame, data: Stage1Data, iteration: int) -> pd.DataFrame:
    """Join the pair texts, tags and cluster onto a queue of pair_ids (order kept)."""
    out = queue.merge(data.pool, on="pair_id", how="left")
    if data.tags is not None:
        tag_cols = [c for c in ("task_category", "objectivity", "controversiality", "desired_attributes",
                                "annotation_guideline") if c in data.tags.columns and c not in out.columns]
        out = out.merge(data.tags[["pair_id", *tag_cols]], on="pair_id", how="left")
    if data.clusters is not None:
        out["cluster"] = out["pair_id"].map(data.clusters)
    out["iteration"] = iteration
    return out


def seed_queue(data: Stage1Data, store: ReviewStore, cfg: Stage1Config) -> pd.DataFrame:
    """Round 0, the paper's small seed set for verification: ``priority_ids`` first (the pool pairs of the
    worst error clusters, when notebook 03 proposed them), then a seeded random sample of the pool."""
    in_pool = set(data.pool["pair_id"])
    first = list(dict.fromkeys(p for p in data.priority_ids if p in in_pool))[: cfg.seed_size]
    rest = data.pool.loc[~data.pool["pair_id"].isin(first), "pair_id"].to_numpy()
    rng = np.random.default_rng(cfg.seed)
    fill = rest[np.sort(rng.permutation(len(rest))[: cfg.seed_size - len(first)])]
    ids = [*first, *fill]
    queue = pd.DataFrame({"pair_id": ids, "pulled_by": ["error cluster"] * len(first) + ["seed"] * len(fill),
                          "similarity": np.nan, "rank": np.arange(len(ids))})
    queue = _decorate(queue, data, 0)
    queue.attrs["retrieved"] = 0  # nothing retrieved: no RM yet
    return queue


def train_iteration_rm(data: Stage1Data, train: PairFrame, cfg: Stage1Config, output_dir: Path, *, cache: Any = None,
                       progress: bool = False) -> tuple[Any, training.TrainResult]:
    """The fast Stage-1 RM of one round: best epoch on gold, saved under ``output_dir``."""
    return training.fast_head_rm(train, data.gold, output_dir=output_dir, cache=cache, epochs=cfg.head_epochs,
                                 seed=cfg.seed, progress=progress)


def retrieval_queue(data: Stage1Data, store: ReviewStore, rm: Any, cfg: Stage1Config, iteration: int,
                    *, index: NeighborIndex | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(queue, gold scores) of a round: candidates pulled by the RM's gold errors from the pool pairs not
    labelled in earlier rounds, best-ranked ``labels_per_iteration`` of them, with scores and provenance."""
    gold_scores = score_frame(rm, data.gold)
    done = set(store.labels(before_iteration=iteration)["pair_id"])
    rcfg = RetrievalConfig(k_max=cfg.k_max, index=cfg.index)
    cands = retrieve_for_gold(data.gold["pair_id"].tolist(), gold_scores["p"].to_numpy(), data.gold_emb,
                              data.pool["pair_id"].tolist(), data.pool_emb, rcfg, index=index, exclude=done)
    retrieved = len(cands)
    scored = None
    if cfg.rank_by == "disagreement" and len(cands):  # the RM's own doubt about the label decides the budget
        scored = score_frame(rm, data.pool.set_index("pair_id").loc[cands["pair_id"]].reset_index())
        cands = cands.iloc[np.argsort(scored["p"].to_numpy(), kind="stable")].reset_index(drop=True)
    cands = cands.head(cfg.labels_per_iteration)
    queue = _decorate(cands, data, iteration)
    scores = score_frame(rm, queue) if scored is None else scored[scored["pair_id"].isin(set(queue["pair_id"]))]
    queue = queue.merge(scores, on="pair_id", how="left") if len(queue) else queue.assign(
        score_chosen=[], score_rejected=[], margin=[], p=[])
    prompt_of = dict(zip(data.gold["pair_id"], data.gold["prompt"].map(prompt_text)))
    queue["puller_prompt"] = queue["pulled_by"].map(prompt_of)
    queue.attrs["retrieved"] = retrieved  # candidates before the review budget cut
    return queue, gold_scores


def _accuracy(rm: Any, pairs: PairFrame | None) -> float:
    if pairs is None or pairs.empty:
        return float("nan")
    return float((score_frame(rm, pairs)["margin"] > 0).mean())


def _iteration_row(iteration: int, train: PairFrame, gold_scores: pd.DataFrame | None, test_acc: float,
                   queue: pd.DataFrame, decided: pd.DataFrame, labelled_after: PairFrame) -> dict[str, Any]:
    d = decided["decision"] if len(decided) else pd.Series(dtype=str)
    row = {"iteration": iteration, "train_pairs": len(train),
           "gold_accuracy": float((gold_scores["margin"] > 0).mean()) if gold_scores is not None else float("nan"),
           "gold_wrong": int((gold_scores["p"] <= 0.5).sum()) if gold_scores is not None else 0,
           "test_accuracy": test_acc, "retrieved": int(queue.attrs.get("retrieved", len(queue))), "queued": len(queue),
           "labelled": int((d != "skip").sum()),
           "unanswered": len(queue) - len(decided),  # queued but no decision (e.g. a failed judgement): left for people
           "flips_found": int((d == "flip").sum()), "drops": int((d == "drop").sum()), "skips": int((d == "skip").sum())}
    if "label_is_true" in labelled_after.columns and len(decided):
        truth = queue.set_index("pair_id")["label_is_true"] if "label_is_true" in queue.columns else None
        if truth is not None:
            flips = decided.loc[decided["decision"] == "flip", "pair_id"]
            noisy = ~truth.astype(bool)
            row["flips_correct"] = int(noisy.reindex(flips).fillna(False).sum())
            row["noisy_in_queue"] = int(noisy.sum())
    if "label_is_true" in labelled_after.columns:
        kept = training_set(labelled_after)
        row["train_label_error_rate"] = float((~kept["label_is_true"].astype(bool)).mean()) if len(kept) else float("nan")
    return row


def _review(reviewer: Any, queue: pd.DataFrame, store: ReviewStore, *, shown: pd.DataFrame, iteration: int) -> pd.DataFrame:
    """One round's decisions on ``queue``: a routed review (`workbench.curation.routing.RoutedReview`) routes the
    queue first and returns the queue with its routes in ``attrs["queue"]``; any other reviewer labels every pair."""
    if hasattr(reviewer, "review"):
        routed = route_pairs(queue, reviewer.routing)
        routed.attrs.update(queue.attrs)
        decided = reviewer.review(routed, store, shown=shown, iteration=iteration)
        decided.attrs["queue"] = routed
        return decided
    decided = review_with(reviewer, queue, store, shown=shown, iteration=iteration)
    now = store.effective(before_iteration=iteration + 1)  # a resumed run sees what this round decided, not later rounds
    return now[(now["reviewer"] == reviewer.name) & now["pair_id"].isin(set(queue["pair_id"]))].reset_index(drop=True)


def run_stage1(data: Stage1Data, store: ReviewStore, reviewer: Any, cfg: Stage1Config = Stage1Config(), *,
               output_dir: str | Path, cache: Any = None, progress: bool = True) -> Stage1Result:
    """The whole loop, unattended, with a non-human ``reviewer`` (`OracleReviewer` or `JudgeReviewer`), or a
    `workbench.curation.routing.RoutedReview` that sends each queued pair to people, the judge or both.

    Returns the per-iteration history (gold / test accuracy, pairs added, flips found, and with a known
    truth: correct flips and the label error rate of the training set), the best RM and the labelled pool.
    """
    from tqdm.auto import tqdm

    output_dir = Path(output_dir)
    queues: dict[int, pd.DataFrame] = {}
    history = []
    index = NeighborIndex(data.pool_emb, RetrievalConfig(k_max=cfg.k_max, index=cfg.index))
    seed = seed_queue(data, store, cfg)
    decided0 = _review(reviewer, seed, store, shown=seed.set_index("pair_id")[["pulled_by"]], iteration=0)
    queues[0] = seed = decided0.attrs.pop("queue", seed)
    history.append(_iteration_row(0, seed.iloc[:0], None, float("nan"), seed, decided0,
                                  labelled_pool(data, store, before_iteration=1)))
    best_dir, best_acc = None, -1.0
    for it in tqdm(range(1, cfg.iterations + 2), desc="stage 1", unit="round", disable=not progress):
        final = it == cfg.iterations + 1
        train = training_set(labelled_pool(data, store, before_iteration=it))
        if train.empty:
            raise ValueError(f"round {it}: no labelled pairs to train on (the seed round labelled none; "
                             "check the reviewer and seed_size).")
        rm, result = train_iteration_rm(data, train, cfg, output_dir / f"iter_{it}", cache=cache)
        test_acc = _accuracy(rm, data.test)
        if final:
            gold_scores, queue, decided = score_frame(rm, data.gold), seed.iloc[:0], pd.DataFrame(columns=["decision"])
        else:
            queue, gold_scores = retrieval_queue(data, store, rm, cfg, it, index=index)
            shown_cols = [c for c in ("score_chosen", "score_rejected", "margin", "p", "pulled_by", "puller_p",
                                      "similarity", "pullers") if c in queue.columns]
            decided = _review(reviewer, queue, store, shown=queue.set_index("pair_id")[shown_cols], iteration=it)
            queues[it] = queue = decided.attrs.pop("queue", queue)
        row = _iteration_row(it, train, gold_scores, test_acc, queue, decided,
                             labelled_pool(data, store, before_iteration=it + 1))
        row["final"] = final
        row["model_dir"] = str(result.model_dir)
        history.append(row)
        if row["gold_accuracy"] > best_acc:
            best_acc, best_dir = row["gold_accuracy"], result.model_dir
    frame = pd.DataFrame(history)
    frame["final"] = frame["final"].fillna(False).astype(bool)
    frame["pairs_added"] = frame["labelled"]
    # The loop's view of the log: rounds 0..iterations. Later events (a second reviewer checking agreement,
    # a person revisiting) never change what a resumed run recomputes.
    labelled = labelled_pool(data, store, before_iteration=cfg.iterations + 1)
    return Stage1Result(history=frame, best_model_dir=Path(best_dir), labelled=labelled, queues=queues)


def next_queue(data: Stage1Data, store: ReviewStore, cfg: Stage1Config, *, output_dir: str | Path,
               cache: Any = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The queue a person reviews next, for interactive use: the seed until ``seed_size`` pairs are
    labelled, then one round of train -> retrieve on everything labelled so far. Returns (queue, info)."""
    labelled = labelled_pool(data, store)
    if len(labelled) < min(cfg.seed_size, len(data.pool)):
        queue = seed_queue(data, store, cfg)
        return queue, {"round": 0, "kind": "seed", "labelled_so_far": len(labelled)}
    done_rounds = store.events()["iteration"].dropna()
    it = int(done_rounds.max()) + 1 if len(done_rounds) else 1
    train = training_set(labelled)
    rm, result = train_iteration_rm(data, train, cfg, Path(output_dir) / f"iter_{it}", cache=cache)
    queue, gold_scores = retrieval_queue(data, store, rm, cfg, it)
    return queue, {"round": it, "kind": "retrieval", "labelled_so_far": len(labelled), "train_pairs": len(train),
                   "gold_accuracy": float((gold_scores["margin"] > 0).mean()), "model_dir": str(result.model_dir)}


def stage1_metrics(result: Stage1Result, store: ReviewStore, pool: PairFrame, cfg: Stage1Config, *,
                   reviewer: str) -> dict[str, Any]:
    """Stage 1 at a glance: rounds, labels, flips and drops, first vs final RM on gold and test, and, against a known
    truth (``label_is_true``), flip precision, the share of queued noise found and the final training set's error."""
    h = result.history.set_index("iteration")
    final = h[h["final"]].iloc[0]
    out: dict[str, Any] = {
        "rounds": int(cfg.iterations), "reviewer": reviewer, "pairs_labelled": int(h["labelled"].sum()),
        "flips_found": int(h["flips_found"].sum()), "drops": int(h["drops"].sum()),
        "first_rm_gold_accuracy": float(h.loc[1, "gold_accuracy"]), "final_rm_gold_accuracy": float(final["gold_accuracy"]),
        "first_rm_test_accuracy": float(h.loc[1, "test_accuracy"]), "final_rm_test_accuracy": float(final["test_accuracy"]),
        "review_events": len(store.events())}
    if "flips_correct" in h:
        out["flip_precision"] = float(h["flips_correct"].sum() / max(h["flips_found"].sum(), 1))
        out["noise_found_share"] = float(h["flips_correct"].sum() / max(h["noisy_in_queue"].sum(), 1))
        out["train_label_error_rate_final"] = float(final["train_label_error_rate"])
        out["pool_noise_rate"] = float(pool["noise_injected"].mean())
    return out


def simulated_pool(pool: PairFrame, sim: SimulationConfig, *, seed: int) -> PairFrame:
    """The pool with ``sim.noise_rate`` of its labels flipped (recorded per pair), for a run against a known truth."""
    if sim.noise_rate > 0:
        return inject_label_noise(pool, sim.noise_rate, seed=seed)
    return pool.assign(label_is_true=True, noise_injected=False)


def labelled_from_log(pool: PairFrame, store: ReviewStore) -> PairFrame:
    """The pool pairs with a label in the review log (every reviewer, every round), labels applied: what people
    reviewing by hand (notebook 04b) hand to Stage 2."""
    labels = store.labels()
    return apply_labels(pool[pool["pair_id"].isin(set(labels["pair_id"]))], labels)
