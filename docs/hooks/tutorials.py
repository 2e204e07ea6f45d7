"""MkDocs hook: the notebooks become the Tutorials section, with their outputs when a run folder is given.

``make docs RUN=runs/demo`` sets ``WORKBENCH_DOCS_RUN``: each notebook of ``notebooks/`` is shown as that run
executed it (``<run>/notebooks/<name>.ipynb``); a notebook the run did not execute, or every notebook when no run
is given, is shown unexecuted with a note saying so. The copies are prepared in a temporary folder (the
repository is never written) and rendered by mkdocs-jupyter. On the way:

- plotly outputs (``application/vnd.plotly.v1+json``, which nbconvert cannot draw) become a ``<div>`` drawn by
  the plotly.js of the installed plotly package, copied into the site (no CDN);
- tqdm progress-bar widgets are dropped (without a kernel they show their first frame, 0%);
- remote badge images (Open in Colab) become plain links, and the MathJax / mermaid loaders that nbconvert puts
  in every page (CDN URLs) are removed;
- after the build every page and stylesheet is checked for a script, stylesheet, image or import fetched over
  http(s); each one found is a warning, so ``mkdocs build --strict`` fails: the site works offline.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import nbformat
import plotly
import plotly.io as pio
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
RUN_ENV = "WORKBENCH_DOCS_RUN"
TUTORIALS_NAV = "Tutorials"
PLOTLY_JS = "assets/javascripts/plotly.min.js"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
log = logging.getLogger("mkdocs.hooks.tutorials")

_PROGRESS = re.compile(r"\d+%\|")
_REMOTE_BADGE = re.compile(r"\[!\[([^\]]*)\]\(https?://[^)]+\)\]\((https?://[^)]+)\)")
_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
_MERMAID = re.compile(r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded", async \(\) => \{\s*'
                      r'const diagrams = document\.querySelectorAll\("\.jp-Mermaid.*?</script>', re.S)
# What a page must not fetch from another host: script and image sources, stylesheets (and other fetched <link>s),
# CSS and JS imports. A canonical or alternate <link> is an address, not a fetch.
_REMOTE = re.compile(r"""<script[^>]*\ssrc=["']?(?:https?:)?//|<img[^>]*\ssrc=["']?(?:https?:)?//"""
                     r"""|@import\s+(?:url\()?["']?(?:https?:)?//|url\(["']?https?://|import\(["']https?://""", re.I)
_LINK = re.compile(r"<link\b[^>]*>", re.I)
_REMOTE_HREF = re.compile(r"""\shref=["']?(?:https?:)?//""", re.I)
_ADDRESS_ONLY = re.compile(r"""\srel=["']?(?:canonical|alternate|author|license|me)\b""", re.I)


def remote_fetches(text: str) -> list[str]:
    """The parts of an HTML page or stylesheet that would fetch from another host (the start of each)."""
    found = [m.group(0) for m in _REMOTE.finditer(text)]
    found += [tag for tag in _LINK.findall(text) if _REMOTE_HREF.search(tag) and not _ADDRESS_ONLY.search(tag)]
    return found


_state: dict = {}


def run_folder() -> Path | None:
    """The run folder named by ``$WORKBENCH_DOCS_RUN`` (relative to the repository), or None when it is unset."""
    value = os.environ.get(RUN_ENV, "").strip()
    if not value:
        return None
    path = Path(value) if Path(value).is_absolute() else REPO / value
    if not (path / "notebooks").is_dir():
        raise PluginError(f"RUN={value!r}: {path} has no notebooks/ folder of executed notebooks. Give a run folder "
                          "that `workbench run` wrote (make demo writes runs/demo), or leave RUN empty for the "
                          "notebooks unexecuted.")
    return path


