"""Run the notebook sequence with papermill into a run folder, resumably, then write the report.

A pipeline config (YAML) names the run, shared parameters and the steps::

    run_name: demo
    runs_dir: runs
    parameters: {smoke: false, seed: 0}      # given to every notebook that declares them
    steps:
      - {name: 01_prepare_data, notebook: notebooks/01_prepare_data.ipynb, parameters: {n_hh_helpful: 800}}

Each notebook also receives ``run_dir``. A step whose notebook and parameters are unchanged since
it last succeeded is skipped (``force=True`` re-runs everything); once a step runs, every later
step runs too, because its inputs may have changed. Notebooks run on *this* interpreter through a
private kernelspec, whatever kernels happen to be installed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.data import files as io
from workbench.runs.config_file import read_yaml, where
from workbench.runs.folder import start_run
from workbench.runs.report import build_report

KERNEL_NAME = "workbench-current-python"


@dataclass(frozen=True)
class StepSpec:
    """One notebook of the pipeline and its own parameters."""

    name: str
    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineConfig:
    """A whole run: where it goes, shared parameters, and the ordered steps."""

    run_name: str
    runs_dir: Path
    steps: tuple[StepSpec, ...]
    parameters: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)  # --set: beat shared and step parameters

    @property
    def run_dir(self) -> Path:
        return (self.runs_dir / self.run_name).resolve()


class StepFailed(RuntimeError):
    """A notebook cell raised; the message shows the step, the cell and the error."""


STEP_KEYS = ("name", "notebook", "parameters")
TOP_KEYS = ("run_name", "runs_dir", "parameters", "steps")


def _did_you_mean(word: str, options: Any) -> str:
    close = difflib.get_close_matches(str(word), sorted(map(str, options)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _resolve_notebook(raw: str, config_dir: Path, at: str) -> Path:
    """The notebook ``raw`` names, looked for beside the config, in the project, then in the working folder."""
    bases = list(dict.fromkeys(b.resolve() for b in (config_dir, io.REPO_ROOT, Path.cwd())))  # each folder once
    for base in bases:
        p = (base / raw).resolve()
        if p.exists():
            return p
    hint = ""
    for base in bases:  # a misspelt name: the closest notebook in the folder it points into
        folder = (base / raw).parent
        close = difflib.get_close_matches(Path(raw).name, sorted(p.name for p in folder.glob("*.ipynb")), n=1) if folder.is_dir() else []
        if close:
            hint = f" (did you mean {str(Path(raw).with_name(close[0]))!r}?)"
            break
    raise FileNotFoundError(f"{at}: notebook {raw!r} not found in {', '.join(map(str, bases))}{hint}.")


def load_pipeline_config(path: str | os.PathLike, *, run_name: str | None = None, runs_dir: str | None = None,
                         overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """Read and check a pipeline YAML; errors are one line naming the file, the line and the offending key.

    A YAML syntax error, a key given twice, a non-UTF-8 file (`workbench.runs.config_file.read_yaml`), an unknown
    key or a notebook that is not there (with a "did you mean") are all `ValueError` / `FileNotFoundError`.

    ``overrides`` (the CLI's ``--set key=value``) win over shared and step parameters, in every
    notebook that declares them.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such pipeline config; see configs/demo.yaml for an example.")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; pass a pipeline config (.yaml) such as configs/demo.yaml.")
    raw = read_yaml(path)
    if raw is None:
        raise ValueError(f"{path}, line 1: the config is empty; it needs at least steps: [...] (see configs/demo.yaml).")
    if not isinstance(raw, dict):
        raise ValueError(f"{path}, line 1: the top level must be a mapping with run_name, steps, ...; got {type(raw).__name__}.")
    unknown = sorted((k for k in raw if k not in TOP_KEYS), key=lambda k: raw.line_of(k))
    if unknown:
        hints = "".join(_did_you_mean(k, TOP_KEYS) for k in unknown[:1])
        raise ValueError(f"{where(path, raw, unknown[0])}: unknown keys {unknown}{hints}; allowed: {', '.join(TOP_KEYS)}.")
    for key in ("run_name", "runs_dir"):
        if isinstance(raw.get(key), (list, dict)):
            raise ValueError(f"{where(path, raw, key)}: {key} must be a name, got {type(raw[key]).__name__} {raw[key]!r}.")
    if raw.get("parameters") is not None and not isinstance(raw["parameters"], dict):
        raise ValueError(f"{where(path, raw, 'parameters')}: parameters must be a mapping of name: value, "
                         f"got {type(raw['parameters']).__name__}.")
    steps_raw = raw.get("steps") or []
    if not isinstance(steps_raw, list) or not steps_raw:
        raise ValueError(f"{where(path, raw, 'steps')}: 'steps' must be a non-empty list of {{name, notebook, parameters}}.")
    steps = []
    for i, s in enumerate(steps_raw):
        if not isinstance(s, dict) or "notebook" not in s:
            raise ValueError(f"{where(path, s if isinstance(s, dict) else raw, 'steps')}: steps[{i}] needs a 'notebook' "
                             f"key, got {s!r}.")
        for key in sorted(set(s) - set(STEP_KEYS), key=str):
            raise ValueError(f"{where(path, s, key)}: steps[{i}] ({s.get('name', s['notebook'])}) has unknown key {key!r}"
                             f"{_did_you_mean(key, STEP_KEYS)}; allowed: {list(STEP_KEYS)}.")
        params = s.get("parameters") or {}
        if not isinstance(params, dict):
            raise ValueError(f"{where(path, s, 'parameters')}: steps[{i}].parameters must be a mapping, got {type(params).__name__}.")
        if not isinstance(s["notebook"], str) or isinstance(s.get("name"), (list, dict)):
            raise ValueError(f"{where(path, s, 'notebook')}: steps[{i}] needs a notebook path and a name as text, "
                             f"got notebook {s['notebook']!r}, name {s.get('name')!r}.")
        nb = _resolve_notebook(s["notebook"], path.parent, where(path, s, "notebook"))
        steps.append(StepSpec(name=str(s.get("name") or nb.stem), notebook=nb, parameters=params))
        if [t.name for t in steps].count(steps[-1].name) > 1:
            raise ValueError(f"{where(path, s)}: step names must be unique, {steps[-1].name!r} is given twice; "
                             f"got {[t.name for t in steps]}.")
    return PipelineConfig(
        run_name=str(run_name or raw.get("run_name") or path.stem),
        runs_dir=Path(runs_dir or raw.get("runs_dir") or "runs"),
        steps=tuple(steps),
        parameters=dict(raw.get("parameters") or {}),
        overrides=dict(overrides or {}),
    )


