"""Deduplicate pairs, assign train / gold / test splits grouped by prompt, and change label states.

Splits are grouped by the conversation (`schema.prompt_key`): every pair that shares a prompt lands
in the same split, so an RM evaluated on gold or test never saw that prompt in training. The order of
prompts is a seeded hash, so the assignment is deterministic and does not depend on row order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.data.noise import flip_labels
from workbench.data.pairs import now_iso
from workbench.data.schema import LABEL_STATES, PairFrame, prompt_key


@dataclass(frozen=True)
class DedupReport:
    """Counts from `deduplicate`: exact repeats and label conflicts (same two responses, both orders)."""

    n_in: int
    n_out: int
    n_exact_duplicates: int
    n_label_conflicts: int
    conflict_ids: tuple[str, ...]


def deduplicate(pairs: PairFrame) -> tuple[PairFrame, DedupReport]:
    """Keep the first row of each `pair_id`; count repeats and label conflicts.

    A conflict is the same prompt and responses labelled in opposite orders (possible because
    `pair_id` ignores order). The first occurrence wins; conflicts are listed so a reviewer can
    look at them instead of losing them.
    """
    first = pairs.drop_duplicates("pair_id", keep="first")
    dups = pairs[pairs["pair_id"].duplicated(keep="first")]
    chosen_of = dict(zip(first["pair_id"], first["chosen"]))
    conflict = dups[dups["chosen"].to_numpy() != dups["pair_id"].map(chosen_of).to_numpy()]
    report = DedupReport(
        n_in=len(pairs), n_out=len(first), n_exact_duplicates=len(dups) - len(conflict),
        n_label_conflicts=len(conflict), conflict_ids=tuple(sorted(set(conflict["pair_id"]))),
    )
    return first.reset_index(drop=True), report


def _group_order(keys: Iterable[str], seed: int) -> dict[str, str]:
    return {k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest() for k in keys}


def assign_splits(pairs: PairFrame, *, fractions: Mapping[str, float], seed: int = 0,
                  stratify: str | None = None) -> PairFrame:
    """Return a copy with the ``split`` column filled, grouped by prompt.

    Args:
        pairs: canonical pairs.
        fractions: split name -> share of pairs, e.g. ``{"train": .7, "gold": .15, "test": .15}``;
            must sum to 1. Shares are met up to the size of the last prompt group placed.
        seed: changes which prompts go where; the same seed always gives the same assignment.
        stratify: a column (e.g. ``construction``): the shares are met within each of its values, so every split
            has the same mix (a prompt group goes with the value of its first pair).

    Example: ``assign_splits(p, fractions={"train": .8, "test": .2}, seed=0)["split"].value_counts()``.
    """
    if not fractions or any(v < 0 for v in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {dict(fractions)}.")
    bad = [s for s in fractions if s not in ("train", "gold", "test")]
    if bad:
        raise ValueError(f"Unknown split names {bad}; use 'train', 'gold' or 'test'.")
    keys = pairs["prompt"].map(prompt_key)
    strata = pairs[stratify].to_numpy() if stratify else np.zeros(len(pairs), int)
    stratum_of = dict(zip(keys[::-1], strata[::-1]))  # the first pair of each prompt group decides
    split_of: dict[str, str] = {}
    for stratum in sorted(set(stratum_of.values()), key=str):
        sizes = keys[keys.map(stratum_of) == stratum].value_counts()
        order = _group_order(sizes.index, seed)
        groups = sorted(sizes.index, key=order.__getitem__)
        bounds = np.cumsum([fractions[s] for s in fractions]) * int(sizes.sum())
        names, placed, j = list(fractions), 0, 0
        for g in groups:
            while j < len(names) - 1 and placed >= bounds[j] - 1e-9:
                j += 1
            split_of[g] = names[j]
            placed += int(sizes[g])
    out = pairs.copy()
    out["split"] = keys.map(split_of).to_numpy()
    return out


def set_label_state(
    pairs: PairFrame, pair_ids: Iterable[str], state: str, *, by: str, at: str | None = None
) -> PairFrame:
    """Return a copy where the given pairs get a new label state with provenance.

    ``flipped`` swaps chosen and rejected (the pair keeps its id); ``verified`` and ``dropped``
    only record the decision. Dropped pairs stay in the frame so nothing is lost.
    """
    if state not in LABEL_STATES:
        raise ValueError(f"Unknown label state {state!r}; choose one of {list(LABEL_STATES)}.")
    ids = set(pair_ids)
    unknown = ids - set(pairs["pair_id"])
    if unknown:
        raise ValueError(f"{len(unknown)} pair_ids are not in the frame, e.g. {sorted(unknown)[:3]}.")
    out = pairs.copy()
    mask = out["pair_id"].isin(ids)
    if state == "flipped":
        out.loc[mask, ["chosen", "rejected"]] = out.loc[mask, ["rejected", "chosen"]].to_numpy()
    out.loc[mask, "label_state"] = state
    out.loc[mask, "label_by"] = by
    out.loc[mask, "label_at"] = at or now_iso()
    return out


def split_counts(pairs: PairFrame) -> pd.DataFrame:
    """Pairs per split and source: the table a data card shows."""
    return pairs.groupby(["split", "source"]).size().unstack(fill_value=0)


def inject_label_noise(pairs: PairFrame, rate: float, *, seed: int = 0, where: pd.Series | None = None) -> PairFrame:
    """Simulated label noise: swap chosen/rejected of a random ``rate`` share of pairs (seeded).

    For experiments with a known truth: the current labels are taken as true, and the result carries
    ``label_is_true`` (False where a flip was injected) and ``noise_injected``. ``where`` (a boolean
    mask aligned with ``pairs``) restricts which pairs may be flipped, e.g. the unverified pool only.
    The label state is untouched: an injected flip looks like an ordinary source label, as real noise would.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise rate must be in [0, 1], got {rate}.")
    eligible = np.flatnonzero(np.ones(len(pairs), bool) if where is None else np.asarray(where, bool))
    rng = np.random.default_rng(seed)
    chosen_rows = rng.choice(eligible, size=int(round(rate * len(eligible))), replace=False) if len(eligible) else []
    flip = np.zeros(len(pairs), bool)
    flip[chosen_rows] = True
    return flip_labels(pairs, flip)
