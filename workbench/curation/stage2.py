"""Stage 2: automatic dual-RM consistency curation of the unverified pool (paper, section 3.3).

1. *Consistency with the best Stage-1 RM*: pool pairs it agrees with (``p > 0.5``) are confident; the
   rest are labelled by the LLM judge (silver, no people), when a judge is given.
2. *Consistency with a gold RM*, trained on every human-verified pair: a pair is **kept** when its
   original label agrees with the gold RM **and** with either the judge or the best Stage-1 RM.
3. *Recycling* (the paper's 40M variant): discarded pairs may be flipped and added.

Agreement is ``p > p_threshold + margin_band`` and disagreement ``p < p_threshold - margin_band``
(``p = sigmoid(r_chosen - r_rejected)`` under the pair's *current* label); inside the band a model
is unsure and counts as neither. Pairs a person (or the simulated oracle) already reviewed in Stage 1
keep that decision: people outrank the rule. Every label change carries its provenance (which rule,
which models, which judge) in ``stage2_*`` columns and in ``label_by``.

The rule itself (`consistency_decisions`) is a pure function of scores, tested on hand-computed
values; `run_stage2` wires it to the models. Not here: training the models (`workbench.models.training`),
the judge (`workbench.llm.judge`), plots (`workbench.curation.plots`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.curation.stage1 import human_verified, score_frame
from workbench.data.schema import PairFrame
from workbench.data.splits import set_label_state
from workbench.llm.judge import FAILED
from workbench.models import scoring, training

RECYCLE_MODES = ("none", "all", "consistent")
DECISION_STATE = {"keep": "verified", "flip": "flipped", "drop": "dropped"}
PROVENANCE_COLUMNS = ("stage2_decision", "stage2_rule", "stage2_by", "p_stage1", "p_gold", "judge_label")


@dataclass(frozen=True)
class Stage2Config:
    """The filter's thresholds (a notebook's parameters map onto it)."""

    p_threshold: float = 0.5  # the paper's: a model agrees with the label when p > 0.5
    margin_band: float = 0.0  # |p - p_threshold| <= band: the model is unsure (neither agrees nor disagrees)
    recycle: str = "none"  # none | all (flip every discarded pair, the paper's 40M variant) | consistent (flip
    #                        only discarded pairs where the gold RM and the judge or Stage-1 RM agree on the reverse)
    judge_confident: bool = False  # also ask the judge about pairs the Stage-1 RM is confident on (the paper does not)
    gold_holdout: float = 0.2  # share of the gold split kept out of the gold RM's training to pick its best epoch
    head_epochs: int = 30  # the gold RM is a fast head, like the Stage-1 RMs
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.p_threshold < 1.0:
            raise ValueError(f"p_threshold must be in (0, 1), got {self.p_threshold}.")
        if not 0.0 <= self.margin_band < min(self.p_threshold, 1 - self.p_threshold):
            raise ValueError(f"margin_band must be in [0, {min(self.p_threshold, 1 - self.p_threshold)}), "
                             f"got {self.margin_band}.")
        if self.recycle not in RECYCLE_MODES:
            raise ValueError(f"Unknown recycle {self.recycle!r}; choose one of {list(RECYCLE_MODES)}.")
        if not 0.0 <= self.gold_holdout < 1.0:
            raise ValueError(f"gold_holdout must be in [0, 1), got {self.gold_holdout}.")


def _vote(p: np.ndarray, cfg: Stage2Config) -> np.ndarray:
    """+1 agrees with the current label, -1 disagrees, 0 unsure (inside the band) or no score (NaN)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.zeros(len(p), dtype=int)
    out[p > cfg.p_threshold + cfg.margin_band] = 1
    out[p < cfg.p_threshold - cfg.margin_band] = -1
    return out


def _judge_vote(labels: Any, n: int) -> np.ndarray:
    if labels is None:
        return np.zeros(n, dtype=int)
    m = {"chosen": 1, "rejected": -1}
    return np.array([m.get(x, 0) if isinstance(x, str) else 0 for x in labels], dtype=int)


