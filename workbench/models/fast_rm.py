"""A fast Bradley-Terry reward model: a small head over frozen, cached sentence embeddings.

Full fine-tuning runs at a few pairs per second on a CPU, too slow for eight Stage-1 iterations, a
gold RM and a multi-seed ablation. This RM embeds the conversation's last user turn and the
response once (cached in the run), and trains only a small MLP on
``[e_prompt, e_response, e_prompt * e_response, |e_prompt - e_response|, text_stats]`` with the BT
loss: seconds per thousand pairs once embeddings are cached. ``text_stats`` (length, a finished last
sentence, line count) carry what sentence embeddings blur. It sits behind the same interface as the fine-tuned RM
(`workbench.models.training.train_reward_model(kind="embedding_head")`, `workbench.models.scoring.score_pairs`).

It is weaker than a fine-tune on subtle quality differences (it never sees prompt and response
tokens together) and is meant for inner loops, not as a final model. It saves as a small folder
(``workbench_rm.json`` + ``head.safetensors``), loadable with `workbench.models.scoring.load_reward_model`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from workbench.data.schema import Message, last_user_message
from workbench.models.device import fingerprint_model, resolve_device, resolved_dtype
from workbench.models.embedding import embed_texts, load_embedder
from workbench.models.loss import preference_loss

MARKER = "workbench_rm.json"


@dataclass(frozen=True)
class HeadConfig:
    """Shape and optimisation of the head."""

    hidden: int = 256  # 0 = linear head
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.1
    loss: str = "bt"  # bt | smoothing | rdpo | sympo (workbench.models.loss.preference_loss)
    eps: float = 0.0  # the robust losses' assumed flip rate
    bf16: bool = False  # train under bf16 autocast (where the CPU has native bf16: ~2x the pairs/s)
    seed: int = 0


def _head(dim: int, cfg: HeadConfig, in_features: int | None = None) -> nn.Module:
    width = in_features or 4 * dim + N_STATS
    if cfg.hidden <= 0:
        return nn.Linear(width, 1)
    return nn.Sequential(nn.Linear(width, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, 1))


N_STATS = 3


def text_stats(responses: Sequence[str]) -> torch.Tensor:
    """Cheap surface features sentence embeddings miss: log length, ends like a finished sentence, line count.

    Example: ``text_stats(["Done."])`` -> ``[[log1p(5)/8, 1.0, log1p(1)/4]]``.
    """
    rows = []
    for r in responses:
        s = r.rstrip()
        finished = float(bool(s) and (s[-1] in ".!?)]}\"'`*" or s.endswith("```")))
        rows.append([np.log1p(len(s)) / 8, finished, np.log1p(s.count("\n") + 1) / 4])
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), N_STATS)


def _features(e_prompt: torch.Tensor, e_response: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
    return torch.cat([e_prompt, e_response, e_prompt * e_response, (e_prompt - e_response).abs(), stats], dim=-1)


def head_inputs(e_prompt: torch.Tensor, e_response: torch.Tensor, responses: Sequence[str]) -> torch.Tensor:
    """The head's input rows from precomputed embeddings of the prompts and responses (and the responses' text)."""
    return _features(e_prompt.float(), e_response.float(), text_stats(responses))


class EmbeddingHeadRM:
    """Frozen embedder + trained head; scores (conversation, response) inputs."""

    def __init__(self, head: nn.Module, *, embedder_name: str, dim: int, head_cfg: HeadConfig, cache: Any = None):
        self.head, self.embedder_name, self.dim, self.head_cfg, self.cache = head.eval(), embedder_name, dim, head_cfg, cache
        self.name = f"embedding_head({embedder_name or 'all-MiniLM-L6-v2'})"
        self.refresh_fingerprint()

    def refresh_fingerprint(self) -> None:
        """Recompute the cache fingerprint from the head's current weights (after training)."""
        self.fingerprint = fingerprint_model(self.head, extra=self.name)

    def features(self, prompts: Sequence[list[Message]], responses: Sequence[str], *, progress: bool = True) -> torch.Tensor:
        """(n, 4 * dim + N_STATS) head inputs; the embedder is frozen, so these never change for a text."""
        e_p = embed_texts([last_user_message(p) for p in prompts], model_name=self.embedder_name, cache=self.cache, progress=progress)
        e_r = embed_texts(list(responses), model_name=self.embedder_name, cache=self.cache, progress=progress)
        return _features(torch.from_numpy(e_p), torch.from_numpy(e_r), text_stats(responses))

    def score_features(self, features: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return self.head(features).squeeze(-1).numpy().astype(np.float32)

    def scoring_conditions(self, cfg: Any = None) -> dict[str, Any]:
        """For benchmark tables: the embedder cuts texts at its own length and embeds under bf16 autocast where native."""
        embedder = load_embedder(self.embedder_name)
        return {"max_length": int(getattr(embedder, "max_seq_length", 0) or 0) or np.nan,
                "dtype": resolved_dtype(resolve_device("auto"), "auto"), "runtime": "torch"}

    def score_sides(self, prompts, responses, cfg: Any = None, *, progress: bool = True):
        rewards = self.score_features(self.features(prompts, responses, progress=progress))
        return rewards, self.cut_by_embedder(prompts, responses)

    def cut_by_embedder(self, prompts: Sequence[list[Message]], responses: Sequence[str]) -> np.ndarray:
        """(n,) True where the embedder cut a text (last user turn or response) at its ``max_seq_length``.

        sentence-transformers truncates silently; counting it here lets benchmark tables say how many
        items the head saw only in part. Embedders without a tokenizer (hashing) never cut.
        """
        embedder = load_embedder(self.embedder_name)
        tokenizer, limit = getattr(embedder, "tokenizer", None), getattr(embedder, "max_seq_length", None)
        if tokenizer is None or not limit:
            return np.zeros(len(responses), dtype=bool)

        def lengths(texts: list[str]) -> np.ndarray:
            return np.array([len(ids) for ids in tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]])

        return (lengths([last_user_message(p) for p in prompts]) > limit) | (lengths(list(responses)) > limit)

    def save(self, folder: str | Path, *, card: str = "", metrics: dict | None = None) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(folder / "head.safetensors"))
        meta = {"kind": "embedding_head", "embedder": self.embedder_name, "dim": self.dim,
                "head": asdict(self.head_cfg), "metrics": metrics or {}}
        (folder / MARKER).write_text(json.dumps(meta, indent=2))
        if card:
            (folder / "README.md").write_text(card)
        return folder


