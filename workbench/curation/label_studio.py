"""Review as a team in Label Studio: push a round's queue as tasks, pull the annotations into the run's review log.

A task is one queued pair: the conversation, the two responses side by side as *A* and *B* in a random order (seeded
per pair and round, recorded in the run), the pair's attributes and annotation guideline, and for pairs routed
``both`` the LLM judge's answer as a suggestion. Annotators answer *A is better*, *B is better*, *drop* or *skip*,
with an optional note; the current label is never shown, so nobody anchors on it. Tasks carry ``pair_id``, the
round and the route in their data.

Pulling maps each answer back through the recorded order to ``keep`` / ``flip`` and writes it to the
`workbench.curation.review.ReviewStore` as a *human* decision of the annotator ``label-studio-user-<id>`` (so kappa,
people vs the judge and Stage 1 read it like any other), with the round as its iteration, the route, and the
annotation as its ``origin``. Pulling again adds nothing; an annotation edited in Label Studio becomes an undo of
the earlier decision and the new one, in one transaction; one deleted there is undone (server pulls, which see the
whole project). The same works through files for teams without a server: `export_tasks` writes Label Studio's
import JSON (and the labelling config), `read_export` reads its JSON export.

Errors are one line and write nothing: an unreachable server, a refused token, a project whose labelling config is
not this one, a task whose pair this run never pushed. The server side needs the optional extra:
``pip install -e '.[labelstudio]'`` (label-studio-sdk); files need nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from workbench.curation.review import Decision, ReviewStore
from workbench.data.files import read_frame, write_frame, write_text_atomic
from workbench.data.pairs import now_iso

CONFIG_VERSION = "workbench pair review v1"
LABEL_CONFIG = f"""<View>
  <Header value="Which response is better? ({CONFIG_VERSION})"/>
  <Paragraphs name="wb_conversation" value="$conversation" layout="dialogue" nameKey="role" textKey="content"/>
  <View style="display: flex; gap: 1em;">
    <View style="flex: 1;"><Header value="Response A" size="5"/><Text name="wb_response_a" value="$response_a"/></View>
    <View style="flex: 1;"><Header value="Response B" size="5"/><Text name="wb_response_b" value="$response_b"/></View>
  </View>
  <Header value="What matters here" size="6"/>
  <Text name="wb_attributes" value="$attributes"/>
  <Text name="wb_guideline" value="$guideline"/>
  <Text name="wb_suggestion" value="$suggestion"/>
  <Choices name="wb_decision" toName="wb_conversation" choice="single" required="true" showInline="true">
    <Choice value="A" hint="Response A is better" hotkey="1"/>
    <Choice value="B" hint="Response B is better" hotkey="2"/>
    <Choice value="drop" hint="Both unusable, or the pair is broken: leave it out of training" hotkey="3"/>
    <Choice value="skip" hint="Cannot tell: leave it to someone else" hotkey="4"/>
  </Choices>
  <TextArea name="wb_note" toName="wb_conversation" rows="2" maxSubmissions="1" placeholder="Optional note"/>
