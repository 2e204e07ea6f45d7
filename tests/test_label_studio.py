"""Review rounds through Label Studio (issue 31): push a run's queue, annotate, pull into the review log.

The file path (Label Studio's import JSON out, its JSON export in) needs nothing. The server test starts a real
Label Studio on 127.0.0.1 from its own venv (``.venv-labelstudio``, built by ``make test``: its Django pins are not
ours), on SQLite in a temporary folder, with two annotators and their API tokens created by the test; every
process it starts is stopped by its process group. Without that venv the test is skipped with the command to build
it (``.ci/run`` sets WORKBENCH_REQUIRE_LABEL_STUDIO=1, which makes a missing venv a failure).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import free_port, make_pairs, wait_until_healthy

from workbench.cli import main
from workbench.curation import label_studio as ls
from workbench.curation.review import ReviewStore, reviewer_agreement
from workbench.curation.routing import RoutingConfig, route_pairs
from workbench.data import files as io
from workbench.data.splits import assign_splits, inject_label_noise

REPO = Path(__file__).resolve().parents[1]
LS_VENV = REPO / ".venv-labelstudio"
QUIET = {"SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false"}


def _make_run(root: Path, *, noise: float = 0.4) -> tuple[Path, pd.DataFrame]:
    """A run folder with 60 planted pairs (36 in the pool, ``noise`` of their labels flipped, recorded)."""
    run_dir = root / "run"
    run_dir.mkdir()
    pairs = assign_splits(make_pairs(60), fractions={"train": 0.6, "gold": 0.2, "test": 0.2}, seed=0)
    io.write_pairs(pairs, run_dir / "pairs.parquet")
    pool = inject_label_noise(pairs.query("split == 'train'").reset_index(drop=True), noise, seed=1)
    io.write_pairs(pool, run_dir / "stage1_pool.parquet")
    return run_dir, pool


def _right_answer(pushed: pd.DataFrame, pool: pd.DataFrame, pair_id: str, round_: int) -> str:
    """What an annotator who knows the truth answers: the response that is truly better, as A or B."""
    a_is_chosen = bool(pushed.set_index(["pair_id", "round"]).loc[(pair_id, round_), "a_is_chosen"])
    label_true = bool(pool.set_index("pair_id").loc[pair_id, "label_is_true"])
    return "A" if a_is_chosen == label_true else "B"


def _result(answer: str, note: str = "") -> list[dict]:
    out = [{"from_name": "wb_decision", "to_name": "wb_conversation", "type": "choices", "value": {"choices": [answer]}}]
    if note:
        out.append({"from_name": "wb_note", "to_name": "wb_conversation", "type": "textarea", "value": {"text": [note]}})
    return out


def _push_file(run_dir: Path, path: Path) -> int:
    return main(["review", "push", str(run_dir), "--to", str(path), "--seed-size", "8", "--embedder", "hashing"])


# ---------------------------------------------------------------- tasks and files (no server)


def test_tasks_hide_the_label_randomise_the_order_and_carry_pair_round_route():
    pairs = make_pairs(40).assign(task_category=["coding", "chat"] * 20, objectivity=["objective", "subjective"] * 20)
    queue = route_pairs(pairs, RoutingConfig(rules=("task_category == coding -> llm", "* -> both")))
    tasks, order = ls.tasks_for(queue, round_=2, suggestions={queue["pair_id"].iloc[1]: "flip"})
    assert len(tasks) == 20 and set(order["route"]) == {"both"}  # the llm pairs stay with the judge
    assert 5 < order["a_is_chosen"].sum() < 15  # both orders occur
    by_id = pairs.set_index("pair_id")
    for task, rec in zip(tasks, order.itertuples()):
        d = task["data"]
        assert (d["pair_id"], d["round"], d["route"]) == (rec.pair_id, 2, "both")
        a, b = by_id.loc[d["pair_id"], "chosen"], by_id.loc[d["pair_id"], "rejected"]
        assert (d["response_a"], d["response_b"]) == ((a, b) if rec.a_is_chosen else (b, a))
        assert "chosen" not in json.dumps(d) and "label" not in d  # nothing tells which one is the current label
    first = tasks[0]["data"]
    assert first["suggestion"].startswith(f"The LLM judge prefers response {'B' if order['a_is_chosen'].iloc[0] else 'A'}")
    assert ls.tasks_for(queue, round_=2)[1].equals(order.assign(route="both"))  # the order is the same when pushed again
    assert ls.is_our_config(ls.LABEL_CONFIG) and not ls.is_our_config('<View><Choices name="x"/></View>')


def test_file_round_trip_maps_answers_back_is_idempotent_and_an_edit_is_undo_plus_new(tmp_path, capsys):
    run_dir, pool = _make_run(tmp_path)
    assert _push_file(run_dir, tmp_path / "tasks.json") == 0
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert len(tasks) == 8 and ls.is_our_config((tmp_path / "tasks.xml").read_text())
    pushed = ls.pushed_tasks(run_dir)
    # Label Studio's JSON export of the project after two annotators: ann 1 always right, ann 2 wrong on the first task
    export = []
    for i, t in enumerate(tasks):
        right = _right_answer(pushed, pool, t["data"]["pair_id"], 0)
        wrong = "B" if right == "A" else "A"
        export.append({"id": 100 + i, "project": 7, "data": t["data"], "annotations": [
            {"id": 1000 + i, "completed_by": 1, "result": _result(right, "clear" if i == 0 else ""), "was_cancelled": False},
            {"id": 2000 + i, "completed_by": {"id": 2, "email": "b@x"}, "result": _result(wrong if i == 0 else right),
             "was_cancelled": False}]})
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    assert main(["review", "pull", str(run_dir), "--from", str(path)]) == 0
    assert "16 new decisions" in capsys.readouterr().out
    with ReviewStore(run_dir / "review.sqlite") as store:
        ev = store.events()
        assert len(ev) == 16 and set(ev["reviewer"]) == {"label-studio-user-1", "label-studio-user-2"}
        assert (ev["kind"] == "human").all() and (ev["iteration"] == 0).all() and (ev["route"] == "people").all()
        mine = ev[ev["reviewer"] == "label-studio-user-1"].set_index("pair_id")
        truth = pool.set_index("pair_id")["label_is_true"]
        expected = np.where(truth.reindex(mine.index), "keep", "flip")
        assert (mine["decision"].to_numpy() == expected).all() and mine["note"].iloc[0] == "clear"
        assert mine["origin"].iloc[0] == "label-studio:project-7:annotation-1000"
        kappa = reviewer_agreement(store.effective())["pairwise"].iloc[0]
        assert kappa["n"] == 8 and kappa["agreement"] == 7 / 8
    # again: nothing new; then ann 2 corrects the first task
    assert main(["review", "pull", str(run_dir), "--from", str(path)]) == 0
    assert "0 new decisions, 0 changed" in capsys.readouterr().out
    export[0]["annotations"][1]["result"] = export[0]["annotations"][0]["result"]
    path.write_text(json.dumps(export))
    assert main(["review", "pull", str(run_dir), "--from", str(path)]) == 0
    with ReviewStore(run_dir / "review.sqlite") as store:
        ev = store.events()
        assert len(ev) == 18 and (ev["decision"] == "undo").sum() == 1
        undo = ev[ev["decision"] == "undo"].iloc[0]
        assert ev.set_index("event_id").loc[int(undo["undoes"]), "reviewer"] == "label-studio-user-2"
        assert reviewer_agreement(store.effective())["pairwise"].iloc[0]["agreement"] == 1.0
    # a task of a pair this run never pushed: one line, nothing written
    export.append({"id": 999, "project": 7, "data": {**tasks[0]["data"], "pair_id": "f" * 16}, "annotations": []})
    path.write_text(json.dumps(export))
    assert main(["review", "pull", str(run_dir), "--from", str(path)]) == 2
    err = capsys.readouterr().err
    assert "task 999: pair ffffffffffffffff (round 0) is not one this run pushed" in err and len(err.strip().splitlines()) == 1
    with ReviewStore(run_dir / "review.sqlite") as store:
        assert len(store.events()) == 18


def test_a_round_routed_both_is_judged_first_and_people_see_the_suggestion(tmp_path):
    from workbench.curation.review import OracleReviewer
    from workbench.curation.rounds import next_round
    from workbench.curation.stage1 import Stage1Config
    from workbench.runs.folder import start_run

    run_dir, pool = _make_run(tmp_path)
    cfg = Stage1Config(seed_size=8, routing=RoutingConfig(rules=("* -> both",)))
    judge = OracleReviewer(name="simulated-llm-judge", kind="llm")  # never wrong: its suggestion is the truth
    queue, info = next_round(start_run(run_dir), cfg, embedder="hashing", judge=judge)
    assert info["round"] == 0 and info["routes"] == {"both": 8} and len(info["suggestions"]) == 8
    with ReviewStore(run_dir / "review.sqlite") as store:
        ev = store.events()
    assert len(ev) == 8 and (ev["kind"] == "llm").all() and (ev["route"] == "both").all() and (ev["iteration"] == 0).all()
    path, n = ls.export_tasks(queue, tmp_path / "round.json", run_dir=run_dir, round_=0, suggestions=info["suggestions"])
    pushed = ls.pushed_tasks(run_dir)
    for task in json.loads(path.read_text()):
        d = task["data"]
        assert d["suggestion"].startswith(f"The LLM judge prefers response {_right_answer(pushed, pool, d['pair_id'], 0)} ")
    assert (run_dir / "label_studio" / "round_0_queue.parquet").exists()


def test_a_broken_export_and_a_run_that_pushed_nothing_are_one_line(tmp_path, capsys):
    run_dir, _ = _make_run(tmp_path)
    (tmp_path / "x.json").write_text('{"not": "a list"}')
    assert main(["review", "pull", str(run_dir), "--from", str(tmp_path / "x.json")]) == 2
    assert "this run pushed no tasks" in capsys.readouterr().err
    _push_file(run_dir, tmp_path / "tasks.json")
    assert main(["review", "pull", str(run_dir), "--from", str(tmp_path / "x.json")]) == 2
    assert "not a Label Studio JSON export" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--url and --project are needed"):
        main(["review", "push", str(run_dir), "--to", "label-studio", "--url", "http://127.0.0.1:9"])


# ---------------------------------------------------------------- a real Label Studio




def _label_studio_exe() -> Path:
    exe = LS_VENV / "bin" / "label-studio"
    if not exe.exists():
        message = f"no Label Studio venv at {LS_VENV}; build it with `make .venv-labelstudio/.installed` (make test does)"
        if os.environ.get("WORKBENCH_REQUIRE_LABEL_STUDIO") == "1":
            pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip("label_studio_sdk", reason="pip install -e '.[labelstudio]' (make test installs it)")
    return exe


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """(url, {annotator: token}) of a Label Studio started for this module, stopped (its process group) after it."""
    exe = _label_studio_exe()
    data = tmp_path_factory.mktemp("label-studio")
    template = LS_VENV / "template" / "label_studio.sqlite3"
    if template.exists():  # migrated once by the Makefile: saves ~75 s of migrations here
        shutil.copy(template, data / "label_studio.sqlite3")
    env = {**os.environ, **QUIET, "LABEL_STUDIO_BASE_DATA_DIR": str(data)}
    tokens = {"ann1": secrets.token_hex(20), "ann2": secrets.token_hex(20)}
    # `--password=VALUE`, not `--password VALUE`: token_urlsafe can start with "-", which argparse reads as a flag
    # (that made `init` exit 2 about one run in 64)
    password_arg = f"--password={secrets.token_urlsafe(12)}"
    # annotator 2 first: `init` creates the organization, with legacy API tokens enabled; `start` adds annotator 1
    init = subprocess.run([str(exe), "init", "--username", "ann2@example.com", password_arg, "--user-token",
                           tokens["ann2"], "--enable-legacy-api-token"], env=env, capture_output=True, text=True, timeout=600)
    assert init.returncode == 0, f"label-studio init exited {init.returncode}:\n{(init.stdout + init.stderr)[-3000:]}"
    port = free_port()
    log = open(data / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
                             "--username", "ann1@example.com", password_arg, "--user-token", tokens["ann1"],
                             "--enable-legacy-api-token"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, data / "server.log", "Label Studio", timeout_s=300, tail=3000)
        yield url, tokens
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the group this test started: the server and its children only
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_a_team_round_trip_through_a_real_label_studio(label_studio, tmp_path, monkeypatch, capsys):
    from label_studio_sdk import LabelStudio

    url, tokens = label_studio
    run_dir, pool = _make_run(tmp_path)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", tokens["ann1"])
    push = ["review", "push", str(run_dir), "--to", "label-studio", "--url", url, "--project", "Pair review",
            "--seed-size", "8", "--embedder", "hashing"]
    pull = ["review", "pull", str(run_dir), "--from", "label-studio", "--url", url, "--project", "Pair review"]
    assert main(push) == 0 and "8 new tasks -> project 'Pair review'" in capsys.readouterr().out
    assert main(push) == 0 and "0 new tasks, 8 there already" in capsys.readouterr().out  # no duplicates
    pushed = ls.pushed_tasks(run_dir)
    # two annotators answer through the API: ann1 right everywhere, ann2 wrong on two pairs, with a note
    clients = {name: LabelStudio(base_url=url, api_key=tok) for name, tok in tokens.items()}
    project = next(p for p in clients["ann1"].projects.list() if p.title == "Pair review")
    assert ls.is_our_config(project.label_config)
    tasks = sorted(clients["ann1"].tasks.list(project=project.id, fields="all"), key=lambda t: t.id)
    assert len(tasks) == 8 and {t.data["route"] for t in tasks} == {"people"} and {t.data["round"] for t in tasks} == {0}
    ann2 = {}
    for i, t in enumerate(tasks):
        right = _right_answer(pushed, pool, t.data["pair_id"], 0)
        clients["ann1"].annotations.create(t.id, result=_result(right))
        answer = ("B" if right == "A" else "A") if i < 2 else right
        ann2[t.id] = clients["ann2"].annotations.create(t.id, result=_result(answer, "unsure" if i < 2 else "")).id
    assert main(pull) == 0 and "16 new decisions" in capsys.readouterr().out
    store = ReviewStore(run_dir / "review.sqlite")
    ev = store.events()
    users = {u.email: u.id for u in clients["ann1"].users.list()}
    assert set(ev["reviewer"]) == {f"label-studio-user-{users['ann1@example.com']}", f"label-studio-user-{users['ann2@example.com']}"}
    assert (ev["kind"] == "human").all() and (ev["tier"] == "gold").all() and (ev["iteration"] == 0).all()
    truth = pool.set_index("pair_id")["label_is_true"]
    noisy = set(truth.index[~truth.astype(bool)]) & set(ev["pair_id"])
    assert noisy, "the seed queue should hold some of the flipped labels"
    agreement = reviewer_agreement(store.effective())
    row = agreement["pairwise"].iloc[0]
    assert row["n"] == 8 and row["agreement"] == 6 / 8 and len(agreement["disagreements"]) == 2
    from sklearn.metrics import cohen_kappa_score

    table = store.effective().pivot_table(index="pair_id", columns="reviewer", values="decision", aggfunc="last")
    assert row["cohen_kappa"] == pytest.approx(cohen_kappa_score(table.iloc[:, 0], table.iloc[:, 1],
                                                                 labels=["keep", "flip", "drop"]))
    # where the two agree, the log's label is the truth: the flipped labels are exactly the noisy pairs among them
    labels = store.labels().set_index("pair_id")
    agreed = labels[labels["unanimous"]]
    assert set(agreed.index[agreed["decision"] == "flip"]) == noisy & set(agreed.index)
    # pulling again changes nothing
    n = len(ev)
    assert main(pull) == 0 and "0 new decisions, 0 changed (undo + new), 0 removed" in capsys.readouterr().out
    assert len(store.events()) == n
    # ann2 corrects the first task in Label Studio: an undo of the old decision and the new one
    first = tasks[0]
    clients["ann2"].annotations.update(ann2[first.id], result=_result(_right_answer(pushed, pool, first.data["pair_id"], 0)))
    assert main(pull) == 0 and "1 changed (undo + new)" in capsys.readouterr().out
    ev = store.events()
    assert len(ev) == n + 2 and (ev["decision"] == "undo").sum() == 1
    assert reviewer_agreement(store.effective())["pairwise"].iloc[0]["agreement"] == 7 / 8
    # errors: each one line, nothing written
    for argv, env_token, expected in (
            (pull, "not-a-token", "refused the token (401)"),
            ([*pull[:6], "http://127.0.0.1:9", *pull[7:]], tokens["ann1"], "is not reachable"),
            ([*pull[:8], "Someone else's"], tokens["ann1"], "labelling config that is not the workbench's")):
        if "Someone else's" in argv:
            clients["ann1"].projects.create(title="Someone else's", label_config=(
                '<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="x"/></Choices></View>'))
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", env_token)
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", tokens["ann1"])
    assert len(store.events()) == n + 2
    # the next round: the RM trained on the pulled labels retrieves new pairs; they go to the same project
    assert main(push) == 0
    out = capsys.readouterr().out
    assert out.startswith("round 1 (retrieval)") and "new tasks" in out
    assert {t.data["round"] for t in clients["ann1"].tasks.list(project=project.id, fields="all")} == {0, 1}
    # a task whose pair this run never pushed (another run's, say): one line, nothing written
    clients["ann1"].projects.import_tasks(project.id, request=[{"data": {**tasks[0].data, "pair_id": "0" * 16}}])
    assert main(pull) == 2
    assert "pair 0000000000000000 (round 0) is not one this run pushed" in capsys.readouterr().err
    assert len(store.events()) == n + 2
    store.close()
