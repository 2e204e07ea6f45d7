"""Synthetic preference pools for scale tests: N pairs with the shapes of real HH-RLHF pairs.

For benchmarks and tests of the sharded, streaming stages only: the texts are bags of real words, not
language, and the labels mean nothing. What is realistic:

* **lengths** — each synthetic pair copies the shape of a real HH pair drawn at random (number of
  turns, words per turn, words in chosen and rejected), so the joint length distribution, its long
  tail and the chosen/rejected correlation are the real ones;
* **words** — drawn from the real texts' unigram frequencies;
* **topics** — each pair belongs to one of ``n_topics`` topics whose own word list supplies a share
  of its words, so pairs cluster in embedding space the way real pools do (retrieval and IVF indexes
  behave as on real data, not as on uniform noise).

Shards are generated independently from ``(seed, shard index)``: the pool is identical however many
processes write it, and it is never held in memory whole.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench.data import files as io
from workbench.data.schema import PairFrame, make_pair_id

_WORD = re.compile(r"[A-Za-z']+|[0-9]+")
PROFILE_FILES = ("helpful-base", "harmless-base")
SYNTHETIC_STAMP = "2000-01-01T00:00:00+00:00"  # fixed, so a pool is byte-for-byte reproducible


@dataclass(frozen=True)
class PoolProfile:
    """What a synthetic pair is drawn from: real pair shapes and a real vocabulary."""

    turn_words: list[list[int]]  # per real pair: words in each prompt message
    turn_roles: list[list[str]]  # per real pair: the role of each prompt message
    chosen_words: np.ndarray
    rejected_words: np.ndarray
    vocabulary: np.ndarray  # object array of words, most frequent first
    frequencies: np.ndarray  # unigram probabilities, same order

    @property
    def n_shapes(self) -> int:
        return len(self.turn_words)


def profile_pairs(pairs: PairFrame, *, max_vocabulary: int = 30_000) -> PoolProfile:
    """Shapes and vocabulary of real pairs (e.g. the shared HH-RLHF test files)."""
    counts: Counter[str] = Counter()

    def words(text: str) -> int:
        found = _WORD.findall(text)
        counts.update(w.lower() for w in found)
        return max(len(found), 1)

    turn_words = [[words(m["content"]) for m in prompt] for prompt in pairs["prompt"]]
    turn_roles = [[m["role"] for m in prompt] for prompt in pairs["prompt"]]
    chosen = np.array([words(t) for t in pairs["chosen"]])
    rejected = np.array([words(t) for t in pairs["rejected"]])
    common = counts.most_common(max_vocabulary)
    freq = np.array([c for _, c in common], dtype=np.float64)
    return PoolProfile(turn_words, turn_roles, chosen, rejected, np.array([w for w, _ in common], dtype=object), freq / freq.sum())


def hh_profile(data_dir: str | Path | None = None) -> PoolProfile:
    """`profile_pairs` of the shared HH-RLHF helpful-base + harmless-base test pairs."""
    root = io.shared_data_dir(data_dir)
    frames = [io.read_pairs(root / "hh_rlhf" / name / "test.jsonl.gz", strict=False)[0] for name in PROFILE_FILES]
    return profile_pairs(pd.concat(frames, ignore_index=True))


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of a synthetic pool."""

    n_pairs: int = 100_000
    shard_size: int = 10_000  # pairs per parquet shard
    n_topics: int = 500
    topic_words: int = 150  # distinct words per topic
    topic_share: float = 0.5  # share of a text's words drawn from its topic
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_pairs < 1 or self.shard_size < 1:
            raise ValueError(f"n_pairs and shard_size must be >= 1, got {self.n_pairs} and {self.shard_size}.")
        if not 0.0 <= self.topic_share <= 1.0:
            raise ValueError(f"topic_share must be in [0, 1], got {self.topic_share}.")

    @property
    def n_shards(self) -> int:
        return -(-self.n_pairs // self.shard_size)


def _topics(profile: PoolProfile, cfg: SyntheticConfig) -> np.ndarray:
    """(n_topics, topic_words) word indices; the 100 most frequent words (function words) never make a topic."""
    rng = np.random.default_rng([cfg.seed, 7919])
    content = np.arange(min(100, len(profile.vocabulary) // 2), len(profile.vocabulary))
    return np.stack([rng.choice(content, size=min(cfg.topic_words, len(content)), replace=False) for _ in range(cfg.n_topics)])


def synthetic_shard(profile: PoolProfile, cfg: SyntheticConfig, shard: int) -> PairFrame:
    """Pairs ``shard * shard_size`` .. of the pool, as a canonical pair frame (split ``train``)."""
    start = shard * cfg.shard_size
    n = min(cfg.shard_size, cfg.n_pairs - start)
    if n <= 0:
        raise ValueError(f"shard {shard} is past the end of a {cfg.n_pairs}-pair pool.")
    rng = np.random.default_rng([cfg.seed, shard])
    topics = _topics(profile, cfg)
    shapes = rng.integers(0, profile.n_shapes, size=n)
    topic_of = rng.integers(0, len(topics), size=n)
    cumulative = np.cumsum(profile.frequencies)
    zipf = 1.0 / np.arange(1, topics.shape[1] + 1)
    topic_cumulative = np.cumsum(zipf / zipf.sum())

    def text(n_words: int, topic: int) -> str:
        from_topic = rng.random(n_words) < cfg.topic_share
        general = np.searchsorted(cumulative, rng.random(n_words), side="right").clip(max=len(cumulative) - 1)
        own = topics[topic][np.searchsorted(topic_cumulative, rng.random(n_words), side="right").clip(max=topics.shape[1] - 1)]
        chosen_words = profile.vocabulary[np.where(from_topic, own, general)]
        return " ".join(chosen_words).capitalize() + "."

    rows = []
    for i in range(n):
        shape, topic = shapes[i], topic_of[i]
        prompt = [{"role": role, "content": text(w, topic)}
                  for role, w in zip(profile.turn_roles[shape], profile.turn_words[shape])]
        chosen, rejected = text(int(profile.chosen_words[shape]), topic), text(int(profile.rejected_words[shape]), topic)
        if chosen == rejected:
            rejected += " No."
        rows.append({"pair_id": make_pair_id(prompt, chosen, rejected), "prompt": prompt, "chosen": chosen,
                     "rejected": rejected, "source": "synthetic", "split": "train", "label_state": "original",
                     "label_by": "synthetic", "label_at": SYNTHETIC_STAMP, "topic": int(topic)})
    return pd.DataFrame(rows)


def heldout_synthetic_pairs(profile: PoolProfile, cfg: SyntheticConfig, n: int) -> PairFrame:
    """``n`` more pairs from the same topics as the pool ``cfg`` describes but not in it (e.g. gold queries)."""
    beyond = SyntheticConfig(n_pairs=(cfg.n_shards + 1) * n, shard_size=n, n_topics=cfg.n_topics,
                             topic_words=cfg.topic_words, topic_share=cfg.topic_share, seed=cfg.seed)
    return synthetic_shard(profile, beyond, cfg.n_shards)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def write_synthetic_pool(out_dir: str | Path, cfg: SyntheticConfig = SyntheticConfig(), *,
                         profile: PoolProfile | None = None, data_dir: str | Path | None = None,
                         progress: bool = True) -> list[Path]:
    """Write the pool as ``out_dir/shard-00000.parquet`` ...; shards already there are kept (resumable).

    Example: ``write_synthetic_pool("pools/synth-100k", SyntheticConfig(n_pairs=100_000))``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / shard_name(i) for i in range(cfg.n_shards)]
    todo = [i for i, p in enumerate(paths) if not p.exists()]
    if todo:
        profile = profile or hh_profile(data_dir)
        for i in tqdm(todo, desc="synthetic shards", unit="shard", disable=not progress):
            io.write_pairs(synthetic_shard(profile, cfg, i), paths[i])
    return paths
