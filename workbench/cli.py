"""Command line: ``workbench run``, ``workbench report``, ``workbench check-data`` (also ``python -m workbench``)."""

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
        out[key] = yaml.safe_load(value)  # "true" -> True, "3" -> 3, "[a, b]" -> list
    return out


def _cmd_run(args: argparse.Namespace) -> int:
    from workbench.runner import StepFailed, load_pipeline_config, run_pipeline

    cfg = load_pipeline_config(args.config, run_name=args.run_name, runs_dir=args.runs_dir, overrides=_parse_set(args.set))
    try:
        run_pipeline(cfg, force=args.force, progress_bar=not args.no_progress)
    except StepFailed as e:
        print(f"\nFAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted; finished steps are kept. Run the same command again to resume.", file=sys.stderr)
        return 130
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from workbench.report import build_report

    print(build_report(Path(args.run_dir)))
    return 0


def _cmd_check_data(args: argparse.Namespace) -> int:
    from workbench import io

    columns = dict(c.split("=", 1) for c in args.rename)
    pairs, report = io.read_pairs(args.path, fmt=args.fmt, strict=False, columns=columns, rejects_path=args.rejects)
    print(report.summary())
    for r in report.rejects[: args.show]:
        print(f"  row {r['row']}: field {r['field']!r}: {r['reason']}")
    if args.out:
        io.write_pairs(pairs, args.out)
        print(f"wrote {len(pairs)} pairs to {args.out}")
    return 0 if not report.rejects or args.allow_rejects else 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="RM Curation Workbench")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
