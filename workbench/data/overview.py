"""Descriptive numbers for a pair set: the figures a data card and the first notebook show.

Pure functions over a pair frame; nothing here judges label quality (that needs a reward model).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workbench.data.pairs import ReadReport
from workbench.data.schema import PairFrame

NEAR_DUPLICATE_OVERLAP = 0.9  # word-set Jaccard of chosen vs rejected at or above this: a near-tie


def _words(text: str) -> int:
    return len(text.split())


def pair_lengths(pairs: PairFrame) -> pd.DataFrame:
    """Word counts per pair: ``prompt_words`` (all turns), ``chosen_words``, ``rejected_words``, ``n_turns``."""
    return pd.DataFrame(
        {
            "pair_id": pairs["pair_id"].to_numpy(),
            "prompt_words": [sum(_words(m["content"]) for m in p) for p in pairs["prompt"]],
            "chosen_words": pairs["chosen"].map(_words).to_numpy(),
            "rejected_words": pairs["rejected"].map(_words).to_numpy(),
            "n_turns": pairs["prompt"].map(len).to_numpy(),
        }
    )


def response_overlap(pairs: PairFrame) -> pd.Series:
    """Jaccard overlap of the lower-cased word sets of chosen and rejected, in [0, 1].

    1.0 means the two responses use the same words (a near-tie a reviewer cannot really decide).
    Example: chosen "the cat sat", rejected "the cat ran" -> 0.5.
    """
    out = []
    for c, r in zip(pairs["chosen"], pairs["rejected"]):
        a, b = set(c.lower().split()), set(r.lower().split())
        out.append(len(a & b) / len(a | b) if a | b else 1.0)
    return pd.Series(out, index=pairs.index, name="response_overlap")


def summarize_pairs(pairs: PairFrame, *, by: str = "source") -> pd.DataFrame:
    """One row per ``by`` group (plus ``all``): counts, median lengths, length bias, near-ties."""
    lengths = pair_lengths(pairs).set_index(pairs.index)
    frame = pairs[[by]].join(lengths).assign(
        overlap=response_overlap(pairs),
        prompt_key=pairs["prompt"].map(lambda p: hash(tuple((m["role"], m["content"]) for m in p))),
    )

    def _row(g: pd.DataFrame) -> pd.Series:
        return pd.Series(
            {
                "pairs": len(g),
                "prompts": g["prompt_key"].nunique(),
                "multi_turn_share": float((g["n_turns"] > 1).mean()),
                "median_prompt_words": float(g["prompt_words"].median()),
                "median_chosen_words": float(g["chosen_words"].median()),
                "median_rejected_words": float(g["rejected_words"].median()),
                "chosen_longer_share": float((g["chosen_words"] > g["rejected_words"]).mean()),
                "near_tie_share": float((g["overlap"] >= NEAR_DUPLICATE_OVERLAP).mean()),
            }
        )

    rows = {name: _row(g) for name, g in frame.groupby(by, sort=True)}
    rows["all"] = _row(frame)
    table = pd.DataFrame(rows).T
    table[["pairs", "prompts"]] = table[["pairs", "prompts"]].astype(int)
    table.index.name = by
    return table


def read_report_table(reports: list[ReadReport]) -> pd.DataFrame:
    """Rows read, pairs kept, rejects by reason and quirks, one row per source file."""
    return pd.DataFrame(
        [
            {
                "source": r.where.split("/shared/data/")[-1],
                "format": r.fmt,
                "rows": r.n_rows,
                "pairs": r.n_ok,
                "rejected": r.n_rejected,
                "reject_reasons": "; ".join(f"{k} ×{v}" for k, v in r.reasons().items()),
                "quirks": "; ".join(f"{k} ×{v}" for k, v in r.quirks.items()),
            }
            for r in reports
        ]
    ).set_index("source")


def longer_wins(pairs: PairFrame) -> np.ndarray:
    """Per pair, the "longer response wins" rule's verdict on the label: 1 right, 0 wrong, 0.5 tie (same word count)."""
    words_c = pairs["chosen"].map(_words).to_numpy()
    words_r = pairs["rejected"].map(_words).to_numpy()
    return np.where(words_c == words_r, 0.5, (words_c > words_r).astype(float))


def length_bias(pairs: PairFrame) -> float:
    """Accuracy of the rule "the longer response wins" on these labels (0.5 = no length bias)."""
    return float(np.mean(longer_wins(pairs)))


def build_metrics(pairs: PairFrame, reports: list[ReadReport], dedup: Any) -> dict[str, Any]:
    """The data's numbers at a glance: pairs, rows read and rejected, duplicates, known-true share, length bias.
    ``dedup`` is the `workbench.data.splits.DedupReport` of the build."""
    return {
        "pairs": len(pairs),
        "rows_read": sum(r.n_rows for r in reports),
        "rows_rejected": sum(r.n_rejected for r in reports),
        "duplicates_removed": dedup.n_exact_duplicates + dedup.n_label_conflicts,
        "label_conflicts": dedup.n_label_conflicts,
        "known_true_share": float(pairs["label_known_true"].mean()),
        "longer_wins_accuracy": length_bias(pairs),
    }
