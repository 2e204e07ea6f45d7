"""The review panel: escaping, durable clicks, undo, filters, shortcuts, resume."""

import pandas as pd
import pytest
from conftest import make_pairs

from workbench.curation.review import ReviewStore
from workbench.curation.review_ui import ReviewUI, conversation_html, render_markdown

EVIL = ['<script>alert("x")</script>', '<img src=x onerror="alert(1)">', '[click](javascript:alert(1))']


@pytest.mark.parametrize("text", EVIL)
def test_html_in_responses_renders_as_text(text):
    out = render_markdown(text)
    assert "<script" not in out and "<img" not in out and "href" not in out
    assert "&lt;" in out or "[click](javascript" in out  # shown as text


def test_markdown_still_renders():
    out = render_markdown("**bold** and `code`\n\n```python\nprint(1 < 2)\n```")
    assert "<strong>bold</strong>" in out and "<code>code</code>" in out and "1 &lt; 2" in out
    assert "<b>user</b>" in conversation_html([{"role": "user", "content": "<b>hi</b>"}])
    assert "&lt;b&gt;hi" in conversation_html([{"role": "user", "content": "<b>hi</b>"}])


def _queue(n=6):
    pairs = make_pairs(n)
    return pairs.assign(score_chosen=1.0, score_rejected=0.5, margin=0.5, p=0.62, pulled_by="g1", puller_p=0.2,
                        similarity=0.9, task_category=["chat", "coding"] * (n // 2), cluster=[0, 1, 2] * (n // 3),
                        iteration=1, desired_attributes=[["helpful", "<i>x</i>"]] * n,
                        annotation_guideline="<script>bad()</script>")


def test_clicks_are_committed_before_the_next_pair_shows(tmp_path):
    queue = _queue()
    queue.loc[0, "rejected"] = EVIL[0]
    store = ReviewStore(tmp_path / "r.sqlite")
    ui = ReviewUI(queue, store, reviewer="ana")
    assert "<script" not in ui.right.value and "<script" not in ui.meta.value
    assert ui.current == 0
    ui.note.value = "swap"
    ui.buttons["flip"].click()
    ev = store.events()
    assert ev[["pair_id", "decision", "reviewer", "note"]].values.tolist() == [[queue["pair_id"][0], "flip", "ana", "swap"]]
    assert ev["shown"][0]["margin"] == 0.5 and ev["shown"][0]["pulled_by"] == "g1" and ev["iteration"][0] == 1
    assert ui.current == 1 and ui.note.value == "" and ui.bar.value == 1
    ui.buttons["keep"].click()
    ui._on_key(None, {"key": "d"}, None)  # keyboard shortcut
    assert store.labels().set_index("pair_id")["decision"].tolist() == ["flip", "keep", "drop"]
    ui.buttons["undo"].click()  # drop on pair 2 cancelled: pair 2 shows again
    assert ui.current == 2 and len(store.labels()) == 2
    # a new session for the same reviewer resumes after her decisions
    again = ReviewUI(queue, store, reviewer="ana")
    assert again.current == 2
    assert ReviewUI(queue, store, reviewer="bo").current == 0  # another reviewer starts at the top


def test_filters_narrow_the_queue_and_the_end_is_clear(tmp_path):
    queue = _queue()
    ui = ReviewUI(queue, ReviewStore(tmp_path / "r.sqlite"), reviewer="ana")
    ui.filters["task_category"].value = "coding"
    assert ui.current == 1
    ui.filters["cluster"].value = "1"
    assert ui.current == 1
    ui.buttons["skip"].click()
    assert ui.current is None and "Nothing left" in ui.header.value and ui.buttons["keep"].disabled
    with pytest.raises(ValueError, match="reviewer name"):
        ReviewUI(queue, ui.store, reviewer="")
    with pytest.raises(ValueError, match="missing columns"):
        ReviewUI(pd.DataFrame({"pair_id": ["a"]}), ui.store, reviewer="ana")