def load_embedding_rm(folder: str | Path, *, cache: Any = None) -> EmbeddingHeadRM:
    """Load a head saved by `EmbeddingHeadRM.save`."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = json.loads((folder / MARKER).read_text())
    cfg = HeadConfig(**meta["head"])
    head = _head(meta["dim"], cfg)
    head.load_state_dict(load_file(str(folder / "head.safetensors")))
    return EmbeddingHeadRM(head, embedder_name=meta["embedder"], dim=meta["dim"], head_cfg=cfg, cache=cache)


def train_embedding_head(train_prompts: Sequence[list[Message]], train_chosen: Sequence[str], train_rejected: Sequence[str],
                         *, embedder_name: str = "", cfg: HeadConfig = HeadConfig(), cache: Any = None,
                         eval_fn: Any = None, progress: bool = True) -> tuple[EmbeddingHeadRM, list[dict]]:
    """Fit the head with the BT loss; keep the epoch with the best ``eval_fn(rm)["gold_accuracy"]``.

    Args:
        eval_fn: called with the RM after each epoch; returns a metrics dict. Without it, the last
            epoch is kept.

    Returns:
        The RM (best epoch) and one history row per epoch (loss, pairs/s, eval metrics).
    """
    dim = load_embedder(embedder_name).get_embedding_dimension()
    rm = EmbeddingHeadRM(_head(dim, cfg), embedder_name=embedder_name, dim=dim, head_cfg=cfg, cache=cache)
    prompts, n = list(train_prompts), len(train_chosen)
    # One call for both sides: each prompt text is embedded once (embed_texts dedups within a call).
    feats = rm.features(prompts * 2, list(train_chosen) + list(train_rejected), progress=progress)
    history = fit_head(rm, feats[:n], feats[n:], cfg, eval_fn=eval_fn, progress=progress)
    return rm, history


def new_head(dim: int, cfg: HeadConfig, *, in_features: int | None = None) -> nn.Module:
    """A freshly initialised head for ``dim``-dimensional embeddings (seeded by ``cfg.seed``); ``in_features``
    overrides the input width for other feature layouts (the teacher testbed's joint view)."""
    torch.manual_seed(cfg.seed)
    return _head(dim, cfg, in_features)


def fit_head(rm: Any, f_chosen: torch.Tensor, f_rejected: torch.Tensor, cfg: HeadConfig, *, eval_fn: Any = None,
             progress: bool = True) -> list[dict]:
    """Train ``rm.head`` in place on precomputed features of (chosen, rejected) with ``cfg.loss``; keep the epoch
    with the best ``eval_fn(rm)["gold_accuracy"]`` (the last without ``eval_fn``). Returns one history row per epoch.

    Split from `train_embedding_head` so callers whose features are already in memory (the teacher testbed's
    student, which trains hundreds of times on the same candidates) skip the text cache."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    opt = torch.optim.AdamW(rm.head.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    history, best, best_state = [], -1.0, None
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="training head", unit="epoch", disable=not progress):
        rm.head.train()
        t0, losses = time.perf_counter(), []
        for idx in torch.randperm(len(f_chosen), generator=gen).split(cfg.batch_size):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                margin = (rm.head(f_chosen[idx]).squeeze(-1) - rm.head(f_rejected[idx]).squeeze(-1)).float()
            loss = preference_loss(margin, cfg.loss, cfg.eps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        rm.head.eval()
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "pairs_per_second": len(f_chosen) / (time.perf_counter() - t0)}
        if eval_fn is not None:
            row.update(eval_fn(rm))
        history.append(row)
        score = row.get("gold_accuracy", epoch)  # without eval: the last epoch wins
        if score > best:
            best, best_state = score, {k: v.clone() for k, v in rm.head.state_dict().items()}
    rm.head.load_state_dict(best_state)
    rm.refresh_fingerprint()
    return history
