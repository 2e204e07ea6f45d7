"""Fast-head training: torch's default thread count vs one thread, alone and beside a busy process.

The fast embedding-head RM trains small matmuls (batch 256 x 1,539 -> 256); on a 2-core machine that another
torch process also uses, its default 2 threads spin-wait on each other. This times one training run (features
cached, 980 pairs, 30 epochs) both ways, alone and next to a CPU-bound torch process, side by side in one run.

Run: ``.venv/bin/python benchmarks/bench_fast_head_threads.py`` (needs ``runs/experiment`` from
``workbench experiment --out runs/experiment`` for its cached embeddings).
"""

from __future__ import annotations

import multiprocessing as mp
import time

import torch


def _busy(stop) -> None:
    torch.set_num_threads(2)
    a = torch.randn(1024, 1024)
    while not stop.is_set():
        a @ a


def _time_training(threads: int) -> float:
    from workbench.curation.experiment import ExperimentConfig, prepare_data
    from workbench.data import splits
    from workbench.models import training
    from workbench.runs.folder import start_run
    from workbench.runs.stores import EmbeddingCache

    run = start_run("runs/experiment")
    data = prepare_data(ExperimentConfig(), run, progress=False)
    pool, _ = data.split("train")
    noisy = splits.inject_label_noise(pool, 0.2, seed=0)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        training.train_reward_model(noisy, None, cfg=training.RMTrainConfig(kind="embedding_head", head_epochs=30),
                                    output_dir="runs/bench_threads", cache=EmbeddingCache(run, "minilm"), progress=False)
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)


def main() -> None:
    default = torch.get_num_threads()
    _time_training(default)  # warm-up: imports, embedder load, cache reads
    rows = []
    for label in ("alone", "beside a busy torch process"):
        ctx = mp.get_context("spawn")  # fork after torch's thread pool started can hang the child
        stop = ctx.Event()
        busy = ctx.Process(target=_busy, args=(stop,)) if label != "alone" else None
        if busy:
            busy.start()
            time.sleep(2)
        t_default, t_one = _time_training(default), _time_training(1)
        if busy:
            stop.set()
            busy.join()
        rows.append((label, t_default, t_one))
        print(label, round(t_default, 1), round(t_one, 1), flush=True)
    print(f"| setting | {default} threads (default) s | 1 thread s | speed-up of 1 thread |")
    print("|---|---|---|---|")
    for label, d, o in rows:
        print(f"| {label} | {d:.1f} | {o:.1f} | {d / o:.2f}x |")


if __name__ == "__main__":
    main()