@contextmanager
def current_python_kernel() -> Iterator[str]:
    """A temporary kernelspec that launches ``sys.executable``; yields its name.

    papermill otherwise uses the kernel named in the notebook's metadata, which may be missing or
    point at another environment: the classic "works in Jupyter, fails in papermill" trap.
    """
    with tempfile.TemporaryDirectory(prefix="wb-kernel-") as tmp:
        spec_dir = Path(tmp) / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": f"workbench ({sys.executable})", "language": "python"}
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        old = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = tmp + (os.pathsep + old if old else "")
        try:
            yield KERNEL_NAME
        finally:
            if old is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = old


def step_parameters(step: StepSpec, cfg: PipelineConfig) -> dict[str, Any]:
    """Shared parameters the notebook declares, then the step's own, then ``--set`` overrides, then ``run_dir``.

    Raises:
        ValueError: when a step parameter is not declared in the notebook's ``parameters`` cell
            (a typo would otherwise be ignored silently by papermill).
    """
    import papermill

    declared = set(papermill.inspect_notebook(str(step.notebook)))
    unknown = sorted(set(step.parameters) - declared)
    if unknown:
        hints = "".join(_did_you_mean(k, declared) for k in unknown)
        raise ValueError(f"step {step.name!r}: parameters {unknown} are not in {step.notebook.name}'s parameters cell"
                         f"{hints}; declared: {sorted(declared)}.")
    params = {k: v for k, v in cfg.parameters.items() if k in declared}
    params.update(step.parameters)
    params.update({k: v for k, v in cfg.overrides.items() if k in declared})
    params["run_dir"] = str(cfg.run_dir)
    return params


