"""Label noise with a known truth, for measuring curation: which labels were flipped is recorded per pair.

Three noise models (`NOISE_MODELS`), each seeded, each flipping ``rate`` of the pairs overall:

* ``symmetric`` — every pair equally likely (uniform flips). Bradley-Terry training shrugs much of this off;
  kept as the reference.
* ``length`` — a verbosity-biased annotator: pairs whose true winner is the *shorter* response are flipped at a
  high rate, the others rarely. ``concentration`` of the flips land on the shorter-wins pairs (as far as there
  are such pairs), the rest spread over the others.
* ``cluster`` — a bad annotator batch: ``concentration`` of the flips fall in a few topics (``groups``: e.g.
  embedding clusters or task categories; ``bad_groups`` of them picked by the seed), the rest spread elsewhere.

Systematic noise (length, cluster) is what real preference data has, and what error clusters are for. ``none``
flips nothing (the teacher testbed's Bradley-Terry labels alone).

Your own noise model: a function ``fn(pairs, seed, **context) -> bool mask of the labels to flip`` (``context`` holds
``rate``, ``concentration``, ``bad_groups`` and ``groups``; take what you need, accept the rest as ``**_``),
registered by name with `register_noise_model`. Put the registration in a Python file and load it with
`load_plugins` (the CLI's ``--plugin FILE``, notebook 08's ``plugins`` parameter): no edit of the package needed.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data.schema import PairFrame

NoiseModel = Callable[..., np.ndarray]
"""``fn(pairs, seed, **context) -> (n,) bool``: which labels flip (pairs carry their *true* labels)."""

_REGISTRY: dict[str, NoiseModel] = {}  # name -> function
NOISE_MODELS: tuple[str, ...] = ()  # the registered names (built-ins first); updated by register_noise_model
_JUST_REGISTERED: list[str] = []  # names registered since load_plugins started (what its files registered)
PLUGIN_ENV = "WORKBENCH_PLUGINS"  # os.pathsep-separated Python files loaded by load_plugins()


@dataclass(frozen=True)
class NoiseConfig:
    """Which noise, how much, and how concentrated (see the module docstring)."""

    model: str = "length"  # symmetric | length | cluster
    rate: float = 0.2  # share of all pairs flipped
    concentration: float = 0.8  # length / cluster: share of the flips that land on the targeted pairs
    bad_groups: int = 2  # cluster: how many groups the bad batch covers

    def __post_init__(self) -> None:
        if self.model not in _REGISTRY:
            raise ValueError(f"noise model must be one of {list(_REGISTRY)}, got {self.model!r}; register your own with "
                             "workbench.data.noise.register_noise_model (CLI: --plugin FILE).")
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


def _symmetric(pairs: PairFrame, seed: int, *, rate: float, **_) -> np.ndarray:
    return targeted_flips(len(pairs), rate, np.ones(len(pairs), bool), 1.0, seed)


def _length(pairs: PairFrame, seed: int, *, rate: float, concentration: float, **_) -> np.ndarray:
    return targeted_flips(len(pairs), rate, shorter_wins(pairs), concentration, seed)


def _cluster(pairs: PairFrame, seed: int, *, rate: float, concentration: float, bad_groups: int,
             groups: Sequence | None = None, **_) -> np.ndarray:
    if groups is None or len(groups) != len(pairs):
        raise ValueError("noise model 'cluster' needs groups: one topic / cluster label per pair.")
    return targeted_flips(len(pairs), rate, bad_batch(groups, bad_groups, seed), concentration, seed)


def _none(pairs: PairFrame, seed: int, **_) -> np.ndarray:
    return np.zeros(len(pairs), bool)


def register_noise_model(name: str, fn: NoiseModel, *, replace: bool = False) -> None:
    """Make ``fn`` usable as ``NoiseConfig(model=name)`` (CLI ``--noise name``, notebook ``noise_models``).

    ``fn(pairs, seed, **context)`` gets the pairs with their true labels and returns a bool mask of the labels to
    flip; ``context``: ``rate``, ``concentration``, ``bad_groups``, ``groups`` (topic per pair).

    Example: ``register_noise_model("long_prompts", lambda pairs, seed, rate, **_: ...)``.
    """
    global NOISE_MODELS
    if not name or not isinstance(name, str):
        raise ValueError(f"a noise model needs a non-empty name, got {name!r}.")
    if name in _REGISTRY and not replace:
        raise ValueError(f"noise model {name!r} is already registered; pass replace=True to override it.")
    if not callable(fn):
        raise TypeError(f"noise model {name!r}: expected a function (pairs, seed, **context) -> bool mask, got {fn!r}.")
    _REGISTRY[name] = fn
    NOISE_MODELS = tuple(_REGISTRY)
    _JUST_REGISTERED.append(name)


for _name, _fn in (("symmetric", _symmetric), ("length", _length), ("cluster", _cluster), ("none", _none)):
    register_noise_model(_name, _fn)


def load_plugins(paths: Sequence[str | os.PathLike] = ()) -> list[str]:
    """Run each Python file in ``paths`` (and in ``$WORKBENCH_PLUGINS``) once, so the noise models it registers can
    be named; returns the noise models they registered. A missing file is an error naming it."""
    _JUST_REGISTERED.clear()
    env = [p for p in os.environ.get(PLUGIN_ENV, "").split(os.pathsep) if p.strip()]
    for path in [*paths, *env]:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"plugin file {path} does not exist (from --plugin / ${PLUGIN_ENV}).")
        spec = importlib.util.spec_from_file_location(f"workbench_plugin_{abs(hash(str(path.resolve())))}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return list(dict.fromkeys(_JUST_REGISTERED))


def noise_flips(pairs: PairFrame, cfg: NoiseConfig, *, seed: int, groups: Sequence | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(flip, target) masks of ``cfg.model`` on ``pairs`` (true labels): which labels flip, and which pairs the model
    targets (length: shorter wins; cluster: the bad batch; others: every pair)."""
    fn = _REGISTRY[cfg.model]
    flip = np.asarray(fn(pairs, seed, rate=cfg.rate, concentration=cfg.concentration, bad_groups=cfg.bad_groups,
                         groups=groups), dtype=bool)
    if flip.shape != (len(pairs),):
        raise ValueError(f"noise model {cfg.model!r} returned a mask of shape {flip.shape}; expected ({len(pairs)},).")
    if cfg.model == "length":
        target = shorter_wins(pairs)
    elif cfg.model == "cluster":
        target = bad_batch(groups, cfg.bad_groups, seed)
    else:
        target = np.ones(len(pairs), bool)
    return flip, target


def inject_noise(pairs: PairFrame, cfg: NoiseConfig, *, seed: int, groups: Sequence | None = None) -> PairFrame:
    """``pairs`` (labels taken as true) with ``cfg.rate`` of them flipped by ``cfg.model``; adds ``noise_injected``
    (this pair's label was flipped), ``label_is_true`` and ``noise_target`` (the pair was in the targeted group).
    ``groups`` (one label per pair: a topic or cluster) is needed by the ``cluster`` model."""
    flip, target = noise_flips(pairs, cfg, seed=seed, groups=groups)
    return flip_labels(pairs, flip).assign(noise_target=target)


def noise_profile(noisy: PairFrame) -> dict[str, float]:
    """The flip rate overall, inside and outside the targeted group: what a table should state next to a result."""
    flip, target = noisy["noise_injected"].to_numpy(bool), noisy["noise_target"].to_numpy(bool)
    return {"flip_rate": float(flip.mean()),
            "flip_rate_targeted": float(flip[target].mean()) if target.any() else float("nan"),
            "flip_rate_elsewhere": float(flip[~target].mean()) if (~target).any() else float("nan"),
            "targeted_share": float(target.mean())}
