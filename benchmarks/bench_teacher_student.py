"""The teacher testbed's student: training speed on cached features, side by side in one run.

Baseline: the pipeline's fast-RM path, `workbench.models.fast_rm.train_embedding_head`, which looks every text up
in an embedding cache (here an in-memory cache already holding every vector, so no model runs) and builds the
features per call. Measured: `workbench.curation.teacher_experiment.train_student`, which gathers rows of the
candidates' feature matrix. Same pairs (the testbed's pool, separate view: the experiment's default and the same
head inputs), same head (`TeacherExperimentConfig.head()`, bf16 as in the experiment), same epochs, same threads,
one warm-up call each. With ``--joint`` the joint view's student is timed beside them (its frozen cross-encoder
features are computed once first: minutes).

Needs the default testbed built (`workbench experiment --truth teacher` builds it; cached after).
Run: .venv/bin/python benchmarks/bench_teacher_student.py [--pairs 50000] [--joint]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from workbench.curation import teacher_experiment as te
from workbench.curation.testbed import build_testbed
from workbench.models import fast_rm
from workbench.models.embedding import MemoryEmbeddingCache, embedder_key, text_key


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=50_000)
    ap.add_argument("--joint", action="store_true", help="also time the joint view's student")
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = te.TeacherExperimentConfig()
    tb = build_testbed(cfg.testbed, progress=False)
    sep = te.student_arrays(tb, cfg.embedder, "separate", progress=False)
    idx = sep.idx("train")[: args.pairs]
    agree = np.ones(len(idx), bool)
    head = cfg.head(len(idx))
    # the baseline's cache: every prompt and response vector, keyed as embed_texts keys them
    z = np.load(tb.candidates_folder / f"student-{embedder_key(cfg.embedder)}.npz")  # written by student_arrays above
    c = tb.candidates
    e_p, e_r = z["prompt"], z["response"]
    cache = MemoryEmbeddingCache()
    keys = [text_key(t) for t in c["prompt_text"]] + [text_key(t) for t in c["response"]]
    cache.add(keys, np.concatenate([e_p, e_r]))
    win, lose = sep.win[idx], sep.lose[idx]
    prompts = [[{"role": "user", "content": c.at[w, "prompt_text"]}] for w in win]
    chosen, rejected = list(c["response"].to_numpy()[win]), list(c["response"].to_numpy()[lose])
    fcfg = fast_rm.HeadConfig(**{**head.__dict__})

    def baseline() -> None:
        fast_rm.train_embedding_head(prompts, chosen, rejected, cfg=fcfg, cache=cache, progress=False)

    def arrays(A: te.Arrays) -> None:
        te.train_student(A, idx, agree, head)

    runs = [("fast_rm.train_embedding_head (text cache)", baseline),
            ("train_student, separate view (same inputs)", lambda: arrays(sep))]
    if args.joint:
        joint = te.student_arrays(tb, cfg.embedder, "joint", progress=False)
        runs.append(("train_student, joint view", lambda: arrays(joint)))
    rows = []
    for name, fn in runs:
        fn()  # warm-up
        t0 = time.perf_counter()
        fn()
        rows.append((name, time.perf_counter() - t0))
    base = rows[0][1]
    print(f"{len(idx):,} pairs, head hidden {head.hidden}, {head.epochs} epochs, batch {head.batch_size}, "
          f"{torch.get_num_threads()} threads")
    for name, sec in rows:
        print(f"{name:48s} {sec:7.2f} s  {len(idx) * head.epochs / sec:9,.0f} pair-epochs/s  {base / sec:5.2f}x")


if __name__ == "__main__":
    main()
