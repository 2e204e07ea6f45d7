"""Command line: ``workbench run``, ``report``, ``check-data``, ``experiment``, ``synth``, ``shard``, ``scale``,
``export``, ``review`` (push / pull Label Studio rounds) and ``data`` (also ``python -m workbench``).

Each command imports what it needs inside its function: ``workbench data where`` or ``--help`` must not pay for
importing torch. (The CLI is the top layer; nothing imports it, so these late imports hide no cycle.) Options a
user leaves unset are not passed on, so the config dataclasses' defaults apply: they are defined once, there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def _parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = yaml.safe_load(value)  # "true" -> True, "3" -> 3, "[a, b]" -> list
        except yaml.YAMLError as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise SystemExit(f"--set {item!r}: the value is not valid YAML ({first}); quote it, e.g. key='a: b'.") from None
    return out


def _cmd_run(args: argparse.Namespace) -> int:
    from workbench.runs.runner import StepFailed, load_pipeline_config, run_pipeline

    cfg = load_pipeline_config(args.config, run_name=args.run_name, runs_dir=args.runs_dir, overrides=_parse_set(args.set))
    _check_routing(cfg, Path(args.config))
    try:
        run_pipeline(cfg, force=args.force, progress_bar=not args.no_progress)
    except StepFailed as e:
        print(f"\nFAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted; finished steps are kept. Run the same command again to resume.", file=sys.stderr)
        return 130
    return 0


def _check_routing(cfg, path: Path) -> None:
    """Routing rules in the config are read now, so a bad one is one line naming the file and line before any step runs."""
    from workbench.curation.routing import RoutingConfig
    from workbench.runs.config_file import where

    places = [("parameters", cfg.parameters), ("--set", cfg.overrides)]
    places += [(f"steps[{i}].parameters", s.parameters) for i, s in enumerate(cfg.steps)]
    for name, params in places:
        if params.get("routing") or params.get("route_budgets"):
            at = where(path, params, "routing" if "routing" in params else "route_budgets") if name != "--set" else "--set"
            RoutingConfig.from_params(params.get("routing") or list(RoutingConfig().rules), params.get("route_budgets"),
                                      where=f"{at}: {name}.routing")


def _cmd_report(args: argparse.Namespace) -> int:
    from workbench.runs.report import build_report

    print(build_report(Path(args.run_dir)))
    return 0


def _cmd_check_data(args: argparse.Namespace) -> int:
    from workbench.data import files as io

    columns = dict(c.split("=", 1) for c in args.rename)
    pairs, report = io.read_pairs(args.path, fmt=args.fmt, strict=False, columns=columns, rejects_path=args.rejects)
    print(report.summary())
    for r in report.rejects[: args.show]:
        print(f"  row {r['row']}: field {r['field']!r}: {r['reason']}")
    if args.out:
        io.write_pairs(pairs, args.out)
        print(f"wrote {len(pairs)} pairs to {args.out}")
    return 0 if not report.rejects or args.allow_rejects else 2


def _names(text: str) -> tuple[str, ...]:
    """argparse type for comma-separated names, e.g. ``length,cluster``."""
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _ints(text: str) -> tuple[int, ...]:
    """argparse type for comma-separated integers, e.g. ``0,1,2``."""
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,1,2, got {text!r}") from None


EXPERIMENT_FIELDS = ("noise_models", "noise_rate", "noise_concentration", "seeds", "n_cross_prompt", "n_truncated",
                     "n_padded", "gold_fraction", "seed_size", "labels_per_iteration", "iterations", "oracle_error_rate",
                     "judge_error_rate", "head_epochs", "cleanlab_folds", "min_clean_accuracy")
TEACHER_FIELDS = ("noise_models", "noise_rate", "noise_concentration", "seeds", "seed_size", "labels_per_iteration",
                  "iterations", "oracle_error_rate", "judge_error_rate", "agreement", "null_models", "budgets",
                  "secondary_seeds", "pool_sizes", "workers")


def _given(args: argparse.Namespace, fields: tuple[str, ...], truth: str) -> dict:
    """The options set on the command line that belong to ``truth``'s config; an option of the other truth is an
    error naming it (a silently ignored option would run an experiment the user did not ask for)."""
    known = set(EXPERIMENT_FIELDS) | set(TEACHER_FIELDS)
    stray = [k for k, v in vars(args).items() if k in known - set(fields) and v is not None]
    if stray:
        flags = ", ".join("--" + k.replace("_", "-").replace("noise-models", "noise").replace("null-models", "null-noise")
                          for k in stray)
        raise SystemExit(f"workbench experiment: {flags} do not apply to --truth {truth}.")
    return {k: v for k, v in vars(args).items() if k in fields and v is not None}


def _cmd_experiment(args: argparse.Namespace) -> int:
    from workbench.data.noise import load_plugins
    from workbench.runs.folder import start_run

    added = load_plugins(args.plugin)
    if added:
        print(f"noise models from plugins: {', '.join(added)}")
    if args.truth == "teacher":
        return _teacher_experiment(args)
    from workbench.curation import experiment as ce

    cfg = ce.ExperimentConfig(**_given(args, EXPERIMENT_FIELDS, "constructed"))  # unset options keep the defaults
    if args.smoke:
        cfg = ce.smoke_config(cfg)
    res = ce.run_experiment(cfg, args.out, data_dir=args.data_dir, finetune=args.finetune)
    ce.save_outputs(start_run(args.out), res, cfg)
    cols = ["noise", "schedule", "condition", "test_accuracy_mean", "ci_low", "ci_high", "train_pairs", "human_labels"]
    print(res.summary[cols].round(3).to_string(index=False))
    print("\n" + res.paired.round(3).to_string(index=False))
    if len(res.finetuned):
        print("\n" + res.finetuned.round(3).to_string(index=False))
    print("\n" + "\n".join(ce.conclusions(res, cfg)))
    print(f"\ntables and figures: {Path(args.out).resolve()}")
    return 0


def _teacher_experiment(args: argparse.Namespace) -> int:
    from workbench.curation import teacher_experiment as te
    from workbench.runs.folder import start_run

    cfg = te.TeacherExperimentConfig(**_given(args, TEACHER_FIELDS, "teacher"))
    if args.smoke:
        cfg = te.smoke_config(cfg)
    res = te.run_teacher_experiment(cfg, args.out, data_dir=args.data_dir, finetune=args.finetune)
    out = te.save_outputs(start_run(args.out, cfg, step="teacher_experiment"), res, cfg)
    for name in ("gate", "full_pool", "ablation", "null_control", "finetuned"):
        if name not in out["tables"]:
            continue
        print(f"\n{name}:\n" + out["tables"][name].round(3).to_string(index=False))
    print("\n" + "\n".join(te.conclusions(res, cfg)))
    print(f"\ntimings: {res.timings}\ntables and figures: {Path(args.out).resolve()}")
    return 0 if res.gate_passed or args.smoke else 3


def _cmd_synth(args: argparse.Namespace) -> int:
    from workbench.data.synthetic import SyntheticConfig, write_synthetic_pool

    given = {k: v for k, v in (("shard_size", args.shard_size), ("seed", args.seed)) if v is not None}
    cfg = SyntheticConfig(n_pairs=args.n, **given)
    paths = write_synthetic_pool(args.out, cfg, data_dir=args.data_dir)
    print(f"{args.n} synthetic pairs in {len(paths)} shards: {args.out}")
    return 0


def _cmd_shard(args: argparse.Namespace) -> int:
    from workbench.scale.shards import shard_pair_file

    size = {"shard_size": args.shard_size} if args.shard_size is not None else {}
    paths = shard_pair_file(args.path, args.out, fmt=args.fmt, strict=args.strict, **size)
    print(f"{len(paths)} shards in {args.out} (rejected rows, if any: {Path(args.out) / 'rejects.jsonl'})")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from workbench.runs.export import ExportConfig, export_run

    cfg = ExportConfig(format=args.format, include_dropped=args.include_dropped, include_heldout=args.with_heldout,
                       name_reviewers=args.name_reviewers)
    result = export_run(args.run_dir, args.out, cfg, push_to_hub=args.push_to_hub, private=not args.public)
    c = result.counts
    print(f"{c['rows']} rows ({c['keep']} kept, {c['flip']} flipped, {c['drop']} dropped) -> {result.path} [{args.format}]; "
          f"card: {result.card_path}" + (f"; pushed to {result.pushed_to}" if result.pushed_to else ""))
    return 0


def _cmd_review(args: argparse.Namespace) -> int:
    from workbench.curation import label_studio as ls

    run_dir = Path(args.run_dir)
    if not (run_dir / "pairs.parquet").exists():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no pairs.parquet); give the run whose queues you review, "
                                "e.g. runs/demo.")
    server = None
    if (args.to if args.action == "push" else args.source) == "label-studio":
        if not (args.url and args.project):
            raise SystemExit(f"workbench review {args.action}: --url and --project are needed with label-studio.")
        server = ls.Server.from_env(args.url, args.token_env)
    return _review_push(args, server) if args.action == "push" else _review_pull(args, server)


def _review_push(args: argparse.Namespace, server) -> int:
    from workbench.curation import label_studio as ls
    from workbench.curation import pipeline, rounds
    from workbench.curation.routing import RoutingConfig
    from workbench.curation.stage1 import Stage1Config
    from workbench.runs.folder import start_run
    from workbench.runs.stores import ResultStore

    routing = None if args.no_routing else RoutingConfig(rules=tuple(args.rule or RoutingConfig().rules),
                                                         budgets=tuple(args.budget), where="--rule")
    given = {k: getattr(args, k) for k in ("seed_size", "labels_per_iteration", "seed") if getattr(args, k) is not None}
    cfg = Stage1Config(routing=routing, **given)
    if server is not None:
        ls.check_project(server, args.project)  # a bad server, token or project fails before anything is computed
    run = start_run(args.run_dir)
    judge = None
    if args.judge == "llm":
        setup = pipeline.JudgeSetup.from_params("llm", base_url=args.llm_base_url or "", models=args.llm_model or "")
        judge = pipeline.make_judge(setup, store=ResultStore(run.file("judge.sqlite"), "judge"),
                                    tags=run.load("tags", default=None))
    queue, info = rounds.next_round(run, cfg, embedder=args.embedder or "", judge=judge)
    common = dict(run_dir=run.path, round_=info["round"], suggestions=info["suggestions"], seed=cfg.seed)
    if server is not None:
        res = ls.push_tasks(queue, server, args.project, **common)
        where = f"project {args.project!r} (id {res.project_id}{', created' if res.created else ''}) at {server.url}"
        sent = f"{res.added} new tasks" + (f", {res.already} there already" if res.already else "")
    else:
        path, n = ls.export_tasks(queue, args.to, **common)
        where, sent = f"{path} (labelling config: {path.with_suffix('.xml')})", f"{n} tasks"
    routes = ", ".join(f"{k} {v}" for k, v in sorted(info["routes"].items()))
    print(f"round {info['round']} ({info['kind']}): {len(queue)} pairs queued ({routes}); {sent} -> {where}")
    if info["llm_to_people"]:
        print(f"{info['llm_to_people']} pairs the rules route to the LLM judge went to people (no judge given): add "
              "--judge llm (with --llm-base-url / --llm-model) to have the judge label them.")
    return 0


def _review_pull(args: argparse.Namespace, server) -> int:
    from workbench.curation import label_studio as ls
    from workbench.curation.review import ReviewStore, reviewer_agreement

    pushed = ls.pushed_tasks(args.run_dir)
    if server is not None:
        tasks, project_id = ls.fetch_export(server, args.project)
    else:
        tasks, project_id = ls.read_export(args.source), None
    pulled, incomplete = ls.decisions_from_export(tasks, pushed)  # raises before anything is written
    with ReviewStore(Path(args.run_dir) / "review.sqlite") as store:
        res = ls.pull_into(store, pulled, incomplete=incomplete, project_id=project_id)
        agreement = reviewer_agreement(store.effective(), res.reviewers) if len(res.reviewers) >= 2 else None
    print(f"{len(tasks)} tasks, {len(pulled)} answered annotations by {len(res.reviewers)} annotators: {res.added} new "
          f"decisions, {res.changed} changed (undo + new), {res.removed} removed (undone), {res.unchanged} unchanged"
          + (f", {res.incomplete} without an answer (not written)" if res.incomplete else ""))
    if agreement is not None and len(agreement["pairwise"]):
        print(agreement["pairwise"].round(3).to_string(index=False))
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from workbench.data import fetch

    datasets = [d.strip() for d in args.only.split(",")] if args.only else list(fetch.DATASETS)
    if args.action == "where":
        print(fetch.describe(args.data_dir))
        return 0
    if args.action == "ensure":  # what `make demo` runs first: a no-op where a complete copy exists
        print(f"data: {fetch.ensure_data(args.data_dir, datasets=datasets)}")
        return 0
    dest = fetch.fetch_data(args.dest, datasets=datasets)
    print(f"data: {dest} ({', '.join(datasets)})")
    return 0


def _cmd_scale(args: argparse.Namespace) -> int:
    from workbench import scale
    from workbench.data import files as io

    options = ("embedder", "tagger", "judge", "llm_base_url", "llm_model", "llm_api_key_env", "backend", "ray_address",
               "workers", "verified_pairs")
    given = {k: getattr(args, k) for k in options if getattr(args, k) is not None}  # the rest: the configs' defaults
    stage1, gold = args.stage1_rm, args.gold_rm
    if not (stage1 and gold):
        if not args.rms_from:
            raise SystemExit("workbench scale: give --stage1-rm and --gold-rm, or --rms-from PAIRS to train fast ones")
        embedder = {"embedder": given["embedder"]} if "embedder" in given else {}
        stage1, gold = scale.train_pool_rms(io.load_pairs(args.rms_from), Path(args.out) / "rms", **embedder)
    cfg = scale.ScaleConfig.from_params(stage1_rm=str(stage1), gold_rm=str(gold), **given)
    try:
        summary = scale.curate_pool(args.pool, args.out, cfg)
    except KeyboardInterrupt:
        print("\nInterrupted; finished shards are kept. Run the same command again to resume.", file=sys.stderr)
        return 130
    print(f"{int(summary['pairs'].sum())} pairs in {len(summary)} shards; "
          f"keep {int(summary['keep'].sum())}, flip {int(summary['flip'].sum())}, drop {int(summary['drop'].sum())}")
    print(scale.decision_summary(args.out).to_string())
    if args.index:
        index = scale.build_index(scale.ShardedVectors(args.out), path=Path(args.out) / "index.faiss")
        print(f"faiss {index.cfg.kind} index over {len(index)} pairs: {Path(args.out) / 'index.faiss'}")
    return 0


def _count(text: str) -> int:
    """``40M``, ``1.5k``, ``10000000``: a pair count."""
    scale = {"k": 1e3, "m": 1e6, "b": 1e9}.get(text[-1:].lower(), 1)
    try:
        return int(float(text[:-1] if scale != 1 else text) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a pair count: {text!r} (e.g. 40M, 250k, 1000000)") from None


def _cmd_plan(args: argparse.Namespace) -> int:
    from workbench.scale.plan import Prices, Target, load_measured_runs, predict

    runs = load_measured_runs(args.runs)
    per_review = {"seconds_per_review": args.seconds_per_review} if args.seconds_per_review is not None else {}
    target = Target(pairs=args.pairs, machines=args.machines, cores_per_machine=args.cores, human_reviews=args.reviews,
                    **per_review)
    plan = predict(runs, target, Prices(args.price_core_hour, args.price_million_tokens, args.price_review_hour))
    print(plan.stages.round(1).to_string(index=False))
    print("\n" + "\n".join(f"{k}: {v:,.2f}" if isinstance(v, float) else f"{k}: {v:,}" for k, v in plan.summary().items()))
    print("\nassumptions:\n" + "\n".join(f"- {a}" for a in plan.assumptions))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="RM Curation Workbench")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the notebook pipeline of a config into runs/<name>/")
    run.add_argument("--config", required=True, help="pipeline YAML, e.g. configs/demo.yaml")
    run.add_argument("--force", action="store_true", help="re-run steps that already completed")
    run.add_argument("--run-name", help="override run_name from the config")
    run.add_argument("--runs-dir", help="override runs_dir from the config")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a shared parameter")
    run.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    run.set_defaults(func=_cmd_run)
    rep = sub.add_parser("report", help="(re)write runs/<name>/report.html")
    rep.add_argument("run_dir")
    rep.set_defaults(func=_cmd_report)
    chk = sub.add_parser("check-data", help="read a pair file, print counts and every reject reason")
    chk.add_argument("path", help="JSONL / JSON / parquet / CSV (optionally .gz) or a HF dataset id")
    chk.add_argument("--fmt", default="auto", help="auto, hh, conversational, prompt_strings, llmbar")
    chk.add_argument("--rename", action="append", default=[], metavar="OLD=NEW", help="rename a field first")
    chk.add_argument("--rejects", help="write rejected rows with reasons to this JSONL")
    chk.add_argument("--out", help="write the valid pairs (canonical schema) to .parquet or .jsonl")
    chk.add_argument("--show", type=int, default=20, help="print this many rejects")
    chk.add_argument("--allow-rejects", action="store_true", help="exit 0 even when rows were rejected")
    chk.set_defaults(func=_cmd_check_data)
    exp = sub.add_parser("experiment", help="curation against a known truth: constructed pairs or a teacher RM (no notebook)")
    exp.add_argument("--truth", choices=["constructed", "teacher"], default="constructed",
                     help="constructed: pairs whose label is true by construction (workbench.curation.experiment); "
                          "teacher: a reward model fine-tuned on HH-RLHF human labels is the truth, labels sampled "
                          "from it (workbench.curation.teacher_experiment; exit 3 when the dynamic-range gate fails)")
    exp.add_argument("--out", default="runs/experiment", help="folder for models, tables and figures")
    exp.add_argument("--data-dir", default=None, help="shared data folder (default: <repo>/../shared/data)")
    exp.add_argument("--plugin", action="append", default=[], metavar="FILE",
                     help="a Python file that registers noise models (workbench.data.noise.register_noise_model); "
                          "repeatable; then name them in --noise")
    exp.add_argument("--smoke", action="store_true", help="a tiny version (tests, a first look): minutes")
    # Unset options keep the config's defaults: the help names the field, the config class holds the value.
    for name, kind, text in (("noise", _names, "noise models, comma-separated: length, cluster, symmetric, none or a "
                                                "registered one"),
                             ("noise-rate", float, "share of pool labels flipped"),
                             ("noise-concentration", float, "length / cluster: share of the flips on the targeted pairs"),
                             ("seeds", _ints, "comma-separated seeds"),
                             ("n-cross-prompt", int, "constructed: known-truth pairs of each kind"),
                             ("n-truncated", int, "constructed"), ("n-padded", int, "constructed"),
                             ("cleanlab-folds", int, "constructed: folds of the out-of-fold RM probabilities"),
                             ("gold-fraction", float, "constructed: the gold split's share (the test split keeps 0.15)"),
                             ("seed-size", int, "human labels in Stage-1 round 0"),
                             ("labels-per-iteration", int, "human labels per retrieval round"),
                             ("iterations", int, "retrieval rounds"),
                             ("oracle-error-rate", float, "simulated people's error rate"),
                             ("judge-error-rate", float, "simulated LLM judge's error rate (constructed: < 0 = none)"),
                             ("head-epochs", int, "constructed: fast-head epochs"),
                             ("min-clean-accuracy", float, "constructed: refuse to run when a clean-label RM is below this"),
                             ("agreement", float, "teacher: share of annotator labels agreeing with the teacher"),
                             ("null-noise", _names, "teacher: the null control's noise models (none, symmetric)"),
                             ("budgets", _ints, "teacher: review budgets of the budget curve"),
                             ("secondary-seeds", int, "teacher: seeds of the other noise models and the budget curve"),
                             ("pool-sizes", _ints, "teacher: pool sizes of the learning curves"),
                             ("workers", int, "teacher: processes running the blocks, one torch thread each (0 = one per core)")):
        field = {"noise": "noise_models", "null-noise": "null_models"}.get(name, name.replace("-", "_"))
        owner = "TeacherExperimentConfig" if text.startswith("teacher") else "ExperimentConfig"
        exp.add_argument(f"--{name}", type=kind, default=None, dest=field,
                         help=f"{text} (default: {owner}.{field})".lstrip())
    exp.add_argument("--finetune", action="store_true",
                     help="also fine-tune the MiniLM RM on a few conditions (first noise model, first seed) as a check "
                          "on the fast student: constructed: raw + human labels, cleanlab, curated; teacher: clean, raw, "
                          "curated on TeacherExperimentConfig.finetune_pool_pairs pool pairs. Minutes per condition")
    exp.set_defaults(func=_cmd_experiment)
    syn = sub.add_parser("synth", help="write a synthetic pool (real HH shapes and words) as parquet shards, for scale tests")
    syn.add_argument("--n", type=int, required=True, help="number of pairs")
    syn.add_argument("--out", required=True, help="folder for shard-00000.parquet ...")
    syn.add_argument("--shard-size", type=int, help="pairs per shard (default: SyntheticConfig.shard_size)")
    syn.add_argument("--seed", type=int, help="default: SyntheticConfig.seed")
    syn.add_argument("--data-dir", default=None, help="shared data folder (default: <repo>/../shared/data)")
    syn.set_defaults(func=_cmd_synth)
    sha = sub.add_parser("shard", help="cut a pair file into canonical parquet shards, streaming")
    sha.add_argument("path", help="JSONL / JSON / parquet / CSV (optionally .gz)")
    sha.add_argument("--out", required=True)
    sha.add_argument("--shard-size", type=int, help="pairs per shard (default: shard_pair_file's)")
    sha.add_argument("--fmt", default="auto", help="auto, hh, conversational, prompt_strings, llmbar")
    sha.add_argument("--strict", action="store_true", help="stop at the first bad row (default: reject it, keep going)")
    sha.set_defaults(func=_cmd_shard)
    dat = sub.add_parser("data", help="where the public data is; fetch it into the user cache when it is missing")
    dat.add_argument("action", choices=["fetch", "ensure", "where"],
                     help="fetch: download what is missing; ensure: find it, else fetch; where: show the folders looked in")
    dat.add_argument("--dest", help="fetch into this folder (default: the user cache, see `workbench data where`)")
    dat.add_argument("--data-dir", help="look only here (ensure / where)")
    dat.add_argument("--only", help="comma-separated datasets: hh_rlhf, rewardbench, rm_bench, llmbar (default: all)")
    dat.set_defaults(func=_cmd_data)
    ex = sub.add_parser("export", help="write a run's curated training set for TRL / OpenRLHF / jsonl / parquet, with a card")
    ex.add_argument("run_dir", help="a run folder with curated.parquet (after notebook 05), e.g. runs/demo")
    ex.add_argument("--format", default="trl", choices=["trl", "openrlhf", "jsonl", "parquet"],
                    help="trl: prompt/chosen/rejected messages; openrlhf: whole conversations; jsonl/parquet: workbench schema")
    ex.add_argument("--out", required=True, help="output file, .parquet or .jsonl[.gz]; the card goes next to it")
    ex.add_argument("--include-dropped", action="store_true", help="also the pairs Stage 2 dropped (marked)")
    ex.add_argument("--with-heldout", action="store_true", help="append the gold and test splits (marked in `split`)")
    ex.add_argument("--name-reviewers", action="store_true", help="name reviewers in the card (only if they agreed)")
    ex.add_argument("--push-to-hub", metavar="REPO_ID", help="upload file + card to this Hub dataset (token: $HF_TOKEN)")
    ex.add_argument("--public", action="store_true", help="create the Hub dataset public (default: private)")
    ex.set_defaults(func=_cmd_export)
    rev = sub.add_parser("review", help="a team's review round: push a run's next queue to Label Studio (or a file), "
                                        "pull the annotations into its review log")
    rsub = rev.add_subparsers(dest="action", required=True)
    push = rsub.add_parser("push", help="compute the run's next queue, route it, send people's pairs to Label Studio or a file")
    pull = rsub.add_parser("pull", help="write Label Studio's annotations into the run's review log (idempotent)")
    for p in (push, pull):
        p.add_argument("run_dir", help="the run folder, e.g. runs/demo")
        p.add_argument("--url", help="Label Studio's address, e.g. http://localhost:8080")
        p.add_argument("--project", help="project title (created on the first push) or id")
        p.add_argument("--token-env", default="LABEL_STUDIO_API_KEY", help="NAME of the variable holding the API token")
        p.set_defaults(func=_cmd_review)
    push.add_argument("--to", required=True, metavar="label-studio|FILE.json",
                      help="label-studio (with --url, --project) or a file for Label Studio's import (+ FILE.xml config)")
    push.add_argument("--rule", action="append", default=[], metavar="RULE",
                      help='routing rule, repeatable, first match wins, e.g. "objectivity == subjective -> people" '
                           "(default: the paper's split, workbench.curation.routing.PAPER_RULES)")
    push.add_argument("--budget", action="append", default=[], metavar="ROUTE=N", help="pairs per round of a route")
    push.add_argument("--no-routing", action="store_true", help="every queued pair to people")
    push.add_argument("--seed-size", type=int, help="pairs in the seed round (default: Stage1Config.seed_size)")
    push.add_argument("--labels-per-iteration", type=int, help="pairs per later round (default: Stage1Config's)")
    push.add_argument("--seed", type=int, help="default: Stage1Config.seed")
    push.add_argument("--embedder", help='pair embedder for retrieval: "" (MiniLM, as notebook 03) or "hashing"')
    push.add_argument("--judge", choices=["none", "llm"], default="none", help="llm: the judge labels pairs routed llm / both")
    push.add_argument("--llm-base-url", help="judge llm: OpenAI-compatible endpoint (default: $WORKBENCH_LLM_BASE_URL)")
    push.add_argument("--llm-model", help="judge llm: one model, or several comma-separated (default: $WORKBENCH_LLM_MODEL)")
    pull.add_argument("--from", dest="source", required=True, metavar="label-studio|EXPORT.json",
                      help="label-studio (with --url, --project) or Label Studio's JSON export of the project")
    sca = sub.add_parser("scale", help="tag, embed, score and Stage-2-filter a sharded pool (resumable; local or Ray)")
    sca.add_argument("--pool", required=True, help="folder of parquet shards")
    sca.add_argument("--out", required=True, help="output folder (per-shard tags, vectors, curated pairs)")
    sca.add_argument("--stage1-rm", default="", help="the best Stage-1 RM folder")
    sca.add_argument("--gold-rm", default="", help="the gold RM folder")
    sca.add_argument("--rms-from", default="", help="no RMs yet: train fast ones on this pair file's train/gold splits")
    # Unset options keep `ScaleConfig.from_params`'s defaults (the chain's come from `CurationConfig`).
    sca.add_argument("--embedder", help='"minilm-static" (the scale default: MiniLM distilled to static vectors), "hashing" (lexical), '
                     '"" (MiniLM) or a model path')
    sca.add_argument("--tagger", choices=["embedded", "llm", "none"], help="default: embedded")
    sca.add_argument("--judge", choices=["none", "llm"], help="LLM judge on the pairs the Stage-1 RM is unsure of (default: none)")
    sca.add_argument("--llm-base-url", help="tagger / judge llm: OpenAI-compatible endpoint")
    sca.add_argument("--llm-model", help="judge: one model, or several comma-separated (they vote)")
    sca.add_argument("--llm-api-key-env", help="NAME of the variable holding the key (default: WORKBENCH_LLM_API_KEY)")
    sca.add_argument("--backend", choices=["local", "ray"], help="default: local")
    sca.add_argument("--ray-address", help='"" = start a local Ray; "auto" or ray://head:10001 = a cluster')
    sca.add_argument("--workers", type=int, help="Ray actors (default: ScaleConfig.workers)")
    sca.add_argument("--verified-pairs", help="judge llm: human-verified pairs (a pair file) for its few-shot examples")
    sca.add_argument("--index", action="store_true", help="also build the faiss index (IndexConfig: HNSW by default; out/index.faiss)")
    sca.set_defaults(func=_cmd_scale)
    pla = sub.add_parser("plan", help="predict wall time, memory, disk, LLM tokens, review hours (and money) for N pairs "
                         "from measured scale runs (workbench.scale.plan)")
    pla.add_argument("runs", nargs="+", help="costs.json files (bench_scale.py writes one per size), their folders, "
                     "or a folder of them (benchmarks/scale_costs)")
    pla.add_argument("--pairs", required=True, type=_count, help="pool size to plan for, e.g. 40M or 40000000")
    pla.add_argument("--machines", type=int, default=1)
    pla.add_argument("--cores", type=int, default=2, help="cores per machine")
    pla.add_argument("--reviews", type=int, help="human reviews (default: the measured runs' reviews per pair x pairs)")
    pla.add_argument("--seconds-per-review", type=float, help="a person's time per decision (default: Target's, 30 s)")
    pla.add_argument("--price-core-hour", type=float, default=0.0)
    pla.add_argument("--price-million-tokens", type=float, default=0.0)
    pla.add_argument("--price-review-hour", type=float, default=0.0)
    pla.set_defaults(func=_cmd_plan)
    return parser


# Faults a user causes and can fix (a bad path, format, config or endpoint): one line, exit 2; --debug shows the traceback.
EXPECTED_FAULTS = (FileNotFoundError, IsADirectoryError, PermissionError, ValueError, KeyError, RuntimeError, OSError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EXPECTED_FAULTS as exc:
        if args.debug:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"workbench {args.command}: {message} (--debug for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
