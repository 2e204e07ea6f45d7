"""Score preference pairs with a reward model: one scalar per (conversation, response).

Any Hugging Face sequence-classification model with one output logit works: released
Skywork-Reward-V2 checkpoints (Llama / Qwen3 ``ForSequenceClassification``), the workbench's own
fine-tunes, and encoder backbones. Decoders whose tokenizer has a chat template are scored on the
conversation rendered with that template (the paper's recipe, a duplicated BOS removed); other
tokenizers get ``(conversation text, response)`` as a text pair. Training uses the same encoding
(`encode_sides`), so scores at training and scoring time agree.

Scoring sorts inputs by length and pads each batch only to its own longest input, runs under
``torch.inference_mode`` and bf16 autocast where the device supports it (``dtype="auto"``). Inputs longer
than ``max_length`` are shortened by `fit_conversation` (oldest turns first, then inside the texts, never
the special tokens or role headers) and *reported*: a warning with the count and the ``truncated``
column, or an error with ``truncation="error"``. Benchmarks use `BENCHMARK_SCORING` (upstream's length
and dtype), not the curation defaults.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from workbench.data.overview import longer_wins
from workbench.data.schema import SCORE_COLUMNS, Message, PairFrame, prompt_text
from workbench.models import fast_rm
from workbench.models.device import autocast_for, fingerprint_model, resolve_device, resolved_dtype
from workbench.models.runtime import RUNTIMES, openvino_scorer, resolve_runtime


@dataclass(frozen=True)
class ScoreConfig:
    """How to score: the length limit, batch size, numeric type and what to do with long inputs."""

    max_length: int = 512  # tokens per (conversation, response); longer inputs are truncated and reported
    batch_size: int = 32
    dtype: str = "auto"  # auto (bf16 where supported) | bf16 | fp32
    truncation: str = "report"  # report (warn + `truncated` column) | error
    runtime: str = "auto"  # auto (OpenVINO on a CPU when installed) | torch | openvino; see workbench.models.runtime

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ValueError(f"max_length must be >= 8 tokens, got {self.max_length}.")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}.")
        for name, allowed in (("dtype", ("auto", "bf16", "fp32")), ("truncation", ("report", "error")), ("runtime", RUNTIMES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}.")


BENCHMARK_SCORING = ScoreConfig(max_length=2048, dtype="fp32")
"""Benchmark defaults, as allenai/reward-bench ``scripts/run_rm.py`` runs them: ``--max_length 2048``, and
fp32 on a CPU (run_rm.py passes its ``--torch_dtype`` only when CUDA is available; without CUDA the model
loads in fp32). On a GPU pass ``dtype="bf16"`` (the dtype Skywork-Reward-V2 checkpoints are released in).
Encoders are capped at their own position limit (512 for MiniLM); tables state the length actually used."""


class RewardModel(Protocol):
    """What `score_pairs` needs: a fingerprint for the cache and a batched side scorer."""

    fingerprint: str

    def score_sides(self, prompts: Sequence[list[Message]], responses: Sequence[str], cfg: ScoreConfig, *,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Rewards (n,) and truncated flags (n,) for n (conversation, response) inputs."""
        ...


# ---------------------------------------------------------------- device and dtype


# ---------------------------------------------------------------- encoding (shared with training)


def _has_chat_template(tokenizer: Any) -> bool:
    return getattr(tokenizer, "chat_template", None) is not None


def _chat_ids(tokenizer: Any, messages: list[Message]) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=False)
    ids = list(out["input_ids"] if hasattr(out, "keys") else out)
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and len(ids) > 1 and ids[0] == ids[1] == bos:
        ids = ids[1:]  # templates that add BOS themselves + tokenizers that add it again (paper: remove the duplicate)
    return ids


def _pair_ids(tokenizer: Any, messages: list[Message]) -> list[int]:
    """Encoder RMs: ``[CLS] conversation [SEP] response [SEP]`` (the tokenizer adds its own special tokens)."""
    return list(tokenizer(prompt_text(messages[:-1]), messages[-1]["content"], add_special_tokens=True,
                          verbose=False)["input_ids"])


