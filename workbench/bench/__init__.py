"""Benchmarks: loading the public benchmark sets, their upstream scoring rules, evaluating reward models on them,
and the benchmark figures."""
