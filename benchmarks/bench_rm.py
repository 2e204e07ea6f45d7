"""Reward-model speed, measured side by side in one run on the same model and data.

1. Scoring pairs/s: `workbench.models.scoring.score_pairs` (length-sorted batches, dynamic padding; with the
   OpenVINO runtime, the CPU default, and with plain PyTorch) vs a naive
   loop (one pair side at a time, as written by hand) vs fixed max-length padding (batches in data
   order, every input padded to max_length), each at the SAME dtype: the headline is bf16 vs bf16 (the
   workbench default on a CPU with native bf16), fp32 vs fp32 is shown too; the old mixed-dtype figure
   (workbench bf16 vs naive fp32) stays as a labelled extra row. Goal: >= 3x the naive loop.
2. Training pairs/s: `workbench.models.training.train_reward_model` (pre-tokenised, length-grouped,
   padding-free batches: each batch packed into one row, attention kept within each sequence) vs TRL
   `RewardTrainer` with default settings (prompt + response as plain text; pairs over max_length dropped),
   same MiniLM, batch size, steps and bf16. The workbench with padded batches (``padding_free=False``, TRL's
   collator) is a third row, so the packing's share of the ratio is read off the same run. Goal: >= 1.3x.
3. Achieved training FLOP/s as a fraction of this CPU's bf16 matmul peak (torch.matmul, same dtype). The
   FLOPs of a training step are *measured* with ``torch.utils.flop_counter.FlopCounterMode`` (forward +
   backward of the Bradley-Terry loss, one pair at a time, unpadded, so padding is not counted as useful
   work); the 6 x non-embedding-parameters x tokens estimate is printed beside it as a cross-check
   (embedding tables are lookups and do no matmul work).

Run: .venv/bin/python benchmarks/bench_rm.py [--pairs 256] [--steps 16] [--max-length 256] [--part all|scoring|training]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from dataclasses import replace

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

from workbench.models.device import bf16_supported  # noqa: E402


def demo_pairs(n: int):
    from workbench.data import demo as demo_data

    pairs = demo_data.build_demo_pairs().pairs
    return pairs[pairs["split"] == "train"].sample(n, random_state=0).reset_index(drop=True)


def minilm_rm():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from workbench.models.embedding import default_embedder_path
    from workbench.models.scoring import HFRewardModel

    torch.manual_seed(0)
    path = default_embedder_path()
    return HFRewardModel(AutoModelForSequenceClassification.from_pretrained(path, num_labels=1),
                         AutoTokenizer.from_pretrained(path), name="minilm")


def bench_scoring(pairs, max_length: int = 256, batch_size: int = 32) -> dict:
    from workbench.data.schema import prompt_text
    from workbench.models.device import autocast_for
    from workbench.models.scoring import ScoreConfig, score_pairs

    rm = minilm_rm()
    tok, model = rm.tokenizer, rm.model
    texts = [prompt_text(p) for p in pairs["prompt"]]
    all_texts, all_resp = texts * 2, list(pairs["chosen"]) + list(pairs["rejected"])
    n = len(pairs)

    def forward(enc, dtype):
        with torch.inference_mode(), autocast_for(torch.device("cpu"), dtype):
            return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[:, 0]

    def timed_score_pairs(dtype, runtime):
        cfg = ScoreConfig(max_length=max_length, batch_size=batch_size, dtype=dtype, runtime=runtime)
        score_pairs(rm, pairs.iloc[:8], cfg=cfg, progress=False)  # warm-up (OpenVINO compiles here, once per dtype)
        t = time.perf_counter()
        score_pairs(rm, pairs, cfg=cfg, progress=False)
        return n / (time.perf_counter() - t)

    def workbench_openvino(dtype):  # the default on a CPU (runtime="auto")
        return timed_score_pairs(dtype, "openvino")

    def workbench_torch(dtype):
        return timed_score_pairs(dtype, "torch")

    def naive_loop(dtype):  # what one writes by hand: one pair side at a time
        t = time.perf_counter()
        for text, resp in zip(all_texts, all_resp):
            forward(tok(text, resp, truncation=True, max_length=max_length, return_tensors="pt"), dtype)
        return n / (time.perf_counter() - t)

    def fixed_padding(dtype):
        t = time.perf_counter()
        for i in range(0, len(all_texts), 32):
            forward(tok(all_texts[i:i + 32], all_resp[i:i + 32], truncation=True, max_length=max_length,
                        padding="max_length", return_tensors="pt"), dtype)
        return n / (time.perf_counter() - t)

    workbench_torch("fp32")  # warm-up: first-call allocations and kernels, for every row alike
    return {(method.__name__, dtype): method(dtype) for dtype in ("bf16", "fp32")
            for method in (workbench_openvino, workbench_torch, naive_loop, fixed_padding)}


def training_step_flops(pairs, *, max_length: int = 256, sample: int = 32) -> dict:
    """Measured FLOPs of one Bradley-Terry training step per pair (forward + backward, unpadded).

    ``FlopCounterMode`` counts the matmul/attention FLOPs torch actually dispatches; each pair is run on
    its own, unpadded, so padding never counts as useful work. Averaged over ``sample`` pairs.
    """
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoTokenizer

    from workbench.models.embedding import default_embedder_path
    from workbench.models.scoring import encode_sides

    rm = minilm_rm()
    model = rm.model.train()
    tok = AutoTokenizer.from_pretrained(default_embedder_path())
    sub = pairs.iloc[:sample]
    ids_c, _ = encode_sides(tok, list(sub["prompt"]), list(sub["chosen"]), max_length=max_length)
    ids_r, _ = encode_sides(tok, list(sub["prompt"]), list(sub["rejected"]), max_length=max_length)
    counter = FlopCounterMode(display=False)
    with counter:
        for c, r in zip(ids_c, ids_r):
            r_c = model(input_ids=torch.tensor([c])).logits[0, 0]
            r_r = model(input_ids=torch.tensor([r])).logits[0, 0]
            (-torch.nn.functional.logsigmoid(r_c - r_r)).backward()
    model.zero_grad()
    embedding = sum(p.numel() for name, p in model.named_parameters() if "embeddings" in name)
    total = sum(p.numel() for p in model.parameters())
    return {"flops_per_pair": counter.get_total_flops() / len(sub),
            "tokens_per_pair": sum(len(c) + len(r) for c, r in zip(ids_c, ids_r)) / len(sub),
            "params": total, "non_embedding_params": total - embedding}


def _count_flops_tokens(ids_lists) -> int:
    return int(sum(len(x) for x in ids_lists))


def bench_training(pairs, *, steps: int, batch: int, max_length: int = 256) -> dict:
    import datasets
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from workbench.data.schema import prompt_text
    from workbench.models.embedding import default_embedder_path
    from workbench.models.scoring import encode_sides
    from workbench.models.training import RMTrainConfig, train_reward_model

    path = default_embedder_path()
    bf16 = bf16_supported(torch.device("cpu"))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RMTrainConfig(max_steps=steps, batch_size=batch, max_length=max_length, eval_steps=10_000, save_total_limit=1)
        for key, padding_free in (("workbench", True), ("workbench_padded", False)):
            res = train_reward_model(pairs, None, cfg=replace(cfg, padding_free=padding_free), output_dir=f"{tmp}/{key}",
                                     progress=False)
            assert res.metrics["padding_free"] == padding_free
            out[key] = steps * batch / res.metrics["train_seconds"]
        tok = AutoTokenizer.from_pretrained(path)
        ids_c, _ = encode_sides(tok, list(pairs["prompt"]), list(pairs["chosen"]), max_length=max_length)
        ids_r, _ = encode_sides(tok, list(pairs["prompt"]), list(pairs["rejected"]), max_length=max_length)
        # real tokens one training step sees, on average (for the FLOP estimate)
        out["tokens_per_pair"] = (_count_flops_tokens(ids_c) + _count_flops_tokens(ids_r)) / len(pairs)

        ds = datasets.Dataset.from_dict({"prompt": [prompt_text(p) + "\n\n" for p in pairs["prompt"]],
                                         "chosen": list(pairs["chosen"]), "rejected": list(pairs["rejected"])})
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        args = RewardConfig(output_dir=f"{tmp}/trl", per_device_train_batch_size=batch, max_steps=steps, use_cpu=True,
                            bf16=bf16, eos_token="[SEP]", max_length=max_length, report_to="none", save_strategy="no",
                            disable_tqdm=True, logging_steps=1000)
        trainer = RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
        kept = len(trainer.train_dataset)
        kept_tokens = sum(len(c) + len(r) for c, r in zip(trainer.train_dataset["chosen_ids"], trainer.train_dataset["rejected_ids"]))
        t = time.perf_counter()
        trainer.train()
        out["trl_default"] = steps * batch / (time.perf_counter() - t)
        out["trl_tokens_per_pair"] = kept_tokens / kept
        out["trl_dropped_pairs"] = len(pairs) - kept
        out["n_params"] = sum(p.numel() for p in model.parameters())
    return out


def matmul_peak(dtype=torch.bfloat16, n: int = 2048, reps: int = 10, trials: int = 5) -> float:
    """Best of ``trials`` timings of ``reps`` n x n matmuls: a peak, so the best trial (least disturbed) counts."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    best = 0.0
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b)
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--part", choices=["all", "scoring", "training"], default="all")
    args = ap.parse_args()
    pairs = demo_pairs(max(args.pairs, args.steps * args.batch))
    print(f"torch threads: {torch.get_num_threads()}, pairs: {len(pairs)}")

    if args.part in ("all", "scoring"):
        s = bench_scoring(pairs.iloc[: args.pairs], max_length=args.max_length)
        print(f"scoring pairs/s (same model, data, threads; warm; max_length {args.max_length}):")
        for dtype in ("bf16", "fp32"):
            wb, naive = s[("workbench_openvino", dtype)], s[("naive_loop", dtype)]
            print(f"  {dtype}: workbench openvino {wb:.1f} | workbench torch {s[('workbench_torch', dtype)]:.1f} | naive loop "
                  f"{naive:.1f} | fixed max-length padding {s[('fixed_padding', dtype)]:.1f} -> openvino {wb / naive:.2f}x naive "
                  f"(goal >= 3x), torch {s[('workbench_torch', dtype)] / naive:.2f}x naive, openvino "
                  f"{wb / s[('workbench_torch', dtype)]:.2f}x torch")
        print(f"  mixed dtypes, for reference only: workbench openvino bf16 / naive fp32 = "
              f"{s[('workbench_openvino', 'bf16')] / s[('naive_loop', 'fp32')]:.2f}x")
    if args.part == "scoring":
        return

    t = bench_training(pairs, steps=args.steps, batch=args.batch)
    print(f"training pairs/s: workbench {t['workbench']:.2f} | workbench with padded batches {t['workbench_padded']:.2f} | "
          f"TRL RewardTrainer default {t['trl_default']:.2f} (TRL dropped {t['trl_dropped_pairs']} of {len(pairs)} pairs "
          f"as too long)")
    print(f"  padding-free / padded workbench: {t['workbench'] / t['workbench_padded']:.2f}x; padded workbench / TRL: "
          f"{t['workbench_padded'] / t['trl_default']:.2f}x")
    print(f"  ratio: {t['workbench'] / t['trl_default']:.2f}x (goal >= 1.3x); real tokens/s: workbench "
          f"{t['workbench'] * t['tokens_per_pair']:.0f} vs TRL {t['trl_default'] * t['trl_tokens_per_pair']:.0f} "
          f"= {t['workbench'] * t['tokens_per_pair'] / (t['trl_default'] * t['trl_tokens_per_pair']):.2f}x "
          f"(TRL trains only on the shorter pairs it kept)")

    dtype = torch.bfloat16 if bf16_supported(torch.device("cpu")) else torch.float32
    peak = matmul_peak(dtype)
    f = training_step_flops(pairs)
    measured = f["flops_per_pair"] * t["workbench"]
    estimate = 6 * f["non_embedding_params"] * t["tokens_per_pair"] * t["workbench"]
    print(f"matmul peak ({dtype}): {peak / 1e9:.1f} GFLOP/s")
    print(f"  achieved training, measured (FlopCounterMode, {f['flops_per_pair'] / 1e9:.2f} GFLOP per pair over "
          f"{f['tokens_per_pair']:.0f} tokens, unpadded): {measured / 1e9:.1f} GFLOP/s = {measured / peak:.1%} of peak")
    print(f"  cross-check, 6 x {f['non_embedding_params'] / 1e6:.1f}M non-embedding params (of {f['params'] / 1e6:.1f}M) x "
          f"{t['tokens_per_pair']:.0f} real tokens/pair: {estimate / 1e9:.1f} GFLOP/s = {estimate / peak:.1%} of peak")


if __name__ == "__main__":
    main()
