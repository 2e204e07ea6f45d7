"""The person in Stage 1: an ipywidgets review panel over a queue of retrieved pairs.

Shows the conversation and both responses side by side (markdown, with every piece of HTML in the
data escaped), the pair's attributes and annotation guideline, the RM's scores, margin and ``p``, and
which gold error pulled the pair. Buttons Keep / Flip / Drop / Skip / Undo, a note box, keyboard
shortcuts (k f d s u, after clicking the shortcut strip), a progress bar and filters by cluster,
category and source. Each click is committed to the `workbench.curation.review.ReviewStore` before the next
pair is shown; reopening the panel resumes after the reviewer's last decision.

Works wherever ipywidgets does (JupyterLab, Notebook 7, VS Code, Colab); the shortcut strip is a
small anywidget. Not here: choosing the queue (`workbench.curation.retrieval`) or non-human reviewers.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import anywidget
import ipywidgets as w
import numpy as np
import pandas as pd
import traitlets

from workbench.curation.review import ReviewStore

ALL = "(all)"
SHORTCUTS = {"k": "keep", "f": "flip", "d": "drop", "s": "skip", "u": "undo"}
SHOWN_FIELDS = ("score_chosen", "score_rejected", "margin", "p", "pulled_by", "puller_p", "similarity", "cluster",
                "task_category", "source", "iteration")
FILTERS = ("cluster", "task_category", "source")

_md = None


def render_markdown(text: str) -> str:
    """Markdown to HTML with raw HTML disabled: ``<script>`` or ``<img onerror=...>`` in a response is shown
    as text, never run. Links with ``javascript:`` are refused by markdown-it's link validation."""
    global _md
    if _md is None:
        from markdown_it import MarkdownIt

        _md = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable("table")
    return _md.render(text or "")


def conversation_html(prompt: Sequence[dict[str, str]]) -> str:
    """The conversation, one block per turn, roles labelled; contents rendered by `render_markdown`."""
    blocks = []
    for m in prompt:
        role = html.escape(str(m.get("role", "")))
        blocks.append(f"<div class='wb-turn wb-{role}'><b>{role}</b>{render_markdown(m.get('content', ''))}</div>")
    return "".join(blocks)


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    if isinstance(x, (float, np.floating)):
        return f"{x:.{digits}f}"
    return html.escape(str(x))


def _list_text(x: Any) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    if isinstance(x, (list, tuple, np.ndarray)):
        return ", ".join(str(v) for v in x)
    return str(x)


_STYLE = """<style>
.wb-review .wb-turn {margin: 2px 0 6px 0; padding: 4px 8px; border-left: 3px solid #bbb;}
.wb-review .wb-user {border-color: #4c78a8;} .wb-review .wb-assistant {border-color: #72b7b2;}
.wb-review .wb-resp {padding: 6px 10px; border: 1px solid #ddd; border-radius: 4px; max-height: 420px;
  overflow: auto; white-space: normal;}
.wb-review pre {white-space: pre-wrap;} .wb-review table {border-collapse: collapse;}
.wb-review .wb-meta td {padding: 1px 8px 1px 0; vertical-align: top;}
</style>"""


class KeyShortcuts(anywidget.AnyWidget):
    """A focusable strip: while it has focus, k/f/d/s/u send the decision to Python. Focus keeps the
    notebook's own shortcuts (which also use letters) out of the way."""

    _esm = """
    function render({ model, el }) {
      const box = document.createElement("div");
      box.tabIndex = 0;
      box.className = "wb-keys";
      box.dataset.lmSuppressShortcuts = "true";
      box.style.cssText = "padding:4px 8px;border:1px dashed #999;border-radius:4px;cursor:pointer;font-size:90%;";
      const idle = "⌨ click here for shortcuts: k keep · f flip · d drop · s skip · u undo";
      box.textContent = idle;
      box.addEventListener("focus", () => {
        box.style.borderColor = "#4c78a8"; box.textContent = "⌨ shortcuts on: k keep · f flip · d drop · s skip · u undo";
      });
      box.addEventListener("blur", () => { box.style.borderColor = "#999"; box.textContent = idle; });
      box.addEventListener("keydown", (e) => {
        const k = e.key.toLowerCase();
        if (["k", "f", "d", "s", "u"].includes(k) && !e.ctrlKey && !e.metaKey && !e.altKey) {
          e.preventDefault(); e.stopPropagation();
          model.send({ key: k });
        }
      });
      el.appendChild(box);
    }
    export default { render };
    """
    enabled = traitlets.Bool(True).tag(sync=True)


