"""Stage 1, step 3: who labels retrieved pairs, and the durable review log they all write to.

`ReviewStore` is one SQLite file in the run (WAL, synchronous=FULL): an append-only log of decisions
``keep | flip | drop | skip`` with reviewer, note, time and what the reviewer was shown (scores,
tags, which gold error pulled the pair). Undo is a new ``undo`` event that cancels an earlier one, so
nothing is ever deleted; the current label of a pair is derived from the log. Each decision is its own
committed transaction, so an acknowledged click survives a crash, and several reviewers may write from
separate processes at once.

Three kinds of reviewer write here: a person (`workbench.curation.review_ui`), the LLM judge (`JudgeReviewer`,
labels are *silver*, as in the paper) and, for experiments and unattended runs, `OracleReviewer`, which
answers from known true labels with a set error rate and is marked ``oracle`` (simulated) in every event.
Human and oracle labels are *gold* tier.

Also here: agreement between reviewers (Cohen's and Fleiss' kappa, disagreements), people vs the judge
per task category, and export of the reviewed pairs back into the pair schema with provenance.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.curation.retrieval import NeighborIndex
from workbench.data.pairs import now_iso
from workbench.data.schema import PairFrame
from workbench.data.splits import set_label_state
from workbench.llm.judge import FAILED, judge_pairs
from workbench.runs.stores import connect_sqlite

DECISIONS = ("keep", "flip", "drop", "skip")
REVIEWER_KINDS = {"human": "gold", "oracle": "gold", "llm": "silver"}  # kind -> tier of its labels
LABEL_STATE_OF = {"keep": "verified", "flip": "flipped", "drop": "dropped"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id   TEXT NOT NULL,
    reviewer  TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('human', 'oracle', 'llm')),
    tier      TEXT NOT NULL CHECK (tier IN ('gold', 'silver')),
    decision  TEXT NOT NULL CHECK (decision IN ('keep', 'flip', 'drop', 'skip', 'undo')),
    undoes    INTEGER REFERENCES events(event_id),
    note      TEXT NOT NULL DEFAULT '',
    at        TEXT NOT NULL,
    iteration INTEGER,
    shown     TEXT NOT NULL DEFAULT '{}',
    route     TEXT NOT NULL DEFAULT '',
    origin    TEXT
);
CREATE INDEX IF NOT EXISTS events_pair ON events(pair_id);
CREATE INDEX IF NOT EXISTS events_reviewer ON events(reviewer);
"""
# Columns added after the first logs were written: an older log gets them (empty) when it is opened.
_ADDED_COLUMNS = {"route": "TEXT NOT NULL DEFAULT ''", "origin": "TEXT"}


@dataclass(frozen=True)
class Decision:
    """One reviewer's answer for one pair, before it is written."""

    pair_id: str
    decision: str
    note: str = ""
    shown: dict[str, Any] | None = None
    route: str = ""  # who the routing sent the pair to (people | llm | both); empty when nothing routed it
    origin: str | None = None  # where a decision made outside came from (a Label Studio annotation's key)