def consistency_decisions(pair_ids: Any, p_stage1: Any, p_gold: Any, judge_label: Any = None,
                          cfg: Stage2Config = Stage2Config()) -> pd.DataFrame:
    """The keep / flip / drop rule on scores; one row per pair, in the given order.

    Args:
        pair_ids: ids of the unverified pairs.
        p_stage1: ``p`` under the best Stage-1 RM (current label).
        p_gold: ``p`` under the gold RM.
        judge_label: ``"chosen"`` (judge agrees) / ``"rejected"`` / ``"tie"`` / ``"failed"`` / None per pair,
            or None when no judge ran; only chosen/rejected are votes. Only pairs the Stage-1 RM is not confident on are judged (unless
            ``cfg.judge_confident``): a judge label on a confident pair is ignored.

    Returns columns ``pair_id, p_stage1, p_gold, judge_label, confident, stage1_vote, gold_vote,
    judge_vote, stage2_decision, stage2_rule``. Example, defaults: p_stage1=0.9, p_gold=0.8 -> keep
    ("gold RM + Stage-1 RM agree"); p_stage1=0.3, p_gold=0.8, judge "chosen" -> keep ("gold RM + judge
    agree"); p_stage1=0.9, p_gold=0.3 -> drop ("gold RM disagrees").
    """
    ids = list(pair_ids)
    n = len(ids)
    p1, pg = np.asarray(p_stage1, dtype=np.float64), np.asarray(p_gold, dtype=np.float64)
    if not (len(p1) == len(pg) == n) or (judge_label is not None and len(judge_label) != n):
        raise ValueError(f"pair_ids ({n}), p_stage1 ({len(p1)}), p_gold ({len(pg)}) and judge_label "
                         f"({'-' if judge_label is None else len(judge_label)}) must have the same length.")
    s1, g = _vote(p1, cfg), _vote(pg, cfg)
    confident = s1 == 1
    j = _judge_vote(judge_label, n)
    if not cfg.judge_confident:
        j = np.where(confident, 0, j)
    second = (j == 1) | (s1 == 1)
    keep = (g == 1) & second
    reverse = (g == -1) & ((j == -1) | (s1 == -1))
    decision = np.where(keep, "keep", "drop").astype(object)
    if cfg.recycle == "all":
        decision[~keep] = "flip"
    elif cfg.recycle == "consistent":
        decision[reverse] = "flip"
    rule = np.empty(n, dtype=object)
    rule[keep & (s1 == 1)] = "gold RM + Stage-1 RM agree"
    rule[keep & (s1 != 1)] = "gold RM + judge agree"
    rule[~keep & (g == -1)] = "gold RM disagrees"
    rule[~keep & (g == 0)] = "gold RM unsure"
    rule[~keep & (g == 1)] = "neither judge nor Stage-1 RM agrees"
    flipped = decision == "flip"
    rule[flipped & reverse] = [f"recycled: {r}; judge or Stage-1 RM prefers the rejected" for r in rule[flipped & reverse]]
    rule[flipped & ~reverse] = [f"recycled: {r}" for r in rule[flipped & ~reverse]]
    return pd.DataFrame({"pair_id": ids, "p_stage1": p1, "p_gold": pg,
                         "judge_label": list(judge_label) if judge_label is not None else [None] * n,
                         "confident": confident, "stage1_vote": s1, "gold_vote": g, "judge_vote": j,
                         "stage2_decision": decision.astype(str), "stage2_rule": rule.astype(str)})


