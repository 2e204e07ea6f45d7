"""Read the four shared HH-RLHF test files: workbench reader vs the common naive recipe, side by side.

Baseline ("naive"): `datasets.load_dataset("json")` then split each dialogue at its *last*
"\\n\\nAssistant:" (the usual recipe in RM training scripts). Prints rows/s of both, the speed ratio,
and how many rows the naive split gets wrong (chosen and rejected prompts differ) or lets through
(identical or empty responses) that the workbench rejects with a reason.

Run: .venv/bin/python benchmarks/bench_read_pairs.py
"""

from __future__ import annotations

import time

from workbench.data import files as io

FILES = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")
MARK = "\n\nAssistant:"


def naive(paths):
    import datasets

    ds = datasets.load_dataset("json", data_files=[str(p) for p in paths], split="train")
    wrong_prompt = bad_kept = 0
    for c, r in zip(ds["chosen"], ds["rejected"]):
        pc, rc = c[: c.rfind(MARK)], r[: r.rfind(MARK)]
        yc, yr = c[c.rfind(MARK) + len(MARK):].strip(), r[r.rfind(MARK) + len(MARK):].strip()
        wrong_prompt += pc != rc
        bad_kept += (yc == yr) or not yc or not yr
    return len(ds), wrong_prompt, bad_kept


def workbench(paths):
    n = rejected = 0
    for p in paths:
        pairs, report = io.read_pairs(p, strict=False)
        n += report.n_rows
        rejected += report.n_rejected
    return n, rejected


def main(repeats: int = 3) -> None:
    data = io.shared_data_dir()
    paths = [data / "hh_rlhf" / f / "test.jsonl.gz" for f in FILES]
    naive(paths)  # warm the datasets cache once so both sides read from a warm page cache
    t_naive, t_wb = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        n, wrong, kept = naive(paths)
        t_naive.append(time.perf_counter() - t)
        t = time.perf_counter()
        n2, rej = workbench(paths)
        t_wb.append(time.perf_counter() - t)
    tn, tw = min(t_naive), min(t_wb)
    print(f"rows: {n} (naive) / {n2} (workbench)")
    print(f"naive    : {n / tn:8.0f} rows/s ({tn:.2f}s); prompts that differ between chosen/rejected: {wrong}; "
          f"identical/empty responses kept silently: {kept}")
    print(f"workbench: {n2 / tw:8.0f} rows/s ({tw:.2f}s); rejected with a listed reason: {rej}")
    print(f"speed ratio workbench/naive: {tn / tw:.2f}x (best of {repeats})")


if __name__ == "__main__":
    main()
