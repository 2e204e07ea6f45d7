"""Developer check: the notebooks are the source, edited in JupyterLab, and each is paired with a jupytext
percent-format ``.py`` next to it (readable diffs). The committed ones carry no outputs, exactly one ``parameters``
cell, short code cells without function definitions, a conclusions section, and match their ``.py``.

After editing a notebook (or its .py): ``jupytext --sync notebooks/<name>.ipynb``. Run ``python tools/nbtools.py
--check``; tests/test_notebooks.py runs the same check.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat

# The repository's public address: the one place the "Open in Colab" links and the Colab/Kaggle setup cells
# take it from. After changing it, run `python tools/nbtools.py --sync-setup` (rewrites those two cells only).
REPO_URL = "https://github.com/rm-curation-workbench/rm-curation-workbench"
MAX_CELL_LINES = 15  # a longer cell is logic that belongs in the package, where it is tested
INTERACTIVE = ("04b_review_by_hand.ipynb",)  # need a person; not in configs/demo.yaml (the smoke test runs them)
SETUP_MARK = "# Setup (Colab / Kaggle only)"
SETUP_CELL = f"""{SETUP_MARK}: clone and install the workbench, fetch the public data. Elsewhere: nothing.
import os
import subprocess
import sys

if "google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
    _url = os.environ.get("WORKBENCH_REPO_URL", "{REPO_URL}")
    _run = print if os.environ.get("WORKBENCH_SETUP_DRY_RUN") else subprocess.check_call  # tests: show, do not run
    _repo = os.path.abspath("..") if os.path.exists("../pyproject.toml") else os.path.abspath("rm-curation-workbench")
    if not os.path.exists(os.path.join(_repo, "pyproject.toml")):
        _run(["git", "clone", "--depth", "1", _url, _repo])
    _run([sys.executable, "-m", "pip", "install", "-q", "-e", _repo])
    sys.path.insert(0, _repo)  # this kernel sees the editable install without a restart
    _run([sys.executable, "-m", "workbench", "data", "ensure"])  # ~10 MB from the Hub / GitHub, licenses printed
    if os.path.isdir(os.path.join(_repo, "notebooks")):
        os.chdir(os.path.join(_repo, "notebooks"))  # relative paths (run_dir) as in the repository"""


def colab_badge(notebook_name: str) -> str:
    """Markdown of the "Open in Colab" link for ``notebooks/<notebook_name>`` of `REPO_URL`."""
    slug = REPO_URL.removeprefix("https://github.com/")
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{slug}/blob/main/notebooks/{notebook_name})")


def sync_setup(folder: Path) -> list[str]:
    """Give every notebook the current setup cell and Colab link (the two cells that carry `REPO_URL`)."""
    changed = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        before = nbformat.writes(nb)
        setup = next(c for c in nb.cells if c.cell_type == "code" and "Setup" in c.source.splitlines()[0])
        setup.source = SETUP_CELL
        title = nb.cells[0]
        lines = [line for line in title.source.splitlines() if "colab-badge.svg" not in line]
        title.source = "\n".join(lines[:1] + ["", colab_badge(path.name)] + [x for x in lines[1:] if x or True])
        title.source = title.source.replace("\n\n\n", "\n\n")
        if nbformat.writes(nb) != before:
            nbformat.write(nb, str(path))
            jupytext.write(nb, str(path.with_suffix(".py")), fmt="py:percent")
            changed.append(path.name)
    return changed

def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def pairing_problems(path: Path) -> list[str]:
    """The notebook and its jupytext ``.py`` must hold the same cells (the .py is what diffs and reviews read)."""
    script = path.with_suffix(".py")
    if not script.exists():
        return [f"{path.name}: no paired {script.name}; run `jupytext --set-formats ipynb,py:percent {path}`"]
    if _cells(nbformat.read(str(path), as_version=4)) != _cells(jupytext.read(str(script))):
        return [f"{path.name} and {script.name} differ; run `jupytext --sync {path}` (the newer file wins)"]
    return []


def style_problems(path: Path, nb: nbformat.NotebookNode) -> list[str]:
    """Lab-notes shape: short code cells, no function definitions, a conclusions section."""
    problems = []
    for k, c in enumerate(nb.cells):
        if c.cell_type != "code" or c.source.startswith(SETUP_MARK) or "parameters" in c.metadata.get("tags", []):
            continue
        lines = sum(1 for line in c.source.splitlines() if line.strip())
        if lines > MAX_CELL_LINES:
            problems.append(f"{path.name}: cell {k} has {lines} lines (> {MAX_CELL_LINES}); move logic into workbench/")
        if any(line.lstrip().startswith(("def ", "class ")) for line in c.source.splitlines()):
            problems.append(f"{path.name}: cell {k} defines a function or class; put it in workbench/ and test it")
    if not any(c.cell_type == "markdown" and "## Conclusions" in c.source for c in nb.cells):
        problems.append(f"{path.name}: no '## Conclusions' section computed from the run")
    return problems


def check(folder: Path) -> list[str]:
    """Problems found in ``folder/*.ipynb``: outputs left in, not exactly one ``parameters`` cell, a setup cell /
    Colab link that differs from `SETUP_CELL` / `colab_badge` (run ``--sync-setup``), a missing or stale paired
    ``.py``, or a cell that breaks the lab-notes shape (`style_problems`)."""
    problems = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        if not any(c.cell_type == "code" and c.source == SETUP_CELL for c in nb.cells):
            problems.append(f"{path.name}: its setup cell is not tools/nbtools.py's SETUP_CELL; run --sync-setup")
        if colab_badge(path.name) not in nb.cells[0].source:
            problems.append(f"{path.name}: no Open-in-Colab link to {REPO_URL}; run --sync-setup")
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        if len(tagged) != 1:
            problems.append(f"{path.name}: {len(tagged)} cells tagged 'parameters', need exactly 1")
        for c in nb.cells:
            if c.cell_type == "code" and (c.outputs or c.execution_count):
                problems.append(f"{path.name}: cell {c.id} has outputs; strip them before committing")
        problems += pairing_problems(path) + style_problems(path, nb)
    return problems


if __name__ == "__main__" and "--sync-setup" in sys.argv:
    print("\n".join(sync_setup(Path(__file__).resolve().parents[1] / "notebooks")) or "notebooks already in sync")

if __name__ == "__main__" and "--check" in sys.argv:
    found = check(Path(__file__).resolve().parents[1] / "notebooks")
    print("\n".join(found) or "notebooks clean")
    sys.exit(1 if found else 0)
