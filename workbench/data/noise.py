"""Label noise with a known truth, for measuring curation: which labels were flipped is recorded per pair.

Three noise models (`NOISE_MODELS`), each seeded, each flipping ``rate`` of the pairs overall:

* ``symmetric`` — every pair equally likely (uniform flips). Bradley-Terry training shrugs much of this off;
  kept as the reference.
* ``length`` — a verbosity-biased annotator: pairs whose true winner is the *shorter* response are flipped at a
  high rate, the others rarely. ``concentration`` of the flips land on the shorter-wins pairs (as far as there
  are such pairs), the rest spread over the others.
* ``cluster`` — a bad annotator batch: ``concentration`` of the flips fall in a few topics (``groups``: e.g.
  embedding clusters or task categories; ``bad_groups`` of them picked by the seed), the rest spread elsewhere.

Systematic noise (length, cluster) is what real preference data has, and what error clusters are for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.data.schema import PairFrame

NOISE_MODELS = ("symmetric", "length", "cluster")


@dataclass(frozen=True)
class NoiseConfig:
    """Which noise, how much, and how concentrated (see the module docstring)."""

    model: str = "length"  # symmetric | length | cluster
    rate: float = 0.2  # share of all pairs flipped
    concentration: float = 0.8  # length / cluster: share of the flips that land on the targeted pairs
    bad_groups: int = 2  # cluster: how many groups the bad batch covers

    def __post_init__(self) -> None:
        if self.model not in NOISE_MODELS:
            raise ValueError(f"noise model must be one of {list(NOISE_MODELS)}, got {self.model!r}.")
        if not 0.0 <= self.rate < 0.5:
            raise ValueError(f"noise rate must be in [0, 0.5), got {self.rate}; at 0.5 the labels carry no signal.")
        if not 0.0 <= self.concentration <= 1.0:
            raise ValueError(f"concentration must be in [0, 1], got {self.concentration}.")
        if self.bad_groups < 1:
            raise ValueError(f"bad_groups must be >= 1, got {self.bad_groups}.")


def _words(texts: pd.Series) -> np.ndarray:
    return texts.map(lambda t: len(t.split())).to_numpy()


def shorter_wins(pairs: PairFrame) -> np.ndarray:
    """True where the (true) chosen response has fewer words than the rejected one."""
    return _words(pairs["chosen"]) < _words(pairs["rejected"])


def bad_batch(groups: Sequence, n_bad: int, seed: int) -> np.ndarray:
    """True for pairs in ``n_bad`` groups picked at random (seeded) among the groups present."""
    groups = np.asarray(groups)
    names = np.unique(groups)
    pick = np.random.default_rng(seed).choice(names, size=min(n_bad, len(names)), replace=False)
    return np.isin(groups, pick)


def targeted_flips(n: int, rate: float, target: np.ndarray, concentration: float, seed: int) -> np.ndarray:
    """A boolean mask of ``round(rate * n)`` flips: ``concentration`` of them among ``target`` (capped by its size),
    the rest among the other pairs (capped too; any excess goes back to the target)."""
    rng = np.random.default_rng(seed)
    total = int(round(rate * n))
    inside, outside = np.flatnonzero(target), np.flatnonzero(~target)
    k_in = min(int(round(concentration * total)), len(inside))
    k_out = min(total - k_in, len(outside))
    k_in = min(total - k_out, len(inside))
    flip = np.zeros(n, bool)
    flip[rng.choice(inside, size=k_in, replace=False)] = True
    flip[rng.choice(outside, size=k_out, replace=False)] = True
    return flip


def flip_labels(pairs: PairFrame, flip: np.ndarray) -> PairFrame:
    """``pairs`` with chosen and rejected swapped where ``flip``; ``noise_injected`` and ``label_is_true`` record it.
    The label state is untouched: an injected flip looks like an ordinary source label, as real noise would."""
    out = pairs.copy()
    out.loc[flip, ["chosen", "rejected"]] = out.loc[flip, ["rejected", "chosen"]].to_numpy()
    out["noise_injected"] = flip
    out["label_is_true"] = ~flip
    return out


def inject_noise(pairs: PairFrame, cfg: NoiseConfig, *, seed: int, groups: Sequence | None = None) -> PairFrame:
    """``pairs`` (labels taken as true) with ``cfg.rate`` of them flipped by ``cfg.model``; adds ``noise_injected``
    (this pair's label was flipped), ``label_is_true`` and ``noise_target`` (the pair was in the targeted group).
    ``groups`` (one label per pair: a topic or cluster) is needed by the ``cluster`` model."""
    if cfg.model == "symmetric":
        target = np.ones(len(pairs), bool)
    elif cfg.model == "length":
        target = shorter_wins(pairs)
    else:
        if groups is None or len(groups) != len(pairs):
            raise ValueError("noise model 'cluster' needs groups: one topic / cluster label per pair.")
        target = bad_batch(groups, cfg.bad_groups, seed)
    concentration = 1.0 if cfg.model == "symmetric" else cfg.concentration
    flip = targeted_flips(len(pairs), cfg.rate, target, concentration, seed)
    return flip_labels(pairs, flip).assign(noise_target=target)


def noise_profile(noisy: PairFrame) -> dict[str, float]:
    """The flip rate overall, inside and outside the targeted group: what a table should state next to a result."""
    flip, target = noisy["noise_injected"].to_numpy(bool), noisy["noise_target"].to_numpy(bool)
    return {"flip_rate": float(flip.mean()),
            "flip_rate_targeted": float(flip[target].mean()) if target.any() else float("nan"),
            "flip_rate_elsewhere": float(flip[~target].mean()) if (~target).any() else float("nan"),
            "targeted_share": float(target.mean())}
