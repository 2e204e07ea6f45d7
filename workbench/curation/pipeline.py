"""The curation chain, written once: tag -> embed -> (Stage 1) -> score -> Stage 2, and the LLM judge, built once.

Notebooks 02-05 call its steps (`tag`, `embed`, `make_judge`, `stage2`), the known-truth experiment and the shard
worker (`workbench.scale.shards.ShardWorker`) call `curate`, which chains them; every caller configures it with one
nested `CurationConfig`. The judge gets the paper's full input wherever it is used (`make_judge`): each pair's
attributes and annotation guideline (from the tags), its up to 8 most similar human-verified pairs as few-shot
examples (read when asked, so Stage 1's growing set counts), both candidate orders at random, several samples per
model (self-consistency) and several models when more than one is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.curation import stage2 as stage2_mod
from workbench.curation.clustering import embed_pairs
from workbench.curation.review import JudgeReviewer, OracleReviewer
from workbench.curation.stage1 import Stage1Config
from workbench.curation.stage2 import Stage2Config, Stage2Result
from workbench.curation.tagging import TagConfig, make_tagger, tag_pairs
from workbench.data.schema import PairFrame
from workbench.llm.client import ChatClient, EndpointConfig
from workbench.llm.judge import JudgeConfig, LLMJudge

JUDGE_KINDS = ("none", "llm", "simulated")
ATTRIBUTE_COLUMNS = ("task_category", "objectivity", "controversiality", "desired_attributes", "annotation_guideline")


@dataclass(frozen=True)
class JudgeSetup:
    """Which judge labels unsure pairs: none, an LLM on one or more OpenAI-compatible endpoints, or a *simulated*
    judge (the known truth answered wrongly at ``error_rate``; for experiments only)."""

    kind: str = "none"  # none | llm | simulated
    endpoints: tuple[EndpointConfig, ...] = ()  # llm: one per model; empty: one from $WORKBENCH_LLM_BASE_URL / _MODEL
    sampling: JudgeConfig = JudgeConfig()  # samples per model (self-consistency), temperature, few-shot count, seed
    error_rate: float = 0.25  # simulated only
    retry_failed: bool = False  # llm: ask again about pairs whose stored judgement failed (no valid answer)

    def __post_init__(self) -> None:
        if self.kind not in JUDGE_KINDS:
            raise ValueError(f"judge kind must be one of {list(JUDGE_KINDS)}, got {self.kind!r}.")

    @classmethod
    def from_params(cls, kind: str, *, base_url: str = "", models: str = "", api_key_env: str = "",
                    **kw: Any) -> JudgeSetup:
        """From notebook / CLI parameters: ``models`` may name several models on one endpoint, comma-separated."""
        names = [m.strip() for m in models.split(",") if m.strip()] or [""]
        key = {"api_key_env": api_key_env} if api_key_env else {}
        return cls(kind=kind, endpoints=tuple(EndpointConfig(base_url=base_url, model=m, **key) for m in names), **kw)


@dataclass(frozen=True)
class CurationConfig:
    """Every knob of the chain, nested: the tagger, the pair embedder, Stage 1, Stage 2 and the judge."""

    tagger: str = "embedded"  # embedded | llm | local | none
    tag: TagConfig = TagConfig()
    embedder: str = ""  # "" = the bundled MiniLM; "hashing" = model-free (scale path)
    stage1: Stage1Config = Stage1Config()
    stage2: Stage2Config = Stage2Config()
    judge: JudgeSetup = JudgeSetup()


# ---------------------------------------------------------------- the steps


def tag(pairs: PairFrame, tagger: Any, *, store: Any, cfg: CurationConfig = CurationConfig(),
        progress: bool = True) -> pd.DataFrame | None:
    """Step 1: the attributes of every pair (None without a tagger); resumable through ``store``."""
    if tagger is None:
        return None
    return tag_pairs(pairs, tagger, store=store, cfg=cfg.tag, progress=progress)


def embed(pairs: PairFrame, tags: pd.DataFrame | None, *, cache: Any, cfg: CurationConfig = CurationConfig(),
          progress: bool = True) -> np.ndarray:
    """Step 2: the ``(conversation, attributes)`` embedding of every pair (error map, retrieval, few-shot)."""
    return embed_pairs(pairs, tags, cache=cache, model_name=cfg.embedder, progress=progress)


def pair_embedder(tags: pd.DataFrame | None, *, cache: Any, cfg: CurationConfig = CurationConfig()
                  ) -> Callable[[PairFrame], np.ndarray]:
    """`embed` as a one-argument function (what the judge's few-shot retrieval and Stage 2 take)."""
    return lambda frame: embed(frame, tags, cache=cache, cfg=cfg, progress=False)


def attributes_by_pair(tags: pd.DataFrame | None) -> dict[str, dict] | None:
    """pair_id -> the attributes the judge sees (only pairs whose tagging succeeded)."""
    if tags is None:
        return None
    ok = tags[tags["tag_ok"].astype(bool)].set_index("pair_id")
    return ok[[c for c in ATTRIBUTE_COLUMNS if c in ok.columns]].to_dict("index")


def make_tagger_for(cfg: CurationConfig, *, cache: Any = None, local_model_path: str = "") -> Any:
    """The tagger ``cfg.tagger`` names (None for ``none``); an LLM tagger uses the judge's first endpoint."""
    if cfg.tagger == "none":
        return None
    endpoint = cfg.judge.endpoints[0] if cfg.judge.endpoints else None
    return make_tagger(cfg.tagger, endpoint=endpoint, local_model_path=local_model_path, cache=cache,
                       embedder_name=cfg.embedder)


def make_judge(setup: JudgeSetup, *, store: Any = None, tags: pd.DataFrame | None = None,
               embed: Callable[[PairFrame], np.ndarray] | None = None,
               verified: Callable[[], PairFrame] | None = None, seed: int = 0) -> Any:
    """The judge, built once from one setup; None for ``kind="none"``.

    An LLM judge gets every endpoint of the setup (several models vote), its answers durable in ``store``, each
    pair's attributes from ``tags`` and, with ``embed`` and ``verified`` (a function returning the human-verified
    pairs at the time of asking), the most similar verified pairs as few-shot examples.
    """
    if setup.kind == "none":
        return None
    if setup.kind == "simulated":
        return OracleReviewer(name="simulated-llm-judge", kind="llm", error_rate=setup.error_rate, seed=seed + 1000)
    endpoints = setup.endpoints or (EndpointConfig(),)
    judge = LLMJudge([ChatClient(e.resolved()) for e in endpoints], setup.sampling)
    return JudgeReviewer(judge, store, attributes=attributes_by_pair(tags), embed=embed, verified=verified,
                         max_examples=setup.sampling.max_examples, retry_failed=setup.retry_failed)


def endpoint_notes(judge: Any) -> list[str]:
    """What the judge's endpoints reported (e.g. a server that ignores ``response_format``)."""
    clients = getattr(getattr(judge, "judge", None), "clients", [])
    return [note for client in clients for note in client.notes]


def stage2(pool: PairFrame, gold: PairFrame, stage1_rm: Any, cfg: CurationConfig = CurationConfig(), *,
           judge: Any = None, tags: pd.DataFrame | None = None, pair_cache: Any = None,
           human_labelled: PairFrame | None = None, output_dir: str | Path, cache: Any = None,
           stage1_name: str = "stage1-best", gold_rm: Any = None, provenance: str = "",
           lap: Callable[[str], None] | None = None) -> Stage2Result:
    """Step 4: Stage 2 on the pool (scores both RMs, asks the judge about unsure pairs, keeps / flips / drops).
    With ``pair_cache`` an LLM judge sees each unsure pair's nearest human-verified pairs as few-shot examples."""
    embedder = pair_embedder(tags, cache=pair_cache, cfg=cfg) if pair_cache is not None else None
    return stage2_mod.run_stage2(pool, gold, stage1_rm, cfg.stage2, human_labelled=human_labelled, judge=judge,
                                 output_dir=output_dir, cache=cache, stage1_name=stage1_name, embed=embedder,
                                 gold_rm=gold_rm, provenance=provenance, lap=lap)


# ---------------------------------------------------------------- the chain


@dataclass
class CurationResult:
    tags: pd.DataFrame | None
    vectors: np.ndarray  # (conversation, attributes) embeddings, rows = pool rows
    stage2: Stage2Result
    notes: list[str] = field(default_factory=list)  # what the judge's endpoints reported


def curate(pool: PairFrame, *, stage1_rm: Any, cfg: CurationConfig = CurationConfig(), gold: PairFrame | None = None,
           gold_rm: Any = None, tagger: Any = None, tags: pd.DataFrame | None = None, tag_store: Any = None,
           judge: Any = None, pair_cache: Any, cache: Any = None, human_labelled: PairFrame | None = None,
           output_dir: str | Path, stage1_name: str = "stage1-best", provenance: str = "",
           progress: bool = False, lap: Callable[[str], None] | None = None) -> CurationResult:
    """The chain tag -> embed -> score -> Stage 2 over ``pool``, given a Stage-1 RM.

    ``tags`` skips tagging (already done); otherwise ``tagger`` tags into ``tag_store``. ``gold_rm`` is used as
    given, else trained on ``gold`` + the gold-tier ``human_labelled`` pairs. ``judge`` comes from `make_judge`;
    its few-shot examples are the nearest human-verified pairs by the same embedding the chain computes.
    ``lap(step)`` is called as each step ends (tag, embed, score, judge, filter): the scale path's timings.
    """
    lap = lap or (lambda step: None)
    if tags is None:
        tags = tag(pool, tagger, store=tag_store, cfg=cfg, progress=progress)
    lap("tag")
    vectors = embed(pool, tags, cache=pair_cache, cfg=cfg, progress=progress)
    lap("embed")
    if judge is not None and isinstance(judge, JudgeReviewer) and judge.attributes is None:
        judge.attributes = attributes_by_pair(tags)
    gold = gold if gold is not None else pool.iloc[:0]
    result = stage2(pool, gold, stage1_rm, cfg, judge=judge, tags=tags, pair_cache=pair_cache,
                    human_labelled=human_labelled, output_dir=output_dir, cache=cache, stage1_name=stage1_name,
                    gold_rm=gold_rm, provenance=provenance, lap=lap)
    return CurationResult(tags=tags, vectors=vectors, stage2=result, notes=endpoint_notes(judge))