def curate(pool: PairFrame, decisions: pd.DataFrame, *, human_labelled: PairFrame | None = None,
           by: str = "stage2") -> PairFrame:
    """The pool with Stage-2 decisions applied, every pair kept (dropped ones flagged), with provenance.

    Pairs in ``human_labelled`` (Stage-1 review output, `workbench.curation.review.apply_labels` columns) keep
    their reviewed label; their ``stage2_decision`` is the review decision and ``stage2_rule`` says
    ``"human review"``. ``by`` names the models and judge in ``label_by``/``stage2_by``.
    """
    out = pool.copy()
    for col in PROVENANCE_COLUMNS:
        out[col] = np.nan if col.startswith("p_") else ""
    human_ids: set[str] = set()
    if human_labelled is not None and len(human_labelled):
        reviewed = human_labelled[human_labelled["review_decision"].isin(list(DECISION_STATE))]
        human_ids = set(reviewed["pair_id"])
        keep_cols = [c for c in reviewed.columns if c not in PROVENANCE_COLUMNS]
        out = pd.concat([out[~out["pair_id"].isin(human_ids)], reviewed[keep_cols]], ignore_index=True)
        is_h = out["pair_id"].isin(human_ids)
        out.loc[is_h, "stage2_decision"] = out.loc[is_h, "review_decision"]
        out.loc[is_h, "stage2_rule"] = "human review"
        out.loc[is_h, "stage2_by"] = "review:" + out.loc[is_h, "review_reviewers"].astype(str)
    dec = decisions[~decisions["pair_id"].isin(human_ids)].set_index("pair_id")
    unknown = set(dec.index) - set(out["pair_id"])
    if unknown:
        raise ValueError(f"{len(unknown)} decided pair_ids are not in the pool, e.g. {sorted(unknown)[:3]}.")
    for decision, state in DECISION_STATE.items():
        ids = list(dec.index[dec["stage2_decision"] == decision])
        if ids:
            out = set_label_state(out, ids, state, by=by)
    mask = out["pair_id"].isin(dec.index)
    ids = out.loc[mask, "pair_id"]
    for col in ("stage2_decision", "stage2_rule", "p_stage1", "p_gold", "judge_label"):
        out.loc[mask, col] = ids.map(dec[col]).to_numpy()
    out.loc[mask, "stage2_by"] = by
    out["judge_label"] = out["judge_label"].fillna("").astype(str)
    if "label_is_true" in out.columns:  # a Stage-2 flip of a known-truth pair turns its truth flag around
        flipped = out["pair_id"].isin(dec.index[dec["stage2_decision"] == "flip"])
        out.loc[flipped, "label_is_true"] = ~out.loc[flipped, "label_is_true"].astype(bool)
    return out.reset_index(drop=True)


def curated_training_set(curated: PairFrame) -> PairFrame:
    """What an RM learns from: kept and flipped pairs (dropped ones stay in the file, not in training)."""
    return curated[curated["stage2_decision"].isin(["keep", "flip"])].reset_index(drop=True)


def recycle_discarded(curated: PairFrame) -> PairFrame:
    """The paper's recycling: dropped Stage-2 pairs (not human-reviewed ones) flipped and added back."""
    dropped = curated[(curated["stage2_decision"] == "drop") & (curated["stage2_rule"] != "human review")]
    out = set_label_state(curated, list(dropped["pair_id"]), "flipped", by="stage2:recycled")
    is_d = out["pair_id"].isin(set(dropped["pair_id"]))
    out.loc[is_d, "stage2_decision"] = "flip"
    out.loc[is_d, "stage2_rule"] = "recycled: " + out.loc[is_d, "stage2_rule"]
    if "label_is_true" in out.columns:
        out.loc[is_d, "label_is_true"] = ~out.loc[is_d, "label_is_true"].astype(bool)
    return out


def _holdout(frame: PairFrame, share: float, seed: int) -> tuple[PairFrame, PairFrame | None]:
    if share <= 0 or len(frame) < 10:
        return frame, None
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(frame), bool)
    mask[rng.permutation(len(frame))[: max(1, int(round(share * len(frame))))]] = True
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)


def train_gold_rm(gold: PairFrame, human_labelled: PairFrame | None, cfg: Stage2Config, output_dir: str | Path, *,
                  cache: Any = None) -> tuple[Any, training.TrainResult]:
    """The gold RM: a fast head on all human-verified pairs; ``gold_holdout`` of the gold split picks its epoch."""
    held_gold, check = _holdout(gold, cfg.gold_holdout, cfg.seed)
    train = human_verified(held_gold, human_labelled)
    rm_cfg = training.RMTrainConfig(kind="embedding_head", head_epochs=cfg.head_epochs, seed=cfg.seed)
    result = training.train_reward_model(train, check, cfg=rm_cfg, output_dir=output_dir, cache=cache, progress=False)
    return scoring.load_reward_model(result.model_dir, embedding_cache=cache), result


def p_of(rm: Any, pairs: PairFrame) -> np.ndarray:
    """``sigmoid(r_chosen - r_rejected)`` per pair, under the pair's current label."""
    return score_frame(rm, pairs)["p"].to_numpy(dtype=np.float64)


