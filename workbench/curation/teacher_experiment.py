"""Does curation help when data matters? Learning curves, the paper's ablation, review budgets, robust losses and
a null control on the teacher testbed (`workbench.curation.testbed`, ``--truth teacher``).

The truth is the teacher's ordering; the pool's labels are Bradley-Terry samples from the teacher (``agreement``
of them agree with it) with a systematic noise model on top (`workbench.data.noise`: ``length``, ``cluster``;
``symmetric`` and ``none`` for the null control). The student is the workbench's fast RM (an MLP head over frozen
MiniLM embeddings, `workbench.models.fast_rm`), trained on in-memory candidate features: the experiment trains it
hundreds of times, so features are computed once per candidate and pairs are index arrays.

The curation chain runs the package's own parts on those arrays: Stage 1's retrieval
(`workbench.curation.retrieval.retrieve_for_gold`, the paper's adaptive k), the simulated reviewer and judge
(`workbench.curation.review.OracleReviewer`, `workbench.curation.pipeline.make_judge`) and Stage 2's keep / drop rule
(`workbench.curation.stage2.consistency_decisions`). The loop around them (`stage1_chain`) mirrors
`workbench.curation.stage1.run_stage1` without its text cache and SQLite review log, which the experiment does not
need (nothing here is a person's decision) and cannot afford at hundreds of runs.

**The dynamic-range gate** (`gate`) is measured before any comparison: the clean learning curve must still gain
``gate_gain_per_doubling`` per doubling of pool pairs between 5,000 and 50,000, gold only must sit
``gate_gold_gap`` below the clean ceiling, and the raw pool under each systematic noise model ``gate_noise_gap``
below clean. A run that fails it is told that its comparisons cannot discriminate.

Conditions (every human-informed one gets the gold split; those that review get the same budget):

* ``clean``: the pool with the teacher's labels (+ gold): the ceiling.  ``raw``: the noisy pool alone (the floor).
* ``gold only``.  ``raw + human labels``: Stage-1 (error-driven) reviews applied to the pool (+ gold).
* ``label smoothing`` / ``rDPO`` / ``SymPO``: the raw pool (+ gold) under a robust loss (`preference_loss`), its
  ``eps`` chosen on gold; no review.
* ``random review``, ``curated`` (error-driven retrieval), ``curated, disagreement queue``: Stage 1 with that queue,
  then Stage 2 (gold RM + Stage-1 RM + simulated judge), + gold.  ``judge only``: Stage 2 with no Stage-1 RM.

Entry points: `run_teacher_experiment`, notebook ``08b_teacher_testbed`` and ``workbench experiment --truth teacher``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from workbench.curation import experiment, pipeline, stage2
from workbench.curation.experiment import mean_ci
from workbench.curation.retrieval import NeighborIndex, RetrievalConfig, retrieve_for_gold
from workbench.curation.review import OracleReviewer
from workbench.curation.testbed import Testbed, TestbedConfig, beta_for_agreement, build_testbed, margin_scale
from workbench.data import files as io
from workbench.data.noise import NoiseConfig, noise_flips
from workbench.models import fast_rm
from workbench.models.device import autocast_for
from workbench.models.embedding import default_embedder_path, embed_texts, embedder_key
from workbench.models.scoring import encode_sides, padded_batches

ROBUST = {"label smoothing": "smoothing", "rDPO": "rdpo", "SymPO": "sympo"}
BASELINES = ("gold only", "raw + human labels", "random review", *ROBUST)
CURATED = ("curated", "curated, disagreement queue")
ABLATION = ("seed (gold RM)", "+ Stage 2, LLM judge only", "+ human review, random pairs", "+ error-driven retrieval",
            "+ disagreement queue")
QUEUES = {"random review": "random", "curated": "puller", "curated, disagreement queue": "disagreement"}


@dataclass(frozen=True)
class TeacherExperimentConfig:
    """Everything that shapes the teacher-truth experiment; the defaults are the recorded full run."""

    testbed: TestbedConfig = field(default_factory=TestbedConfig)
    agreement: float = 0.75  # share of annotator labels agreeing with the teacher (Bradley-Terry beta solved for it)
    noise_models: tuple[str, ...] = ("length", "cluster")  # systematic, on top of BT labels; the first is the headline
    null_models: tuple[str, ...] = ("none", "symmetric")  # the null control: BT alone, BT + symmetric flips
    noise_rate: float = 0.3  # at 0.2 length noise cost only 3.5 points (the gate asks 5): RESULTS.md
    noise_concentration: float = 0.8
    cluster_groups: int = 8
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # the headline noise model: full pool, learning curves
    secondary_seeds: int = 3  # the other noise models (gate, null control) and the budget curve: the first seeds
    pool_sizes: tuple[int, ...] = ()  # () = doublings from 1,000, then the full pool
    seed_size: int = 200  # Stage-1 round 0: random pool pairs reviewed
    labels_per_iteration: int = 200
    iterations: int = 4  # -> 1,000 reviews, the default budget
    budgets: tuple[int, ...] = (100, 250, 500, 1000, 2000)
    oracle_error_rate: float = 0.1  # the simulated people
    judge_error_rate: float = 0.25  # the simulated LLM judge of Stage 2
    eps_grid: tuple[float, ...] = (0.1, 0.25)  # label smoothing, rDPO: eps chosen on gold (SymPO has none)
    embedder: str = ""  # the student's frozen encoder ("" = the offline MiniLM)
    student_view: str = "separate"  # separate: the pipeline's fast-RM inputs (prompt and response embedded apart);
    #                                  joint: the frozen encoder's CLS + mean states of (conversation, response) read
    #                                  together (learns the teacher faster and saturates by 16k pairs: RESULTS.md)
    student_hidden: int = 128
    student_epochs: int = 8
    stage1_epochs: int = 15  # Stage-1 and gold RMs: small sets, best epoch on gold
    batch_size: int = 512
    min_steps_per_epoch: int = 32  # a smaller set trains in smaller batches (>= 16 pairs), so that 1,000 gold pairs
    #                                get 32 optimizer steps per epoch rather than 2 (fixed batches undertrain small sets)
    student_bf16: bool = True  # bf16 autocast for the student's head (native on this CPU; ~2x faster)
    learning_rate: float = 2e-3
    finetune_pool_pairs: int = 1000  # the fine-tuned MiniLM check (opt-in, `finetune=True`): pool pairs it learns from
    #                                  (+ gold for clean and curated; ~2 min per 1,000 pairs on this CPU)
    finetune_test_pairs: int = 1000  # ... test pairs it is scored on (the frozen student is scored on the same ones)
    finetune_max_length: int = 128  # ... tokens per (conversation, response): a CPU budget, minutes per condition
    workers: int = 0  # processes running the (noise, seed) blocks, one torch thread each; 0 = one per core. Results do
    #                   not depend on it (the student trains bit-identically on 1 or 2 threads: tests), so it is not
    #                   part of `config_key` and a run resumes with any value
    gate_gain_per_doubling: float = 0.02
    gate_gold_gap: float = 0.08
    gate_noise_gap: float = 0.05

    def __post_init__(self) -> None:
        for model in (*self.noise_models, *self.null_models):
            NoiseConfig(model=model, rate=self.noise_rate, concentration=self.noise_concentration)  # validates
        if not self.noise_models:
            raise ValueError("noise_models is empty: the headline needs a systematic noise model (length, cluster).")
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one (five for confidence intervals).")
        if not 0.5 < self.agreement < 1.0:
            raise ValueError(f"agreement must be in (0.5, 1), got {self.agreement}.")
        if self.student_view not in ("joint", "separate"):
            raise ValueError(f"student_view must be 'joint' or 'separate', got {self.student_view!r}.")
        if self.iterations < 1 or self.seed_size < 1:
            raise ValueError("iterations and seed_size must be >= 1.")

    @property
    def budget(self) -> int:
        return self.seed_size + self.iterations * self.labels_per_iteration

    def head(self, n_pairs: int, *, epochs: int | None = None, seed: int = 0, loss: str = "bt", eps: float = 0.0
             ) -> fast_rm.HeadConfig:
        """The student's head for a training set of ``n_pairs`` (its batch size: see ``min_steps_per_epoch``)."""
        batch = min(self.batch_size, max(16, n_pairs // self.min_steps_per_epoch))
        return fast_rm.HeadConfig(hidden=self.student_hidden, epochs=epochs or self.student_epochs,
                                  batch_size=batch, learning_rate=self.learning_rate, loss=loss, eps=eps,
                                  bf16=self.student_bf16, seed=seed)


def smoke_config(cfg: TeacherExperimentConfig = TeacherExperimentConfig()) -> TeacherExperimentConfig:
    """A tiny version for tests and papermill smoke runs (minutes with a tiny teacher; the gate is not meaningful)."""
    from workbench.curation.testbed import TeacherConfig

    tb = TestbedConfig(teacher=TeacherConfig(train_pairs=48, heldout_pairs=32), pool_prompts=60, gold_prompts=20,
                       test_prompts=12, pairs_per_prompt=20, gold_pairs_per_prompt=6)
    return replace(cfg, testbed=tb, seeds=(0, 1), pool_sizes=(300, 600), seed_size=20, labels_per_iteration=20,
                   iterations=2, budgets=(30, 60), secondary_seeds=1, eps_grid=(0.2,), student_epochs=3, stage1_epochs=3,
                   noise_models=cfg.noise_models[:1], null_models=cfg.null_models[:1], cluster_groups=4,
                   finetune_pool_pairs=200, finetune_test_pairs=80, finetune_max_length=64,
                   workers=1)  # blocks of seconds: starting worker processes would cost more than it saves


# ---------------------------------------------------------------- the student on arrays


@dataclass
class Arrays:
    """The testbed as the student sees it: features per candidate, pairs as (winner, loser) candidate rows."""

    feats: torch.Tensor  # (candidates, 4 * dim + 3) head inputs
    win: np.ndarray  # (pairs,) candidate row of the teacher's preferred response
    lose: np.ndarray
    pair_ids: np.ndarray
    vec: np.ndarray  # (pairs, dim) retrieval vectors: mean of prompt, and both responses' embeddings (label-free)
    split: np.ndarray
    cand_host: np.ndarray
    cand_reward: np.ndarray  # the teacher's reward per candidate (best-of-N)
    dim: int

    def idx(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def student_arrays(tb: Testbed, embedder: str = "", view: str = "joint", *, progress: bool = True) -> Arrays:
    """Every candidate's frozen features, computed once (cached beside the testbed), and the pair index arrays.

    ``separate``: the pipeline's fast-RM inputs (last user turn and response embedded apart). ``joint``: the frozen
    pretrained encoder's CLS and mean states of the whole (conversation, response) input, as the teacher reads it but
    without its fine-tuning (`frozen_pair_states`). Retrieval vectors are label-free in both: the mean of the last user
    turn's and both responses' sentence embeddings."""
    c, p = tb.candidates, tb.pairs
    path = tb.candidates_folder / f"student-{embedder_key(embedder)}.npz"
    if path.exists():
        z = np.load(path)
        e_p, e_r = z["prompt"], z["response"]
    else:
        e_p = embed_texts(list(c["prompt_text"]), model_name=embedder, progress=progress)
        e_r = embed_texts(list(c["response"]), model_name=embedder, progress=progress)
        _save_npz(path, prompt=e_p, response=e_r)
    if view == "separate":
        feats = fast_rm.head_inputs(torch.from_numpy(e_p), torch.from_numpy(e_r), list(c["response"]))
    else:
        joint = tb.candidates_folder / f"student-joint-{embedder_key(embedder)}.npz"
        if joint.exists():
            z = np.load(joint)
            cls, mean = z["cls"], z["mean"]
        else:
            prompt_of = dict(zip(p["host"], p["prompt"]))
            cls, mean = frozen_pair_states([prompt_of[h] for h in c["host"]], list(c["response"]),
                                           max_length=tb.teacher["config"]["teacher"]["max_length"], model_path=embedder,
                                           progress=progress)
            _save_npz(joint, cls=cls, mean=mean)
        feats = torch.cat([torch.from_numpy(cls), torch.from_numpy(mean), fast_rm.text_stats(list(c["response"]))], 1)
    win, lose = p["cand_chosen"].to_numpy(), p["cand_rejected"].to_numpy()
    vec = e_p[win] + e_r[win] + e_r[lose]
    vec = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    return Arrays(feats=feats, win=win, lose=lose, pair_ids=p["pair_id"].to_numpy(), vec=vec.astype(np.float32),
                  split=p["split"].to_numpy(), cand_host=c["host"].to_numpy(), cand_reward=c["teacher_reward"].to_numpy(),
                  dim=e_p.shape[1])


def frozen_pair_states(prompts: Sequence[list[dict]], responses: Sequence[str], *, max_length: int = 256,
                       model_path: str = "", batch_size: int = 64, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(cls, mean)`` (n, dim) hidden states of the *frozen, pretrained* encoder (the offline MiniLM by default) on
    each ``[CLS] conversation [SEP] response [SEP]`` input, tokenised and shortened exactly as an encoder RM sees it
    (`workbench.models.scoring.encode_sides`). A cross-encoder view without any training: what the teacher testbed's
    joint student reads."""
    from transformers import AutoModel, AutoTokenizer

    path = model_path or default_embedder_path()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    ids, _ = encode_sides(tokenizer, list(prompts), list(responses), max_length=max_length)
    dim = model.config.hidden_size
    cls, mean = np.empty((len(ids), dim), np.float32), np.empty((len(ids), dim), np.float32)
    batches = padded_batches(ids, pad_id=tokenizer.pad_token_id, batch_size=batch_size)
    with torch.inference_mode(), autocast_for(torch.device("cpu"), "auto"):
        for rows, input_ids, mask in tqdm(batches, desc="encoding pairs", unit="batch", disable=not progress):
            hidden = model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.float()
            m = torch.from_numpy(mask).unsqueeze(-1).float()
            cls[rows] = hidden[:, 0].numpy()
            mean[rows] = ((hidden * m).sum(1) / m.sum(1)).numpy()
    return cls, mean


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a temp name
            np.savez(f, **arrays)

    io._write_atomically(path, write)  # whole or absent


def train_student(A: Arrays, idx: np.ndarray, agree: np.ndarray, head: fast_rm.HeadConfig, *,
                  select_on: np.ndarray | None = None) -> np.ndarray:
    """Train a fresh head on pairs ``idx`` labelled ``agree`` (True: the teacher's winner is chosen); with
    ``select_on`` (pair rows with true labels) keep the epoch best on them. Returns the reward of every candidate."""
    head_module = fast_rm.new_head(A.dim, head, in_features=A.feats.shape[1])
    rm = fast_rm.EmbeddingHeadRM(head_module, embedder_name="", dim=A.dim, head_cfg=head)
    chosen, rejected = np.where(agree, A.win[idx], A.lose[idx]), np.where(agree, A.lose[idx], A.win[idx])
    eval_fn = None
    if select_on is not None and len(select_on):
        fw, fl = A.feats[A.win[select_on]], A.feats[A.lose[select_on]]
        eval_fn = lambda rm: {"gold_accuracy": float((rm.score_features(fw) > rm.score_features(fl)).mean())}  # noqa: E731
    fast_rm.fit_head(rm, A.feats[chosen], A.feats[rejected], head, eval_fn=eval_fn, progress=False)
    return rm.score_features(A.feats)


def accuracy(r: np.ndarray, A: Arrays, idx: np.ndarray) -> float:
    """Share of pairs ``idx`` the rewards order as the teacher does (a tie counts as wrong)."""
    return float((r[A.win[idx]] > r[A.lose[idx]]).mean())


def p_label(r: np.ndarray, A: Arrays, idx: np.ndarray, agree: np.ndarray) -> np.ndarray:
    """``p = sigmoid(r_chosen - r_rejected)`` under each pair's current label."""
    m = (r[A.win[idx]] - r[A.lose[idx]]).astype(np.float64)
    return 1 / (1 + np.exp(-np.where(agree, m, -m)))


def best_of_n(r: np.ndarray, A: Arrays) -> float:
    """Best-of-N on test prompts: the teacher's reward of the student's pick among each test host's candidates,
    as a share of the way from the candidates' mean (0) to the teacher's best (1); averaged over hosts."""
    test = np.flatnonzero(pd.Series(A.cand_host).str.startswith("test:").to_numpy())
    frame = pd.DataFrame({"host": A.cand_host[test], "r": r[test], "t": A.cand_reward[test]})
    out = []
    for _, g in frame.groupby("host", sort=False):
        t = g["t"].to_numpy()
        spread = t.max() - t.mean()
        if spread > 0:
            out.append((t[int(np.argmax(g["r"].to_numpy()))] - t.mean()) / spread)
    return float(np.mean(out))


# ---------------------------------------------------------------- labels


def noisy_labels(tb: Testbed, A: Arrays, cfg: TeacherExperimentConfig, noise: str, seed: int, beta: float,
                 scale: float, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``agree`` per pool pair, the Bradley-Terry draw alone): a BT draw from the teacher, then ``noise``'s flips
    on top."""
    pool = tb.pairs[A.split == "train"].reset_index(drop=True)
    p_agree = 1 / (1 + np.exp(-beta * pool["teacher_margin"].to_numpy() / scale))
    bt_agree = np.random.default_rng([seed, 7919]).random(len(pool)) < p_agree
    flip, _ = noise_flips(pool, NoiseConfig(model=noise, rate=cfg.noise_rate, concentration=cfg.noise_concentration),
                          seed=seed, groups=groups)
    return bt_agree ^ flip, bt_agree


def topic_groups(A: Arrays, k: int, seed: int = 0) -> np.ndarray:
    """k-means topics of the pool's pair vectors: the units a bad annotator batch covers (cluster noise)."""
    return experiment.topic_groups(A.vec[A.idx("train")], k, seed, n_init=2)  # 2 restarts: 56k points


# ---------------------------------------------------------------- the curation chain on arrays


def budget_split(budget: int, iterations: int) -> tuple[int, int]:
    """(seed round size, per retrieval round) for a review budget: a fifth at random first, the rest in rounds."""
    seed = max(1, budget // 5)
    return seed, max(1, (budget - seed) // iterations)


def _review(pos: np.ndarray, pool: np.ndarray, A: Arrays, labels: np.ndarray, reviewed: np.ndarray, who: Any) -> None:
    """``who`` (a simulated reviewer) decides pool positions ``pos``; their labels become its answer, in place."""
    if not len(pos):
        return
    frame = pd.DataFrame({"pair_id": A.pair_ids[pool[pos]], "label_is_true": labels[pos]})
    flip = np.array([d.decision == "flip" for d in who.decide(frame)])
    labels[pos] = labels[pos] ^ flip
    reviewed[pos] = True


@dataclass
class Chain:
    """What one curation chain produced: the training pairs and labels, and how its queues and filter did."""

    idx: np.ndarray
    agree: np.ndarray
    reviewed: int
    queue_noise_share: float = float("nan")  # share of wrong labels among the retrieval rounds' queues
    pool_noise_share: float = float("nan")
    kept: int = 0
    kept_label_accuracy: float = float("nan")


def stage1_chain(A: Arrays, pool: np.ndarray, agree: np.ndarray, gold: np.ndarray, cfg: TeacherExperimentConfig,
                 seed: int, *, budget: int, queue: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """Stage 1 on arrays: a random seed round, then rounds of train (best epoch on gold) -> score gold -> retrieve
    (`retrieve_for_gold`) -> rank (``puller``: the paper's order; ``disagreement``: the round RM's lowest ``p``)
    -> review. ``queue="random"`` spends the whole budget at random. Returns (labels after review, reviewed mask,
    rewards of the Stage-1 RM best on gold, queue stats)."""
    people = OracleReviewer(error_rate=cfg.oracle_error_rate, seed=seed)
    labels, reviewed = agree.copy(), np.zeros(len(pool), bool)
    budget = min(budget, len(pool))
    order = np.random.default_rng([seed, 17, budget]).permutation(len(pool))
    seed_n, per_round = budget_split(budget, cfg.iterations)
    stats = {"queued": 0, "queued_wrong": 0}
    if queue == "random":
        _review(order[:budget], pool, A, labels, reviewed, people)
    else:
        _review(order[:seed_n], pool, A, labels, reviewed, people)
        ids = A.pair_ids[pool]
        pos_of = {pid: i for i, pid in enumerate(ids)}
        index = NeighborIndex(A.vec[pool], RetrievalConfig(index="exact"))
        for it in range(cfg.iterations):
            r = train_student(A, pool[reviewed], labels[reviewed],
                              cfg.head(int(reviewed.sum()), epochs=cfg.stage1_epochs, seed=seed), select_on=gold)
            gold_p = p_label(r, A, gold, np.ones(len(gold), bool))
            cands = retrieve_for_gold(A.pair_ids[gold], gold_p, A.vec[gold], ids, A.vec[pool],
                                      RetrievalConfig(index="exact"), index=index, exclude=set(ids[reviewed]))
            pos = cands["pair_id"].map(pos_of).to_numpy(int)
            if queue == "disagreement":
                pos = pos[np.argsort(p_label(r, A, pool[pos], labels[pos]), kind="stable")]
            room = budget - int(reviewed.sum()) if it == cfg.iterations - 1 else per_round
            pos = pos[:max(room, 0)]
            stats["queued"] += len(pos)
            stats["queued_wrong"] += int((~labels[pos]).sum())
            _review(pos, pool, A, labels, reviewed, people)
    r = train_student(A, pool[reviewed], labels[reviewed], cfg.head(int(reviewed.sum()), epochs=cfg.stage1_epochs,
                                                                   seed=seed), select_on=gold) if reviewed.any() else None
    return labels, reviewed, r, stats


def stage2_chain(A: Arrays, pool: np.ndarray, labels: np.ndarray, reviewed: np.ndarray, gold: np.ndarray,
                 r_stage1: np.ndarray | None, r_gold: np.ndarray, cfg: TeacherExperimentConfig, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Stage 2 on arrays: the paper's rule (`stage2.consistency_decisions`) with the gold RM, the Stage-1 RM (none:
    every pair is unsure) and the simulated judge on the pairs the Stage-1 RM is not confident about; reviewed pairs
    keep the people's labels. Returns (pool positions kept, their labels)."""
    open_ = np.flatnonzero(~reviewed)
    rows = pool[open_]
    p1 = p_label(r_stage1, A, rows, labels[open_]) if r_stage1 is not None else np.full(len(rows), np.nan)
    pg = p_label(r_gold, A, rows, labels[open_])
    judge = pipeline.make_judge(pipeline.JudgeSetup(kind="simulated", error_rate=cfg.judge_error_rate), seed=seed)
    ask = ~(p1 > 0.5)
    verdict = np.full(len(rows), None, dtype=object)
    if ask.any():
        frame = pd.DataFrame({"pair_id": A.pair_ids[rows[ask]], "label_is_true": labels[open_][ask]})
        verdict[ask] = ["chosen" if d.decision == "keep" else "rejected" for d in judge.decide(frame)]
    dec = stage2.consistency_decisions(A.pair_ids[rows], p1, pg, verdict, stage2.Stage2Config())
    keep = open_[(dec["stage2_decision"] == "keep").to_numpy()]
    pos = np.concatenate([np.flatnonzero(reviewed), keep])
    return pos, labels[pos]


def gold_rm(A: Arrays, gold: np.ndarray, cfg: TeacherExperimentConfig, seed: int) -> np.ndarray:
    """The gold RM: trained on 80% of gold, best epoch on the other 20% (Stage 2's ``gold_holdout``)."""
    order = np.random.default_rng([seed, 29]).permutation(len(gold))
    cut = int(len(gold) * 0.8)
    return train_student(A, gold[order[:cut]], np.ones(cut, bool), cfg.head(cut, epochs=cfg.stage1_epochs, seed=seed),
                         select_on=gold[order[cut:]])


def curate(A: Arrays, pool: np.ndarray, agree: np.ndarray, gold: np.ndarray, cfg: TeacherExperimentConfig, seed: int,
           *, queue: str, budget: int, r_gold: np.ndarray, memo: dict | None = None) -> Chain:
    """Stage 1 (``queue``: random / puller / disagreement; ``none``: no review) then Stage 2; the chain's training
    pairs are the kept pool pairs plus gold."""
    if queue == "none":
        labels, reviewed, r1, stats = agree.copy(), np.zeros(len(pool), bool), None, {"queued": 0, "queued_wrong": 0}
    else:
        labels, reviewed, r1, stats = memo[(len(pool), budget, queue)] if memo is not None and (len(pool), budget, queue) in memo \
            else stage1_chain(A, pool, agree, gold, cfg, seed, budget=budget, queue=queue)
        if memo is not None:
            memo[(len(pool), budget, queue)] = (labels, reviewed, r1, stats)
    pos, lab = stage2_chain(A, pool, labels, reviewed, gold, r1, r_gold, cfg, seed)
    return Chain(idx=np.concatenate([pool[pos], gold]), agree=np.concatenate([lab, np.ones(len(gold), bool)]),
                 reviewed=int(reviewed.sum()),
                 queue_noise_share=stats["queued_wrong"] / stats["queued"] if stats["queued"] else float("nan"),
                 pool_noise_share=float((~agree).mean()), kept=len(pos), kept_label_accuracy=float(lab.mean()))


# ---------------------------------------------------------------- conditions


@dataclass
class Context:
    """Per (noise, seed): the testbed arrays, the pool's labels and the gold RM, shared by every condition."""

    A: Arrays
    cfg: TeacherExperimentConfig
    noise: str
    seed: int
    pool: np.ndarray  # pool pair rows, in a seeded order (a prefix of it is a smaller pool)
    agree: np.ndarray  # labels of ``pool`` (same order)
    gold: np.ndarray
    test: np.ndarray
    r_gold: np.ndarray
    eps: dict[str, float] = field(default_factory=dict)  # robust loss -> eps chosen on gold
    stage1: dict[tuple, tuple] = field(default_factory=dict)  # (pool size, budget, queue) -> stage1_chain's result
    bt_agreement: float = float("nan")  # share of the BT labels (before the noise model) agreeing with the teacher


def _fit(ctx: Context, idx: np.ndarray, agree: np.ndarray, *, loss: str = "bt", eps: float = 0.0) -> np.ndarray:
    return train_student(ctx.A, idx, agree, ctx.cfg.head(len(idx), seed=ctx.seed, loss=loss, eps=eps))


def choose_eps(ctx: Context, loss: str) -> float:
    """The robust loss's eps: the grid value whose model, trained on the raw pool, is best on gold (same
    information as curation: the gold split)."""
    scores = {e: accuracy(_fit(ctx, ctx.pool, ctx.agree, loss=loss, eps=e), ctx.A, ctx.gold) for e in ctx.cfg.eps_grid}
    return max(scores, key=scores.get)


def training_set(ctx: Context, name: str, n: int, budget: int) -> tuple[np.ndarray, np.ndarray, Chain | None]:
    """What condition ``name`` trains on from the first ``n`` pool pairs: (pair rows, labels, the curation chain)."""
    A, cfg, gold = ctx.A, ctx.cfg, ctx.gold
    pool, agree = ctx.pool[:n], ctx.agree[:n]
    chain = None
    if name == "clean":
        idx, lab = np.concatenate([pool, gold]), np.ones(n + len(gold), bool)
    elif name == "raw":
        idx, lab = pool, agree
    elif name == "gold only" or name == ABLATION[0]:
        idx, lab = gold, np.ones(len(gold), bool)
    elif name in ROBUST:
        idx, lab = np.concatenate([pool, gold]), np.concatenate([agree, np.ones(len(gold), bool)])
    elif name == "raw + human labels":
        key = (n, budget, "puller")
        if key not in ctx.stage1:
            ctx.stage1[key] = stage1_chain(A, pool, agree, gold, cfg, ctx.seed, budget=budget, queue="puller")
        labels, reviewed, _, _ = ctx.stage1[key]
        idx, lab = np.concatenate([pool, gold]), np.concatenate([labels, np.ones(len(gold), bool)])
        chain = Chain(idx=idx, agree=lab, reviewed=int(reviewed.sum()))
    else:
        queue = {"+ Stage 2, LLM judge only": "none", "+ human review, random pairs": "random",
                 "+ error-driven retrieval": "puller", "+ disagreement queue": "disagreement", **QUEUES}[name]
        chain = curate(A, pool, agree, gold, cfg, ctx.seed, queue=queue, budget=budget, r_gold=ctx.r_gold,
                       memo=ctx.stage1)
        idx, lab = chain.idx, chain.agree
    return idx, lab, chain


def condition(ctx: Context, name: str, n: int | None = None, *, budget: int | None = None) -> dict[str, Any]:
    """Train condition ``name`` on the first ``n`` pool pairs (all by default); test accuracy, best-of-N and what
    it trained on."""
    A, gold = ctx.A, ctx.gold
    n = len(ctx.pool) if n is None else min(n, len(ctx.pool))
    budget = ctx.cfg.budget if budget is None else budget
    idx, lab, chain = training_set(ctx, name, n, budget)
    loss = ROBUST.get(name, "bt")
    r = _fit(ctx, idx, lab, loss=loss, eps=ctx.eps.get(name, 0.0) if loss not in ("bt", "sympo") else 0.0)
    human = 0 if name == "raw" else len(gold) + (chain.reviewed if chain else 0)
    out = {"noise": ctx.noise, "seed": ctx.seed, "condition": name, "pool_pairs": n, "budget": budget,
           "train_pairs": len(idx), "train_label_accuracy": float(lab.mean()), "human_labels": human,
           "test_accuracy": accuracy(r, A, ctx.test), "best_of_n": best_of_n(r, A)}
    if loss != "bt":
        out["eps"] = ctx.eps.get(name)
    if chain is not None:
        out.update(queue_noise_share=chain.queue_noise_share, pool_noise_share=chain.pool_noise_share)
    return out


def make_context(tb: Testbed, A: Arrays, cfg: TeacherExperimentConfig, noise: str, seed: int,
                 labels: tuple[np.ndarray, np.ndarray]) -> Context:
    """The (noise, seed) block's shared state from its pool labels (`noisy_labels`: computed by the caller, so a noise
    model registered in the caller's process need not exist in a worker's)."""
    agree, bt_agree = labels
    pool = A.idx("train")
    # a smaller pool is the pairs of fewer prompts (a dataset grows by prompts, each with its comparisons): with random
    # pairs instead, 16k pairs already hold most of what 56k say about each prompt's ten candidates (RESULTS.md)
    hosts = tb.pairs["host"].to_numpy()[pool]
    names = np.unique(hosts)
    rank = dict(zip(names[np.random.default_rng([seed, 101]).permutation(len(names))], range(len(names))))
    order = np.argsort([rank[h] for h in hosts], kind="stable")
    gold = A.idx("gold")
    return Context(A=A, cfg=cfg, noise=noise, seed=seed, pool=pool[order], agree=agree[order], gold=gold,
                   test=A.idx("test"), r_gold=gold_rm(A, gold, cfg, seed), bt_agreement=float(bt_agree.mean()))


FINETUNED = ("clean", "raw", "curated")  # the fine-tuned MiniLM check: the ceiling, the floor and the method


def finetune_check(ctx: Context, tb: Testbed, work: Path, *, progress: bool = True) -> list[dict[str, Any]]:
    """The frozen-embedding student carries the experiment; this checks it against the MiniLM *fine-tuned end to
    end* (the teacher's recipe, shorter inputs) on a subset: the first ``finetune_pool_pairs`` pool pairs of one
    seed, conditions `FINETUNED`, scored on ``finetune_test_pairs`` test pairs beside the frozen student trained on
    the very same pairs and labels. It asks one thing: does the conditions' order survive a stronger student?
    Each model is saved under ``work/finetuned-<finetune_tag>/<condition>`` and resumes like any training run."""
    from workbench.models import scoring, training

    cfg, A = ctx.cfg, ctx.A
    n = min(cfg.finetune_pool_pairs, len(ctx.pool))
    test = np.sort(np.random.default_rng([ctx.seed, 11]).permutation(ctx.test)[: cfg.finetune_test_pairs])
    test_pairs = tb.pairs.iloc[test]  # chosen = the teacher's winner
    rows = []
    for name in FINETUNED:
        idx, lab, _ = training_set(ctx, name, n, cfg.budget)
        src = tb.pairs.iloc[idx].reset_index(drop=True)
        fit = src.assign(chosen=np.where(lab, src["chosen"], src["rejected"]),
                         rejected=np.where(lab, src["rejected"], src["chosen"]))
        rcfg = training.RMTrainConfig(kind="finetune", epochs=1.0, max_length=cfg.finetune_max_length, batch_size=16,
                                      learning_rate=5e-5, eval_steps=10_000, seed=ctx.seed)
        t0 = time.time()
        out = work / f"finetuned-{finetune_tag(cfg)}" / name.replace(" ", "_")
        res = training.train_reward_model(fit, None, cfg=rcfg, output_dir=out, progress=progress)
        scores = scoring.score_pairs(scoring.load_reward_model(res.model_dir), test_pairs,
                                     cfg=scoring.ScoreConfig(max_length=cfg.finetune_max_length), progress=progress)
        rows.append({"noise": ctx.noise, "seed": ctx.seed, "condition": name, "pool_pairs": n, "train_pairs": len(idx),
                     "train_label_accuracy": float(lab.mean()), "test_pairs": len(test),
                     "finetuned_accuracy": float((scores["margin"].to_numpy() > 0).mean()),
                     "frozen_student_accuracy": accuracy(_fit(ctx, idx, lab), A, test),
                     "finetune_seconds": round(time.time() - t0, 1)})
    return rows


# ---------------------------------------------------------------- statistics and the gate


def summarize(rows: pd.DataFrame, by: list[str], value: str = "test_accuracy") -> pd.DataFrame:
    """Mean and 95% CI of ``value`` over seeds per group ``by``."""
    out = []
    for key, g in rows.groupby(by, sort=False):
        m, lo, hi = mean_ci(g[value].to_numpy())
        key = key if isinstance(key, tuple) else (key,)
        out.append({**dict(zip(by, key)), f"{value}_mean": m, "ci_low": lo, "ci_high": hi, "seeds": g["seed"].nunique(),
                    **({"best_of_n_mean": g["best_of_n"].mean()} if "best_of_n" in g and value != "best_of_n" else {})})
    return pd.DataFrame(out)


def paired(rows: pd.DataFrame, a: str, b: str, *, where: dict | None = None) -> dict[str, Any]:
    """``a`` minus ``b`` test accuracy, paired by seed, with its 95% t-interval."""
    sel = rows
    for k, v in (where or {}).items():
        sel = sel[sel[k] == v]
    acc = sel.pivot_table(index="seed", columns="condition", values="test_accuracy")
    m, lo, hi = mean_ci((acc[a] - acc[b]).to_numpy())
    return {"a": a, "b": b, "diff_mean": m, "ci_low": lo, "ci_high": hi, "seeds": len(acc),
            "verdict": "better" if lo > 0 else ("worse" if hi < 0 else "no separation")}


def gain_per_doubling(sizes: np.ndarray, acc: np.ndarray, lo: int = 5_000, hi: int = 50_000) -> float:
    """Least-squares slope of accuracy against log2(pool pairs) over the sizes spanning [lo, hi] (the nearest size at
    or below ``lo`` through the nearest at or above ``hi``). Example: 0.70, 0.72, 0.74 at 4k, 8k, 16k -> 0.02."""
    sizes, acc = np.asarray(sizes, float), np.asarray(acc, float)
    first = sizes[sizes <= lo].max() if (sizes <= lo).any() else sizes.min()
    last = sizes[sizes >= hi].min() if (sizes >= hi).any() else sizes.max()
    keep = (sizes >= first) & (sizes <= last)
    if keep.sum() < 2:  # a curve that does not span the range (a smoke run): its slope over every size measured
        keep = np.ones(len(sizes), bool)
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log2(sizes[keep]), acc[keep], 1)[0])


def gate(curve: pd.DataFrame, full: pd.DataFrame, cfg: TeacherExperimentConfig) -> pd.DataFrame:
    """The dynamic-range gate: one row per check with its value, bar and verdict.

    ``curve``: mean test accuracy per (condition, pool_pairs) of the headline noise model (needs ``clean``);
    ``full``: mean test accuracy per (noise, condition) at the full pool (needs ``clean``, ``raw``, ``gold only``).
    """
    clean = curve[curve["condition"] == "clean"].sort_values("pool_pairs")
    slope = gain_per_doubling(clean["pool_pairs"].to_numpy(), clean["test_accuracy_mean"].to_numpy())
    f = full.set_index(["noise", "condition"])["test_accuracy_mean"]
    head = cfg.noise_models[0]
    ceiling = f[(head, "clean")]
    rows = [{"check": "clean curve: gain per doubling, 5k-50k pool pairs", "value": slope,
             "bar": cfg.gate_gain_per_doubling, "passed": bool(slope >= cfg.gate_gain_per_doubling)},
            {"check": "clean ceiling minus gold only", "value": ceiling - f[(head, "gold only")],
             "bar": cfg.gate_gold_gap, "passed": bool(ceiling - f[(head, "gold only")] >= cfg.gate_gold_gap)}]
    for noise in cfg.noise_models:
        gap = f[(noise, "clean")] - f[(noise, "raw")]
        rows.append({"check": f"clean minus raw, {noise} noise, full pool", "value": gap, "bar": cfg.gate_noise_gap,
                     "passed": bool(gap >= cfg.gate_noise_gap)})
    return pd.DataFrame(rows)


GATE_FAILED = ("The testbed fails the dynamic-range gate ({failed}): at these settings the comparison below cannot "
               "discriminate between curation methods. Change the testbed (teacher, candidates, agreement, student, "
               "noise), not the gate.")


def crossing_factor(curve: pd.DataFrame, method: str, base: str = "raw") -> pd.DataFrame:
    """For each pool size N: the k at which ``base`` at k*N matches ``method`` at N (log-linear interpolation of
    ``base``'s curve); NaN where ``base`` never reaches it within the measured sizes."""
    b = curve[curve["condition"] == base].sort_values("pool_pairs")
    m = curve[curve["condition"] == method].sort_values("pool_pairs")
    xs, ys = np.log2(b["pool_pairs"].to_numpy(float)), b["test_accuracy_mean"].to_numpy()
    rows = []
    for n, acc in zip(m["pool_pairs"], m["test_accuracy_mean"]):
        k = float("nan")
        for i in range(len(xs) - 1):
            if ys[i] <= acc <= ys[i + 1] and ys[i + 1] > ys[i]:
                k = 2 ** (xs[i] + (acc - ys[i]) / (ys[i + 1] - ys[i]) * (xs[i + 1] - xs[i])) / n
                break
        if acc <= ys[0]:
            k = float(b["pool_pairs"].iloc[0]) / n if acc == ys[0] else float("nan")
        rows.append({"pool_pairs": int(n), "method": method, "method_accuracy": acc, "k": k})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the whole experiment


@dataclass
class TeacherResult:
    testbed: dict[str, Any]  # sizes, teacher report, beta, agreement measured
    margins: pd.DataFrame  # the teacher-margin distribution per split
    full: pd.DataFrame  # per (noise, seed, condition) at the full pool
    curve: pd.DataFrame  # per (seed, condition, pool_pairs), headline noise
    budget: pd.DataFrame  # per (seed, condition, budget), headline noise
    gate: pd.DataFrame
    timings: dict[str, float]
    config: dict[str, Any] = field(default_factory=dict)
    finetuned: pd.DataFrame = field(default_factory=pd.DataFrame)  # the fine-tuned MiniLM check (opt-in)

    @property
    def gate_passed(self) -> bool:
        return bool(self.gate["passed"].all())


def pool_sizes(cfg: TeacherExperimentConfig, n_pool: int) -> list[int]:
    """The learning curves' pool sizes: ``cfg.pool_sizes`` (or doublings from 1,000), always ending at the full pool."""
    if cfg.pool_sizes:
        return sorted({min(s, n_pool) for s in cfg.pool_sizes} | {n_pool})
    sizes, s = [], 1000
    while s < n_pool:
        sizes.append(s)
        s *= 2
    return [*sizes, n_pool]


def config_key(cfg: TeacherExperimentConfig) -> str:
    """Fingerprint of the settings that shape the experiment's blocks; the fine-tuned check's own ``finetune_*``
    settings are left out (its block and models are named by them), so changing them reuses every other block, and
    so is ``workers`` (it changes how fast, not what)."""
    shaping = {k: v for k, v in asdict(cfg).items() if not k.startswith("finetune_") and k != "workers"}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:10]


def finetune_tag(cfg: TeacherExperimentConfig) -> str:
    return f"{cfg.finetune_pool_pairs}-{cfg.finetune_test_pairs}-{cfg.finetune_max_length}"


def _cached_rows(path: Path, make: Any, *args: Any, **kwargs: Any) -> list[dict]:
    """One (noise, seed) block of rows, ``make(*args, **kwargs)``: read from ``path`` when a previous run finished
    it, else computed and written (atomically), so an interrupted experiment resumes where it stopped."""
    if path.exists():
        return json.loads(path.read_text())
    rows = make(*args, **kwargs)
    io.write_text_atomic(path, json.dumps(rows, default=float))
    return rows


def run_teacher_experiment(cfg: TeacherExperimentConfig = TeacherExperimentConfig(), run_dir: str | Path = "runs/teacher",
                           *, data_dir: str | None = None, cache_root: str | Path | None = None,
                           progress: bool = True, finetune: bool = False) -> TeacherResult:
    """Build (or load) the testbed, then: every noise model's full-pool conditions (the gate, the ablation, the null
    control); the best baseline, chosen once from the headline noise model's full-pool blocks of every seed; the
    headline noise model's learning curves (clean, raw, raw + human labels, curated and that baseline) and
    review-budget curve; with ``finetune``, the fine-tuned MiniLM check on the headline noise model's first seed
    (`finetune_check`). The (noise, seed) blocks run in ``cfg.workers`` processes; each block's rows are saved under
    ``<run_dir>/teacher_experiment/<config_key>/`` as it finishes, and a rerun resumes.

    Example: ``res = run_teacher_experiment(); res.gate``.
    """
    from workbench.curation.testbed import margin_report

    t0 = time.time()
    tb = build_testbed(cfg.testbed, data_dir=data_dir, cache_root=cache_root, progress=progress)
    t_build = time.time() - t0
    A = student_arrays(tb, cfg.embedder, cfg.student_view, progress=progress)
    t_arrays = time.time() - t0 - t_build
    work = Path(run_dir) / "teacher_experiment" / config_key(cfg)
    work.mkdir(parents=True, exist_ok=True)
    pool_margins = tb.pairs.loc[A.split == "train", "teacher_margin"].to_numpy()
    scale = margin_scale(pool_margins)
    beta = beta_for_agreement(pool_margins, cfg.agreement, scale=scale)
    groups = topic_groups(A, cfg.cluster_groups)
    head, n_pool = cfg.noise_models[0], len(A.idx("train"))
    sizes = pool_sizes(cfg, n_pool)
    kinds = {noise: "headline" if noise == head else ("systematic" if noise in cfg.noise_models else "null")
             for noise in (*cfg.noise_models, *cfg.null_models)}
    seeds_of = {noise: cfg.seeds if kind == "headline" else cfg.seeds[: cfg.secondary_seeds] for noise, kind in kinds.items()}
    labels = {(noise, seed): noisy_labels(tb, A, cfg, noise, seed, beta, scale, groups)
              for noise in kinds for seed in seeds_of[noise]}
    t_exp = time.time()
    with _BlockRunner(cfg, tb, A, data_dir, cache_root, labels, progress=progress) as runner:
        full_jobs = [Block("full", noise, seed, work / f"full_{noise}_seed{seed}.json", names=BLOCK_CONDITIONS[kind])
                     for noise, kind in kinds.items() for seed in seeds_of[noise]]
        full_rows = [r for rows in runner.run(full_jobs) for r in rows]
        full = pd.DataFrame(full_rows)
        best = best_baseline(full[full["noise"] == head])  # once, from every seed's full pool
        names = tuple(dict.fromkeys(("clean", "raw", "raw + human labels", "curated", best)))
        eps = {seed: {r["condition"]: r["eps"] for r in full_rows if r["noise"] == head and r["seed"] == seed and "eps" in r}
               for seed in cfg.seeds}
        later = [Block("curve", head, seed, work / f"curve_{head}_seed{seed}_{best.replace(' ', '_')}.json", names=names,
                       sizes=tuple(sizes[:-1]), eps=eps[seed]) for seed in cfg.seeds]
        later += [Block("budget", head, seed, work / f"budget_{head}_seed{seed}.json", eps=eps[seed],
                        budgets=tuple(b for b in cfg.budgets if b != cfg.budget)) for seed in cfg.seeds[: cfg.secondary_seeds]]
        done = dict(zip(later, runner.run(later)))
    curve_rows, budget_rows = [], []
    for job, rows in done.items():
        at_full = [r for r in full_rows if r["noise"] == head and r["seed"] == job.seed]
        if job.kind == "curve":  # the full pool: measured by the full block
            curve_rows += rows + [r for r in at_full if r["condition"] in names]
        else:  # the default budget: measured by the full block
            budget_rows += rows + [r for r in at_full if r["condition"] in QUEUES]
    tuned: list[dict] = []
    if finetune:
        ctx = make_context(tb, A, cfg, head, cfg.seeds[0], labels[(head, cfg.seeds[0])])
        ctx.eps.update(eps[cfg.seeds[0]])
        tuned = _cached_rows(work / f"finetuned_{head}_seed{cfg.seeds[0]}_{finetune_tag(cfg)}.json", finetune_check,
                             ctx, tb, work, progress=progress)
    curve = pd.DataFrame(curve_rows)
    full_mean = summarize(full, ["noise", "condition"])
    curve_mean = summarize(curve, ["condition", "pool_pairs"])
    agreement_seen = [(float(bt.mean()), float(agree.mean())) for agree, bt in labels.values()]
    report = {"pairs": tb.pairs.groupby("split").size().to_dict(), "candidates_per_prompt": cfg.testbed.candidates_per_prompt,
              "beta": beta, "margin_scale": scale, "agreement_target": cfg.agreement,
              "agreement_measured": float(np.mean([a for a, _ in agreement_seen])),
              "label_agreement_after_noise": float(np.mean([b for _, b in agreement_seen])), "testbed_key": tb.key, "pool_sizes": sizes,
              "best_baseline": best, **{k: v for k, v in tb.teacher.items() if k != "config"}}
    timings = {"testbed_seconds": round(t_build, 1), "student_features_seconds": round(t_arrays, 1),
               "experiment_seconds": round(time.time() - t_exp, 1), "total_seconds": round(time.time() - t0, 1),
               "workers": runner.workers}
    return TeacherResult(testbed=report, margins=margin_report(tb.pairs), full=full, curve=curve,
                         budget=pd.DataFrame(budget_rows), gate=gate(curve_mean, full_mean, cfg), timings=timings,
                         config=asdict(cfg), finetuned=pd.DataFrame(tuned))


BLOCK_CONDITIONS = {"headline": ("clean", "raw", *BASELINES, *CURATED, ABLATION[1]),
                    "systematic": ("clean", "raw", "gold only", "random review", *ROBUST, "curated"),
                    "null": ("clean", "raw", *ROBUST, "curated")}


@dataclass(frozen=True)
class Block:
    """One unit of work and of resumption: a (noise, seed) block of rows, saved at ``path``.

    ``full``: every condition in ``names`` at the full pool (robust losses choose their eps on gold here);
    ``curve``: ``names`` at each of ``sizes``; ``budget``: the review queues at each of ``budgets``. ``eps``: the
    full block's choices, which the later blocks reuse."""

    kind: str
    noise: str
    seed: int
    path: Path
    names: tuple[str, ...] = ()
    sizes: tuple[int, ...] = ()
    budgets: tuple[int, ...] = ()
    eps: dict = field(default_factory=dict, hash=False, compare=False)


def block_rows(tb: Testbed, A: Arrays, cfg: TeacherExperimentConfig, job: Block,
               labels: tuple[np.ndarray, np.ndarray]) -> list[dict]:
    """Compute one block's rows (no I/O)."""
    ctx = make_context(tb, A, cfg, job.noise, job.seed, labels)
    ctx.eps.update(job.eps)
    if job.kind == "full":
        ctx.eps.update({name: choose_eps(ctx, loss) if loss != "sympo" else 0.0  # the sigmoid loss has no eps
                        for name, loss in ROBUST.items() if name in job.names})
        return [condition(ctx, name) for name in job.names]
    if job.kind == "curve":
        return [condition(ctx, name, n) for n in job.sizes for name in job.names]
    return [condition(ctx, name, budget=b) for b in job.budgets for name in QUEUES]


_WORKER: dict[str, Any] = {}  # a worker process's testbed and arrays, loaded once by `_start_worker`


def _start_worker(cfg: TeacherExperimentConfig, data_dir: str | None, cache_root: str | Path | None, threads: int) -> None:
    torch.set_num_threads(threads)
    tb = build_testbed(cfg.testbed, data_dir=data_dir, cache_root=cache_root, progress=False)  # from the cache
    _WORKER.update(tb=tb, A=student_arrays(tb, cfg.embedder, cfg.student_view, progress=False), cfg=cfg)


def _worker_rows(job: Block, labels: tuple[np.ndarray, np.ndarray]) -> list[dict]:
    return block_rows(_WORKER["tb"], _WORKER["A"], _WORKER["cfg"], job, labels)


class _BlockRunner:
    """Runs blocks in this process (``workers`` 1) or a pool of spawned processes with one torch thread each: the
    student's small matrix products gain little from a second thread (6.4 s -> 6.3 s for 16,000 pairs), so two
    blocks at once nearly halve the wall time. Each finished block is written atomically at once, in any order;
    a block already on disk is read instead (resume). Hand-written rather than Ray or joblib: a dozen coarse tasks
    over ``concurrent.futures``, with the testbed loaded once per worker."""

    def __init__(self, cfg: TeacherExperimentConfig, tb: Testbed, A: Arrays, data_dir: str | None,
                 cache_root: str | Path | None, labels: dict, *, progress: bool):
        import os

        self.cfg, self.tb, self.A, self.labels, self.progress = cfg, tb, A, labels, progress
        self.workers = cfg.workers or (os.cpu_count() or 1)
        self._args = (cfg, data_dir, cache_root, max(1, (os.cpu_count() or 1) // self.workers))
        self._pool = None

    def __enter__(self) -> _BlockRunner:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def run(self, jobs: list[Block]) -> list[list[dict]]:
        """Each job's rows, in the order of ``jobs``."""
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        out: dict[int, list[dict]] = {i: json.loads(j.path.read_text()) for i, j in enumerate(jobs) if j.path.exists()}
        todo = [i for i in range(len(jobs)) if i not in out]
        bar = tqdm(total=len(jobs), initial=len(out), desc="teacher experiment: " + " + ".join(dict.fromkeys(j.kind for j in jobs)),
                   unit="block", disable=not self.progress)

        def finish(i: int, rows: list[dict]) -> None:
            io.write_text_atomic(jobs[i].path, json.dumps(rows, default=float))
            out[i] = rows
            bar.update()

        if self.workers <= 1 or len(todo) <= 1:
            for i in todo:
                finish(i, block_rows(self.tb, self.A, self.cfg, jobs[i], self.labels[(jobs[i].noise, jobs[i].seed)]))
        else:
            if self._pool is None:  # spawn, not fork: torch's thread pools are not fork-safe
                self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"),
                                                 initializer=_start_worker, initargs=self._args)
            futures = {self._pool.submit(_worker_rows, jobs[i], self.labels[(jobs[i].noise, jobs[i].seed)]): i
                       for i in todo}
            for f in as_completed(futures):
                finish(futures[f], f.result())
        bar.close()
        return [out[i] for i in range(len(jobs))]


def best_baseline(full: pd.DataFrame) -> str:
    """The baseline with the highest mean test accuracy at the full pool (for the learning curves)."""
    means = full[full["condition"].isin([b for b in BASELINES if b != "gold only"])].groupby("condition")["test_accuracy"].mean()
    return str(means.idxmax())


# ---------------------------------------------------------------- tables, figures, conclusions


def ablation_table(full: pd.DataFrame, noise: str) -> pd.DataFrame:
    """The paper's ablation, additively, at the full pool: each step's mean and CI, and its paired difference (CI) to
    the step before."""
    steps = dict(zip(ABLATION, ("gold only", ABLATION[1], "random review", "curated", "curated, disagreement queue")))
    rows = full[full["noise"] == noise].replace({"condition": {v: k for k, v in steps.items()}})
    out = []
    for k, step in enumerate(ABLATION):
        m, lo, hi = mean_ci(rows.loc[rows["condition"] == step, "test_accuracy"])
        d = paired(rows, step, ABLATION[k - 1]) if k else {"diff_mean": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                                                           "verdict": ""}
        out.append({"step": step, "condition": steps[step], "test_accuracy_mean": m, "ci_low": lo, "ci_high": hi,
                    "diff_mean": d["diff_mean"], "diff_ci_low": d["ci_low"], "diff_ci_high": d["ci_high"],
                    "vs_step_before": d["verdict"]})
    return pd.DataFrame(out)


def null_control(full: pd.DataFrame, cfg: TeacherExperimentConfig) -> pd.DataFrame:
    """Under Bradley-Terry sampling alone and BT + symmetric flips: curated minus the best robust loss (paired).
    Curation beating them here would be suspicious (random flips should not need review)."""
    rows = []
    for noise in cfg.null_models:
        sel = full[full["noise"] == noise]
        best = sel[sel["condition"].isin(ROBUST)].groupby("condition")["test_accuracy"].mean().idxmax()
        rows.append({"noise": noise, "best_robust_loss": best, **paired(sel, "curated", best)})
    return pd.DataFrame(rows)


def tables(res: TeacherResult, cfg: TeacherExperimentConfig) -> dict[str, pd.DataFrame]:
    """Every table of the report, computed from the per-seed rows."""
    head = cfg.noise_models[0]
    curve_mean = summarize(res.curve, ["condition", "pool_pairs"])
    out = {"gate": res.gate, "margins": res.margins,
           "full_pool": summarize(res.full, ["noise", "condition"]),
           "curve": curve_mean,
           "ablation": ablation_table(res.full, head),
           "versus_best_baseline": pd.DataFrame([
               {"noise": n, **paired(res.full, c, best_baseline(res.full[res.full["noise"] == n]), where={"noise": n})}
               for n in cfg.noise_models for c in CURATED if c in set(res.full.loc[res.full["noise"] == n, "condition"])]),
           "null_control": null_control(res.full, cfg) if cfg.null_models else pd.DataFrame(),
           "crossing": pd.concat([crossing_factor(curve_mean, m) for m in ("curated", *[
               c for c in curve_mean["condition"].unique() if c not in ("clean", "raw", "curated")])], ignore_index=True)}
    if len(res.budget):
        out["budget"] = summarize(res.budget, ["condition", "budget"]).sort_values("budget", kind="stable")
    if len(res.finetuned):
        out["finetuned"] = res.finetuned
    return out


def conclusions(res: TeacherResult, cfg: TeacherExperimentConfig) -> list[str]:
    """What the run found, in sentences computed from its numbers."""
    t, tb = tables(res, cfg), res.testbed
    lines = [f"Testbed: {tb['pairs'].get('train', 0):,} pool / {tb['pairs'].get('gold', 0):,} gold / "
             f"{tb['pairs'].get('test', 0):,} test pairs; teacher = MiniLM fine-tuned on {tb['teacher_train_pairs']:,} "
             f"HH-RLHF human labels ({tb['teacher_heldout_accuracy']:.3f} on {tb['teacher_heldout_pairs']} held-out "
             f"human labels). Annotator labels: Bradley-Terry with beta {tb['beta']:.2f} "
             f"({tb['agreement_measured']:.1%} agree with the teacher), then noise at rate {cfg.noise_rate}; reviewer "
             f"error {cfg.oracle_error_rate}, judge error {cfg.judge_error_rate}, {cfg.budget} reviews, "
             f"{len(cfg.seeds)} seeds."]
    failed = [r.check for r in res.gate.itertuples() if not r.passed]
    gate_txt = "; ".join(f"{r.check}: {r.value:+.3f} (bar {r.bar:.2f}, {'pass' if r.passed else 'FAIL'})"
                         for r in res.gate.itertuples())
    lines.append(("Gate passed: " if not failed else GATE_FAILED.format(failed=", ".join(failed)) + " Gate: ") + gate_txt
                 + ".")
    for r in t["versus_best_baseline"].itertuples():
        lines.append(f"{r.noise} noise, full pool: {r.a} vs the best baseline ({r.b}): {r.diff_mean:+.3f} "
                     f"[95% CI {r.ci_low:+.3f}, {r.ci_high:+.3f}] -> {r.verdict}.")
    for r in t["ablation"].itertuples():
        if r.vs_step_before:
            lines.append(f"Ablation ({cfg.noise_models[0]}): {r.step}: {r.test_accuracy_mean:.3f}, {r.diff_mean:+.3f} "
                         f"[{r.diff_ci_low:+.3f}, {r.diff_ci_high:+.3f}] vs the step before ({r.vs_step_before}).")
    for r in t["null_control"].itertuples():
        flag = " -- curation beats a robust loss on random flips: look for a leak before trusting other rows" \
            if r.verdict == "better" else ""
        lines.append(f"Null control, {r.noise}: curated minus {r.best_robust_loss}: {r.diff_mean:+.3f} "
                     f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}] ({r.verdict}){flag}.")
    if "finetuned" in t:
        f = t["finetuned"].set_index("condition")
        flipped = reversed_pairs(f)
        lines.append(f"Fine-tuned MiniLM check ({int(f['pool_pairs'].iloc[0]):,} pool pairs, one seed, "
                     f"{int(f['test_pairs'].iloc[0]):,} test pairs): " + ", ".join(
                         f"{c} {r.finetuned_accuracy:.3f} (frozen student {r.frozen_student_accuracy:.3f})"
                         for c, r in f.iterrows()) + (
                         " -- no two conditions in the opposite order to the frozen student's." if not flipped else
                         f" -- in the opposite order to the frozen student's: {', '.join(flipped)}."))
    cross = t["crossing"][t["crossing"]["method"] == "curated"]
    full_k = cross["k"].iloc[-1] if len(cross) else np.nan
    lines.append(f"Curated at the full pool matches raw at {full_k:.2f}x the pool." if np.isfinite(full_k) else
                 "Curated at the full pool is never matched by raw within the measured sizes (k undefined: raw's "
                 "curve stays below it)." if len(cross) and cross["method_accuracy"].iloc[-1] > t["curve"].query(
                     "condition == 'raw'")["test_accuracy_mean"].max() else
                 "Curated never reaches raw's accuracy at any measured size: no k.")
    return lines


def reversed_pairs(finetuned: pd.DataFrame) -> list[str]:
    """Pairs of conditions (index) that the fine-tuned and the frozen student put in strictly opposite order (a tie
    in either is not a reversal). Example: clean 0.92 / 0.72, curated 0.92 / 0.71, raw 0.81 / 0.64 -> []."""
    names, out = list(finetuned.index), []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            tuned = finetuned.at[a, "finetuned_accuracy"] - finetuned.at[b, "finetuned_accuracy"]
            frozen = finetuned.at[a, "frozen_student_accuracy"] - finetuned.at[b, "frozen_student_accuracy"]
            if tuned * frozen < 0:
                out.append(f"{a} vs {b}")
    return out


def save_outputs(run: Any, res: TeacherResult, cfg: TeacherExperimentConfig, *, step: str = "") -> dict[str, Any]:
    """Every table and figure into ``run`` (the notebook and the CLI write the same report); returns the figures."""
    from workbench.curation import plots

    t = tables(res, cfg)
    cond = (f"teacher truth; BT agreement {cfg.agreement}, {cfg.noise_models[0]} noise at {cfg.noise_rate}, reviewer "
            f"error {cfg.oracle_error_rate}, {cfg.budget} reviews, {len(cfg.seeds)} seeds")
    for name, table in {**t, "full_per_seed": res.full, "curve_per_seed": res.curve}.items():
        run.save_table(table, f"teacher_{name}", title=f"Teacher testbed: {name.replace('_', ' ')}", step=step,
                       index=False, caption=cond)
    figures = {"learning_curves": plots.learning_curves(t["curve"]), "ablation": plots.ablation_bars(t["ablation"])}
    if "budget" in t:
        figures["budget"] = plots.budget_curves(t["budget"])
    for name, fig in figures.items():
        run.save_figure(fig, f"teacher_{name}", title=f"Teacher testbed: {name.replace('_', ' ')}", step=step,
                        caption=cond)
    metrics = {**{k: v for k, v in res.testbed.items() if not isinstance(v, (dict, list))}, **res.timings,
               "gate_passed": res.gate_passed}
    run.save_metrics(metrics, "teacher_metrics", title="Teacher testbed at a glance", step=step)
    return {**figures, "tables": t, "metrics": metrics}
