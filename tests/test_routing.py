"""Routing queued pairs to people, the LLM judge or both, by their attributes and scores (issue 31)."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_pairs

from workbench.cli import main
from workbench.curation.review import OracleReviewer, ReviewStore
from workbench.curation.routing import PAPER_RULES, RoutedReview, RoutingConfig, parse_rule, route_pairs, route_table
from workbench.data.splits import inject_label_noise

CATEGORIES = ["reasoning_math", "coding", "chat", "safety"]


def _queue(n: int = 40, *, seed: int = 0) -> pd.DataFrame:
    """Pairs with tags cycling through four categories (maths and coding objective, the rest subjective; every
    fourth safety pair highly controversial), 30% of labels flipped, and RM scores."""
    pairs = inject_label_noise(make_pairs(n, seed=seed), 0.3, seed=seed)
    cat = [CATEGORIES[i % 4] for i in range(n)]
    return pairs.assign(task_category=cat,
                        objectivity=["objective" if c in ("reasoning_math", "coding") else "subjective" for c in cat],
                        controversiality=["high" if c == "safety" and i % 8 == 3 else "low" for i, c in enumerate(cat)],
                        p=np.linspace(0.05, 0.95, n))


def test_the_paper_split_sends_objective_maths_and_code_to_the_judge():
    q = route_pairs(_queue(), RoutingConfig())
    assert RoutingConfig().rules == PAPER_RULES
    by_cat = q.groupby("task_category")["route"].agg(set).to_dict()
    assert by_cat == {"reasoning_math": {"llm"}, "coding": {"llm"}, "chat": {"people"}, "safety": {"people"}}
    high = q[q["controversiality"] == "high"]
    assert len(high) and (high["route_rule"] == "controversiality == high -> people").all()


def test_first_match_wins_scores_route_to_both_and_budgets_make_pairs_wait():
    rules = ("rm_confidence < 0.2 -> both", "task_category in [reasoning_math, coding] -> llm", "* -> people")
    q = route_pairs(_queue(), RoutingConfig(rules=rules, budgets=("people=5", "llm=100")))
    unsure = (2 * q["p"] - 1).abs() < 0.2
    assert (q.loc[unsure, "route"] == "both").all() and (q.loc[~unsure, "route"] != "both").all()
    assert (q["route"] == "people").sum() == 5  # the best-ranked five; the others wait for a later round
    waiting = q[q["route"] == "waiting"]
    assert len(waiting) and (waiting["route_rule"] == "* -> people").all()
    assert q.index[q["route"] == "people"].max() < waiting.index.min()
    # a pair without a value (no scores in the seed round, untagged) never matches a condition on it
    seed_round = route_pairs(_queue().drop(columns=["p", "task_category"]), RoutingConfig(rules=rules))
    assert (seed_round["route"] == "people").all()
    negated = route_pairs(_queue(), RoutingConfig(rules=("objectivity != objective -> llm",)))
    assert (negated["route"] == np.where(negated["objectivity"] == "subjective", "llm", "people")).all()


@pytest.mark.parametrize("rule, message", [
    ("task_catgory == coding -> llm", r"routing\[0\] 'task_catgory == coding -> llm': unknown field 'task_catgory' "
                                      r"\(did you mean 'task_category'\?\)"),
    ("task_category == codng -> llm", r"task_category has no value 'codng' \(did you mean 'coding'\?\)"),
    ("objectivity == subjective -> peple", r"unknown route 'peple' \(did you mean 'people'\?\)"),
    ("objectivity == subjective", r"no '-> route' at the end"),
    ("rm_confidence < high -> both", r"rm_confidence < needs a number, got 'high'"),
    ("p in [a] -> both", r"p is a score; compare it with"),
    ("objectivity > subjective -> llm", r"objectivity is a tag; use ==, !=, in or not in"),
    ("task_category in coding -> llm", r"in needs a list such as"),
])
def test_a_bad_rule_is_one_line_naming_the_rule_and_the_fix(rule, message):
    with pytest.raises(ValueError, match=message) as err:
        RoutingConfig(rules=(rule, "* -> people"))
    assert "\n" not in str(err.value)


def test_bad_budgets_and_parameters_name_the_field():
    with pytest.raises(ValueError, match=r"my.yaml: routing budgets\[0\]: unknown route 'judge'"):
        RoutingConfig(budgets=("judge=5",), where="my.yaml: routing")
    with pytest.raises(ValueError, match=r"budgets\[0\]: the budget of llm must be a whole number"):
        RoutingConfig(budgets=("llm=many",))
    with pytest.raises(ValueError, match="give a list of rules"):
        RoutingConfig.from_params("* -> llm")
    assert RoutingConfig.from_params([]) is None
    assert parse_rule("* -> both").conditions == ()


def test_routed_review_logs_every_route_and_the_judge_breaks_a_tie_of_people(tmp_path):
    queue = _queue(40)
    rules = ("task_category in [reasoning_math, coding] -> llm", "task_category == safety -> both", "* -> people")
    # people err on maths and code, the judge on everything else: routing gives each the pairs it gets right
    people = OracleReviewer(name="people", error_rate=0.0, error_by_category={"reasoning_math": 1.0, "coding": 1.0})
    judge = OracleReviewer(name="judge", kind="llm", error_rate=1.0, error_by_category={"reasoning_math": 0.0, "coding": 0.0},
                           seed=1)
    with ReviewStore(tmp_path / "review.sqlite") as store:
        decided = RoutedReview(RoutingConfig(rules=rules), people=people, judge=judge).review(queue, store, iteration=1)
        assert len(decided) == len(queue)
        ev = store.events()
        route_of = dict(zip(route_pairs(queue, RoutingConfig(rules=rules))["pair_id"],
                            route_pairs(queue, RoutingConfig(rules=rules))["route"]))
        assert (ev["route"] == ev["pair_id"].map(route_of)).all()  # the log records the route of every decision
        assert set(ev.loc[ev["route"] == "llm", "kind"]) == {"llm"} and set(ev.loc[ev["route"] == "people", "kind"]) == {"oracle"}
        both = ev[ev["route"] == "both"]
        assert set(both["kind"]) == {"llm", "oracle"}
        suggested = both[both["kind"] == "oracle"]["shown"].map(lambda s: s["judge_suggestion"])
        assert set(suggested) <= {"keep", "flip"} and len(suggested) == 10
        routed = route_pairs(queue, RoutingConfig(rules=rules))
        table = route_table(routed, store, truth=queue.set_index("pair_id")["label_is_true"]).set_index("route")
        assert table.loc["llm", "accuracy"] == 1.0 and table.loc["people", "accuracy"] == 1.0
        assert table.loc["both", "accuracy"] == 1.0  # people's gold label beats the (always wrong) judge
        assert table.loc["llm", "judge_decisions"] == 20 and table.loc["llm", "people_decisions"] == 0
        # two people disagree on a 'both' pair: the judge's answer decides
        pid = both["pair_id"].iloc[0]
        judge_said = both.loc[(both["pair_id"] == pid) & (both["kind"] == "llm"), "decision"].iloc[0]
        other = "keep" if judge_said == "flip" else "flip"
        first = both.loc[(both["pair_id"] == pid) & (both["kind"] == "oracle"), "decision"].iloc[0]
        store.record(pid, other if first == judge_said else judge_said, reviewer="second-person")
        assert store.labels().set_index("pair_id").loc[pid, "decision"] == judge_said


def test_a_bad_rule_in_a_pipeline_config_names_the_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run_name: x\nsteps:\n  - name: 04_retrieval_and_review\n    notebook: notebooks/04_retrieval_and_review.ipynb\n"
                   "    parameters:\n      routing:\n        - 'objectivity == subjective -> people'\n"
                   "        - 'task_category == codng -> llm'\n")
    assert main(["run", "--config", str(bad), "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{bad}, line 6: steps[0].parameters.routing[1]" in err and "did you mean 'coding'" in err


def test_a_review_log_written_before_routing_opens_with_empty_routes(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE events (event_id INTEGER PRIMARY KEY AUTOINCREMENT, pair_id TEXT NOT NULL,
        reviewer TEXT NOT NULL, kind TEXT NOT NULL, tier TEXT NOT NULL, decision TEXT NOT NULL, undoes INTEGER,
        note TEXT NOT NULL DEFAULT '', at TEXT NOT NULL, iteration INTEGER, shown TEXT NOT NULL DEFAULT '{}');
        INSERT INTO events (pair_id, reviewer, kind, tier, decision, at) VALUES ('p1', 'ana', 'human', 'gold', 'flip', 'x');""")
    db.commit()
    db.close()
    with ReviewStore(path) as store:
        store.record("p2", "keep", reviewer="ana")
        ev = store.events()
        assert list(ev["route"]) == ["", ""] and ev["origin"].isna().all()
        assert store.labels().set_index("pair_id")["decision"].to_dict() == {"p1": "flip", "p2": "keep"}
        assert store.undo("ana") is not None and len(store.labels()) == 1
