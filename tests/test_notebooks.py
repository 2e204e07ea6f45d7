"""Every notebook, run by papermill with smoke parameters; each notebook's own checks cell asserts values."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from workbench.data import files as io
from workbench.runs.runner import load_pipeline_config, run_pipeline

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from nbtools import INTERACTIVE, check  # noqa: E402


def test_notebooks_committed_clean():
    assert check(REPO / "notebooks") == []


def test_papermill_sees_every_parameter():
    """papermill skips a parameters-cell line it cannot parse (e.g. '=' or '|' in a trailing comment); the runner
    would then refuse a config that sets it. Every assignment must be visible to papermill."""
    import ast

    import nbformat
    import papermill

    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cell = next(c for c in nbformat.read(str(path), as_version=4).cells if "parameters" in c.metadata.get("tags", []))
        assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets}
        assert assigned == set(papermill.inspect_notebook(str(path))), path.name


@pytest.mark.parametrize("config", ["demo.yaml", "smoke.yaml"])
def test_every_config_parameter_is_declared_by_its_notebook(config):
    from workbench.runs.runner import step_parameters

    cfg = load_pipeline_config(REPO / "configs" / config)
    for step in cfg.steps:
        step_parameters(step, cfg)  # raises naming the step and the undeclared parameter


def test_every_notebook_is_in_the_demo_config():
    """Every unattended notebook is a demo step; the interactive ones (a person reviews) are smoke-run below."""
    cfg = load_pipeline_config(REPO / "configs" / "demo.yaml")
    unattended = {p.name for p in (REPO / "notebooks").glob("*.ipynb")} - set(INTERACTIVE)
    assert sorted(s.notebook.name for s in cfg.steps) == sorted(unattended)


def test_the_pairing_check_catches_a_notebook_and_script_that_differ(tmp_path):
    """Issue #16: the .ipynb and its jupytext .py must agree; an edit saved to one side only is reported."""
    import shutil

    for suffix in (".ipynb", ".py"):
        shutil.copy(REPO / "notebooks" / f"02_tag_attributes{suffix}", tmp_path / f"02_tag_attributes{suffix}")
    assert check(tmp_path) == []
    script = tmp_path / "02_tag_attributes.py"
    script.write_text(script.read_text().replace("max_pairs = 0", "max_pairs = 5"))
    assert any("differ" in p and "jupytext --sync" in p for p in check(tmp_path))
    script.unlink()
    assert any("no paired 02_tag_attributes.py" in p for p in check(tmp_path))


def test_the_style_check_catches_long_cells_and_definitions(tmp_path):
    import nbformat

    nb = nbformat.read(str(REPO / "notebooks" / "02_tag_attributes.ipynb"), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("def helper():\n    return 1\n" + "x = 1\n" * 15))
    nbformat.write(nb, str(tmp_path / "02_tag_attributes.ipynb"))
    found = " ".join(check(tmp_path))
    assert "defines a function" in found and "lines (> 15)" in found


@pytest.mark.slow
def test_smoke_pipeline_runs_every_notebook(tmp_path):
    cfg = load_pipeline_config(REPO / "configs" / "smoke.yaml", runs_dir=str(tmp_path))
    run_dir = run_pipeline(cfg, progress_bar=False)
    state = json.loads((run_dir / "steps.json").read_text())
    assert all(s["status"] == "done" for s in state.values()) and len(state) == len(cfg.steps)
    pairs = io.load_pairs(run_dir / "pairs.parquet")
    assert pairs.groupby("construction").size().to_dict() == {"cross_prompt": 30, "hh_human": 80, "truncated": 30}
    metrics = io.read_json(run_dir / "metrics" / "data_metrics.json")
    assert metrics["pairs"] == len(pairs) and metrics["rows_rejected"] == 4 + 6 + 5 + 32
    html = (run_dir / "report.html").read_text()
    for name in ("length_distributions", "demo_pairs", "data_metrics", "read_report", "stage1_rounds", "stage1_history",
                 "stage1_metrics", "benchmark_bars", "rewardbench_sections", "rm_bench_levels", "bon_curves",
                 "stage2_decision_counts", "stage2_margin_scatter", "stage2_metrics", "experiment_conditions", "experiment_paired",
                 "experiment_enrichment", "experiment_summary", "teacher_learning_curves", "teacher_ablation",
                 "teacher_budget", "teacher_gate", "teacher_metrics", "scale_shards", "scale_cost_per_pair",
                 "scale_decisions", "scale_error_map", "scale_metrics", "scale_cost_projection", "scale_plan"):
        assert f"id='{name}'" in html
    stage1 = io.read_json(run_dir / "metrics" / "stage1_metrics.json")
    assert stage1["pairs_labelled"] == 20 + 15 + 15 and stage1["review_events"] >= stage1["pairs_labelled"]
    bench = io.read_json(run_dir / "metrics" / "benchmark_metrics.json")
    assert bench["random/rewardbench"] == 0.5 and 0 <= bench["rm_final/rewardbench"] <= 1
    stage2 = io.read_json(run_dir / "metrics" / "stage2_metrics.json")
    curated = io.load_pairs(run_dir / "curated.parquet")
    pool = curated[curated["split"] == "train"]
    assert stage2["pool_pairs"] == len(pool) == int((pairs["split"] == "train").sum())
    assert sum(stage2[f"decision_{d}"] for d in ("keep", "flip", "drop")) == len(pool)
    assert (pool["stage2_rule"] != "").all() and set(pool["stage2_decision"]) <= {"keep", "flip", "drop"}
    rm = io.read_json(run_dir / "metrics" / "rm_metrics.json")
    assert rm["n_train"] == stage2["curated_training_pairs"]  # notebook 06 trained on the curated set
    exp = io.read_json(run_dir / "metrics" / "experiment_metrics.json")
    assert exp["seeds"] == 2 and 0.5 <= exp["clean_test_accuracy"] <= 1
    teacher = io.read_json(run_dir / "metrics" / "teacher_metrics.json")
    assert abs(teacher["agreement_measured"] - 0.75) < 0.05 and teacher["teacher_train_pairs"] == 48
    gate = pd.read_csv(run_dir / "tables" / "teacher_gate.csv")
    assert len(gate) == 3 and gate["value"].notna().all()  # smoke: measured and reported, not asserted to pass
    review = _run_review_by_hand(run_dir)
    assert review["queue"] > 0 and review["kind"] == "retrieval"  # 04 labelled the seed: the panel shows a retrieval queue
    scale_metrics = io.read_json(run_dir / "metrics" / "scale_metrics.json")
    assert scale_metrics["pairs"] == 2000 and scale_metrics["shards"] == 2  # smoke.yaml: 2,000 synthetic pairs
    assert sum(scale_metrics[f"decision_{d}"] for d in ("keep", "flip", "drop")) == 2000
    assert scale_metrics["retrieval_recall_at_8"] >= 0.8
    plan = pd.read_csv(run_dir / "tables" / "scale_plan.csv").set_index("stage")  # the 40M plan from the recorded runs
    assert plan.at["index", "wall_seconds"] > 0 and (plan["core_seconds"] > 0).all()


