"""Who reviews which pair: rules over a pair's attributes and scores send it to people, the LLM judge, or both.

The paper automates the pairs an LLM judges more reliably than people (objective maths and coding: "human
annotators may not be experts in all types of math and coding problems") and keeps people on the subjective and
the controversial ones, where preferences are least transitive. A `RoutingConfig` writes that split down as a few
rules, read top to bottom, the first that matches decides::

    controversiality == high -> people
    task_category in [reasoning_math, coding] and objectivity == objective -> llm
    rm_confidence < 0.2 -> both
    * -> people

A condition is ``field op value`` and conditions join with ``and``. Fields are the tags (``task_category``,
``objectivity``, ``controversiality``, ``source``; ops ``==``, ``!=``, ``in``, ``not in``) and the scores of a
retrieval queue (``p``, ``margin``, ``similarity``, ``puller_p`` and ``rm_confidence = |2p - 1|``, the RM's
certainty about the pair's order, 0 = a coin flip; ops ``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``). A pair with
no value for a field (untagged, or the seed round, which has no scores) never matches a condition on it.

Routes: ``people`` (human or simulated reviewers), ``llm`` (the judge's silver label is the label) and ``both``
(the judge answers first; people see its answer as a suggestion, and where people disagree it breaks the tie:
`workbench.curation.review.ReviewStore.labels`). Budgets cap a route's pairs per round; the rest of its pairs wait
(they stay unlabelled, so a later round may retrieve them again).

Not here: the reviewers themselves (`workbench.curation.review`) and the loop (`workbench.curation.stage1`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.curation.review import OracleReviewer, ReviewStore, review_with
from workbench.data.taxonomy import CONTROVERSIALITY, OBJECTIVITY, TASK_CATEGORIES

ROUTES = ("people", "llm", "both")
TAG_FIELDS: dict[str, tuple[str, ...] | None] = {  # None: any value (free text)
    "task_category": tuple(TASK_CATEGORIES), "objectivity": tuple(OBJECTIVITY),
    "controversiality": tuple(CONTROVERSIALITY), "source": None}
SCORE_FIELDS = ("rm_confidence", "p", "margin", "similarity", "puller_p")
# The paper's split: controversial or subjective pairs to people, objective maths and coding to the judge.
PAPER_RULES = ("controversiality == high -> people",
               "objectivity == subjective -> people",
               "task_category in [reasoning_math, coding] and objectivity == objective -> llm",
               "* -> people")

_RULE = re.compile(r"^(?P<cond>.*?)\s*->\s*(?P<route>\S+)\s*$")
_COND = re.compile(r"^(?P<field>[A-Za-z_]\w*)\s*(?P<op>==|!=|<=|>=|<|>|\bnot\s+in\b|\bin\b)\s*(?P<value>.+?)$")
_OPS = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


def _hint(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any  # a str, a float or a tuple of str (in / not in)

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Which rows match; a missing value (NaN, no column) never matches."""
        col = _column(frame, self.field)
        present = col.notna().to_numpy()
        if self.field in SCORE_FIELDS:
            return present & _OPS[self.op](pd.to_numeric(col, errors="coerce").to_numpy(float), self.value)
        values = col.astype(str)
        if self.op in ("in", "not in"):
            hit = values.isin(self.value).to_numpy()
            return present & (hit if self.op == "in" else ~hit)
        hit = (values == self.value).to_numpy()
        return present & (hit if self.op == "==" else ~hit)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name == "rm_confidence" and "p" in frame.columns:
        return (2 * pd.to_numeric(frame["p"], errors="coerce") - 1).abs()
    return frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)


@dataclass(frozen=True)
class Rule:
    text: str
    conditions: tuple[Condition, ...]  # empty: matches every pair ("*")
    route: str


def parse_rule(text: str, *, where: str = "rule") -> Rule:
    """One rule, ``"<condition> [and <condition> ...] -> <route>"`` or ``"* -> <route>"``.

    Raises:
        ValueError: one line naming ``where``, the rule and what is wrong in it, with the allowed words.
    """
    if not isinstance(text, str):
        raise ValueError(f"{where}: a rule is text such as 'objectivity == subjective -> people', got {text!r}.")
    m = _RULE.match(text.strip())
    if not m:
        raise ValueError(f"{where} {text!r}: no '-> route' at the end; write e.g. 'objectivity == subjective -> people'.")
    route = m["route"]
    if route not in ROUTES:
        raise ValueError(f"{where} {text!r}: unknown route {route!r}{_hint(route, ROUTES)}; routes: {', '.join(ROUTES)}.")
    cond_text = m["cond"].strip()
    if cond_text == "*":
        return Rule(text, (), route)
    if not cond_text:
        raise ValueError(f"{where} {text!r}: no condition before '->'; use '* -> {route}' to match every pair.")
    conditions = []
    for part in re.split(r"\s+and\s+", cond_text):
        c = _COND.match(part.strip())
        if not c:
            raise ValueError(f"{where} {text!r}: cannot read the condition {part.strip()!r}; write 'field op value' with op "
                             "one of ==, !=, <, <=, >, >=, in, not in.")
        name, op, raw = c["field"], " ".join(c["op"].split()), c["value"].strip()
        conditions.append(_condition(name, op, raw, where=f"{where} {text!r}"))
    return Rule(text, tuple(conditions), route)