</View>
"""
INSTRUCTIONS = ("Read the conversation and both responses, then pick the better response (A or B) by the guideline "
                "shown under them. Drop a pair whose responses are both unusable or broken; skip one you cannot judge. "
                "The order of A and B is random.")
ANSWERS = ("A", "B", "drop", "skip")
TASKS_FILE = ("label_studio", "tasks.parquet")  # the pushed tasks and their A/B order, in the run
_SDK_HINT = "the Label Studio client is not installed; pip install -e '.[labelstudio]' (label-studio-sdk)"


def is_our_config(label_config: str) -> bool:
    """Whether a project's labelling config is this module's (any version): its decision and response tags."""
    return all(f'name="{n}"' in (label_config or "") for n in ("wb_decision", "wb_response_a", "wb_response_b"))


def _a_is_chosen(pair_id: str, round_: int, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}:label-studio-order:{pair_id}:{round_}".encode()).digest()
    return digest[0] < 128


def _attributes_text(row: Mapping[str, Any]) -> str:
    def given(x: Any) -> bool:
        return x is not None and not (isinstance(x, float) and x != x) and x != ""

    parts = [f"{k.replace('_', ' ')}: {row[k]}" for k in ("task_category", "objectivity", "controversiality")
             if given(row.get(k))]
    wanted = row.get("desired_attributes")
    if wanted is not None and not isinstance(wanted, (str, float)) and len(wanted):
        parts.append("good answers are " + ", ".join(map(str, wanted)))
    return " · ".join(parts) or "(no attributes tagged)"


def tasks_for(queue: pd.DataFrame, *, round_: int, seed: int = 0, suggestions: Mapping[str, str] | None = None
              ) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Label Studio tasks for the pairs of ``queue`` routed to people (``people`` or ``both``; every pair when the
    queue has no ``route`` column), and their order: a frame ``pair_id, round, route, a_is_chosen``.

    ``suggestions``: pair_id -> the judge's decision (keep / flip), shown on ``both`` pairs as "the judge prefers A".
    """
    queue = queue if "route" in queue.columns else queue.assign(route="people")
    mine = queue[queue["route"].isin(["people", "both"])]
    tasks, order = [], []
    for row in mine.to_dict("records"):
        pid = row["pair_id"]
        a_chosen = _a_is_chosen(pid, round_, seed)
        a, b = (row["chosen"], row["rejected"]) if a_chosen else (row["rejected"], row["chosen"])
        suggestion = ""
        judged = (suggestions or {}).get(pid)
        if row["route"] == "both" and judged in ("keep", "flip"):
            prefers_a = (judged == "keep") == a_chosen
            suggestion = f"The LLM judge prefers response {'A' if prefers_a else 'B'} (a suggestion: decide for yourself)."
        guideline = row.get("annotation_guideline")
        tasks.append({"data": {"pair_id": pid, "round": int(round_), "route": row["route"],
                               "conversation": [{"role": m["role"], "content": m["content"]} for m in row["prompt"]],
                               "response_a": a, "response_b": b, "attributes": _attributes_text(row),
                               "guideline": guideline if isinstance(guideline, str) and guideline else "",
                               "suggestion": suggestion}})
        order.append({"pair_id": pid, "round": int(round_), "route": row["route"], "a_is_chosen": a_chosen})
    return tasks, pd.DataFrame(order, columns=["pair_id", "round", "route", "a_is_chosen"])


def _record_order(run_dir: Path, order: pd.DataFrame, target: str) -> pd.DataFrame:
    """Add ``order`` to the run's record of pushed tasks (a pair pushed again in the same round keeps its order)."""
    path = run_dir.joinpath(*TASKS_FILE)
    old = read_frame(path) if path.exists() else pd.DataFrame(columns=[*order.columns, "target", "pushed_at"])
    new = order.assign(target=target, pushed_at=now_iso())
    both = pd.concat([old, new], ignore_index=True).drop_duplicates(["pair_id", "round", "target"], keep="first")
    write_frame(both.reset_index(drop=True), path)
    return both


