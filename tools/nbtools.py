"""Developer check: the committed notebooks carry no outputs and exactly one ``parameters`` cell.

The notebooks in notebooks/ are the source: edit them in JupyterLab, clear outputs, commit. (They were
once generated from Python strings by tools/make_nb*.py; those scripts are gone so an edit is never lost.)
Run ``python tools/nbtools.py --check``; tests/test_notebooks.py runs the same check.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

def check(folder: Path) -> list[str]:
    """Problems found in ``folder/*.ipynb``: outputs left in, or not exactly one ``parameters`` cell."""
    problems = []
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        if len(tagged) != 1:
            problems.append(f"{path.name}: {len(tagged)} cells tagged 'parameters', need exactly 1")
        for c in nb.cells:
            if c.cell_type == "code" and (c.outputs or c.execution_count):
                problems.append(f"{path.name}: cell {c.id} has outputs; strip them before committing")
    return problems


if __name__ == "__main__" and "--check" in sys.argv:
    found = check(Path(__file__).resolve().parents[1] / "notebooks")
    print("\n".join(found) or "notebooks clean")
    sys.exit(1 if found else 0)
