"""A known-truth testbed where data matters: a teacher reward model as the truth (the ``teacher`` truth source).

The constructed-pairs truth (`workbench.data.demo`) is learnable from a few dozen pairs, so every curation method
reaches its ceiling and none can be told apart. This testbed follows the synthetic gold-RM setups of Gao, Schulman &
Hilton 2023 (arXiv 2210.10760: a gold RM labels every comparison, proxies learn from its labels) and Sun, Shen & Ton
2024 (arXiv 2411.04991: gold-RM labels sampled by Bradley-Terry with an annotation-quality knob, MLP students on
frozen embeddings, tens of thousands of pairs):

1. **The teacher** is the MiniLM fine-tuned on *real human labels* (HH-RLHF conversations set aside for it; its
   held-out accuracy against those labels is reported for context). It is built once per fingerprint of the data
   files and `TeacherConfig` and cached durably (`teacher_dir`).
2. **Candidates**: every host conversation gets its own two responses plus the two responses of each of its
   ``neighbours`` most similar conversations of the same split (by the last user turn): plausible, on-topic-ish
   answers that are not trivially wrong. Splits are assigned to *conversations* before neighbours are found, so no
   response text crosses from the pool to gold or test.
3. **Pairs**: ``pairs_per_prompt`` of each host's candidate pairs; ``chosen`` is the teacher's preferred response and
   ``teacher_margin`` (>= 0) how strongly it prefers it. The truth for every metric is the teacher's ordering.
4. **Labels** (`bt_labels`): an annotator's label is sampled by Bradley-Terry, ``P(agree) = sigmoid(beta * margin /
   scale)`` with ``scale`` the RMS teacher margin of the pool and ``beta`` solved (`beta_for_agreement`) so that
   ``agreement`` of the pool's labels agree with the teacher in expectation (real annotators agree 60-75%; Coste et
   al. arXiv 2310.02743). Systematic noise (`workbench.data.noise`) goes on top.

The student that learns from these labels is the workbench's fast RM on *frozen* embeddings
(`workbench.models.fast_rm`): it never sees the teacher's fine-tuned encoder, so it cannot copy it.

Not here: the experiments on the testbed (`workbench.curation.teacher_experiment`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.data import files as io
from workbench.data.demo import HH_CONSTRUCTION_FILES
from workbench.data.schema import PairFrame, last_user_message, make_pair_id, prompt_key
from workbench.models import scoring, training
from workbench.models.embedding import embed_texts

HH_FILES = tuple(dict.fromkeys(("helpful-base", "harmless-base", *HH_CONSTRUCTION_FILES)))


@dataclass(frozen=True)
class TeacherConfig:
    """The teacher: the offline MiniLM fine-tuned on HH-RLHF human labels (conversations used for nothing else)."""

    train_pairs: int = 2000  # human-labelled pairs it learns from
    heldout_pairs: int = 500  # its accuracy against held-out human labels (context, not a gate)
    max_length: int = 256  # tokens per (conversation, response), for training and for scoring candidates
    epochs: float = 1.0
    learning_rate: float = 5e-5
    batch_size: int = 16
    seed: int = 0


@dataclass(frozen=True)
class TestbedConfig:
    """Sizes of the teacher testbed; the defaults give 56,000 pool, 1,000 gold and about 5,800 test pairs."""

    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    pool_prompts: int = 2000  # host conversations whose candidate pairs form the pool
    gold_prompts: int = 250
    test_prompts: int = 300  # enough hosts for >= 5,000 decisive test pairs (test_min_margin keeps ~70% of 28)
    pairs_per_prompt: int = 28  # pool and test: of the C(candidates, 2) pairs of a host, this many at random
    gold_pairs_per_prompt: int = 4  # gold is spread over more conversations (what a verified set should be)
    neighbours: int = 4  # conversations whose two responses join each host's own two: 2 + 2 * 4 = 10 candidates
    bon_neighbours: int = 7  # test hosts also get the responses of neighbours 5..7: 16 candidates for best-of-16
    #                          (test *pairs* come from the first 10 only, the pool's distribution)
    min_margin: float = 0.0  # pairs whose teacher margin is below this many RMS margins are not sampled (near-ties)
    test_min_margin: float = 0.5  # test pairs only where the teacher is decisive: at 0.5 RMS margins an annotator of
    #                               the default 75%-agreement pool agrees 3 times in 4 (sigmoid(2.23 * 0.5) = 0.75);
    #                               near-ties are coin flips for every student and only compress the differences
    data_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("pool_prompts", "gold_prompts", "test_prompts", "pairs_per_prompt", "gold_pairs_per_prompt",
                     "neighbours"):
            if getattr(self, name) < 1:
                raise ValueError(f"TestbedConfig.{name} must be >= 1, got {getattr(self, name)}.")
        if self.min_margin < 0 or self.test_min_margin < 0:
            raise ValueError("TestbedConfig.min_margin and test_min_margin must be >= 0 (units of the RMS margin).")
        most = (2 + 2 * self.neighbours) * (1 + 2 * self.neighbours) // 2
        if self.bon_neighbours < self.neighbours:
            raise ValueError(f"bon_neighbours ({self.bon_neighbours}) must be >= neighbours ({self.neighbours}).")
        if self.pairs_per_prompt > most or self.gold_pairs_per_prompt > most:
            raise ValueError(f"pairs_per_prompt / gold_pairs_per_prompt must be <= {most} (all pairs of "
                             f"{2 + 2 * self.neighbours} candidates).")

    @property
    def candidates_per_prompt(self) -> int:
        return 2 + 2 * self.neighbours


@dataclass
class Testbed:
    """The built testbed: pairs with the teacher's ordering, the teacher's own report, and where it is cached."""

    pairs: PairFrame  # chosen = the teacher's preferred response; teacher_margin >= 0; split train / gold / test;
    #                   cand_chosen / cand_rejected: rows of ``candidates``
    candidates: pd.DataFrame  # split, host, prompt_text (last user turn), response, from, teacher_reward
    teacher: dict[str, Any]  # held-out accuracy on human labels, training time, model folder
    folder: Path  # the pairs (this config)
    key: str
    candidates_folder: Path  # candidates, teacher rewards and student features (shared by configs with other pairs)


# ---------------------------------------------------------------- Bradley-Terry labels


def margin_scale(margins: np.ndarray) -> float:
    """The RMS teacher margin: the unit ``beta`` is expressed in (so ``beta`` does not depend on the teacher's scale)."""
    m = np.asarray(margins, float)
    return float(np.sqrt(np.mean(m**2))) or 1.0


def agreement_probability(margins: np.ndarray, beta: float, scale: float) -> np.ndarray:
    """``P(annotator agrees with the teacher) = sigmoid(beta * |margin| / scale)`` per pair."""
    return 1.0 / (1.0 + np.exp(-beta * np.abs(np.asarray(margins, float)) / scale))


def beta_for_agreement(margins: np.ndarray, agreement: float, *, scale: float | None = None) -> float:
    """The ``beta`` whose expected agreement over ``margins`` equals ``agreement`` (bisection; it is monotone).

    Example: margins all equal to the scale and agreement sigmoid(1) = 0.731 -> beta = 1.
    """
    if not 0.5 < agreement < 1.0:
        raise ValueError(f"agreement must be in (0.5, 1), got {agreement}.")
    scale = margin_scale(margins) if scale is None else scale
    lo, hi = 0.0, 1.0
    while agreement_probability(margins, hi, scale).mean() < agreement:
        hi *= 2
        if hi > 1e6:
            raise ValueError("margins are all ~0: no beta reaches the agreement target.")
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if agreement_probability(margins, mid, scale).mean() < agreement else (lo, mid)
    return (lo + hi) / 2


def bt_labels(pairs: PairFrame, *, beta: float, scale: float, seed: int) -> PairFrame:
    """Annotator labels sampled from the teacher by Bradley-Terry: each pair is flipped (``noise_injected``) with
    probability ``1 - sigmoid(beta * margin / scale)``; ``label_is_true`` is False where the label disagrees with the
    teacher. The systematic noise models go on top of these labels."""
    from workbench.data.noise import flip_labels

    p_agree = agreement_probability(pairs["teacher_margin"].to_numpy(), beta, scale)
    flip = np.random.default_rng([seed, 7919]).random(len(pairs)) >= p_agree
    return flip_labels(pairs, flip)


# ---------------------------------------------------------------- building: conversations, teacher, candidates


def _conversations(data_dir: Path) -> PairFrame:
    """Every HH-RLHF conversation of the shared files once (duplicated conversations and ties dropped)."""
    parts = [io.read_pairs(data_dir / "hh_rlhf" / name / "test.jsonl.gz", strict=False, source=f"hh-rlhf/{name}")[0]
             for name in HH_FILES]
    convs = pd.concat(parts, ignore_index=True)
    convs = convs[convs["chosen"].str.strip() != convs["rejected"].str.strip()]
    convs = convs.assign(prompt_key=convs["prompt"].map(prompt_key)).drop_duplicates("prompt_key")
    return convs.reset_index(drop=True)


def _files_digest(data_dir: Path) -> str:
    h = hashlib.sha256()
    for name in HH_FILES:
        h.update((data_dir / "hh_rlhf" / name / "test.jsonl.gz").read_bytes())
    return h.hexdigest()[:16]


def testbed_key(cfg: TestbedConfig, data_dir: Path) -> str:
    """Fingerprint of the data files and every setting that shapes the testbed: a changed one builds a new one."""
    payload = json.dumps({"data": _files_digest(data_dir), "cfg": asdict(cfg)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def candidates_key(cfg: TestbedConfig, data_dir: Path) -> str:
    """Fingerprint of what the candidates and their teacher rewards depend on (not how pairs are drawn from them)."""
    fields = {k: v for k, v in asdict(cfg).items() if k not in ("pairs_per_prompt", "gold_pairs_per_prompt", "min_margin",
                                                                   "test_min_margin")}
    payload = json.dumps({"data": _files_digest(data_dir), "cfg": fields}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def teacher_key(cfg: TestbedConfig, data_dir: Path) -> str:
    payload = json.dumps({"data": _files_digest(data_dir), "teacher": asdict(cfg.teacher), "seed": cfg.data_seed},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def default_cache_root() -> Path:
    """Where built teachers and testbeds live: beside the fetched data in the user cache (shared by every run)."""
    return io.cache_dir().parent / "testbeds"


def _split_conversations(convs: PairFrame, cfg: TestbedConfig) -> dict[str, PairFrame]:
    """Disjoint conversation sets: the teacher's (train + held-out), then pool / gold / test hosts and donors."""
    rng = np.random.default_rng(cfg.data_seed)
    order = convs.iloc[rng.permutation(len(convs))].reset_index(drop=True)
    t = cfg.teacher
    teacher = order.iloc[: t.train_pairs + t.heldout_pairs]
    rest = order.iloc[len(teacher):].reset_index(drop=True)
    hosts = {"train": cfg.pool_prompts, "gold": cfg.gold_prompts, "test": cfg.test_prompts}
    # each split gets donors in proportion to its hosts (at least as many as there are hosts)
    total = sum(hosts.values())
    if total * 2 > len(rest):
        raise ValueError(f"the testbed needs {total * 2} conversations besides the teacher's {len(teacher)} (hosts and "
                         f"as many donors); the shared HH-RLHF files hold {len(convs)}. Lower pool_prompts or the "
                         "teacher's pairs.")
    out, start = {}, 0
    for split, n in hosts.items():
        size = int(len(rest) * n / total) if split != "test" else len(rest) - start
        out[split] = rest.iloc[start:start + size].reset_index(drop=True)
        start += size
    out["teacher_train"] = teacher.iloc[: t.train_pairs].reset_index(drop=True)
    out["teacher_heldout"] = teacher.iloc[t.train_pairs:].reset_index(drop=True)
    return out


def build_teacher(convs: dict[str, PairFrame], cfg: TestbedConfig, folder: Path, *, progress: bool = True
                  ) -> dict[str, Any]:
    """Fine-tune the teacher on human labels (or reuse the one in ``folder``); return its report."""
    report_path = folder / "teacher.json"
    if report_path.exists() and (folder / "model").exists():
        return io.read_json(report_path)
    t = cfg.teacher
    rcfg = training.RMTrainConfig(kind="finetune", epochs=t.epochs, max_length=t.max_length, batch_size=t.batch_size,
                                  learning_rate=t.learning_rate, eval_steps=10_000, seed=t.seed)
    result = training.train_reward_model(convs["teacher_train"], None, cfg=rcfg, output_dir=folder / "work",
                                         progress=progress)
    model_dir = folder / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.move(str(result.model_dir), str(model_dir))
    rm = scoring.load_reward_model(model_dir)
    held = convs["teacher_heldout"]
    scores = scoring.score_pairs(rm, held, cfg=scoring.ScoreConfig(max_length=t.max_length), progress=progress)
    words = held["chosen"].str.split().str.len() > held["rejected"].str.split().str.len()
    report = {"teacher_heldout_accuracy": float((scores["margin"] > 0).mean()), "teacher_heldout_pairs": len(held),
              "heldout_longer_wins": float(words.mean()), "teacher_train_pairs": len(convs["teacher_train"]),
              "train_seconds": result.metrics.get("train_seconds"), "model_dir": str(model_dir)}
    io.write_json(report, report_path)
    shutil.rmtree(folder / "work", ignore_errors=True)
    return report


def candidates(convs: PairFrame, n_hosts: int, neighbours: int, *, progress: bool = True) -> pd.DataFrame:
    """``(host, response)`` candidates: each of the first ``n_hosts`` conversations with its own two responses and
    the two of each of its ``neighbours`` nearest conversations (cosine of the last user turn's MiniLM embedding)."""
    emb = embed_texts([last_user_message(p) for p in convs["prompt"]], progress=progress)
    sims = emb[:n_hosts] @ emb.T
    np.fill_diagonal(sims[:, :n_hosts], -np.inf)
    near = np.argsort(-sims, axis=1)[:, :neighbours]
    rows = []
    for h in range(n_hosts):
        donors = [h, *near[h].tolist()]
        seen: set[str] = set()
        for rank, d in enumerate(donors):
            for side in ("chosen", "rejected"):
                text = convs.at[d, side]
                if text.strip() in seen:  # a repeated text would make a pair of two identical responses
                    continue
                seen.add(text.strip())
                rows.append({"host": h, "response": text, "from": "own" if rank == 0 else f"neighbour {rank}",
                             "neighbour_rank": rank, "human_side": side})
    return pd.DataFrame(rows)


def _pairs_of(cands: pd.DataFrame, per_prompt: int, max_rank: int, min_margin: float, seed: int) -> PairFrame:
    """``per_prompt`` random pairs per host among its candidates of neighbour rank <= ``max_rank`` whose teacher
    margin is at least ``min_margin``, oriented by the teacher (chosen = higher reward). ``cands``: one split's
    candidates, indexed by global candidate row."""
    rng = np.random.default_rng([seed, cands["host"].nunique(), per_prompt])
    rows = []
    for _, group in cands[cands["neighbour_rank"] <= max_rank].groupby("host", sort=False):
        idx, reward = group.index.to_numpy(), group["teacher_reward"].to_numpy()
        all_pairs = [(i, j) for i in range(len(idx)) for j in range(i + 1, len(idx))
                     if abs(reward[i] - reward[j]) >= min_margin]
        first = group.iloc[0]
        for k in rng.permutation(len(all_pairs))[:per_prompt]:
            i, j = all_pairs[k]
            win, lose = (i, j) if reward[i] >= reward[j] else (j, i)
            rows.append({"prompt": first["prompt"], "chosen": group["response"].iat[win],
                         "rejected": group["response"].iat[lose], "teacher_margin": float(reward[win] - reward[lose]),
                         "cand_chosen": int(idx[win]), "cand_rejected": int(idx[lose]),
                         "chosen_from": group["from"].iat[win], "rejected_from": group["from"].iat[lose],
                         "host": first["host"], "origin": first["origin"]})
    out = pd.DataFrame(rows)
    out["pair_id"] = [make_pair_id(p, c, r) for p, c, r in zip(out["prompt"], out["chosen"], out["rejected"])]
    return out.assign(source="testbed/teacher", split=cands["split"].iloc[0], label_state="original",
                      label_by="teacher", label_at="", label_known_true=True, construction="teacher")


def build_candidates(cfg: TestbedConfig, data_dir: Path, root: Path, *, progress: bool = True
                     ) -> tuple[pd.DataFrame, dict[str, Any], Path]:
    """The teacher (built once) and every host's candidates with their teacher rewards, cached under
    ``root/candidates-<key>``: (candidates, teacher report, folder)."""
    folder = root / f"candidates-{candidates_key(cfg, data_dir)}"
    path = folder / "candidates.parquet"
    teacher_folder = root / f"teacher-{teacher_key(cfg, data_dir)}"
    if path.exists():
        return pd.read_parquet(path), io.read_json(teacher_folder / "teacher.json"), folder
    convs = _conversations(data_dir)
    sets = _split_conversations(convs, cfg)
    report = build_teacher(sets, cfg, teacher_folder, progress=progress)
    teacher = scoring.load_reward_model(report["model_dir"])
    score_cfg = scoring.ScoreConfig(max_length=cfg.teacher.max_length)
    parts, offset = [], 0
    for split, n_hosts in (("train", cfg.pool_prompts), ("gold", cfg.gold_prompts), ("test", cfg.test_prompts)):
        convs_s = sets[split]
        cands = candidates(convs_s, n_hosts, cfg.bon_neighbours if split == "test" else cfg.neighbours,
                           progress=progress)
        prompts = [convs_s.at[h, "prompt"] for h in cands["host"]]
        rewards, _ = teacher.score_sides(prompts, list(cands["response"]), score_cfg, progress=progress)
        cands = cands.assign(teacher_reward=rewards.astype(np.float64), split=split, prompt=prompts,
                             prompt_text=[last_user_message(p) for p in prompts],
                             origin=[f"{convs_s.at[h, 'source']}:{convs_s.at[h, 'source_row']}" for h in cands["host"]],
                             host=[f"{split}:{h}" for h in cands["host"]])
        cands.index = np.arange(offset, offset + len(cands))
        offset += len(cands)
        parts.append(cands)
    frame = pd.concat(parts)
    folder.mkdir(parents=True, exist_ok=True)
    io.write_frame(frame, path)
    return frame, report, folder


def build_testbed(cfg: TestbedConfig = TestbedConfig(), *, data_dir: str | Path | None = None,
                  cache_root: str | Path | None = None, progress: bool = True) -> Testbed:
    """Build (or load) the teacher testbed: the teacher (``cache_root/teacher-<key>``), the candidates and their
    teacher rewards (``cache_root/candidates-<key>``, shared by configs that differ only in how pairs are drawn) and
    the pairs (``cache_root/<key>``). A second call with the same data and config reads parquet files and trains
    nothing; a changed setting rebuilds only what depends on it.

    Example: ``tb = build_testbed(); tb.pairs.groupby("split").size()``.
    """
    data_dir = io.shared_data_dir(data_dir)
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    key = testbed_key(cfg, data_dir)
    folder = root / key
    pairs_path = folder / "pairs.parquet"
    cands, report, cand_folder = build_candidates(cfg, data_dir, root, progress=progress)
    cands.index = np.arange(len(cands))
    if pairs_path.exists():
        return Testbed(pairs=pd.read_parquet(pairs_path), candidates=cands, teacher=io.read_json(folder / "teacher.json"),
                       folder=folder, key=key, candidates_folder=cand_folder)
    pool = cands[(cands["split"] == "train") & (cands["neighbour_rank"] <= cfg.neighbours)]
    diffs = [np.abs(np.subtract.outer(r, r))[np.triu_indices(len(r), 1)]
             for r in pool.groupby("host", sort=False)["teacher_reward"].apply(np.asarray)]
    scale = margin_scale(np.concatenate(diffs))
    threshold = cfg.min_margin * scale
    parts = [_pairs_of(cands[cands["split"] == split], per, cfg.neighbours, least, cfg.data_seed)
             for split, per, least in (("train", cfg.pairs_per_prompt, threshold),
                                       ("gold", cfg.gold_pairs_per_prompt, threshold),
                                       ("test", cfg.pairs_per_prompt, max(threshold, cfg.test_min_margin * scale)))]
    pairs = pd.concat(parts, ignore_index=True).drop_duplicates("pair_id").reset_index(drop=True)
    folder.mkdir(parents=True, exist_ok=True)
    io.write_json({**report, "testbed_key": key, "candidates_key": cand_folder.name, "config": asdict(cfg)},
                  folder / "teacher.json")
    io.write_frame(pairs, pairs_path)  # whole or absent, and written last: its presence means "built"
    return Testbed(pairs=pairs, candidates=cands, teacher=io.read_json(folder / "teacher.json"), folder=folder, key=key,
                   candidates_folder=cand_folder)


def margin_report(pairs: PairFrame) -> pd.DataFrame:
    """The teacher-margin distribution per split, in units of the pool's RMS margin, and how many pairs are easy
    (an off-topic neighbour response against the host's own, or a margin above 2 RMS)."""
    scale = margin_scale(pairs.loc[pairs["split"] == "train", "teacher_margin"].to_numpy())
    rows = []
    for split, g in pairs.groupby("split", sort=False):
        m = g["teacher_margin"].to_numpy() / scale
        own = (g["chosen_from"] == "own") & (g["rejected_from"] == "own")
        mixed = (g["chosen_from"] == "own") != (g["rejected_from"] == "own")
        rows.append({"split": split, "pairs": len(g), "prompts": g["host"].nunique(),
                     **{f"margin_q{int(q * 100)}": float(np.quantile(m, q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
                     "share_margin_over_2rms": float((m > 2).mean()), "share_margin_under_0.25rms": float((m < 0.25).mean()),
                     "share_own_vs_own": float(own.mean()), "share_own_vs_neighbour": float(mixed.mean()),
                     "own_wins_vs_neighbour": float(((g["chosen_from"] == "own") & mixed).sum() / max(mixed.sum(), 1))})
    return pd.DataFrame(rows)
