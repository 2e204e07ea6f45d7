"""The install contract: pins agree everywhere, torch stays CPU, .ci/run calls the README's test command."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _pins(lines):
    return {m.group(1).lower(): m.group(2) for line in lines if (m := re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", line))}


def test_environment_yml_mirrors_constraints():
    constraints = _pins((REPO / "requirements" / "constraints.txt").read_text().splitlines())
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == constraints
    assert constraints["torch"] == "2.13.0"


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert (REPO / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"


def test_gpu_extra_is_optional():
    text = (REPO / "pyproject.toml").read_text()
    deps = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert "unsloth" not in deps and "ray" not in deps
    assert re.search(r'^gpu = \[.*"unsloth"', text, re.M) and re.search(r"^scale = \[.*ray", text, re.M)