class ReviewStore:
    """The append-only review log of a run (``<run>/review.sqlite``).

    Example::

        store = ReviewStore(run.file("review.sqlite"))
        store.record("3f2a9c...", "flip", reviewer="ana", note="rejected is correct")
        store.undo("ana")               # cancels ana's latest decision, as a new event
        store.labels()                  # current label per pair, derived from the log
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._db = connect_sqlite(self.path)
        with self._db:
            self._db.executescript(_SCHEMA)
            have = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
            for name, kind in _ADDED_COLUMNS.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE events ADD COLUMN {name} {kind}")
            self._db.execute("CREATE INDEX IF NOT EXISTS events_origin ON events(origin)")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @staticmethod
    def _check(reviewer: str, kind: str, decision: str) -> None:
        if not reviewer or not reviewer.strip():
            raise ValueError("reviewer name is empty; pass reviewer='your name'.")
        if kind not in REVIEWER_KINDS:
            raise ValueError(f"Unknown reviewer kind {kind!r}; choose one of {list(REVIEWER_KINDS)}.")
        if decision not in DECISIONS:
            raise ValueError(f"Unknown decision {decision!r}; choose one of {list(DECISIONS)} (undo: use .undo()).")

    def record_many(self, decisions: Iterable[Decision], *, reviewer: str, kind: str = "human",
                    iteration: int | None = None) -> list[int]:
        """Append decisions in one transaction; returns their event ids once committed (durable)."""
        decisions = list(decisions)
        for d in decisions:
            self._check(reviewer, kind, d.decision)
        with self._db:  # commits (fsync under synchronous=FULL) before returning
            return [self._insert(d, reviewer, kind, iteration) for d in decisions]

    def _insert(self, d: Decision, reviewer: str, kind: str, iteration: int | None) -> int:
        cur = self._db.execute(
            "INSERT INTO events (pair_id, reviewer, kind, tier, decision, undoes, note, at, iteration, shown, route, origin) "
            "VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
            (d.pair_id, reviewer, kind, REVIEWER_KINDS[kind], d.decision, d.note, now_iso(), iteration,
             json.dumps(d.shown or {}, ensure_ascii=False, default=_json_default), d.route, d.origin))
        return int(cur.lastrowid)

    def replace_external(self, cancel: Sequence[int], decisions: Sequence[tuple[Decision, str, int | None]], *,
                         kind: str = "human") -> list[int]:
        """Undo the events ``cancel`` and append ``decisions`` ((decision, reviewer, iteration) each) in one transaction.

        What an import from an annotation tool writes: an annotation edited there becomes an undo of its earlier
        decision plus the new one, both or neither (a crash in between leaves the log as it was).
        """
        for d, reviewer, _ in decisions:
            self._check(reviewer, kind, d.decision)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for event_id in cancel:
                row = self._db.execute("SELECT pair_id, reviewer, kind, tier, route, origin FROM events WHERE event_id = ?",
                                       (int(event_id),)).fetchone()
                if row is None:
                    raise ValueError(f"no event {event_id} in {self.path} to undo.")
                self._db.execute("INSERT INTO events (pair_id, reviewer, kind, tier, decision, undoes, note, at, route, "
                                 "origin) VALUES (?, ?, ?, ?, 'undo', ?, '', ?, ?, ?)",
                                 (row[0], row[1], row[2], row[3], int(event_id), now_iso(), row[4], row[5]))
            return [self._insert(d, reviewer, kind, iteration) for d, reviewer, iteration in decisions]

    def record(self, pair_id: str, decision: str, *, reviewer: str, kind: str = "human", note: str = "",
               shown: dict[str, Any] | None = None, iteration: int | None = None) -> int:
        """Append one decision; returns its event id after the commit."""
        return self.record_many([Decision(pair_id, decision, note, shown)], reviewer=reviewer, kind=kind,
                                iteration=iteration)[0]

    def undo(self, reviewer: str, pair_id: str | None = None) -> int | None:
        """Cancel ``reviewer``'s latest still-effective decision (on ``pair_id`` if given) with an undo event.

        Returns the undo event's id, or None when there is nothing left to undo. Runs in an immediate
        transaction so two undos from two processes cannot cancel the same event.
        """
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            where, args = "e.reviewer = ? AND e.decision != 'undo'", [reviewer]
            if pair_id is not None:
                where += " AND e.pair_id = ?"
                args.append(pair_id)
            row = self._db.execute(
                f"SELECT e.event_id, e.pair_id, e.kind, e.tier FROM events e WHERE {where} AND NOT EXISTS "
                "(SELECT 1 FROM events u WHERE u.undoes = e.event_id) ORDER BY e.event_id DESC LIMIT 1", args).fetchone()
            if row is None:
                return None
            cur = self._db.execute(
                "INSERT INTO events (pair_id, reviewer, kind, tier, decision, undoes, note, at, route) "
                "VALUES (?, ?, ?, ?, 'undo', ?, '', ?, (SELECT route FROM events WHERE event_id = ?))",
                (row[1], reviewer, row[2], row[3], row[0], now_iso(), row[0]))
            return int(cur.lastrowid)

    def events(self) -> pd.DataFrame:
        """The whole log, oldest first (``shown`` parsed back into dicts)."""
        frame = pd.read_sql_query("SELECT * FROM events ORDER BY event_id", self._db)
        frame["shown"] = frame["shown"].map(json.loads)
        return frame

    def effective(self, *, before_iteration: int | None = None) -> pd.DataFrame:
        """Each reviewer's current decision per pair: the latest event not cancelled by an undo.

        ``before_iteration`` keeps only decisions made in earlier Stage-1 rounds (events without a round
        count as earlier), so a resumed loop rebuilds exactly the training set a round saw.
        """
        ev = self.events()
        cancelled = set(ev["undoes"].dropna().astype(int))
        live = ev[(ev["decision"] != "undo") & ~ev["event_id"].isin(cancelled)]
        if before_iteration is not None:
            live = live[live["iteration"].isna() | (live["iteration"] < before_iteration)]
        return live.sort_values("event_id").drop_duplicates(["pair_id", "reviewer"], keep="last").reset_index(drop=True)

    def reviewed_ids(self, reviewer: str) -> set[str]:
        """Pairs ``reviewer`` has a current decision on (skips included): what a resumed session hides."""
        eff = self.effective()
        return set(eff.loc[eff["reviewer"] == reviewer, "pair_id"])

    def labels(self, *, before_iteration: int | None = None) -> pd.DataFrame:
        """Current label per reviewed pair, derived from the log.

        Gold-tier decisions (people, oracle) override silver (LLM); among the deciding tier the majority
        wins. A tie among people goes to the LLM judge's answer when it is one of the tied ones (the ``both``
        route: the judge decides where people disagree), else to the most recent decision. Skips are not labels.
        Columns: ``pair_id``, ``decision``, ``tier``, ``reviewers``, ``n_votes``, ``unanimous``, ``event_id`` (the
        deciding event), ``note``, ``shown``, ``kinds``, ``route`` (of the deciding event).
        """
        eff = self.effective(before_iteration=before_iteration)
        eff = eff[eff["decision"] != "skip"]
        columns = ["pair_id", "decision", "tier", "reviewers", "kinds", "n_votes", "unanimous", "event_id", "note", "shown",
                   "route"]
        if eff.empty:
            return pd.DataFrame(columns=columns)
        eff = eff.assign(tier_rank=eff["tier"].map({"gold": 0, "silver": 1}))
        top = eff.groupby("pair_id")["tier_rank"].transform("min")
        deciding = eff[eff["tier_rank"] == top]
        judge_says = eff[eff["kind"] == "llm"].sort_values("event_id").groupby("pair_id")["decision"].last()
        rows = []
        for pid, group in deciding.groupby("pair_id", sort=False):
            counts = group["decision"].value_counts()
            leaders = set(counts[counts == counts.max()].index)
            if len(leaders) > 1 and judge_says.get(pid) in leaders:
                leaders = {judge_says[pid]}
            last = group[group["decision"].isin(leaders)].sort_values("event_id").iloc[-1]
            rows.append({"pair_id": pid, "decision": last["decision"], "tier": last["tier"],
                         "reviewers": ",".join(sorted(group["reviewer"])), "kinds": ",".join(sorted(set(group["kind"]))),
                         "n_votes": len(group), "unanimous": len(counts) == 1, "event_id": int(last["event_id"]),
                         "note": " | ".join(n for n in group["note"] if n), "shown": last["shown"], "route": last["route"]})
        return pd.DataFrame(rows, columns=columns)

    def progress(self, reviewer: str | None = None) -> dict[str, int]:
        """Counts of current decisions (for one reviewer or all): what the UI's progress line shows."""
        eff = self.effective()
        if reviewer is not None:
            eff = eff[eff["reviewer"] == reviewer]
        return {d: int((eff["decision"] == d).sum()) for d in DECISIONS}


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