def pushed_tasks(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The run's record of pushed tasks (``pair_id, round, route, a_is_chosen, target, pushed_at``)."""
    path = Path(run_dir).joinpath(*TASKS_FILE)
    if not path.exists():
        raise FileNotFoundError(f"{path}: this run pushed no tasks; push a queue first (workbench review push RUN ...).")
    return read_frame(path)


def export_tasks(queue: pd.DataFrame, path: str | os.PathLike, *, run_dir: str | os.PathLike, round_: int, seed: int = 0,
                 suggestions: Mapping[str, str] | None = None) -> tuple[Path, int]:
    """Write the tasks as Label Studio import JSON to ``path`` and the labelling config beside it (``<stem>.xml``);
    records the order in the run. Returns (path, number of tasks)."""
    tasks, order = tasks_for(queue, round_=round_, seed=seed, suggestions=suggestions)
    path = Path(path)
    write_text_atomic(path, json.dumps(tasks, ensure_ascii=False, indent=1))
    write_text_atomic(path.with_suffix(".xml"), LABEL_CONFIG)
    _record_order(Path(run_dir), order, target=f"file:{path.name}")
    return path, len(tasks)


# ---------------------------------------------------------------- the server


@dataclass(frozen=True)
class Server:
    """Where Label Studio runs and the token to use (its legacy API token or a personal access token)."""

    url: str
    token: str
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls, url: str, token_env: str = "LABEL_STUDIO_API_KEY") -> Server:
        token = os.environ.get(token_env, "")
        if not token:
            raise ValueError(f"${token_env} is empty; put your Label Studio API token there (Account & Settings -> "
                             "Access Token) or name another variable with --token-env.")
        return cls(url=url.rstrip("/"), token=token)


def _client(server: Server) -> Any:
    try:  # the optional extra, imported when a server is used: files and the rest of the workbench work without it
        from label_studio_sdk import LabelStudio
    except ImportError:
        raise RuntimeError(_SDK_HINT) from None
    return LabelStudio(base_url=server.url, api_key=server.token, timeout=server.timeout_s)