class ReviewUI:
    """Review panel for one reviewer over a queue (a frame of pairs plus scores, tags and provenance).

    Args:
        queue: one row per pair, in review order; needs the pair columns (``pair_id``, ``prompt``,
            ``chosen``, ``rejected``) and shows, when present, ``source``, ``task_category``, ``cluster``,
            ``objectivity``, ``controversiality``, ``desired_attributes``, ``annotation_guideline``,
            ``score_chosen``, ``score_rejected``, ``margin``, ``p``, ``pulled_by``, ``puller_p``,
            ``similarity``, ``puller_prompt``, ``iteration``.
        store: where every decision is committed.
        reviewer: the person's name (a notebook parameter); decisions they already made are skipped.

    Example: ``ui = ReviewUI(queue, ReviewStore(run.file("review.sqlite")), reviewer="ana"); ui``.
    """

    def __init__(self, queue: pd.DataFrame, store: ReviewStore, *, reviewer: str, kind: str = "human"):
        if not reviewer or not reviewer.strip():
            raise ValueError("ReviewUI needs a reviewer name: set the notebook parameter reviewer = 'your name'.")
        missing = [c for c in ("pair_id", "prompt", "chosen", "rejected") if c not in queue.columns]
        if missing:
            raise ValueError(f"review queue is missing columns {missing}; build it with workbench.curation.stage1.review_queue.")
        self.queue = queue.reset_index(drop=True)
        self.store, self.reviewer, self.kind = store, reviewer, kind
        self.current: int | None = None
        self._build()
        self.show_next()

    # ------------------------------------------------------------ widgets
    def _build(self) -> None:
        self.header = w.HTML()
        self.conversation = w.HTML()
        self.left_title, self.right_title = w.HTML(), w.HTML()
        self.left, self.right = w.HTML(), w.HTML()
        self.meta = w.HTML()
        self.note = w.Text(placeholder="note (optional, saved with the decision)", layout=w.Layout(width="60%"))
        styles = {"keep": "success", "flip": "warning", "drop": "danger", "skip": "", "undo": "info"}
        self.buttons = {name: w.Button(description=f"{name.capitalize()} ({key})", button_style=styles[name],
                                       tooltip=f"{name} — shortcut {key}")
                        for key, name in SHORTCUTS.items()}
        for name, button in self.buttons.items():
            button.on_click(lambda _b, name=name: self.act(name))
        self.keys = KeyShortcuts()
        self.keys.on_msg(self._on_key)
        self.filters = {}
        for col in FILTERS:
            values = sorted({str(v) for v in self.queue[col].dropna()}) if col in self.queue.columns else []
            dd = w.Dropdown(options=[ALL, *values], value=ALL, description=col.replace("task_", ""),
                            layout=w.Layout(width="240px"), disabled=not values)
            dd.observe(lambda _c: self.show_next(), names="value")
            self.filters[col] = dd
        self.bar = w.IntProgress(min=0, max=max(len(self.queue), 1), layout=w.Layout(width="40%"))
        self.status = w.HTML()
        half = w.Layout(width="50%", padding="0 6px")
        responses = w.HBox([w.VBox([self.left_title, self.left], layout=half),
                            w.VBox([self.right_title, self.right], layout=half)])
        self.widget = w.VBox([
            w.HTML(_STYLE), w.HBox(list(self.filters.values())), w.HBox([self.bar, self.status]), self.header,
            self.conversation, responses, self.meta, self.note, w.HBox(list(self.buttons.values())), self.keys,
        ])
        self.widget.add_class("wb-review")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------ queue
    def visible(self) -> pd.DataFrame:
        """The queue under the current filters, minus pairs this reviewer has decided (or skipped)."""
        done = self.store.reviewed_ids(self.reviewer)
        q = self.queue[~self.queue["pair_id"].isin(done)]
        for col, dd in self.filters.items():
            if dd.value != ALL:
                q = q[q[col].astype(str) == dd.value]
        return q

    def show_next(self) -> None:
        q = self.visible()
        self.current = None if q.empty else int(q.index[0])
        self._render()

    def _render(self) -> None:
        done = self.store.reviewed_ids(self.reviewer)
        n_done = int(self.queue["pair_id"].isin(done).sum())
        counts = self.store.progress(self.reviewer)
        self.bar.value = n_done
        self.status.value = (f"&nbsp;{n_done} of {len(self.queue)} reviewed by <b>{html.escape(self.reviewer)}</b> · "
                             + " · ".join(f"{k} {v}" for k, v in counts.items()))
        for b in ("keep", "flip", "drop", "skip"):
            self.buttons[b].disabled = self.current is None
        if self.current is None:
            self.header.value = "<h4>Nothing left to review under these filters. 🎉</h4>"
            for box in (self.conversation, self.left, self.right, self.meta, self.left_title, self.right_title):
                box.value = ""
            return
        row = self.queue.loc[self.current]
        get = row.get
        self.header.value = (f"<b>pair</b> <code>{_fmt(row['pair_id'])}</code> · <b>source</b> {_fmt(get('source'))} · "
                             f"<b>category</b> {_fmt(get('task_category'))} · <b>cluster</b> {_fmt(get('cluster'))}")
        self.conversation.value = conversation_html(row["prompt"])
        self.left_title.value = (f"<b>Chosen</b> (current label) · RM score {_fmt(get('score_chosen'))}")
        self.right_title.value = (f"<b>Rejected</b> · RM score {_fmt(get('score_rejected'))}")
        self.left.value = f"<div class='wb-resp'>{render_markdown(row['chosen'])}</div>"
        self.right.value = f"<div class='wb-resp'>{render_markdown(row['rejected'])}</div>"
        puller = _fmt(get("pulled_by"))
        if isinstance(get("puller_prompt"), str):
            puller += f" — “{html.escape(get('puller_prompt')[:200])}”"
        rows = [("RM margin / p", f"{_fmt(get('margin'))} / {_fmt(get('p'))} (p = P(chosen better) under the current RM)"),
                ("pulled by gold pair", f"{puller} (its p {_fmt(get('puller_p'))}, similarity {_fmt(get('similarity'))})"),
                ("objectivity · controversiality", f"{_fmt(get('objectivity'))} · {_fmt(get('controversiality'))}"),
                ("desired attributes", html.escape(_list_text(get("desired_attributes")))),
                ("annotation guideline", html.escape(_list_text(get("annotation_guideline"))))]
        self.meta.value = "<table class='wb-meta'>" + "".join(
            f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows) + "</table>"

    # ------------------------------------------------------------ actions
    def _on_key(self, _widget: Any, content: dict, _buffers: Any) -> None:
        action = SHORTCUTS.get(str(content.get("key", "")).lower())
        if action:
            self.act(action)

    def act(self, action: str) -> int | None:
        """Record ``action`` for the shown pair (or undo the last one) and show the next pair.

        The store commits before the panel moves on: a crash right after a click loses nothing.
        """
        if action == "undo":
            event = self.store.undo(self.reviewer)
            self.show_next()
            return event
        if self.current is None:
            return None
        row = self.queue.loc[self.current]
        shown = {k: row[k] for k in SHOWN_FIELDS if k in row.index and not _missing(row[k])}
        event = self.store.record(row["pair_id"], action, reviewer=self.reviewer, kind=self.kind,
                                  note=self.note.value.strip(), shown=shown,
                                  iteration=int(row["iteration"]) if "iteration" in row.index and not _missing(row["iteration"]) else None)
        self.note.value = ""
        self.show_next()
        return event


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x))
