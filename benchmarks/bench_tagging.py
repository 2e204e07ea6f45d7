"""Tagging speed and quality, measured in one run.

1. Embedded (offline) tagger: pairs/s on this CPU over demo pool pairs (cold: embeddings computed),
   and per-field accuracy on the hand-labeled set `data/tagging_gold` against the majority baseline.
2. LLM tagger through `tag_pairs` (durable store, validation) against the local fake chat-completions
   server with a fixed artificial latency: pairs/s at concurrency 1, 8 and 32, ratios vs concurrency 1.

Run: .venv/bin/python benchmarks/bench_tagging.py [--pairs 500] [--latency 0.2] [--llm-pairs 64]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
warnings.filterwarnings("ignore")

from fake_llm_server import FakeLLMServer  # noqa: E402

from workbench.curation.tagging import EmbeddedTagger, LLMTagger, load_tagging_gold, majority_baseline, tag_accuracy, tag_pairs  # noqa: E402
from workbench.data import demo as demo_data
from workbench.llm.client import ChatClient, EndpointConfig  # noqa: E402
from workbench.runs.stores import ResultStore

ANSWER = json.dumps({"task_category": "chat", "objectivity": "subjective", "controversiality": "low",
                     "desired_attributes": ["helpful"], "annotation_guideline": "Prefer the more helpful answer."})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--llm-pairs", type=int, default=64)
    args = ap.parse_args()
    pairs = demo_data.build_demo_pairs().pairs.head(args.pairs)
    tmp = Path(tempfile.mkdtemp())

    tagger = EmbeddedTagger()
    tagger.category_scores(["warm up the embedder"])  # model load is not tagging work
    t = time.perf_counter()
    tag_pairs(pairs, tagger, store=ResultStore(tmp / "e.sqlite", "tags"), progress=False)
    rate = len(pairs) / (time.perf_counter() - t)
    print(f"embedded tagger: {rate:.1f} pairs/s over {len(pairs)} demo pairs (cold embeddings, 2 CPU threads)")
    gold_pairs, labels = load_tagging_gold()
    acc = tag_accuracy(tag_pairs(gold_pairs, tagger, store=ResultStore(tmp / "g.sqlite", "tags"), progress=False), labels)
    base = majority_baseline(labels)
    print("| field | embedded tagger | majority baseline |\n|---|---|---|")
    for f in acc.index:
        print(f"| {f} | {acc.loc[f, 'accuracy']:.3f} | {base[f]:.3f} |")

    llm_pairs = pairs.head(args.llm_pairs)
    rates = {}
    with FakeLLMServer(responder=lambda req: ANSWER, latency_s=args.latency) as srv:
        for c in (1, 8, 32):
            client = ChatClient(EndpointConfig(base_url=srv.base_url, model="fake", concurrency=c, timeout_s=30))
            t = time.perf_counter()
            tags = tag_pairs(llm_pairs, LLMTagger(client), store=ResultStore(tmp / f"l{c}.sqlite", "tags"), progress=False)
            rates[c] = len(llm_pairs) / (time.perf_counter() - t)
            assert tags["tag_ok"].all()
    print(f"\nLLM tagger via tag_pairs, fake server latency {args.latency}s, {len(llm_pairs)} pairs:")
    print("| concurrency | pairs/s | vs concurrency 1 | ideal |\n|---|---|---|---|")
    for c, r in rates.items():
        print(f"| {c} | {r:.1f} | {r / rates[1]:.2f}x | {c}x |")


if __name__ == "__main__":
    main()