def _condition(name: str, op: str, raw: str, *, where: str) -> Condition:
    fields = [*TAG_FIELDS, *SCORE_FIELDS]
    if name not in fields:
        raise ValueError(f"{where}: unknown field {name!r}{_hint(name, fields)}; fields: {', '.join(fields)}.")
    if name in SCORE_FIELDS:
        if op not in _OPS:
            raise ValueError(f"{where}: {name} is a score; compare it with <, <=, >, >=, == or !=, not {op!r}.")
        try:
            return Condition(name, op, float(raw))
        except ValueError:
            raise ValueError(f"{where}: {name} {op} needs a number, got {raw!r}.") from None
    if op not in ("==", "!=", "in", "not in"):
        raise ValueError(f"{where}: {name} is a tag; use ==, !=, in or not in, not {op!r}.")
    if op in ("in", "not in"):
        if not (raw.startswith("[") and raw.endswith("]")):
            raise ValueError(f"{where}: {op} needs a list such as [reasoning_math, coding], got {raw!r}.")
        values = tuple(v.strip().strip("'\"") for v in raw[1:-1].split(",") if v.strip())
    else:
        values = (raw.strip("'\""),)
    allowed = TAG_FIELDS[name]
    for v in values:
        if allowed is not None and v not in allowed:
            raise ValueError(f"{where}: {name} has no value {v!r}{_hint(v, allowed)}; values: {', '.join(allowed)}.")
    return Condition(name, op, values if op in ("in", "not in") else values[0])


def parse_budgets(items: Sequence[str] | Mapping[str, int], *, where: str = "route_budgets") -> dict[str, int]:
    """``["people=100", "both:20"]`` (or a mapping) -> ``{"people": 100, "both": 20}``; a route not named is unlimited."""
    pairs = list(items.items()) if isinstance(items, Mapping) else []
    if not isinstance(items, Mapping):
        for i, item in enumerate(items):
            if not isinstance(item, str) or not re.search(r"[=:]", item):
                raise ValueError(f"{where}[{i}]: write route=N (or route:N) such as 'people=100', got {item!r}.")
            pairs.append(tuple(s.strip() for s in re.split(r"[=:]", item, maxsplit=1)))
    out = {}
    for i, (route, n) in enumerate(pairs):
        if route not in ROUTES:
            raise ValueError(f"{where}[{i}]: unknown route {route!r}{_hint(str(route), ROUTES)}; routes: {', '.join(ROUTES)}.")
        try:
            out[route] = int(n)
        except (TypeError, ValueError):
            raise ValueError(f"{where}[{i}]: the budget of {route} must be a whole number of pairs, got {n!r}.") from None
        if out[route] < 0:
            raise ValueError(f"{where}[{i}]: the budget of {route} must be >= 0, got {out[route]}.")
    return out


@dataclass(frozen=True)
class RoutingConfig:
    """Routing rules (first match wins), the route of a pair no rule matches, and per-round budgets per route.

    Example: ``RoutingConfig(rules=("objectivity == subjective -> people", "* -> llm"), budgets=("people=100",))``.
    ``where`` names the source in error messages (a file and line, a notebook parameter).
    """

    rules: tuple[str, ...] = PAPER_RULES
    budgets: tuple[str, ...] = ()  # "route=N" or "route:N": at most N pairs of that route a round; unnamed: unlimited
    default: str = "people"  # where a pair goes when no rule matches: the safe choice is a person
    where: str = field(default="routing", compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.rules, str) or isinstance(self.budgets, str):
            raise ValueError(f"{self.where}: rules and budgets are lists of text, got {self.rules!r} / {self.budgets!r}.")
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "budgets", tuple(self.budgets))
        self.compiled()
        self.budget_of()
        if self.default not in ROUTES:
            raise ValueError(f"{self.where}: default route {self.default!r} is not one of {', '.join(ROUTES)}.")

    def compiled(self) -> tuple[Rule, ...]:
        return tuple(parse_rule(r, where=f"{self.where}[{i}]") for i, r in enumerate(self.rules))

    def budget_of(self) -> dict[str, int]:
        return parse_budgets(self.budgets, where=f"{self.where} budgets")

    @classmethod
    def from_params(cls, rules: Sequence[str] | None, budgets: Sequence[str] | None = None, *,
                    where: str = "routing") -> RoutingConfig | None:
        """From notebook / CLI / YAML parameters; ``rules`` empty or None means no routing (None)."""
        if not rules:
            return None
        if isinstance(rules, str):
            raise ValueError(f"{where}: give a list of rules, e.g. ['objectivity == subjective -> people', '* -> llm'], "
                             f"got the text {rules!r}.")
        return cls(rules=tuple(rules), budgets=tuple(budgets or ()), where=where)


