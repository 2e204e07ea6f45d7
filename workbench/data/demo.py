"""Build the bundled demo dataset from ``shared/data``: an unverified pool, a gold set and a test set.

Two kinds of pairs:

* ``hh_human`` — Anthropic HH-RLHF test pairs (helpful-base + harmless-base) with their human labels,
  which are noisy (roughly 60-70% inter-annotator agreement) and barely learnable by small RMs.
* pairs whose label is **true by construction**, so later stages can measure curation against truth:
  ``cross_prompt`` (the real response to this conversation vs a real response written for another
  conversation, the donor picked closest in length so length is no give-away) and ``truncated``
  (a complete response vs the same response cut mid-sentence).

Constructed pairs draw on the other HH files (helpful-online, helpful-rejection-sampled) so that
no conversation appears in both parts. The build is deterministic under ``seed``. Not here:
label noise injection (the curation experiment does that on top of this).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data import files as io
from workbench.data.pairs import ReadReport
from workbench.data.schema import PairFrame, make_pair_id, prompt_key
from workbench.data.splits import DedupReport, assign_splits, deduplicate

HH_HUMAN_FILES = ("helpful-base", "harmless-base")
HH_CONSTRUCTION_FILES = ("helpful-online", "helpful-rejection-sampled")


PADDED_MAX_WORDS = 120  # padded hosts: short enough that host + paragraph fit MiniLM's 256-token window


@dataclass(frozen=True)
class DemoDataConfig:
    """Sizes and seed of the demo build; the defaults make 3,000 pairs (CPU-friendly)."""

    n_hh_helpful: int = 800
    n_hh_harmless: int = 1200  # fewer harmless pairs left the demo RM inverted on unseen harmless-base pairs
    n_cross_prompt: int = 500
    n_truncated: int = 500
    n_padded: int = 0  # the longer response is the worse one: a complete answer + an off-topic paragraph
    train_fraction: float = 0.70  # the unverified pool
    gold_fraction: float = 0.15  # human-verified gold set (Stage-1 validation)
    test_fraction: float = 0.15  # held-out test set, never curated
    min_words_truncated: int = 40  # shorter answers cannot be cut "mid-sentence" convincingly
    donor_candidates: int = 20  # cross_prompt: length-matched among this many random donors
    stratify_splits: bool = False  # every split gets the same mix of constructions (the curation experiment)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_hh_helpful", "n_hh_harmless", "n_cross_prompt", "n_truncated", "n_padded"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        total = self.train_fraction + self.gold_fraction + self.test_fraction
        if abs(total - 1) > 1e-6:
            raise ValueError(f"train/gold/test fractions must sum to 1, got {total:.3f}.")
        if self.min_words_truncated < 4:
            raise ValueError(f"min_words_truncated must be >= 4, got {self.min_words_truncated}.")

    @property
    def fractions(self) -> dict[str, float]:
        return {"train": self.train_fraction, "gold": self.gold_fraction, "test": self.test_fraction}


@dataclass
class DemoBuild:
    """The demo pairs plus everything needed to explain them (read reports, dedup counts)."""

    pairs: PairFrame
    read_reports: list[ReadReport] = field(default_factory=list)
    dedup: DedupReport | None = None


def _read_hh(data_dir: Path, name: str) -> tuple[PairFrame, ReadReport]:
    pairs, report = io.read_pairs(data_dir / "hh_rlhf" / name / "test.jsonl.gz", strict=False, source=f"hh-rlhf/{name}")
    return pairs, report


def _sample(pairs: PairFrame, n: int, rng: np.random.Generator) -> PairFrame:
    if n > len(pairs):
        raise ValueError(f"asked for {n} pairs from {pairs['source'].iloc[0]}, which has only {len(pairs)}.")
    return pairs.iloc[np.sort(rng.choice(len(pairs), size=n, replace=False))]


def _constructed(base: pd.Series, chosen: str, rejected: str, construction: str) -> dict:
    return {
        **base.to_dict(),
        "pair_id": make_pair_id(base["prompt"], chosen, rejected),
        "chosen": chosen,
        "rejected": rejected,
        "source": f"demo/{construction}",
        "construction": construction,
        "label_known_true": True,
        "origin": f"{base['source']}:{base['source_row']}",
    }


def make_cross_prompt_pairs(
    donors: PairFrame, hosts: PairFrame, *, n: int, n_candidates: int, rng: np.random.Generator
) -> PairFrame:
    """Host's real chosen response vs a donor's chosen response written for another conversation.

    ``donors`` should be conversations not used as pairs anywhere else in the build.
    Among ``n_candidates`` random donors the one closest in word count is used, so an RM has to judge
    relevance to the conversation, not length.
    """
    donor_text = donors["chosen"].to_numpy()
    donor_len = np.array([len(t.split()) for t in donor_text])
    donor_key = donors["prompt"].map(prompt_key).to_numpy()
    rows = []
    for _, host in hosts.iterrows():
        if len(rows) == n:
            break
        cand = rng.choice(len(donors), size=min(n_candidates, len(donors)), replace=False)
        cand = cand[donor_key[cand] != prompt_key(host["prompt"])]
        if not len(cand):
            continue
        best = cand[np.argmin(np.abs(donor_len[cand] - len(host["chosen"].split())))]
        if donor_text[best].strip() == host["chosen"].strip():
            continue
        rows.append(_constructed(host, host["chosen"], donor_text[best], "cross_prompt"))
    return pd.DataFrame(rows)


def truncate_mid_sentence(text: str, fraction: float) -> str:
    """First ``fraction`` of the words, with trailing punctuation removed so it visibly stops short.

    Example: ``truncate_mid_sentence("a b c d. e f", 0.5)`` -> ``"a b c"``.
    """
    spans = [m.end() for m in re.finditer(r"\S+", text)]
    keep = max(2, int(round(len(spans) * fraction)))
    # Cut at a character offset so the original whitespace and formatting survive: only the
    # missing ending should tell the two responses apart.
    return text[: spans[keep - 1]].rstrip(".,;:!?")


def make_truncated_pairs(hosts: PairFrame, *, min_words: int, rng: np.random.Generator) -> PairFrame:
    """Complete chosen response vs the same response cut at 30-60% of its words."""
    rows = []
    for _, host in hosts.iterrows():
        full = host["chosen"]
        if len(full.split()) < min_words:
            continue
        cut = truncate_mid_sentence(full, float(rng.uniform(0.3, 0.6)))
        rows.append(_constructed(host, full, cut, "truncated"))
    return pd.DataFrame(rows)


def off_topic_paragraph(text: str, *, min_words: int = 25, max_words: int = 60) -> str:
    """The opening sentences of ``text``, about ``min_words``..``max_words`` words, ending at a sentence end."""
    words, out = 0, []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        out.append(sentence)
        words += len(sentence.split())
        if words >= min_words:
            break
    return " ".join(" ".join(out).split()[:max_words])


def make_padded_pairs(hosts: PairFrame, donors: PairFrame, *, n: int, max_words: int, rng: np.random.Generator) -> PairFrame:
    """Complete chosen response vs the same response followed by an off-topic paragraph from another conversation:
    the longer response is the worse one (the counterweight to ``truncated``, so length cannot solve the truth).

    Hosts answer in at most ``max_words`` words, so the added paragraph stays inside a 256-token embedding window.
    """
    paragraphs = [p for p in donors["chosen"].map(off_topic_paragraph) if len(p.split()) >= 20]
    rows = []
    for _, host in hosts.iterrows():
        if len(rows) == n or not paragraphs:
            break
        if not 8 <= len(host["chosen"].split()) <= max_words:
            continue
        extra = paragraphs[int(rng.integers(len(paragraphs)))]
        rows.append(_constructed(host, host["chosen"], host["chosen"].rstrip() + "\n\n" + extra, "padded"))
    return pd.DataFrame(rows)


def build_demo_pairs(data_dir: str | Path | None = None, cfg: DemoDataConfig = DemoDataConfig()) -> DemoBuild:
    """Assemble the demo pool / gold / test from the shared HH-RLHF files.

    Args:
        data_dir: the shared data folder; ``None`` resolves ``<repo>/../shared/data`` (see
            `workbench.data.files.shared_data_dir`, which fails with a clear message when it is missing).
        cfg: sizes, split fractions and seed.

    Returns:
        `DemoBuild` whose ``pairs`` carry the canonical columns plus ``construction``,
        ``label_known_true`` and ``origin``; splits are grouped by prompt.

    Example: ``build = build_demo_pairs(cfg=DemoDataConfig(n_hh_helpful=50, n_hh_harmless=50))``.
    """
    data_dir = io.shared_data_dir(data_dir)
    rng = np.random.default_rng(cfg.seed)
    reports: list[ReadReport] = []
    parts = []
    for name, n in zip(HH_HUMAN_FILES, (cfg.n_hh_helpful, cfg.n_hh_harmless)):
        pairs, report = _read_hh(data_dir, name)
        reports.append(report)
        human = _sample(pairs, n, rng).assign(construction="hh_human", label_known_true=False)
        parts.append(human.assign(origin=human["source"] + ":" + human["source_row"].astype(str)))

    pool = []
    for name in HH_CONSTRUCTION_FILES:
        pairs, report = _read_hh(data_dir, name)
        reports.append(report)
        pool.append(pairs)
    pool_frame = pd.concat(pool, ignore_index=True)
    # One host conversation per construction: shuffle once, take disjoint slices.
    pool_frame = pool_frame.iloc[rng.permutation(len(pool_frame))].drop_duplicates(subset="pair_id")
    long_enough = pool_frame["chosen"].str.split().str.len() >= cfg.min_words_truncated
    trunc_hosts = pool_frame[long_enough].iloc[: cfg.n_truncated]
    # A few spare hosts: a host is skipped when its best donor repeats its own response.
    cross_hosts = pool_frame.drop(trunc_hosts.index).iloc[: cfg.n_cross_prompt + cfg.n_cross_prompt // 20 + 5]
    if len(trunc_hosts) < cfg.n_truncated or len(cross_hosts) < cfg.n_cross_prompt:
        raise ValueError(
            f"not enough HH conversations for n_truncated={cfg.n_truncated}, n_cross_prompt={cfg.n_cross_prompt} "
            f"(have {int(long_enough.sum())} long responses, {len(pool_frame)} in all); lower them."
        )
    # Donors are conversations used nowhere else, so a donated response never appears as the text
    # of another pair (which could sit in another split and leak across it).
    rest = pool_frame.drop(trunc_hosts.index).drop(cross_hosts.index)
    short = rest["chosen"].str.split().str.len().between(8, PADDED_MAX_WORDS)
    padded_hosts = rest[short].iloc[: cfg.n_padded + cfg.n_padded // 10 + 5] if cfg.n_padded else rest.iloc[:0]
    donors = rest.drop(padded_hosts.index)
    if cfg.n_cross_prompt:
        parts.append(make_cross_prompt_pairs(donors, cross_hosts, n=cfg.n_cross_prompt, n_candidates=cfg.donor_candidates, rng=rng))
    if cfg.n_truncated:
        parts.append(make_truncated_pairs(trunc_hosts, min_words=cfg.min_words_truncated, rng=rng))
    if cfg.n_padded:
        paragraph_donors = donors.iloc[rng.permutation(len(donors))[: max(200, cfg.n_padded)]]
        donors = donors.drop(paragraph_donors.index)
        parts.append(make_padded_pairs(padded_hosts, paragraph_donors, n=cfg.n_padded, max_words=PADDED_MAX_WORDS, rng=rng))

    pairs, dedup = deduplicate(pd.concat(parts, ignore_index=True))
    pairs = assign_splits(pairs, fractions=cfg.fractions, seed=cfg.seed,
                          stratify="construction" if cfg.stratify_splits else None)
    pairs["label_known_true"] = pairs["label_known_true"].astype(bool)
    return DemoBuild(pairs=pairs.reset_index(drop=True), read_reports=reports, dedup=dedup)


SMOKE_SIZES = {"n_hh_helpful": 40, "n_hh_harmless": 40, "n_cross_prompt": 30, "n_truncated": 30}


def demo_config(*, smoke: bool = False, **fields) -> DemoDataConfig:
    """`DemoDataConfig` from notebook parameters; ``smoke=True`` caps the sizes for fast test runs."""
    cfg = DemoDataConfig(**fields)
    if smoke:
        cfg = replace(cfg, **{k: min(v, getattr(cfg, k)) for k, v in SMOKE_SIZES.items()})
    return cfg


def build_user_pairs(path: str | Path, cfg: DemoDataConfig = DemoDataConfig(), *, fmt: str = "auto") -> DemoBuild:
    """Your own pair file instead of the demo: read leniently (rejects kept), dedup, split by prompt.

    Labels of user data are not known to be true, so ``label_known_true`` is False throughout.
    """
    pairs, report = io.read_pairs(path, fmt=fmt, strict=False)
    if pairs.empty:
        raise ValueError(f"{path}: no valid pairs ({report.summary()}); see the rejects for the reasons.")
    pairs = pairs.assign(construction="user", label_known_true=False,
                         origin=pairs["source"] + ":" + pairs["source_row"].astype(str))
    pairs, dedup = deduplicate(pairs)
    pairs = assign_splits(pairs, fractions=cfg.fractions, seed=cfg.seed,
                          stratify="construction" if cfg.stratify_splits else None)
    return DemoBuild(pairs=pairs, read_reports=[report], dedup=dedup)


def heldout_hh_pairs(data_dir: str | Path | None, exclude: PairFrame, *, n: int = 1000, seed: int = 0) -> PairFrame:
    """HH-RLHF helpful-base + harmless-base pairs whose prompts are not in ``exclude``: an external test set.

    The demo samples its human part from these two files; the rest is unseen by anything trained on
    the demo, so accuracy here measures generalisation to real (noisy) human preferences.
    """
    data_dir = io.shared_data_dir(data_dir)
    seen = set(exclude["prompt"].map(prompt_key))
    parts = [_read_hh(data_dir, name)[0] for name in HH_HUMAN_FILES]
    pool = pd.concat(parts, ignore_index=True)
    pool = pool[~pool["prompt"].map(prompt_key).isin(seen)].drop_duplicates("pair_id")
    take = min(n, len(pool))
    rng = np.random.default_rng(seed)
    out = pool.iloc[np.sort(rng.choice(len(pool), size=take, replace=False))].reset_index(drop=True)
    return out.assign(construction="hh_heldout", label_known_true=False, split="test")