def _call(server: Server, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
    """``fn(*args, **kw)`` with the SDK's and the network's failures turned into one line naming the server."""
    try:
        return fn(*args, **kw)
    except httpx.HTTPError as e:
        raise ConnectionError(f"Label Studio at {server.url} is not reachable ({type(e).__name__}: {e}); start it "
                              "(label-studio start) or check --url.") from None
    except Exception as e:
        status = getattr(e, "status_code", None)
        if status is None:
            raise
        if status in (401, 403):
            raise PermissionError(f"Label Studio at {server.url} refused the token ({status}) while trying to {what}; "
                                  "copy it from Account & Settings -> Access Token (a legacy token needs the "
                                  "organization's legacy tokens enabled).") from None
        body = getattr(e, "body", None)
        detail = body.get("detail") or body.get("validation_errors") if isinstance(body, dict) else body
        raise RuntimeError(f"Label Studio at {server.url} answered {status} while trying to {what}: {detail}.") from None


def _find_project(client: Any, server: Server, project: str) -> Any | None:
    every = _call(server, "list projects", lambda: list(client.projects.list()))
    if str(project).isdigit():
        return next((p for p in every if p.id == int(project)), None)
    found = [p for p in every if p.title == project]
    if len(found) > 1:
        raise ValueError(f"Label Studio at {server.url} has {len(found)} projects titled {project!r} (ids "
                         f"{', '.join(str(p.id) for p in found)}); pass the id with --project.")
    return found[0] if found else None


def _check_ours(project: Any, server: Server) -> None:
    if not is_our_config(project.label_config):
        raise ValueError(f"Label Studio project {project.title!r} (id {project.id}) at {server.url} has a labelling "
                         "config that is not the workbench's pair review; push to a new project name instead.")


@dataclass
class PushResult:
    project_id: int
    created: bool
    added: int
    already: int  # tasks of this queue the project had from an earlier push


def push_tasks(queue: pd.DataFrame, server: Server, project: str, *, run_dir: str | os.PathLike, round_: int,
               seed: int = 0, suggestions: Mapping[str, str] | None = None) -> PushResult:
    """Create (or update) the project and add one task per pair of ``queue`` routed to people; tasks the project
    already has (same pair, same round) are not added twice. Records the A/B order in the run."""
    client = _client(server)
    _call(server, "check the token", client.users.whoami)
    proj = _find_project(client, server, project)
    created = proj is None
    if created:
        if str(project).isdigit():
            raise ValueError(f"Label Studio at {server.url} has no project {project}; give a title to create one.")
        proj = _call(server, "create the project", client.projects.create, title=project, label_config=LABEL_CONFIG,
                     expert_instruction=INSTRUCTIONS, show_instruction=True, show_skip_button=True)
    else:
        _check_ours(proj, server)
        if proj.label_config.strip() != LABEL_CONFIG.strip():
            _call(server, "update the labelling config", client.projects.update, proj.id, label_config=LABEL_CONFIG)
    tasks, order = tasks_for(queue, round_=round_, seed=seed, suggestions=suggestions)
    have = {(t.data.get("pair_id"), t.data.get("round")) for t in
            _call(server, "list tasks", lambda: list(client.tasks.list(project=proj.id, fields="all")))}
    new = [t for t in tasks if (t["data"]["pair_id"], t["data"]["round"]) not in have]
    _record_order(Path(run_dir), order, target=f"{server.url}#project-{proj.id}")  # before: a pull must find every task
    if new:
        _call(server, "import tasks", client.projects.import_tasks, proj.id, request=new)
    return PushResult(project_id=int(proj.id), created=created, added=len(new), already=len(tasks) - len(new))


def check_project(server: Server, project: str, *, must_exist: bool = False) -> Any | None:
    """The project (None when it does not exist yet) after checking the server answers, takes the token and that the
    project's labelling config is this module's: what a push checks before it computes anything."""
    client = _client(server)
    _call(server, "check the token", client.users.whoami)
    proj = _find_project(client, server, project)
    if proj is None and must_exist:
        raise ValueError(f"Label Studio at {server.url} has no project {project!r}; push a queue to it first.")
    if proj is not None:
        _check_ours(proj, server)
    return proj


def fetch_export(server: Server, project: str) -> tuple[list[dict[str, Any]], int]:
    """(tasks, project id): the project's tasks with their annotations as Label Studio's JSON export (all of them)."""
    proj = check_project(server, project, must_exist=True)
    client = _client(server)
    chunks = _call(server, "export the project", lambda: b"".join(client.projects.exports.download_sync(
        proj.id, export_type="JSON", download_all_tasks=True)))
    return json.loads(chunks), int(proj.id)


def read_export(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Label Studio's JSON export (Export -> JSON) of a pair-review project."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e}); export the project from Label Studio as JSON (not JSON-MIN or CSV).") from None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and "data" in t for t in tasks):
        raise ValueError(f"{path}: not a Label Studio JSON export (a list of tasks with 'data' and 'annotations').")
    return tasks


# ---------------------------------------------------------------- pulling answers into the review log


@dataclass(frozen=True)
class Pulled:
    """One annotation read as a decision, before it is written."""

    decision: Decision
    reviewer: str
    iteration: int


@dataclass
class PullResult:
    added: int = 0  # new decisions
    changed: int = 0  # annotations edited in Label Studio: an undo + the new decision each
    removed: int = 0  # annotations deleted in Label Studio: an undo each (server pulls)
    unchanged: int = 0
    incomplete: int = 0  # annotations without an answer (not written)
    reviewers: list[str] = field(default_factory=list)


def _answer(annotation: Mapping[str, Any]) -> tuple[str | None, str]:
    """(A | B | drop | skip | None, note) of one annotation; a cancelled (skipped in Label Studio) one is a skip."""
    choice, note = None, ""
    for item in annotation.get("result") or []:
        value = item.get("value") or {}
        if item.get("from_name") == "wb_decision" and value.get("choices"):
            choice = value["choices"][0]
        elif item.get("from_name") == "wb_note" and value.get("text"):
            note = " ".join(str(t) for t in value["text"]).strip()
    if annotation.get("was_cancelled"):
        choice = "skip"
    return choice, note


def _annotator(annotation: Mapping[str, Any]) -> str:
    who = annotation.get("completed_by")
    who = who.get("id") if isinstance(who, Mapping) else who
    if who is None:
        raise ValueError(f"annotation {annotation.get('id')} has no completed_by (annotator id); export it again.")
    return f"label-studio-user-{who}"


def decisions_from_export(tasks: Sequence[Mapping[str, Any]], pushed: pd.DataFrame, *, project_id: int | None = None
                          ) -> tuple[list[Pulled], int]:
    """Every answered annotation of ``tasks`` as a decision, mapped back through the recorded A/B order.

    Returns (decisions, incomplete annotations). Raises `ValueError` naming the first task that is not one this
    run pushed, before anything is written.
    """
    order = {(r.pair_id, int(r.round)): r for r in pushed.itertuples()}
    out, incomplete = [], 0
    for task in tasks:
        data = task.get("data") or {}
        pid, round_ = data.get("pair_id"), data.get("round")
        if pid is None or round_ is None:
            raise ValueError(f"task {task.get('id')} has no pair_id / round in its data: not a task the workbench pushed.")
        rec = order.get((pid, int(round_)))
        if rec is None:
            raise ValueError(f"task {task.get('id')}: pair {pid} (round {round_}) is not one this run pushed "
                             f"({'/'.join(TASKS_FILE)}); pull into the run that pushed it.")
        project = task.get("project", project_id)
        for ann in task.get("annotations") or []:
            choice, note = _answer(ann)
            if choice is None:
                incomplete += 1
                continue
            if choice not in ANSWERS:
                raise ValueError(f"task {task.get('id')}, annotation {ann.get('id')}: answer {choice!r} is not one of "
                                 f"{list(ANSWERS)}; is the project's labelling config the workbench's?")
            decision = {"A": "keep" if rec.a_is_chosen else "flip", "B": "flip" if rec.a_is_chosen else "keep"}.get(choice, choice)
            shown = {"label_studio_task": task.get("id"), "label_studio_annotation": ann.get("id"),
                     "answer": choice, "a_is": "chosen" if rec.a_is_chosen else "rejected",
                     "suggestion": data.get("suggestion", "")}
            origin = f"label-studio:project-{project}:annotation-{ann.get('id')}"
            out.append(Pulled(Decision(pid, decision, note, shown, route=str(data.get("route", "")), origin=origin),
                              _annotator(ann), int(round_)))
    return out, incomplete


def pull_into(store: ReviewStore, pulled: Iterable[Pulled], *, incomplete: int = 0, project_id: int | None = None
              ) -> PullResult:
    """Write pulled decisions into ``store`` in one transaction: new ones appended, edited ones as undo + new,
    unchanged ones skipped; with ``project_id`` (a whole project was read) decisions whose annotation is gone are undone."""
    pulled = list(pulled)
    ev = store.events()
    cancelled = set(ev["undoes"].dropna().astype(int))
    live = ev[ev["origin"].notna() & (ev["decision"] != "undo") & ~ev["event_id"].isin(cancelled)]
    current = {o: r for o, r in zip(live["origin"], live.itertuples())}
    cancel, write, result = [], [], PullResult(incomplete=incomplete)
    for p in pulled:
        old = current.get(p.decision.origin)
        if old is not None and (old.decision, old.note, old.reviewer) == (p.decision.decision, p.decision.note, p.reviewer):
            result.unchanged += 1
            continue
        if old is not None:
            cancel.append(int(old.event_id))
            result.changed += 1
        else:
            result.added += 1
        write.append((p.decision, p.reviewer, p.iteration))
    if project_id is not None:
        seen = {p.decision.origin for p in pulled}
        prefix = f"label-studio:project-{project_id}:"
        gone = [int(r.event_id) for o, r in current.items() if o.startswith(prefix) and o not in seen]
        cancel += gone
        result.removed = len(gone)
    if cancel or write:
        store.replace_external(cancel, write, kind="human")
    result.reviewers = sorted({p.reviewer for p in pulled})
    return result


def project_of(tasks: Sequence[Mapping[str, Any]]) -> int | None:
    """The project id the exported tasks belong to (None for an empty export)."""
    ids = {t.get("project") for t in tasks if t.get("project") is not None}
    if len(ids) > 1:
        raise ValueError(f"the export mixes tasks of projects {sorted(ids)}; export one project at a time.")
    return next(iter(ids), None)
