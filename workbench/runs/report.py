"""Write ``runs/<name>/report.html``: one offline page with each step's key tables, numbers and figures.

Notebooks register what matters through `workbench.data.files.save_figure` / `save_table` / `save_metrics`;
this module only gathers those items, grouped by step in pipeline order. The page embeds plotly.js
once, so it opens without network access.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from workbench.data import files as io
from workbench.runs.folder import Run

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0} td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left} .caption{color:#555;font-size:13px}
.done{color:#1a7f37}.failed,.interrupted{color:#cf222e}.running{color:#9a6700} code{background:#f4f4f4;padding:1px 4px}
"""


def _steps_table(state: dict, steps: list[dict]) -> str:
    rows = []
    for s in steps:
        st = state.get(s["name"], {"status": "not run"})
        nb = st.get("notebook")
        link = f'<a href="{html.escape(nb)}">{html.escape(nb)}</a>' if nb else ""
        secs = f"{st['seconds']:.1f}" if "seconds" in st else ""
        err = html.escape(st.get("error", ""))
        rows.append(f"<tr><td>{html.escape(s['name'])}</td><td class='{st['status'].replace(' ', '')}'>{st['status']}</td>"
                    f"<td>{secs}</td><td>{link}</td><td>{err}</td></tr>")
    return ("<table><tr><th>step</th><th>status</th><th>seconds</th><th>executed notebook</th><th>error</th></tr>"
            + "".join(rows) + "</table>")


def _render_item(run_dir: Path, item: dict) -> str:
    import plotly.io as pio

    title = f"<h3 id='{html.escape(item['name'])}'>{html.escape(item.get('title', item['name']))}</h3>"
    caption = f"<p class='caption'>{html.escape(item['caption'])}</p>" if item.get("caption") else ""
    path = run_dir / item["path"]
    if not path.exists():
        return title + f"<p class='failed'>missing file {html.escape(item['path'])}</p>"
    if item["kind"] == "figure":
        fig = pio.from_json(path.read_text(encoding="utf-8"))
        body = fig.to_html(full_html=False, include_plotlyjs=False)
    elif item["kind"] == "table":
        table = pd.read_csv(path, index_col=0 if item.get("index", True) else None)
        more = f"<p class='caption'>showing 50 of {len(table)} rows; full table: {html.escape(item['path'])}</p>" if len(table) > 50 else ""
        body = table.head(50).to_html(float_format=lambda x: f"{x:.3f}", escape=True) + more
    else:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        body = "<table>" + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(f'{v:.4g}' if isinstance(v, float) else str(v))}</td></tr>"
            for k, v in metrics.items()) + "</table>"
    return title + caption + body


def build_report(run_dir: str | Path) -> Path:
    """Gather the run's registered items into ``report.html`` and return its path."""
    from plotly.offline import get_plotlyjs

    run_dir = Path(run_dir)
    pipeline = io.read_json(run_dir / "pipeline.json", default={"run_name": run_dir.name, "steps": []})
    state = io.read_json(run_dir / "steps.json", default={})
    items = Run(run_dir).report_items()
    order = [s["name"] for s in pipeline["steps"]]
    by_step: dict[str, list[dict]] = {}
    for item in items:
        by_step.setdefault(item.get("step") or "other", []).append(item)
    sections = []
    for step in order + sorted(set(by_step) - set(order)):
        if step in by_step:
            sections.append(f"<h2>{html.escape(step)}</h2>" + "".join(_render_item(run_dir, i) for i in by_step[step]))
    total = sum(s.get("seconds", 0) for s in state.values())
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Run {html.escape(pipeline['run_name'])}</title>"
        f"<style>{_CSS}</style><script>{get_plotlyjs()}</script></head><body>"
        f"<h1>RM Curation Workbench — run <code>{html.escape(pipeline['run_name'])}</code></h1>"
        f"<p class='caption'>Folder: {html.escape(str(run_dir.resolve()))}. Total notebook time {total:.0f}s. "
        f"Shared parameters: <code>{html.escape(json.dumps(pipeline.get('parameters', {})))}</code></p>"
        f"<h2>Steps</h2>{_steps_table(state, pipeline['steps'])}" + "".join(sections) + "</body></html>"
    )
    return io.write_text_atomic(run_dir / "report.html", page)
