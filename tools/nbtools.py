"""Developer helper: build a notebook from (kind, source) cells without outputs.

Used to (re)write notebooks/*.ipynb consistently: every notebook opens with the same Colab/Kaggle
setup cell and has exactly one cell tagged ``parameters``. Run ``python tools/nbtools.py --check``
to verify the committed notebooks carry no outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

SETUP_CELL = '''# Setup: installs the workbench ONLY on Colab / Kaggle (detected); does nothing elsewhere.
import os, subprocess, sys
if "google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
    _repo = os.path.abspath("..") if os.path.exists("../pyproject.toml") else os.environ.get("WORKBENCH_REPO", "")
    if not _repo:
        raise RuntimeError("Clone the workbench first (README: 'Colab / Kaggle'), or set WORKBENCH_REPO "
                           "to a pip-installable path or git URL.")
    _target = ["-e", _repo] if os.path.isdir(_repo) else [_repo]
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *_target])'''


def build(cells: list[tuple[str, str]], path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(src.strip()))
        else:
            cell = nbformat.v4.new_code_cell(src.strip())
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i:02d}"
    nbformat.write(nb, str(path))


def check(folder: Path) -> list[str]:
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
