"""Throughput of `ChatClient.complete_many` against the fake server with a fixed artificial latency.

Each request takes ``--latency`` seconds on the (threaded) fake server, so the ideal rate at
concurrency ``c`` is ``c / latency`` requests/s until client overhead or the server's threads become the
limit. Sends ``--requests`` structured (json_schema) requests at each concurrency, prints requests/s, the
speed-up vs concurrency 1 and the ideal speed-up, then a markdown table. No network, no model: this
measures the client's batching and overhead, not an LLM.

Run: .venv/bin/python benchmarks/bench_llm_client.py [--latency 0.2] [--requests 64] [--concurrency 1 8 32]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fake_llm_server import FakeLLMServer  # noqa: E402

from workbench.llm.client import ChatClient, EndpointConfig  # noqa: E402

SCHEMA = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"],
          "additionalProperties": False}


def run(server: FakeLLMServer, n_requests: int, concurrency: int) -> tuple[float, int]:
    """Send ``n_requests`` at ``concurrency``; return (seconds, number ok)."""
    cfg = EndpointConfig(base_url=server.base_url, model="fake-model", concurrency=concurrency, timeout_s=30)
    batch = [[{"role": "user", "content": f"request {i}"}] for i in range(n_requests)]
    with ChatClient(cfg) as client:
        t = time.perf_counter()
        results = client.complete_many(batch, schema=SCHEMA, progress=False)
        seconds = time.perf_counter() - t
    wrong = [i for i, r in enumerate(results) if not r.ok or r.parsed != {"echo": f"request {i}"}]
    if wrong:
        raise SystemExit(f"{len(wrong)} results wrong or out of order, first {wrong[:5]}: {results[wrong[0]]}")
    return seconds, n_requests - len(wrong)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.2, help="seconds per request on the fake server")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = ap.parse_args(argv)

    responder = lambda req: json.dumps({"echo": req["messages"][-1]["content"]})  # noqa: E731
    rows = []
    with FakeLLMServer(responder=responder, latency_s=args.latency) as server:
        run(server, min(4, args.requests), 4)  # warm-up (imports, first connections)
        for c in args.concurrency:
            seconds, ok = run(server, args.requests, c)
            rows.append((c, seconds, args.requests / seconds, ok))
            print(f"concurrency {c:3d}: {args.requests} requests in {seconds:6.2f}s = "
                  f"{args.requests / seconds:7.1f} req/s ({ok} ok)")
    # The ceiling: client + fake-server overhead per request with no artificial latency.
    with FakeLLMServer(responder=responder) as server:
        run(server, 8, 1)
        seconds0, _ = run(server, args.requests, 1)
    overhead_ms = 1000 * seconds0 / args.requests
    print(f"overhead at latency 0, concurrency 1: {overhead_ms:.1f} ms/request "
          f"({args.requests / seconds0:.0f} req/s)")

    base = rows[0][2]
    print(f"\nFake server latency {args.latency:g}s/request, {args.requests} requests, Python "
          f"{platform.python_version()}, {platform.machine()}\n")
    print("| concurrency | seconds | requests/s | speed-up vs c=1 | ideal speed-up | % of ideal rate |")
    print("|---|---|---|---|---|---|")
    for c, seconds, rate, _ in rows:
        if args.latency > 0:
            ideal = min(c, args.requests) / args.latency
            ideal_cols = f"{min(c, args.requests) / min(rows[0][0], args.requests):.0f}x | {100 * rate / ideal:.0f}%"
        else:
            ideal_cols = "- | -"
        print(f"| {c} | {seconds:.2f} | {rate:.1f} | {rate / base:.2f}x | {ideal_cols} |")


if __name__ == "__main__":
    main()
