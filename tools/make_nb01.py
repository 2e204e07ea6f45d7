import sys; sys.path.insert(0, "tools")
from pathlib import Path
from nbtools import build, SETUP_CELL
cells = [
("md", """
# 01 · Prepare the preference data

Load the pairs this run will curate, check every row, and split them into an **unverified pool** (`train`),
a **gold** set (stands in for human-verified pairs) and a held-out **test** set, grouped by prompt so no
conversation crosses splits. By default this builds the bundled demo from `shared/data`: HH-RLHF human
preferences (noisy labels) plus two parts whose labels are *true by construction* (`cross_prompt`,
`truncated`; see `data_cards/demo.md`). Point `pairs_path` at your own file to use your data instead.
"""),
("code", SETUP_CELL),
("parameters", """
run_dir = "../runs/scratch"   # every output of the run goes here
data_dir = ""                 # empty: <repo>/../shared/data, or $WORKBENCH_DATA_DIR
pairs_path = ""               # empty: the demo build; else your own pairs (JSONL/JSON/parquet/CSV, .gz ok)
pairs_format = "auto"         # auto | hh | conversational | prompt_strings | llmbar
smoke = False                 # tiny sizes for tests
seed = 0
n_hh_helpful = 800
n_hh_harmless = 1200
n_cross_prompt = 500
n_truncated = 500
train_fraction = 0.70
gold_fraction = 0.15
test_fraction = 0.15
"""),
("code", """
from workbench import demo_data, io, overview, plots

STEP = "01_prepare_data"
cfg = demo_data.demo_config(smoke=smoke, seed=seed, n_hh_helpful=n_hh_helpful, n_hh_harmless=n_hh_harmless,
                            n_cross_prompt=n_cross_prompt, n_truncated=n_truncated, train_fraction=train_fraction,
                            gold_fraction=gold_fraction, test_fraction=test_fraction)
run = io.start_run(run_dir, cfg, step=STEP)
build = (demo_data.build_user_pairs(pairs_path, cfg, fmt=pairs_format) if pairs_path
         else demo_data.build_demo_pairs(data_dir or None, cfg))
pairs = build.pairs
print(f"{len(pairs)} pairs -> {run.path}")
"""),
("md", """
## What was read, and what was rejected

Every source row either became a pair or is listed in `rejects.jsonl` with the field and the reason
(empty responses, identical chosen/rejected, ...). *Quirks* are rows kept on purpose but worth knowing
about: HH-RLHF responses that ramble on into fake `Human:` / `Assistant:` turns.
"""),
("code", """
read_table = overview.read_report_table(build.read_reports)
io.save_table(read_table, run, "read_report", title="Rows read and rejected per source file", step=STEP)
io.write_rejects(build.read_reports, run.file("rejects.jsonl"))
read_table
"""),
("md", """
## Splits and composition

Pairs per split and construction; the data-card numbers per construction (lengths, multi-turn share,
how often the chosen response is the longer one, near-ties).
"""),
("code", """
split_table = pairs.groupby(["split", "construction"]).size().unstack(fill_value=0)
summary = overview.summarize_pairs(pairs, by="construction")
io.save_table(split_table, run, "demo_pairs", title="Pairs per split and construction", step=STEP)
io.save_table(summary, run, "pair_summary", title="Data card numbers per construction", step=STEP,
              caption="chosen_longer_share: accuracy of 'the longer response wins' on these labels.")
metrics = {
    "pairs": len(pairs),
    "rows_read": sum(r.n_rows for r in build.read_reports),
    "rows_rejected": sum(r.n_rejected for r in build.read_reports),
    "duplicates_removed": build.dedup.n_exact_duplicates + build.dedup.n_label_conflicts,
    "label_conflicts": build.dedup.n_label_conflicts,
    "known_true_share": float(pairs["label_known_true"].mean()),
    "longer_wins_accuracy": overview.length_bias(pairs),
}
io.save_metrics(metrics, run, "data_metrics", title="Data at a glance", step=STEP)
display(split_table, summary)
metrics
"""),
("md", """
## Lengths, mix and near-ties

Length is the cheapest shortcut a reward model can learn: compare chosen vs rejected lengths per part.
`truncated` pairs are separable by length alone, by design; `cross_prompt` pairs are length-matched, so an
RM has to judge relevance.
"""),
("code", """
fig_len = plots.length_distributions(pairs, by="construction")
io.save_figure(fig_len, run, "length_distributions", title="Length distributions", step=STEP)
fig_len
"""),
("code", """
fig_mix = plots.source_mix(pairs, by="construction")
io.save_figure(fig_mix, run, "source_mix", title="Pairs per split", step=STEP)
fig_mix
"""),
("code", """
fig_overlap = plots.overlap_histogram(pairs, by="construction")
io.save_figure(fig_overlap, run, "response_overlap", title="Chosen vs rejected word overlap", step=STEP)
fig_overlap
"""),
("md", "## Save the pairs for the next steps"),
("code", """
pairs_file = io.write_pairs(pairs, run.file("pairs.parquet"))
reloaded = io.load_pairs(pairs_file)
print(f"wrote {pairs_file} ({pairs_file.stat().st_size / 1e6:.1f} MB)")
"""),
("code", """
# checks: the notebook's own assertions (run by the smoke test and by `make demo`)
assert len(reloaded) == len(pairs) and reloaded["pair_id"].is_unique
assert set(pairs["split"]) <= {"train", "gold", "test"} and (pairs["split"] == "train").any()
assert pairs.groupby(pairs["prompt"].map(str))["split"].nunique().max() == 1, "a prompt crosses splits"
assert pairs_path or set(pairs["construction"]) == {"hh_human", "cross_prompt", "truncated"}
assert (run.path / "figures" / "length_distributions.html").exists()
"""),
]
build(cells, Path("notebooks/01_prepare_data.ipynb"))
