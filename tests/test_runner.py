"""Papermill orchestration: parameters, skipping, --force, failure reporting, kernel, report."""

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from workbench.data import files as io
from workbench.runs.runner import StepFailed, load_pipeline_config, run_pipeline

WRITE_NB = [
    ("parameters", 'run_dir = ""\nvalue = 1\nshared = "x"'),
    ("code", "import sys, pathlib\nfrom workbench.runs.folder import start_run\nrun = start_run(run_dir)\n"
             "(run.path / 'a.txt').write_text(f'{value}|{shared}|{sys.executable}')\n"
             "import pandas as pd\nrun.save_table(pd.DataFrame({'v': [value]}), 'a_table', step='a')"),
]
READ_NB = [
    ("parameters", 'run_dir = ""\nfail = False'),
    ("code", "import pathlib\ntext = (pathlib.Path(run_dir) / 'a.txt').read_text()"),
    ("code", "if fail:\n    raise RuntimeError('planted failure')\n(pathlib.Path(run_dir) / 'b.txt').write_text(text)"),
]


def _nb(cells, path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "no-such-kernel", "display_name": "gone", "language": "python"}
    for kind, src in cells:
        cell = nbformat.v4.new_code_cell(src)
        if kind == "parameters":
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def pipeline(tmp_path):
    _nb(WRITE_NB, tmp_path / "a.ipynb")
    _nb(READ_NB, tmp_path / "b.ipynb")

    def write(a_params=None, b_params=None, shared=None):
        cfg = {"run_name": "t", "runs_dir": str(tmp_path / "runs"), "parameters": shared or {"shared": "s"},
               "steps": [{"name": "a", "notebook": "a.ipynb", "parameters": a_params or {}},
                         {"name": "b", "notebook": "b.ipynb", "parameters": b_params or {}}]}
        path = tmp_path / "pipe.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    return write


def _run(path, **kw):
    log = []
    run_dir = run_pipeline(load_pipeline_config(path), log=log.append, progress_bar=False, **kw)
    return run_dir, log


def test_runs_in_order_with_parameters_on_this_interpreter(pipeline):
    run_dir, log = _run(pipeline(a_params={"value": 7}))
    assert (run_dir / "b.txt").read_text() == f"7|s|{sys.executable}"  # shared param passed, kernel = this python
    state = json.loads((run_dir / "steps.json").read_text())
    assert {k: v["status"] for k, v in state.items()} == {"a": "done", "b": "done"}
    assert "shared" not in state["b"]["parameters"]  # shared params go only to notebooks that declare them
    for step in ("a", "b"):
        assert (run_dir / "notebooks" / f"{step}.ipynb").exists()
    html = (run_dir / "report.html").read_text()
    assert "a_table" in html and "Steps" in html


def test_completed_steps_are_skipped_and_changes_rerun(pipeline):
    path = pipeline()
    run_dir, _ = _run(path)
    _, log = _run(path)
    assert ([line.split(":")[1].strip() for line in log[:2]] == ["done before (0s), skipped"] * 2
            or all("skipped" in line for line in log[:2]))
    _, log = _run(pipeline(b_params={"fail": False}))  # only b's parameters changed
    assert "skipped" in log[0] and "running" in log[1]
    _, log = _run(pipeline(a_params={"value": 2}))  # a changed -> b must re-run too
    assert "running" in log[0] and any("b: running" in line for line in log)
    _, log = _run(pipeline(a_params={"value": 2}), force=True)
    assert sum("running" in line for line in log) == 2


def test_failure_names_step_cell_and_error_then_resumes(pipeline):
    with pytest.raises(StepFailed) as err:
        _run(pipeline(b_params={"fail": True}))
    msg = str(err.value)
    assert "step 'b' failed in cell" in msg and "raise RuntimeError('planted failure')" in msg
    assert "RuntimeError: planted failure" in msg
    run_dir = Path(load_pipeline_config(pipeline(b_params={"fail": True})).run_dir)
    state = json.loads((run_dir / "steps.json").read_text())
    assert state["a"]["status"] == "done" and state["b"]["status"] == "failed"
    assert "failed" in (run_dir / "report.html").read_text()
    _, log = _run(pipeline(b_params={"fail": False}))  # fix and resume: a is not re-run
    assert "skipped" in log[0] and "b: done" in log[-2]


def test_unknown_step_parameter_is_an_error(pipeline):
    with pytest.raises(ValueError, match=r"parameters \['valu'\] are not in a.ipynb's parameters cell"):
        _run(pipeline(a_params={"valu": 3}))


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run_name: x\nstepz: []\n")
    with pytest.raises(ValueError, match=r"unknown keys \['stepz'\]"):
        load_pipeline_config(bad)
    bad.write_text("run_name: x\nsteps: [{name: a}]\n")
    with pytest.raises(ValueError, match=r"steps\[0\] needs a 'notebook' key"):
        load_pipeline_config(bad)
    with pytest.raises(FileNotFoundError, match="no such pipeline config"):
        load_pipeline_config(tmp_path / "missing.yaml")


def test_cli_exit_codes(pipeline, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "workbench", "run", "--config", str(pipeline()), "--no-progress"],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "workbench", "run", "--config", str(pipeline(b_params={"fail": True})), "--no-progress"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "planted failure" in bad.stderr and "FAILED" in bad.stderr
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "q", "chosen": "a", "rejected": "a"}\n{"prompt": "q", "chosen": "a", "rejected": "b"}\n')
    chk = subprocess.run([sys.executable, "-m", "workbench", "check-data", str(data), "--out", str(tmp_path / "o.parquet")],
                         capture_output=True, text=True, timeout=120)
    assert chk.returncode == 2 and "row 1: field 'chosen/rejected': identical" in chk.stdout
    assert len(io.load_pairs(tmp_path / "o.parquet")) == 1