def _text_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def _shorten(tokenizer: Any, text: str, drop: int, *, where: str) -> str:
    """``text`` with ``drop`` of its tokens removed: from its end (``where="end"``) or its middle."""
    ids = _text_ids(tokenizer, text)
    keep = max(0, len(ids) - drop)
    head = keep if where == "end" else (keep + 1) // 2
    kept = ids[:head] + ids[len(ids) - (keep - head):]
    return tokenizer.decode(kept, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def fit_conversation(tokenizer: Any, prompt: Sequence[Message], response: str, *,
                     max_length: int) -> tuple[list[Message], list[int], bool]:
    """Shorten a (conversation, response) input to ``max_length`` tokens without touching its special tokens.

    The input is always a rendering of whole messages (the chat template for decoders, a text pair for
    encoders), so BOS, role headers and ``[CLS]``/``[SEP]`` survive; only message *texts* get shorter:

    1. the oldest turns go first (any system message and the last user turn stay): the end of the
       conversation matters most for judging the final response;
    2. then inside the texts: when both are long, the prompt and the response each keep half of the
       room left for text; a short side is kept whole and the long side gets the rest. The response
       keeps its beginning (cut at its end); the longest prompt message is cut in its middle
       (instructions tend to sit at both ends of a long prompt).

    Returns:
        The messages actually scored (``prompt`` turns + the assistant response), their token ids, and
        whether anything was cut. Inputs that fit come back unchanged, with identical ids.

    Raises:
        ValueError: when even empty texts do not fit (``max_length`` below the template's own tokens).
    """
    render = _chat_ids if _has_chat_template(tokenizer) else _pair_ids
    turns = [dict(m) for m in prompt]
    messages = turns + [{"role": "assistant", "content": response}]
    ids = render(tokenizer, messages)
    if len(ids) <= max_length:
        return messages, ids, False
    while len(ids) > max_length:  # 1. whole oldest turns
        droppable = [i for i, m in enumerate(turns[:-1]) if m["role"] != "system"]
        if not droppable:
            break
        del turns[droppable[0]]
        messages = turns + [{"role": "assistant", "content": response}]
        ids = render(tokenizer, messages)
    for _ in range(32):  # 2. inside texts; re-rendered each round since cut text can re-tokenise a little differently
        over = len(ids) - max_length
        if over <= 0:
            return messages, ids, True
        n_response = len(_text_ids(tokenizer, messages[-1]["content"]))
        sizes = [len(_text_ids(tokenizer, m["content"])) for m in messages[:-1]]
        budget = max(0, n_response + sum(sizes) - over)  # text tokens that fit
        keep_response = n_response if n_response <= budget // 2 else max(budget // 2, budget - sum(sizes))
        from_response = max(0, n_response - keep_response)
        longest = int(np.argmax(sizes)) if sizes else -1
        from_prompt = min(over - from_response, sizes[longest]) if sizes else 0
        from_response = min(n_response, over - from_prompt)
        if from_response + from_prompt == 0:
            break
        if from_prompt:
            messages[longest]["content"] = _shorten(tokenizer, messages[longest]["content"], from_prompt, where="middle")
        if from_response:
            messages[-1]["content"] = _shorten(tokenizer, messages[-1]["content"], from_response, where="end")
        ids = render(tokenizer, messages)
    if len(ids) > max_length:
        raise ValueError(f"max_length={max_length} tokens cannot hold this input even with its texts cut "
                         f"({len(ids)} tokens left, mostly the template's own); raise max_length.")
    return messages, ids, True


def encode_sides(tokenizer: Any, prompts: Sequence[list[Message]], responses: Sequence[str], *,
                 max_length: int) -> tuple[list[list[int]], np.ndarray]:
    """Token ids for each (conversation, response) and whether it had to be shortened (`fit_conversation`).

    Chat template when the tokenizer has one (decoder RMs), else a text pair (encoder RMs).
    """
    if _has_chat_template(tokenizer):
        fitted = [fit_conversation(tokenizer, p, r, max_length=max_length) for p, r in zip(prompts, responses)]
        return [ids for _, ids, _ in fitted], np.array([t for _, _, t in fitted], dtype=bool)
    # Encoders: one batched call for the common case, `fit_conversation` only for inputs that are too long.
    texts = [prompt_text(p) for p in prompts]
    out = [list(ids) for ids in tokenizer(texts, list(responses), add_special_tokens=True, verbose=False)["input_ids"]]
    truncated = np.array([len(ids) > max_length for ids in out], dtype=bool)
    for i in np.flatnonzero(truncated):
        out[i] = fit_conversation(tokenizer, prompts[i], responses[i], max_length=max_length)[1]
    return out, truncated


# ---------------------------------------------------------------- the HF reward model


def padded_batches(ids: list[list[int]], *, pad_id: int, batch_size: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(rows, input_ids, attention_mask)`` batches: inputs sorted by length, each padded to its own longest."""
    order = np.argsort([-len(x) for x in ids], kind="stable")
    out = []
    for start in range(0, len(order), batch_size):
        rows = order[start: start + batch_size]
        width = max(len(ids[i]) for i in rows)
        input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, i in enumerate(rows):
            input_ids[r, : len(ids[i])] = ids[i]
            mask[r, : len(ids[i])] = 1
        out.append((rows, input_ids, mask))
    return out


def score_token_ids(model: torch.nn.Module, ids: list[list[int]], *, pad_id: int, batch_size: int = 32,
                    dtype: str = "auto", progress: bool = True) -> np.ndarray:
    """Rewards (n,) for token-id inputs with PyTorch (see `padded_batches`).

    Used for scoring and for gold evaluation during training. The model is left in eval mode.
    """
    device = next(model.parameters()).device
    model.eval()
    rewards = np.empty(len(ids), dtype=np.float32)
    cast = autocast_for(device, dtype)
    batches = padded_batches(ids, pad_id=pad_id, batch_size=batch_size)
    with torch.inference_mode():
        for rows, input_ids, mask in tqdm(batches, desc="scoring", unit="batch", disable=not progress or len(batches) < 2):
            with cast:
                logits = model(input_ids=torch.from_numpy(input_ids).to(device), attention_mask=torch.from_numpy(mask).to(device)).logits
            rewards[rows] = logits[:, 0].float().cpu().numpy()
    return rewards


class HFRewardModel:
    """A one-logit ``AutoModelForSequenceClassification`` plus its tokenizer."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, name: str = "", device: str = "auto"):
        n = getattr(model.config, "num_labels", None)
        if n != 1:
            raise ValueError(f"{name or type(model).__name__} has num_labels={n}: not a reward model. A reward model is a "
                             "sequence classifier with exactly one output logit (AutoModelForSequenceClassification, num_labels=1).")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self.device = resolve_device(device)
        self.model, self.tokenizer, self.name = model.to(self.device).eval(), tokenizer, name
        self.fingerprint = fingerprint_model(model, extra=name.split("/")[-1] + str(tokenizer.chat_template))
        # A model cannot read past its position table (512 for MiniLM): longer settings are capped, not crashed on.
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self._compiled: dict[str, Any] = {}  # dtype -> the weights compiled by a faster runtime

    def max_length(self, cfg: ScoreConfig) -> int:
        """Tokens actually kept per input: ``cfg.max_length``, capped at the model's position limit."""
        return min(cfg.max_length, self.max_positions) if self.max_positions else cfg.max_length

    def scoring_conditions(self, cfg: ScoreConfig) -> dict[str, Any]:
        """What a benchmark table states next to the numbers: the length limit and dtype in effect."""
        return {"max_length": self.max_length(cfg), "dtype": resolved_dtype(self.device, cfg.dtype), "runtime": self.runtime(cfg)}

    def runtime(self, cfg: ScoreConfig) -> str:
        """The runtime that scores under ``cfg``: "torch", or "openvino" unless compiling this model failed."""
        chosen = resolve_runtime(cfg.runtime, self.device, self.model)
        return "torch" if chosen == "openvino" and self._compiled.get(resolved_dtype(self.device, cfg.dtype), True) is None else chosen

    def score_ids(self, ids: list[list[int]], cfg: ScoreConfig, *, progress: bool = True) -> np.ndarray:
        """Rewards for pre-tokenised inputs, with PyTorch (`score_token_ids`) or the compiled runtime."""
        dtype = resolved_dtype(self.device, cfg.dtype)
        if self.runtime(cfg) == "openvino":
            try:
                scorer = openvino_scorer(self.model, dtype, self._compiled)
            except Exception as err:  # an architecture OpenVINO cannot convert: PyTorch scores it (auto) or a clear error
                if cfg.runtime == "openvino":
                    raise RuntimeError(f"{self.name or 'the model'}: OpenVINO could not compile it ({err}); use runtime='torch'.") from err
                warnings.warn(f"{self.name or 'the model'}: OpenVINO could not compile it, scoring with PyTorch "
                              f"({type(err).__name__}).", stacklevel=2)
                self._compiled[dtype] = None
            else:
                batches = padded_batches(ids, pad_id=self.tokenizer.pad_token_id, batch_size=cfg.batch_size)
                return scorer.run(tqdm(batches, desc="scoring", unit="batch", disable=not progress or len(batches) < 2), len(ids))[:, 0]
        return score_token_ids(self.model, ids, pad_id=self.tokenizer.pad_token_id, batch_size=cfg.batch_size,
                               dtype=cfg.dtype, progress=progress)

    def score_sides(self, prompts, responses, cfg: ScoreConfig, *, progress: bool = True):
        ids, truncated = encode_sides(self.tokenizer, prompts, responses, max_length=self.max_length(cfg))
        return self.score_ids(ids, cfg, progress=progress), truncated


def load_reward_model(path_or_id: str | Path, *, device: str = "auto", embedding_cache: Any = None) -> RewardModel:
    """Load a reward model from a folder or Hub id: an HF one-logit classifier or a workbench fast RM.

    ``embedding_cache`` (a `workbench.data.files.EmbeddingCache`) is used by fast embedding-head RMs only.

    Raises:
        ValueError: when the model has more than one logit, or its classification head is missing
            (a plain backbone would get a random head and produce meaningless scores).
    """
    path = Path(path_or_id)
    if (path / fast_rm.MARKER).exists():
        return fast_rm.load_embedding_rm(path, cache=embedding_cache)
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(str(path_or_id))
    archs = getattr(config, "architectures", None) or []
    if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ValueError(f"{path_or_id}: architectures={archs} is not a sequence classifier, so its classification head "
                         "is not in the checkpoint (it would be randomly initialised). This is a backbone, not a reward "
                         "model; train one with workbench.models.training.train_reward_model first.")
    if getattr(config, "num_labels", 1) != 1:
        raise ValueError(f"{path_or_id}: num_labels={config.num_labels}; a reward model has exactly one output logit. "
                         "Pass a model trained with num_labels=1 (e.g. a Skywork-Reward-V2 checkpoint).")
    model, info = AutoModelForSequenceClassification.from_pretrained(str(path_or_id), num_labels=1, output_loading_info=True)
    fresh = [k for k in info.get("missing_keys", []) if k.split(".")[0] in ("score", "classifier")]
    if fresh:
        raise ValueError(f"{path_or_id}: the classification head {sorted(fresh)} is not in the checkpoint, so it would be "
                         "randomly initialised. This is a backbone, not a reward model; train one with "
                         "workbench.models.training.train_reward_model first.")
    tokenizer = AutoTokenizer.from_pretrained(str(path_or_id))
    return HFRewardModel(model, tokenizer, name=str(path_or_id), device=device)


# ---------------------------------------------------------------- pairs


def score_pairs(model: RewardModel, pairs: PairFrame, *, cfg: ScoreConfig = ScoreConfig(), cache: Any = None,
                progress: bool = True) -> pd.DataFrame:
    """Rewards of chosen and rejected for every pair, with margin and ``p = sigmoid(margin)``.

    Args:
        model: from `load_reward_model`, or an `HFRewardModel` / fast RM in memory.
        pairs: canonical pairs (``pair_id``, ``prompt``, ``chosen``, ``rejected``).
        cfg: `ScoreConfig`.
        cache: a `workbench.data.files.ScoreCache` (keyed by model fingerprint and settings); pairs already
            in it are not scored again.

    Returns:
        Frame with `SCORE_COLUMNS`, in the order of ``pairs``.

    Example: ``scores = score_pairs(load_reward_model("runs/demo/models/rm"), pairs)``.
    """
    ids = pairs["pair_id"].tolist()
    cached = cache.get(ids) if cache is not None else pd.DataFrame(columns=SCORE_COLUMNS)
    todo = pairs[~pairs["pair_id"].isin(set(cached["pair_id"]))]
    fresh = pd.DataFrame(columns=SCORE_COLUMNS)
    if len(todo):
        prompts = list(todo["prompt"]) * 2
        responses = list(todo["chosen"]) + list(todo["rejected"])
        rewards, truncated = model.score_sides(prompts, responses, cfg, progress=progress)
        n = len(todo)
        r_c, r_r = rewards[:n].astype(np.float64), rewards[n:].astype(np.float64)
        fresh = pd.DataFrame({"pair_id": todo["pair_id"].to_numpy(), "r_chosen": r_c, "r_rejected": r_r,
                              "margin": r_c - r_r, "p": 1 / (1 + np.exp(-(r_c - r_r))),
                              "truncated": truncated[:n] | truncated[n:]})
        if cache is not None:
            cache.put(fresh)
    out = pd.concat([cached, fresh], ignore_index=True) if len(cached) else fresh
    out = out.set_index("pair_id").loc[ids].reset_index()
    out = out.astype({"r_chosen": float, "r_rejected": float, "margin": float, "p": float, "truncated": bool})
    n_trunc = int(out["truncated"].sum())
    if n_trunc:
        example = out.loc[out["truncated"], "pair_id"].iloc[0]
        msg = (f"{n_trunc} of {len(out)} pairs are longer than max_length={cfg.max_length} tokens (e.g. pair {example}); "
               "they were cut to fit (oldest turns first, then inside the texts; special tokens and role headers "
               "kept, see fit_conversation). Raise max_length to score them whole.")
        if cfg.truncation == "error":
            raise ValueError(msg + " (truncation='error')")
        warnings.warn(msg, stacklevel=2)
    return out


def settings_key(model: RewardModel, cfg: ScoreConfig) -> str:
    """Cache key: the model fingerprint plus the settings that change scores."""
    # v2: truncation keeps BOS / role headers (scores cached by v1 are not reused); v3: the runtime is part of the key
    raw = json.dumps({"model": model.fingerprint, "max_length": cfg.max_length, "dtype": cfg.dtype, "runtime": cfg.runtime, "v": 3})
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def accuracy_ci(pairs: PairFrame, scores: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """A model's pair accuracy with its 95% bootstrap CI, and its paired difference to "longer wins".

    Resampling pairs jointly for the model and the length rule makes the difference's CI paired (the
    same pairs on both sides). Ties count half for both, as in `compare_accuracy`.

    Returns:
        ``accuracy``, ``ci_low``, ``ci_high``, ``longer_wins``, ``diff_vs_longer``, ``diff_ci_low``,
        ``diff_ci_high`` and ``n``.
    """
    margin = pairs[["pair_id"]].merge(scores[["pair_id", "margin"]], on="pair_id", how="left")["margin"].to_numpy()
    if np.isnan(margin).any():
        raise ValueError(f"{int(np.isnan(margin).sum())} pairs have no score; score every pair of `pairs` first.")
    model = np.where(margin == 0, 0.5, (margin > 0).astype(float))
    length = longer_wins(pairs)
    draws = np.random.default_rng(seed).integers(0, len(model), size=(n_boot, len(model)))
    boot_m, boot_d = model[draws].mean(1), (model - length)[draws].mean(1)
    lo, hi = np.percentile(boot_m, [2.5, 97.5])
    d_lo, d_hi = np.percentile(boot_d, [2.5, 97.5])
    return {"accuracy": float(model.mean()), "ci_low": float(lo), "ci_high": float(hi),
            "longer_wins": float(length.mean()), "diff_vs_longer": float((model - length).mean()),
            "diff_ci_low": float(d_lo), "diff_ci_high": float(d_hi), "n": len(model)}


def compare_accuracy(pairs: PairFrame, scores_by_model: dict[str, pd.DataFrame], *, by: str | None = None) -> pd.DataFrame:
    """Accuracy of several models side by side, plus the "longer response wins" and random baselines.

    Rows: ``by`` groups and ``all``; columns: one per model, ``longer wins``, ``random``, ``n``.
    Ties count half, for the length rule as for models.
    """
    frame = pd.DataFrame({"pair_id": pairs["pair_id"].to_numpy(), "longer wins": longer_wins(pairs),
                          "group": pairs[by].to_numpy() if by else "all"})
    for name, scores in scores_by_model.items():
        m = frame[["pair_id"]].merge(scores[["pair_id", "margin"]], on="pair_id", how="left")["margin"].to_numpy()
        frame[name] = np.where(m == 0, 0.5, m > 0)
    cols = list(scores_by_model) + ["longer wins"]
    table = frame.groupby("group")[cols].mean()
    if by:
        table.loc["all"] = frame[cols].mean()
    table["random"] = 0.5
    table["n"] = frame.groupby("group").size().reindex(table.index).fillna(len(frame)).astype(int)
    table.index.name = by or "group"
    return table