def route_pairs(queue: pd.DataFrame, cfg: RoutingConfig) -> pd.DataFrame:
    """``queue`` (ranked, best first) with ``route`` (people | llm | both | waiting) and ``route_rule`` (the rule that
    matched, or "default"). ``waiting``: over its route's budget this round; not reviewed now.

    Example: ``route_pairs(queue, RoutingConfig())["route"].value_counts()``.
    """
    out = queue.copy()
    route = np.full(len(out), "", dtype=object)
    rule_of = np.full(len(out), "default", dtype=object)
    for rule in cfg.compiled():
        hit = np.ones(len(out), bool)
        for cond in rule.conditions:
            hit &= cond.mask(out)
        new = hit & (route == "")
        route[new], rule_of[new] = rule.route, rule.text
    route[route == ""] = cfg.default
    for name, budget in cfg.budget_of().items():
        idx = np.flatnonzero(route == name)
        route[idx[budget:]] = "waiting"
    out["route"], out["route_rule"] = route, rule_of
    return out


# ---------------------------------------------------------------- reviewing a routed queue


@dataclass
class RoutedReview:
    """People and a judge reviewing one routed queue: what `workbench.curation.stage1.run_stage1` takes as its reviewer.

    ``people`` is a non-human stand-in (`OracleReviewer`) in unattended runs, or None when real people review
    elsewhere (the review panel, Label Studio): their pairs then stay open. ``judge`` is `JudgeReviewer` or a
    simulated judge; None leaves the ``llm`` pairs open. For ``both``, the judge answers first and its answer is in
    what people are shown (``judge_suggestion``).
    """

    routing: RoutingConfig
    people: Any = None
    judge: Any = None
    name: str = "routed"

    def review(self, queue: pd.DataFrame, store: ReviewStore, *, shown: pd.DataFrame | None = None,
               iteration: int | None = None) -> pd.DataFrame:
        """Route ``queue``, let each side label its pairs into ``store``; returns the current label of each pair of
        ``queue`` decided by any of them (`ReviewStore.labels` rows, with ``route``)."""
        routed = route_pairs(queue, self.routing) if "route" not in queue.columns else queue
        shown = shown if shown is not None else pd.DataFrame(index=pd.Index(routed["pair_id"], name="pair_id"))
        to_judge = routed[routed["route"].isin(["llm", "both"])]
        if self.judge is not None and len(to_judge):
            review_with(self.judge, to_judge, store, shown=shown, iteration=iteration)
        to_people = routed[routed["route"].isin(["people", "both"])]
        if self.people is not None and len(to_people):
            review_with(self.people, to_people, store, shown=with_suggestions(shown, store, to_people), iteration=iteration)
        labels = store.labels(before_iteration=None if iteration is None else iteration + 1)
        return labels[labels["pair_id"].isin(set(routed["pair_id"]))].reset_index(drop=True)


def with_suggestions(shown: pd.DataFrame, store: ReviewStore, pairs: pd.DataFrame) -> pd.DataFrame:
    """``shown`` plus ``judge_suggestion``: the judge's current answer on each pair routed ``both`` (what people see)."""
    eff = store.effective()
    judge = eff[(eff["kind"] == "llm") & eff["pair_id"].isin(set(pairs.loc[pairs["route"] == "both", "pair_id"]))]
    said = dict(zip(judge["pair_id"], judge["decision"]))
    return shown.assign(judge_suggestion=[said.get(pid, "") for pid in shown.index])