def test_set_overrides_beat_step_parameters_and_typos_fail(pipeline):
    path = pipeline(a_params={"value": 7})
    run_dir = run_pipeline(load_pipeline_config(path, overrides={"value": 9}), log=lambda _: None, progress_bar=False)
    assert (run_dir / "a.txt").read_text().startswith("9|")
    with pytest.raises(ValueError, match=r"--set \['valeu'\]: no notebook of this pipeline declares"):
        run_pipeline(load_pipeline_config(path, overrides={"valeu": 9}), log=lambda _: None, progress_bar=False)


def test_every_config_typo_fails_before_step_one_runs(pipeline, tmp_path):
    """Issue #20: a typo anywhere in the config is found in seconds, before any notebook runs, naming the key."""
    def fails(path, match, **kw):
        with pytest.raises(ValueError, match=match):
            run_pipeline(load_pipeline_config(path, **kw), log=lambda _: None, progress_bar=False)
        assert not (tmp_path / "runs" / "t" / "a.txt").exists(), "step a must not have run"

    fails(pipeline(b_params={"fial": True}), r"step 'b': parameters \['fial'\].*did you mean 'fail'")  # typo in the last step
    fails(pipeline(shared={"shared": "s", "smok": True}), r"shared parameters \['smok'\]: no notebook")
    fails(pipeline(shared={"shraed": "s"}), r"did you mean 'shared'")
    fails(pipeline(), r"--set \['vlaue'\].*did you mean 'value'", overrides={"vlaue": 2})
    cfg = yaml.safe_load(pipeline().read_text())
    cfg["steps"][1]["paramters"] = cfg["steps"][1].pop("parameters")
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match=r"steps\[1\] \(b\) has unknown key 'paramters' \(did you mean 'parameters'\?\)"):
        load_pipeline_config(tmp_path / "typo.yaml")


# ---- issue #29: broken config files get a one-line error naming the file and the line

def _config(tmp_path, text: str, name: str = "pipe.yaml") -> Path:
    _nb(WRITE_NB, tmp_path / "a.ipynb")
    path = tmp_path / name
    path.write_text(text)
    return path


def test_malformed_yaml_is_one_line_naming_the_file_and_line(tmp_path, capsys):
    from workbench.cli import main

    path = _config(tmp_path, "run_name: t\nsteps:\n\t- {name: a, notebook: a.ipynb}\n")  # a tab in the indentation
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}, line 3, column 1: invalid YAML: .*tab") as err:
        load_pipeline_config(path)
    assert "<unicode string>" not in str(err.value) and "\n" not in str(err.value)
    assert main(["run", "--config", str(path)]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and f"{path}, line 3" in stderr and "Traceback" not in stderr
    with pytest.raises(ValueError):  # --debug: the traceback
        main(["--debug", "run", "--config", str(path)])


def test_a_duplicated_key_is_refused_naming_file_line_and_key(tmp_path):
    path = _config(tmp_path, "run_name: t\nparameters:\n  seed: 0\n  smoke: true\n  seed: 1\nsteps: [{name: a, notebook: a.ipynb}]\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}, line 5, column 3: duplicate key 'seed' \(first given on line 3\)"):
        load_pipeline_config(path)
    merged = _config(tmp_path, "base: &b {seed: 0}\n", "merge.yaml")  # a merge key's values may be overridden: no error
    merged.write_text("steps:\n  - name: a\n    notebook: a.ipynb\n    parameters:\n      <<: {value: 1}\n      value: 2\n")
    assert load_pipeline_config(merged).steps[0].parameters == {"value": 2}


def test_typos_get_a_did_you_mean_and_the_folders_are_listed_once(tmp_path, monkeypatch):
    path = _config(tmp_path, "run_name: t\nstesp: []\nsteps: [{name: a, notebook: a.ipynb}]\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}, line 2: unknown keys \['stesp'\] \(did you mean 'steps'\?\)"):
        load_pipeline_config(path)
    monkeypatch.chdir(io.REPO_ROOT)  # the project folder is also the working folder: name it once
    path.write_text("steps:\n  - name: a\n    notebook: notebooks/01_prepare_dat.ipynb\n")
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(path))}, line 3: notebook '\S+01_prepare_dat.ipynb' not found") as err:
        load_pipeline_config(path)
    assert "did you mean 'notebooks/01_prepare_data.ipynb'?" in str(err.value)
    assert str(err.value).count(str(io.REPO_ROOT)) == 1


def test_a_config_that_is_not_utf8_is_named(tmp_path):
    path = _config(tmp_path, "")
    path.write_bytes("run_name: caf\xe9\nsteps: [{name: a, notebook: a.ipynb}]\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}, line 1: not UTF-8 text .*save the config as UTF-8"):
        load_pipeline_config(path)


def test_a_set_value_that_is_not_yaml_is_one_line():
    from workbench.cli import main

    with pytest.raises(SystemExit, match=r"--set 'x=\[unclosed': the value is not valid YAML"):
        main(["run", "--config", str(Path(__file__).parents[1] / "configs" / "smoke.yaml"), "--set", "x=[unclosed"])