def _run_review_by_hand(run_dir: Path) -> dict:
    """Notebook 04b (interactive: not in the pipeline configs) on a finished smoke run, as a reviewer would open it;
    papermill raises if a cell (the checks included) fails. Returns what it saved about the queue it showed."""
    import papermill

    papermill.execute_notebook(str(REPO / "notebooks" / "04b_review_by_hand.ipynb"), None, progress_bar=False,
                               cwd=str(REPO / "notebooks"), kernel_name="python3",
                               parameters={"run_dir": str(run_dir), "smoke": True, "reviewer": "tester"})
    return io.read_json(run_dir / "metrics" / "review_queue.json")


@pytest.mark.parametrize("where", ["colab", "kaggle", "elsewhere"])
def test_setup_cell_clones_installs_and_fetches_only_on_colab_or_kaggle(tmp_path, where):
    """Issue #18: the setup cell's decisions, run in a subprocess with a fake `google.colab` module or Kaggle's
    environment variable; WORKBENCH_SETUP_DRY_RUN prints the commands instead of running them."""
    import os
    import subprocess

    from nbtools import REPO_URL, SETUP_CELL

    prefix = "import sys, types; sys.modules['google.colab'] = types.ModuleType('google.colab')\n" if where == "colab" else ""
    env = {k: v for k, v in os.environ.items() if k != "KAGGLE_KERNEL_RUN_TYPE"}
    env["WORKBENCH_SETUP_DRY_RUN"] = "1"
    if where == "kaggle":
        env["KAGGLE_KERNEL_RUN_TYPE"] = "Interactive"
    cwd = tmp_path if where == "colab" else REPO / "notebooks"  # colab: a fresh runtime; kaggle: inside a clone
    out = subprocess.run([sys.executable, "-c", prefix + SETUP_CELL], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    if where == "elsewhere":
        assert lines == []
        return
    clone = [line for line in lines if "'git', 'clone'" in line]
    assert (clone and REPO_URL in clone[0]) if where == "colab" else not clone
    repo = str(tmp_path / "rm-curation-workbench") if where == "colab" else str(REPO)
    assert any("'pip', 'install'" in line and repo in line for line in lines)
    assert any("'workbench', 'data', 'ensure'" in line for line in lines)
    assert check(REPO / "notebooks") == []  # every notebook carries exactly this cell and its Colab link


def test_saving_in_jupyterlab_updates_the_paired_script(tmp_path):
    """Issue #16: edit a notebook and save it through Jupyter's contents manager with jupytext (what JupyterLab's
    Save does here: the jupytext server extension is installed); the paired .py follows and the check stays clean."""
    import shutil

    from jupytext import TextFileContentsManager

    for suffix in (".ipynb", ".py"):
        shutil.copy(REPO / "notebooks" / f"02_tag_attributes{suffix}", tmp_path / f"02_tag_attributes{suffix}")
    manager = TextFileContentsManager(root_dir=str(tmp_path))
    model = manager.get("02_tag_attributes.ipynb")
    cell = next(c for c in model["content"].cells if "parameters" in c.metadata.get("tags", []))
    cell.source = cell.source.replace("max_pairs = 0", "max_pairs = 7")
    manager.save(model, "02_tag_attributes.ipynb")
    assert "max_pairs = 7" in (tmp_path / "02_tag_attributes.py").read_text()
    assert check(tmp_path) == []