def validate_pipeline(cfg: PipelineConfig) -> None:
    """Check the whole config against the notebooks before any step runs; raise naming the first bad key.

    Every step's parameters must be declared by its notebook, every shared parameter and every ``--set``
    override by at least one notebook (a typo such as ``smok`` would otherwise be dropped silently).
    """
    import papermill

    declared = {s.name: set(papermill.inspect_notebook(str(s.notebook))) for s in cfg.steps}
    for step in cfg.steps:
        step_parameters(step, cfg)
    anywhere = set().union(*declared.values())
    for what, given in (("shared parameters", cfg.parameters), ("--set", cfg.overrides)):
        unknown = sorted(set(given) - anywhere)
        if unknown:
            hints = "".join(_did_you_mean(k, anywhere) for k in unknown)
            raise ValueError(f"{what} {unknown}: no notebook of this pipeline declares them{hints}; "
                             f"declared: {sorted(anywhere)}.")


def _fingerprint(step: StepSpec, params: Mapping[str, Any]) -> str:
    h = hashlib.sha256(step.notebook.read_bytes())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _describe_failure(step: StepSpec, err: Exception, out_nb: Path) -> str:
    src = getattr(err, "source", "")
    cell = getattr(err, "cell_index", "?")
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    source = "\n".join("    " + line for line in str(src).splitlines()[:20])
    return (f"step {step.name!r} failed in cell {cell} of {step.notebook.name}:\n{source}\n"
            f"{ename}: {evalue}\nExecuted notebook (with the error shown): {out_nb}")


def run_pipeline(cfg: PipelineConfig, *, force: bool = False, log: Callable[[str], None] = print,
                 progress_bar: bool = True) -> Path:
    """Execute the steps into ``cfg.run_dir``, skipping completed ones, then write ``report.html``.

    Returns:
        The run folder.

    Raises:
        StepFailed: at the first failing cell (the report is still written for what ran).
    """
    import papermill

    validate_pipeline(cfg)  # a typo in step 07 fails now, not after steps 01-06 ran
    run = start_run(cfg.run_dir)
    io.write_json({"run_name": cfg.run_name, "parameters": {**cfg.parameters, **cfg.overrides},
                   "steps": [{"name": s.name, "notebook": str(s.notebook), "parameters": s.parameters} for s in cfg.steps]},
                  run.file("pipeline.json"))
    state_path = run.file("steps.json")
    state: dict[str, Any] = io.read_json(state_path, default={})
    dirty = force
    t_all = time.time()
    with current_python_kernel() as kernel:
        for i, step in enumerate(cfg.steps, start=1):
            params = step_parameters(step, cfg)
            fp = _fingerprint(step, params)
            prev = state.get(step.name, {})
            if not dirty and prev.get("status") == "done" and prev.get("fingerprint") == fp:
                log(f"[{i}/{len(cfg.steps)}] {step.name}: done before ({prev.get('seconds', 0):.0f}s), skipped")
                continue
            dirty = True
            out_nb = run.file("notebooks", f"{step.name}.ipynb")
            log(f"[{i}/{len(cfg.steps)}] {step.name}: running {step.notebook.name} -> {out_nb}")
            state[step.name] = {"status": "running", "fingerprint": fp, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                "notebook": f"notebooks/{step.name}.ipynb", "parameters": params}
            io.write_json(state, state_path)
            t0 = time.time()
            try:
                papermill.execute_notebook(str(step.notebook), str(out_nb), parameters=params, kernel_name=kernel,
                                           progress_bar=progress_bar, cwd=str(step.notebook.parent))
            except Exception as err:  # PapermillExecutionError (a cell raised) and kernel start-up failures
                error = f"{getattr(err, 'ename', type(err).__name__)}: {getattr(err, 'evalue', err)}"
                state[step.name].update(status="failed", seconds=time.time() - t0, error=error)
                io.write_json(state, state_path)
                build_report(run.path)
                raise StepFailed(_describe_failure(step, err, out_nb)) from None
            except KeyboardInterrupt:
                state[step.name].update(status="interrupted", seconds=time.time() - t0)
                io.write_json(state, state_path)
                raise
            state[step.name].update(status="done", seconds=time.time() - t0)
            io.write_json(state, state_path)
            log(f"[{i}/{len(cfg.steps)}] {step.name}: done in {time.time() - t0:.1f}s")
    report = build_report(run.path)
    log(f"run {cfg.run_name!r} finished in {time.time() - t_all:.1f}s; report: {report}")
    return run.path