def notebook_title(nb: nbformat.NotebookNode, default: str) -> str:
    """The first level-1 heading of the notebook's markdown cells, e.g. ``01 · Prepare the preference data``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^# (.+)$", cell.source, re.M)
            if match:
                return match.group(1).strip()
    return default


def prepare_notebook(name: str, run: Path | None, plotly_src: str) -> nbformat.NotebookNode:
    """The notebook as the docs show it: the run's executed copy when there is one, else the repository's."""
    executed = run / "notebooks" / f"{name}.ipynb" if run else None
    if executed is not None and executed.exists():
        nb = nbformat.read(str(executed), as_version=4)
        note = _executed_note(name, run)
    else:
        nb = nbformat.read(str(NOTEBOOKS / f"{name}.ipynb"), as_version=4)
        note = _unexecuted_note(name, run)
    nb.metadata.pop("widgets", None)  # widget state cannot be drawn offline; nbconvert would fetch its JS from a CDN
    first_figure = True
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _REMOTE_BADGE.sub(r"[\1](\2)", cell.source)
        if cell.get("outputs"):  # progress-bar widgets would render statically at their initial 0%
            cell.outputs = [o for o in cell.outputs if not _is_progress_widget(o)]
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                html = pio.to_html(data[PLOTLY_MIME], include_plotlyjs=False, full_html=False, validate=False,
                                   config={"responsive": True})
                if first_figure:
                    html = f'<script src="{plotly_src}"></script>\n' + html
                    first_figure = False
                output["data"] = {"text/html": html}
            elif WIDGET_MIME in data and "text/plain" in data:
                data.pop(WIDGET_MIME)  # any other widget is only live in Jupyter: its text stands in
    position = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    # a fixed id (new cells get random ones): the same notebook gives the same file, and mkdocs-jupyter's cache hits
    nb.cells.insert(position, nbformat.v4.new_markdown_cell(note, id="workbench-docs-note"))
    return nb


def _is_progress_widget(output: nbformat.NotebookNode) -> bool:
    """A tqdm bar drawn as a widget: its text fallback is the bar as first drawn (``0%|``), not as it ended."""
    data = output.get("data", {})
    return WIDGET_MIME in data and bool(_PROGRESS.search(data.get("text/plain", "")))


def _admonition(kind: str, title: str, body: str) -> str:
    return f'<div class="admonition {kind}"><p class="admonition-title">{title}</p><p>{body}</p></div>'


def _executed_note(name: str, run: Path) -> str:
    steps = _read_json(run / "steps.json")
    step = steps.get(name, {})
    where = f"<code>{_display(run)}/notebooks/{name}.ipynb</code>"
    if step.get("status") == "failed":
        return _admonition("failure", "This step failed in that run",
                           f"Shown as executed in {where}, up to the failing cell: {step.get('error', '')}")
    took = f", {step['seconds']:.0f} s" if "seconds" in step else ""
    params = ", ".join(f"<code>{k}={v!r}</code>" for k, v in step.get("parameters", {}).items() if k != "run_dir")
    return _admonition("success", "Executed output", f"Shown as the run executed it: {where} "
                       f"({step.get('status', 'executed')}{took}). Parameters: {params or 'the defaults'}.")


def _unexecuted_note(name: str, run: Path | None) -> str:
    why = (f"The run <code>{_display(run)}</code> did not execute this notebook." if run else
           "These docs were built without a run folder.")
    return _admonition("note", "Unexecuted notebook", f"{why} To read it with its outputs and interactive figures, "
                       "run the pipeline and build the docs from its folder: <code>make demo</code>, then "
                       "<code>make docs RUN=runs/demo</code>.")


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _relative(from_page: str, target: str) -> str:
    """The URL of `target` seen from the page whose URL is `from_page` (both relative to the site root)."""
    depth = from_page.rstrip("/").count("/") + (1 if from_page.endswith("/") else 0)
    return "../" * depth + target


# ---------------------------------------------------------------- hook events


def on_config(config):
    run = run_folder()
    names = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    tmp = Path(tempfile.mkdtemp(prefix="workbench-docs-"))
    entries = []
    for name in names:
        page_url = f"tutorials/{name}/" if config.use_directory_urls else f"tutorials/{name}.html"
        nb = prepare_notebook(name, run, _relative(page_url, PLOTLY_JS))
        path = tmp / "tutorials" / f"{name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))
        entries.append({notebook_title(nb, name): f"tutorials/{name}.ipynb"})
    _state.update(tmp=tmp, names=names, run=run)
    for entry in config.nav or []:
        if isinstance(entry, dict) and TUTORIALS_NAV in entry:
            entry[TUTORIALS_NAV] = [e for e in entry[TUTORIALS_NAV] if not str(e).endswith(".ipynb")] + entries
    log.info("tutorials: %d notebooks, %s", len(names), f"executed from {run}" if run else "unexecuted (no RUN)")
    return config


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns .ipynb files into pages
def on_files(files, config):
    for name in _state["names"]:  # real files under src_dir: mkdocs-jupyter reads them by path
        files.append(File(f"tutorials/{name}.ipynb", src_dir=str(_state["tmp"]), dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
    files.append(File.generated(config, PLOTLY_JS, abs_src_path=str(Path(plotly.__file__).parent / "package_data" / "plotly.min.js")))
    return files


def on_page_content(html, page, config, files):
    if page.file.src_uri.startswith("tutorials/") and page.file.src_uri.endswith(".ipynb"):
        html = _MERMAID.sub("", _MATHJAX.sub("", html))
    return html


def on_post_build(config):
    site = Path(config.site_dir)
    for path in sorted([*site.rglob("*.html"), *site.rglob("*.css")]):
        for fetch in remote_fetches(path.read_text(encoding="utf-8", errors="replace")):
            log.warning("%s fetches from another host (the site must work offline): %s", path.relative_to(site),
                        fetch[:160])
    _cleanup()


def on_build_error(error):
    _cleanup()


def _cleanup() -> None:
    tmp = _state.pop("tmp", None)
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