def route_table(queues: Mapping[int, pd.DataFrame] | pd.DataFrame, store: ReviewStore, *,
                truth: pd.Series | None = None) -> pd.DataFrame:
    """Per route: pairs queued, labelled (a keep / flip / drop stands), flipped, decisions by people and by the judge
    and, where the truth is known (``truth``: pair_id -> the stored label is true), the labels' accuracy.

    Accuracy counts keeps and flips only: right when a keep meets a true label or a flip a false one.
    """
    queue = pd.concat(list(queues.values()), ignore_index=True) if isinstance(queues, Mapping) else queues
    columns = ["route", "queued", "labelled", "flipped", "people_decisions", "judge_decisions", "accuracy"]
    if queue.empty or "route" not in queue.columns:
        return pd.DataFrame(columns=columns)
    queue = queue.drop_duplicates("pair_id", keep="last")
    labels = store.labels().set_index("pair_id")
    eff = store.effective()
    eff = eff[eff["decision"] != "skip"]
    rows = []
    for route in [r for r in (*ROUTES, "waiting") if (queue["route"] == r).any()]:
        ids = set(queue.loc[queue["route"] == route, "pair_id"])
        lab = labels[labels.index.isin(ids)]
        mine = eff[eff["pair_id"].isin(ids)]
        row = {"route": route, "queued": len(ids), "labelled": len(lab), "flipped": int((lab["decision"] == "flip").sum()),
               "people_decisions": int((mine["tier"] == "gold").sum()), "judge_decisions": int((mine["kind"] == "llm").sum()),
               "accuracy": np.nan}
        if truth is not None:
            decided = lab[lab["decision"].isin(["keep", "flip"])]
            true = truth.reindex(decided.index).astype("boolean")
            right = (decided["decision"] == "keep").to_numpy() == true.to_numpy(dtype=bool, na_value=False)
            known = true.notna().to_numpy()
            row["accuracy"] = float(right[known].mean()) if known.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)



def simulated_review(routing: RoutingConfig | None, *, people_error: float, judge_error: float, seed: int = 0,
                     people_by_category: dict[str, float] | None = None,
                     judge_by_category: dict[str, float] | None = None) -> Any:
    """Simulated people (`OracleReviewer`, answering from the known truth) who label everything or, with ``routing``,
    simulated people and a simulated LLM judge who each label the pairs routed to them. For experiments only.

    Example: ``simulated_review(RoutingConfig(), people_error=0.05, judge_error=0.1)`` (the judge errs at 0.1).
    """
    people = OracleReviewer(error_rate=people_error, seed=seed, error_by_category=people_by_category)
    if routing is None:
        return people
    judge = OracleReviewer(name="simulated-llm-judge", kind="llm", error_rate=judge_error, seed=seed + 1000,
                           error_by_category=judge_by_category)
    return RoutedReview(routing, people=people, judge=judge)


POLICIES = ("routed", "all to people", "all to llm")


def compare_routing(pairs: pd.DataFrame, routing: RoutingConfig, *, people: Any, judge: Any, folder: Path) -> pd.DataFrame:
    """Routing against sending everything to people or everything to the judge, on the same pairs with a known truth.

    ``pairs`` needs ``label_is_true`` (and the tags the rules read). Each policy reviews all of them into its own
    log under ``folder`` (a rerun resumes). One row per policy: pairs, people's and the judge's labels (what the
    policy costs), and the accuracy of the resulting labels overall and on objective / subjective pairs.
    """
    truth = pairs.set_index("pair_id")["label_is_true"].astype(bool)
    everything = {"routed": routing, "all to people": RoutingConfig(rules=("* -> people",)),
                  "all to llm": RoutingConfig(rules=("* -> llm",))}
    rows = []
    for policy, rules in everything.items():
        with ReviewStore(Path(folder) / f"routing_{policy.replace(' ', '_')}.sqlite") as store:
            routed = route_pairs(pairs, rules)
            RoutedReview(rules, people=people, judge=judge).review(routed, store, iteration=0)
            table = route_table(routed, store, truth=truth)
            labels = store.labels().set_index("pair_id")
        decided = labels[labels["decision"].isin(["keep", "flip"])]
        right = pd.Series((decided["decision"] == "keep").to_numpy() == truth.reindex(decided.index).to_numpy(), decided.index)
        row = {"policy": policy, "pairs": len(pairs), "people_labels": int(table["people_decisions"].sum()),
               "judge_labels": int(table["judge_decisions"].sum()), "label_accuracy": float(right.mean())}
        if "objectivity" in pairs.columns:
            kind = pairs.set_index("pair_id")["objectivity"].reindex(right.index)
            row.update({f"accuracy_{k}": float(right[kind == k].mean()) if (kind == k).any() else np.nan
                        for k in ("objective", "subjective")})
        rows.append(row)
    return pd.DataFrame(rows)