# ---------------------------------------------------------------- reviewers that are not people


def _uniform(seed: int, reviewer: str, pair_id: str) -> float:
    """A per-pair random number that does not depend on order: a resumed oracle answers the same."""
    digest = hashlib.sha256(f"{seed}:{reviewer}:{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class OracleReviewer:
    """Simulated reviewer: answers from the known true label, wrong with probability ``error_rate``.

    Needs a ``label_is_true`` column (False where the stored label is the reverse of the truth; see
    `workbench.data.splits.inject_label_noise`). Every event it writes has kind ``oracle``: simulated, never a person.
    ``error_by_category`` (task category -> error rate; read from a ``task_category`` column) simulates reviewers
    whose reliability depends on the kind of task: people unsure of maths, a judge unsure of values.
    """

    name: str = "oracle"
    error_rate: float = 0.0
    seed: int = 0
    kind: str = "oracle"
    error_by_category: dict[str, float] | None = None  # categories not named here err at ``error_rate``

    def __post_init__(self) -> None:
        for what, rate in [("error_rate", self.error_rate), *(self.error_by_category or {}).items()]:
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{self.name}: the error rate of {what} must be in [0, 1], got {rate}.")

    def error_rates(self, pairs: PairFrame) -> np.ndarray:
        """Each pair's chance of a wrong answer."""
        by = self.error_by_category or {}
        if not by or "task_category" not in pairs.columns:
            return np.full(len(pairs), self.error_rate)
        return pairs["task_category"].map(lambda c: by.get(c, self.error_rate)).to_numpy(float)

    def decide(self, pairs: PairFrame) -> list[Decision]:
        if "label_is_true" not in pairs.columns:
            raise ValueError("OracleReviewer needs a 'label_is_true' column (the known truth); use a pair set whose "
                             "truth is known, or workbench.data.splits.inject_label_noise to make one.")
        out = []
        for pid, is_true, rate in zip(pairs["pair_id"], pairs["label_is_true"].astype(bool), self.error_rates(pairs)):
            wrong = _uniform(self.seed, self.name, pid) < rate
            decision = "keep" if is_true != wrong else "flip"
            out.append(Decision(pid, decision, note="simulated (oracle)" + (", erred on purpose" if wrong else "")))
        return out


def few_shot_examples(queries: PairFrame, query_emb: np.ndarray, verified: PairFrame, verified_emb: np.ndarray | None, *,
                   k: int = 8) -> dict[str, list[pd.Series]]:
    """Few-shot examples for the LLM judge: each query pair's ``k`` most similar human-verified pairs.

    The paper's judge (Stage 1 step 3, and Stage 2's unsure pairs) sees up to 8 similar pairs whose label a
    person verified, by the ``(conversation, attributes)`` embedding.
    """
    if len(verified) == 0 or len(queries) == 0:
        return {}
    _, idx = NeighborIndex(verified_emb).search(query_emb, k)
    rows = [verified.iloc[j] for j in range(len(verified))]
    return {pid: [rows[j] for j in row if j >= 0] for pid, row in zip(queries["pair_id"], idx)}



@dataclass
class JudgeReviewer:
    """The LLM judge (`workbench.llm.judge.LLMJudge`) as a reviewer: silver labels; ties become skips.

    A *failed* judgement (no valid answer) is no decision at all: the pair gets none, so it stays open for
    people (Stage 1) or is decided without the judge (Stage 2), and its id is kept in ``failed_ids``.
    ``retry_failed=True`` asks the judge again about pairs whose stored judgement failed.
    """

    judge: Any
    results: Any  # a `workbench.data.files.ResultStore`: judge answers are cached and resumable
    name: str = "llm-judge"
    kind: str = "llm"
    attributes: dict[str, dict] | None = None  # pair_id -> the pair's tags (category, guideline, ...)
    examples: dict[str, list] | None = None  # pair_id -> similar human-labelled pairs shown as few-shot examples
    # Or computed per call: the ``max_examples`` human-verified pairs (``verified()``, read when asked, so Stage 1's
    # growing set counts) most similar to each asked pair by ``embed`` (the (conversation, attributes) embedding).
    embed: Callable[[PairFrame], np.ndarray] | None = None
    verified: Callable[[], PairFrame] | None = None
    max_examples: int = 8
    retry_failed: bool = False
    failed_ids: set[str] = field(default_factory=set)

    def examples_for(self, pairs: PairFrame) -> dict[str, list] | None:
        """The few-shot examples of each pair: the fixed ``examples``, else the nearest verified pairs."""
        if self.examples is not None or self.embed is None or self.verified is None:
            return self.examples
        verified = self.verified()
        return few_shot_examples(pairs, self.embed(pairs), verified, self.embed(verified) if len(verified) else None,
                                 k=self.max_examples)

    def decide(self, pairs: PairFrame) -> list[Decision]:
        verdicts = judge_pairs(pairs, self.judge, store=self.results, attributes=self.attributes,
                               examples=self.examples_for(pairs), retry_failed=self.retry_failed, progress=False)
        failed = verdicts["judge_label"] == FAILED
        self.failed_ids = (self.failed_ids - set(verdicts["pair_id"])) | set(verdicts.loc[failed, "pair_id"])
        to_decision = {"chosen": "keep", "rejected": "flip"}
        return [Decision(pid, to_decision.get(label, "skip"), note=f"judge votes {vc}:{vr}")
                for pid, label, vc, vr in zip(verdicts["pair_id"], verdicts["judge_label"], verdicts["votes_chosen"],
                                              verdicts["votes_rejected"]) if label != FAILED]


def review_with(reviewer: Any, pairs: PairFrame, store: ReviewStore, *, shown: pd.DataFrame | None = None,
                iteration: int | None = None, chunk_size: int = 64) -> pd.DataFrame:
    """Let a non-human reviewer label ``pairs`` into ``store``; pairs it already decided are not asked again.

    ``shown`` (indexed by pair_id) is what the reviewer was given besides the texts (scores, provenance)
    and is stored with each decision. A ``route`` column of ``pairs`` (`workbench.curation.routing`) is recorded
    with each decision. Commits per chunk, so an interrupted run resumes where it stopped.
    Returns the reviewer's current decisions on ``pairs``.
    """
    done = store.reviewed_ids(reviewer.name)
    todo = pairs[~pairs["pair_id"].isin(done)]
    shown_by_id = {} if shown is None else shown.to_dict("index")
    route_of = dict(zip(pairs["pair_id"], pairs["route"])) if "route" in pairs.columns else {}
    for start in range(0, len(todo), chunk_size):
        chunk = todo.iloc[start:start + chunk_size]
        decisions = [Decision(d.pair_id, d.decision, d.note, shown_by_id.get(d.pair_id), route=route_of.get(d.pair_id, ""))
                     for d in reviewer.decide(chunk)]
        store.record_many(decisions, reviewer=reviewer.name, kind=reviewer.kind, iteration=iteration)
    eff = store.effective()
    return eff[(eff["reviewer"] == reviewer.name) & eff["pair_id"].isin(set(pairs["pair_id"]))].reset_index(drop=True)


# ---------------------------------------------------------------- agreement


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from an (items x categories) matrix of rating counts, same number of raters per item.

    Example: the 10-item, 14-rater table of Fleiss (1971) (Wikipedia's worked example) gives 0.210.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n_items, _ = counts.shape
    raters = counts.sum(axis=1)
    if n_items == 0 or not np.allclose(raters, raters[0]) or raters[0] < 2:
        raise ValueError("fleiss_kappa needs >= 1 item and the same number (>= 2) of raters per item.")
    n = raters[0]
    p_j = counts.sum(axis=0) / (n_items * n)
    p_i = ((counts ** 2).sum(axis=1) - n) / (n * (n - 1))
    p_bar, p_e = p_i.mean(), (p_j ** 2).sum()
    return float("nan") if np.isclose(p_e, 1.0) else float((p_bar - p_e) / (1 - p_e))


def reviewer_agreement(effective: pd.DataFrame, reviewers: Sequence[str] | None = None) -> dict[str, Any]:
    """Agreement between reviewers on the pairs they all labelled (skips excluded).

    Returns ``{"pairwise": DataFrame(reviewer_a, reviewer_b, n, agreement, cohen_kappa), "fleiss_kappa":
    float | None (pairs rated by every reviewer), "n_common": int, "disagreements": DataFrame}`` where
    disagreements has one row per pair with differing decisions and a column per reviewer.
    """
    from sklearn.metrics import cohen_kappa_score

    eff = effective[effective["decision"] != "skip"]
    table = eff.pivot_table(index="pair_id", columns="reviewer", values="decision", aggfunc="last")
    names = list(reviewers) if reviewers is not None else sorted(table.columns)
    table = table.reindex(columns=names)
    pairwise = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = table[[a, b]].dropna()
            if len(both) == 0:
                continue
            same = float((both[a] == both[b]).mean())
            kappa = 1.0 if same == 1.0 else float(cohen_kappa_score(both[a], both[b], labels=list(LABEL_STATE_OF)))
            pairwise.append({"reviewer_a": a, "reviewer_b": b, "n": len(both), "agreement": same, "cohen_kappa": kappa})
    complete = table.dropna()
    fleiss = None
    if len(names) >= 2 and len(complete):
        counts = np.stack([(complete == d).sum(axis=1).to_numpy() for d in LABEL_STATE_OF], axis=1)
        fleiss = fleiss_kappa(counts)
    rated = table.dropna(thresh=2)
    disagreements = rated[rated.nunique(axis=1) > 1].reset_index()
    return {"pairwise": pd.DataFrame(pairwise, columns=["reviewer_a", "reviewer_b", "n", "agreement", "cohen_kappa"]),
            "fleiss_kappa": fleiss, "n_common": len(complete), "disagreements": disagreements}


def people_vs_judge(effective: pd.DataFrame, categories: pd.Series | None = None) -> pd.DataFrame:
    """Per task category: how often the LLM judge agrees with the people's (gold-tier) decision.

    ``categories`` maps pair_id -> task category (e.g. ``tags.set_index("pair_id")["task_category"]``).
    Pairs without both a person/oracle decision and a judge decision are left out.
    """
    categories = categories if categories is not None else pd.Series(dtype=str)
    eff = effective[effective["decision"] != "skip"]
    people = eff[eff["tier"] == "gold"].groupby("pair_id")["decision"].agg(lambda s: s.mode().iloc[-1])
    judge = eff[eff["kind"] == "llm"].groupby("pair_id")["decision"].last()
    both = pd.DataFrame({"people": people, "judge": judge}).dropna()
    columns = ["task_category", "n", "agreement", "cohen_kappa"]
    if both.empty:
        return pd.DataFrame(columns=columns)
    from sklearn.metrics import cohen_kappa_score

    both["task_category"] = both.index.map(categories).fillna("untagged")
    rows = []
    for cat, g in [("all", both), *both.groupby("task_category")]:
        same = float((g["people"] == g["judge"]).mean())
        kappa = 1.0 if same == 1.0 else float(cohen_kappa_score(g["people"], g["judge"], labels=list(LABEL_STATE_OF)))
        rows.append({"task_category": cat, "n": len(g), "agreement": same, "cohen_kappa": kappa})
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------- export


def apply_labels(pairs: PairFrame, labels: pd.DataFrame) -> PairFrame:
    """``pairs`` with review decisions applied (keep -> verified, flip -> swapped + flipped, drop -> dropped)
    and provenance columns: ``review_decision``, ``review_tier``, ``review_reviewers``, ``review_kinds``,
    ``review_event``, ``review_note``, ``pulled_by``, ``similarity``. Unreviewed pairs are unchanged."""
    out = pairs.copy()
    lab = labels.set_index("pair_id")
    known = lab.index.intersection(out["pair_id"])
    decided = lab.loc[known]
    for (decision, reviewers), group in decided.groupby(["decision", "reviewers"]):
        out = set_label_state(out, list(group.index), LABEL_STATE_OF[decision], by=f"review:{reviewers}")
    if "label_is_true" in out.columns:  # a flip of a known-truth pair turns its truth flag around
        flipped = out["pair_id"].isin(decided.index[decided["decision"] == "flip"])
        out.loc[flipped, "label_is_true"] = ~out.loc[flipped, "label_is_true"].astype(bool)
    ids = out["pair_id"]
    shown = ids.map(lab["shown"]) if len(lab) else pd.Series([None] * len(out), index=out.index)
    out["review_decision"] = ids.map(lab["decision"]).fillna("")
    out["review_tier"] = ids.map(lab["tier"]).fillna("")
    out["review_reviewers"] = ids.map(lab["reviewers"]).fillna("")
    out["review_kinds"] = ids.map(lab["kinds"]).fillna("")
    out["review_event"] = ids.map(lab["event_id"]).fillna(-1).astype(int)
    out["review_note"] = ids.map(lab["note"]).fillna("")
    out["pulled_by"] = [s.get("pulled_by", "") if isinstance(s, dict) else "" for s in shown]
    out["similarity"] = [float(s.get("similarity", np.nan)) if isinstance(s, dict) else np.nan for s in shown]
    return out


def export_reviewed(pairs: PairFrame, store: ReviewStore, *, tiers: Sequence[str] = ("gold", "silver")) -> PairFrame:
    """The reviewed pairs (dropped ones included, flagged) in the pair schema, with provenance."""
    labels = store.labels()
    labels = labels[labels["tier"].isin(tiers)]
    reviewed = pairs[pairs["pair_id"].isin(set(labels["pair_id"]))]
    return apply_labels(reviewed, labels).reset_index(drop=True)