def judge_labels(todo: PairFrame, p_stage1: np.ndarray, judge: Any, cfg: Stage2Config) -> list[str | None]:
    """The judge's label for each pair of ``todo`` it is asked about (those the Stage-1 RM is not confident on,
    unless ``cfg.judge_confident``): ``"chosen"`` / ``"rejected"`` / ``"tie"`` / ``"failed"`` (no valid answer:
    decided as if no judge ran); None where not asked.
    A `workbench.curation.review.JudgeReviewer` brings its own context (attributes, few-shot examples)."""
    ask = todo if cfg.judge_confident else todo[~(_vote(p_stage1, cfg) == 1)]
    if not len(ask):
        return [None] * len(todo)
    verdict = {d.pair_id: {"keep": "chosen", "flip": "rejected"}.get(d.decision, "tie") for d in judge.decide(ask)}
    # a failed judgement (no valid answer) is recorded as such and counts as no judge vote (see _judge_vote)
    verdict.update({pid: FAILED for pid in getattr(judge, "failed_ids", ()) if pid not in verdict})
    asked = set(ask["pair_id"])
    return [verdict.get(pid) if pid in asked else None for pid in todo["pair_id"]]


@dataclass
class Stage2Result:
    decisions: pd.DataFrame  # one row per unverified pool pair (not human-reviewed): scores, votes, decision, rule
    curated: PairFrame  # the whole pool, decisions applied, provenance columns
    gold_model_dir: Path


def run_stage2(pool: PairFrame, gold: PairFrame, stage1_rm: Any, cfg: Stage2Config = Stage2Config(), *,
               human_labelled: PairFrame | None = None, judge: Any = None, output_dir: str | Path,
               cache: Any = None, stage1_name: str = "stage1-best",
               embed: Callable[[PairFrame], np.ndarray] | None = None, gold_rm: Any = None,
               provenance: str = "", lap: Callable[[str], None] | None = None) -> Stage2Result:
    """Stage 2 over the unverified pool.

    Args:
        pool: the unverified pool (Stage-1's, with its labels as they came).
        gold: the human-verified gold split.
        stage1_rm: the best Stage-1 RM (`workbench.models.scoring.load_reward_model`).
        human_labelled: Stage-1's labelled pool (`workbench.curation.stage1.Stage1Result.labelled`); these pairs keep
            their reviewed labels and their gold-tier ones train the gold RM.
        judge: a reviewer with ``decide(pairs) -> [Decision]`` and a ``name`` (`workbench.curation.review.JudgeReviewer`,
            or `OracleReviewer(kind="llm")` as a *simulated* judge); None skips the judge.
        output_dir: where the gold RM is saved (``gold_rm/``).
        gold_rm: a gold RM trained elsewhere (the scale path trains one per pool); None trains it here.
        provenance: the ``stage2_by`` text; empty: the models' and the judge's names.
        lap: called with "score", "judge", "filter" as each part ends (the scale path's per-stage timings).
        embed: pairs -> ``(conversation, attributes)`` embeddings (e.g. `workbench.curation.clustering.embed_pairs` with
            the run's cache); with it, a judge that takes ``examples`` sees each pair's 8 most similar
            human-verified pairs as few-shot examples (`workbench.curation.review.few_shot_examples`).
    """
    output_dir = Path(output_dir)
    gold_dir = output_dir / "gold_rm"
    if gold_rm is None:
        gold_rm, gold_result = train_gold_rm(gold, human_labelled, cfg, gold_dir, cache=cache)
        gold_dir = gold_result.model_dir
    reviewed = set() if human_labelled is None else set(
        human_labelled.loc[human_labelled["review_decision"].isin(list(DECISION_STATE)), "pair_id"])
    todo = pool[~pool["pair_id"].isin(reviewed)].reset_index(drop=True)
    lap = lap or (lambda step: None)
    p1, pg = p_of(stage1_rm, todo), p_of(gold_rm, todo)
    lap("score")
    judge_label = None
    if judge is not None:
        if embed is not None and hasattr(judge, "verified"):  # few-shot: the nearest human-verified pairs
            verified = human_verified(gold, human_labelled)
            judge = replace(judge, embed=embed, verified=lambda: verified)
        judge_label = judge_labels(todo, p1, judge, cfg)
    lap("judge")
    decisions = consistency_decisions(todo["pair_id"], p1, pg, judge_label, cfg)
    by = provenance or f"stage2:stage1={stage1_name};gold={output_dir.name}/gold_rm"
    if judge is not None and not provenance:
        by += f";judge={judge.name}"
    curated = curate(pool, decisions, human_labelled=human_labelled, by=by)
    lap("filter")
    return Stage2Result(decisions=decisions, curated=curated, gold_model_dir=gold_dir)


