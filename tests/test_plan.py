"""The cost model (`workbench plan`) on planted stage costs: it must recover the model it was fitted on."""

from __future__ import annotations

import json
import math

import pytest

from workbench.cli import main
from workbench.scale.plan import (
    SHARD_STAGES,
    MeasuredRun,
    Prices,
    Target,
    fit_linear,
    index_work,
    load_measured_run,
    load_measured_runs,
    measured_run_from_folder,
    predict,
    project,
)

# planted truth, per pair per core: 40 us per shard stage (+ 5 s of fixed start per stage), the index 2 us x log2 N
PER_PAIR, FIXED, INDEX, RETRIEVE, CORES = 40e-6, 5.0, 2e-6, 3.0, 2
CURATION_GB, INDEX_BYTES, DISK_BYTES = 1.2, 800, 2_000


def planted(n: int, cores: int = CORES) -> MeasuredRun:
    stages = {s: (FIXED + PER_PAIR * n) / cores for s in SHARD_STAGES}
    stages.update(index=INDEX * n * math.log2(n) / cores, retrieve=RETRIEVE)
    return MeasuredRun(pairs=n, cores=cores, stage_seconds=stages, peak_memory_gb=CURATION_GB + INDEX_BYTES * n / 1e9,
                       disk_gb=DISK_BYTES * n / 1e9, index_memory_gb=INDEX_BYTES * n / 1e9, llm_calls=n // 10,
                       llm_tokens=n * 30, human_reviews=n // 1000, wall_seconds=sum(stages.values()) + 7.0)


def test_fit_linear_recovers_a_line_and_never_goes_negative():
    assert fit_linear([1, 2, 3], [5, 7, 9]) == pytest.approx((3.0, 2.0))
    assert fit_linear([10], [30]) == pytest.approx((0.0, 3.0))
    fixed, per = fit_linear([100, 1000], [5, 100])  # a negative intercept is refitted through the origin
    assert fixed == 0.0 and per > 0
    assert fit_linear([100, 1000], [7, 6]) == (6.5, 0.0)  # a negative slope: a constant


def test_the_plan_recovers_planted_costs_at_ten_times_the_largest_run():
    runs = [planted(100_000), planted(1_000_000)]
    n = 10_000_000
    plan = predict(runs, Target(pairs=n, machines=1, cores_per_machine=CORES))
    want_stages = len(SHARD_STAGES) * (FIXED + PER_PAIR * n) / CORES + INDEX * n * math.log2(n) / CORES + RETRIEVE
    assert plan.wall_seconds == pytest.approx(want_stages + 7.0, rel=1e-6)  # + the planted start-up
    assert plan.peak_memory_gb == pytest.approx(CURATION_GB + INDEX_BYTES * n / 1e9, rel=1e-6)
    assert plan.disk_gb == pytest.approx(DISK_BYTES * n / 1e9, rel=1e-6)
    assert plan.llm_tokens == pytest.approx(30 * n) and plan.review_hours == pytest.approx(n / 1000 * 30 / 3600)
    # the same run measured on this machine is predicted back exactly
    assert predict(runs, Target(pairs=1_000_000)).wall_seconds == pytest.approx(runs[1].wall_seconds, rel=1e-6)


def test_machines_and_cores_divide_the_shard_stages_but_not_the_index():
    runs = [planted(100_000), planted(1_000_000)]
    one = predict(runs, Target(pairs=40_000_000, machines=1, cores_per_machine=16)).stages.set_index("stage")
    four = predict(runs, Target(pairs=40_000_000, machines=4, cores_per_machine=16)).stages.set_index("stage")
    assert four.at["tag", "wall_seconds"] == pytest.approx(one.at["tag", "wall_seconds"] / 4)
    assert four.at["index", "wall_seconds"] == pytest.approx(one.at["index", "wall_seconds"])
    assert four["core_seconds"].sum() == pytest.approx(one["core_seconds"].sum())


def test_prices_turn_the_plan_into_money_and_assumptions_are_stated():
    runs = [planted(100_000), planted(1_000_000)]
    plan = predict(runs, Target(pairs=2_000_000, human_reviews=500, seconds_per_review=36),
                   Prices(core_hour=0.05, llm_per_million_tokens=2.0, review_hour=20.0))
    assert plan.money["llm_cost"] == pytest.approx(30 * 2_000_000 / 1e6 * 2.0)
    assert plan.money["review_cost"] == pytest.approx(500 * 36 / 3600 * 20.0)
    assert plan.money["total_cost"] == pytest.approx(sum(v for k, v in plan.money.items() if k != "total_cost"))
    text = " ".join(plan.assumptions)
    assert "100,000, 1,000,000 pairs" in text and "N log2 N" in text and "500 at 36 s" in text
    assert predict(runs, Target(pairs=10)).money == {}  # unpriced


def test_runs_with_different_index_kinds_are_not_fitted_together():
    from dataclasses import replace

    hnsw, ivf = replace(planted(100_000), index_kind="hnsw"), replace(planted(1_000_000), index_kind="ivf-sq8")
    with pytest.raises(ValueError, match=r"different indexes \['hnsw', 'ivf-sq8'\]"):
        predict([hnsw, ivf], Target(pairs=10_000_000))
    plan = predict([hnsw, replace(planted(1_000_000), index_kind="hnsw")], Target(pairs=10_000_000))
    assert any("the index (hnsw)" in a for a in plan.assumptions)
    assert predict([planted(100_000), hnsw], Target(pairs=10)).wall_seconds > 0  # an old record without a kind fits


def test_an_ivf_index_is_planned_by_its_list_count_not_n_log_n():
    """IVF's lists grow as 4 sqrt N (`IndexConfig.nlist` = 0), so its build grows faster than HNSW's N log N."""
    from dataclasses import replace

    from workbench.scale.index import IndexConfig, empty_index

    assert index_work("ivf-sq8", 1_000_000) == (10 * 156_000 + 1_000_000) * 4_000  # 4,000 lists, 39 points per list
    assert empty_index(8, 1_000_000, IndexConfig(kind="ivf-sq8")).nlist == 4_000  # the lists the index really gets
    assert index_work("hnsw", 1024) == index_work("", 1024) == 1024 * 10

    def ivf_run(n: int) -> MeasuredRun:
        run = replace(planted(n), index_kind="ivf-sq8")
        return replace(run, stage_seconds={**run.stage_seconds, "index": 1e-8 * index_work("ivf-sq8", n) / CORES})

    stages = predict([ivf_run(100_000), ivf_run(1_000_000)], Target(pairs=10_000_000)).stages.set_index("stage")
    assert stages.at["index", "wall_seconds"] == pytest.approx(1e-8 * index_work("ivf-sq8", 10_000_000) / CORES, rel=1e-6)
    assert index_work("ivf-sq8", 10_000_000) / index_work("ivf-sq8", 1_000_000) > 1.5 * 10 * math.log2(1e7) / math.log2(1e6)
    assert "nlist = 4 sqrt N" in stages.at["index", "model"]


def test_a_bad_costs_file_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "costs.json"
    path.write_text(json.dumps({"pairs": 10, "cores": 2, "stage_seconds": {}, "peak_memory_gb": 1, "disk_gb": 0,
                                "walltime": 3}))
    with pytest.raises(ValueError, match=r"costs\.json.*walltime"):
        load_measured_run(tmp_path)
    path.write_text(json.dumps({"pairs": 10, "cores": 2, "stage_seconds": {"tagging": 1.0}, "peak_memory_gb": 1,
                                "disk_gb": 0}))
    with pytest.raises(ValueError, match="tagging"):
        load_measured_run(path)
    with pytest.raises(FileNotFoundError, match="bench_scale"):
        load_measured_run(tmp_path / "nowhere")


def test_a_measured_run_from_an_output_folder_sums_the_shards(tmp_path):
    (tmp_path / "done").mkdir()
    for i in range(3):
        (tmp_path / "done" / f"s{i}.json").write_text(json.dumps({"pairs": 100, **{f"{s}_s": 1.0 for s in SHARD_STAGES}}))
    run = measured_run_from_folder(tmp_path, cores=2, peak_memory_gb=1.0, index_seconds=4.0)
    assert run.pairs == 300 and run.stage_seconds["tag"] == 3.0 and run.stage_seconds["index"] == 4.0
    assert run.disk_gb > 0


def test_the_cli_plans_forty_million_pairs_from_two_runs(tmp_path, capsys):
    a, b = planted(100_000).save(tmp_path / "a.json"), planted(1_000_000).save(tmp_path / "b.json")
    assert main(["plan", str(a), str(b), "--pairs", "40M", "--machines", "4", "--cores", "16",
                 "--price-core-hour", "0.04"]) == 0
    out = capsys.readouterr().out
    assert "pairs: 40,000,000" in out and "total_cost" in out and "assumptions:" in out and "index" in out


def test_a_projection_checks_one_more_run_and_reads_a_folder_of_records(tmp_path):
    for n in (100_000, 1_000_000):
        planted(n).save(tmp_path / f"costs-{n}.json")
    recorded = load_measured_runs(str(tmp_path))
    assert [r.pairs for r in recorded] == [100_000, 1_000_000]
    proj = project(recorded, planted(300_000), Target(pairs=40_000_000))
    assert proj.predicted_check.wall_seconds == pytest.approx(planted(300_000).wall_seconds, rel=1e-6)
    predicted, measured = proj.check_seconds()
    assert predicted == pytest.approx(measured, rel=1e-6) and measured == pytest.approx(sum(planted(300_000).stage_seconds.values()))
    assert list(proj.points["note"])[-1] == "this run" and proj.curve["pairs"].max() == 40_000_000
    assert proj.curve["wall_hours"].is_monotonic_increasing
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no measured runs"):
        load_measured_runs(str(tmp_path / "empty"))