def decision_counts(curated: PairFrame, by: str) -> pd.DataFrame:
    """keep / flip / drop counts per ``by`` value (e.g. ``task_category`` joined from tags, or ``source``)."""
    table = curated.groupby([by, "stage2_decision"]).size().unstack(fill_value=0)
    return table.reindex(columns=[c for c in ("keep", "flip", "drop") if c in table.columns], fill_value=0)


def truth_metrics(curated: PairFrame) -> dict[str, float]:
    """Against a known truth (``noise_injected`` = the pool label was wrong as given; ``label_is_true`` after
    curation): flip-detection precision / recall / F1, where a pair counts as *flagged* when the pipeline
    flipped or dropped it, the same for flips alone, and the accuracy of the curated training labels."""
    if "noise_injected" not in curated.columns:
        raise ValueError("truth_metrics needs a 'noise_injected' column (see workbench.data.splits.inject_label_noise).")
    noisy = curated["noise_injected"].astype(bool).to_numpy()
    dec = curated["stage2_decision"].to_numpy()
    out: dict[str, float] = {}
    for name, flagged in (("flag", np.isin(dec, ["flip", "drop"])), ("flip", dec == "flip")):
        tp = int((flagged & noisy).sum())
        prec = tp / max(int(flagged.sum()), 1)
        rec = tp / max(int(noisy.sum()), 1)
        out[f"{name}_precision"], out[f"{name}_recall"] = prec, rec
        out[f"{name}_f1"] = 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)
        out[f"{name}_count"] = int(flagged.sum())
    train = curated_training_set(curated)
    out["curated_pairs"] = len(train)
    out["curated_label_accuracy"] = float(train["label_is_true"].astype(bool).mean()) if len(train) else float("nan")
    out["pool_label_accuracy"] = float(1 - noisy.mean()) if len(noisy) else float("nan")
    return out


def with_heldout(curated_pool: PairFrame, pairs: PairFrame) -> PairFrame:
    """The run's full dataset after Stage 2: the curated pool plus the untouched gold and test splits.

    Gold and test rows get neutral provenance (no Stage-2 decision) and, where the pool carries a known
    truth, ``label_is_true=True`` / ``noise_injected=False`` (their labels are the reference).
    """
    held = pairs[pairs["split"] != "train"].copy()
    for col in curated_pool.columns:
        if col in held.columns:
            continue
        kind = curated_pool[col].dtype.kind
        if col == "label_is_true":
            held[col] = True
        elif kind == "b":
            held[col] = False
        elif kind in "fc":
            held[col] = np.nan
        elif kind in "iu":
            held[col] = -1
        else:
            held[col] = ""
    return pd.concat([curated_pool, held[curated_pool.columns.intersection(held.columns)]], ignore_index=True)


def with_categories(curated: PairFrame, tags: pd.DataFrame | None) -> PairFrame:
    """``curated`` with each pair's ``task_category`` from the tags (``untagged`` where none), for per-category views."""
    if tags is None:
        return curated
    out = curated.drop(columns=["task_category"], errors="ignore").merge(tags[["pair_id", "task_category"]],
                                                                          on="pair_id", how="left")
    out["task_category"] = out["task_category"].fillna("untagged")
    return out


def stage2_metrics(curated: PairFrame, decisions: pd.DataFrame, judge: str) -> dict[str, Any]:
    """Stage 2 at a glance: decisions, the curated training size, judge failures and, against a known truth
    (``noise_injected``), flip-detection precision / recall and the curated labels' accuracy (`truth_metrics`)."""
    counts = curated["stage2_decision"].value_counts().reindex(["keep", "flip", "drop"], fill_value=0)
    out: dict[str, Any] = {"pool_pairs": len(curated), **{f"decision_{k}": int(v) for k, v in counts.items()},
                           "judge": judge, "curated_training_pairs": len(curated_training_set(curated)),
                           "judge_failed": int((decisions["judge_label"] == FAILED).sum())}
    if "noise_injected" in curated.columns:
        out.update(truth_metrics(curated))
    return out
