"""Train Bradley-Terry reward models on canonical pairs and save them in the standard HF format.

Two kinds behind one call, `train_reward_model(train, gold, cfg=RMTrainConfig(kind=...))`:

* ``finetune`` — a sequence classifier with one logit (MiniLM encoder by default, Qwen3 / Llama
  decoders on a GPU), full fine-tuning or LoRA, trained with TRL's `RewardTrainer` (BT loss
  ``-log sigmoid(r_w - r_l)``, optional margin column and reward centering, gradient accumulation,
  checkpoints, resume, seeds, progress bar). Unsloth loads the model when ``backend`` resolves to it.
* ``embedding_head`` — the fast RM of `workbench.models.fast_rm` for inner loops (seconds, CPU).

What we add to TRL, and why: inputs are tokenised here with `workbench.models.scoring.encode_sides` (the
scorer's exact encoding, and long inputs are *truncated and counted* instead of TRL's silent drop);
length-grouped batches (TRL's RewardTrainer supports neither length grouping nor packing, trl#3198);
gold-set evaluation by our scorer (accuracy, mean margin, accuracy per category) that drives the
best-checkpoint choice, as in the paper; a model card; LoRA merged before saving so plain
``transformers`` loads the result; padding-free batches for BERT-family encoders (``padding_free``: each
batch's sequences run as one packed row, attention kept within each sequence, so no FLOP is spent on
padding; same loss and gradients as the padded batch, `tests/test_training.py`).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.data.schema import PairFrame
from workbench.models import fast_rm
from workbench.models.device import bf16_supported, resolve_device
from workbench.models.embedding import default_embedder_path
from workbench.models.scoring import encode_sides, load_reward_model, score_token_ids

KINDS = ("finetune", "embedding_head")


@dataclass(frozen=True)
class RMTrainConfig:
    """Everything that decides a reward-model training run (the notebook's parameters map onto it)."""

    kind: str = "finetune"  # finetune | embedding_head
    backbone: str = ""  # "" = the offline MiniLM; else a local folder or Hub id (Qwen3/Llama seq-cls on a GPU)
    backend: str = "auto"  # auto (Unsloth when a CUDA GPU and unsloth are present) | transformers | unsloth
    max_length: int = 256  # tokens per (conversation, response); longer inputs lose their oldest turns (counted)
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 16
    grad_accum: int = 1
    learning_rate: float = 3e-5
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    lora_r: int = 0  # 0 = full fine-tuning
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    load_in_4bit: bool = False  # Unsloth only
    center_rewards: float = 0.0  # > 0: TRL's center_rewards_coefficient
    use_margin: bool = False  # pairs carry a `margin` column: loss -log sigmoid(r_w - r_l - margin)
    group_by_length: bool = True
    padding_free: bool = True  # BERT-family full fine-tuning: pack each batch into one row, no padding tokens
    eval_steps: int = 50  # gold evaluation + checkpoint every this many optimizer steps
    save_total_limit: int = 2
    keep_checkpoints: bool = False  # delete checkpoints/ once the final model is saved (hundreds of MB each)
    bf16: str = "auto"  # auto | on | off
    seed: int = 0
    category_column: str = ""  # per-category gold accuracy; "" = task_category if present, else construction
    head_hidden: int = 256  # embedding_head: MLP width (0 = linear)
    head_epochs: int = 30  # embedding_head: epochs

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown kind {self.kind!r}; choose one of {list(KINDS)}.")
        if self.backend not in ("auto", "transformers", "unsloth"):
            raise ValueError(f"Unknown backend {self.backend!r}; choose one of ['auto', 'transformers', 'unsloth'].")
        if self.bf16 not in ("auto", "on", "off"):
            raise ValueError(f"bf16 must be 'auto', 'on' or 'off', got {self.bf16!r}.")
        for name in ("batch_size", "grad_accum", "eval_steps", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.lora_r < 0:
            raise ValueError(f"lora_r must be >= 0 (0 = full fine-tuning), got {self.lora_r}.")


    def smoke(self) -> RMTrainConfig:
        """The same training at test size: 4 steps of batch 4, gold evaluation every 2 steps, 5 head epochs."""
        return replace(self, max_steps=4, batch_size=min(self.batch_size, 4), eval_steps=2,
                       head_epochs=min(self.head_epochs, 5))


@dataclass
class TrainResult:
    """Where the model went and how training went."""

    model_dir: Path
    history: pd.DataFrame
    metrics: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- loss and gold evaluation


def _category_column(frame: PairFrame, cfg: RMTrainConfig) -> str | None:
    for col in ([cfg.category_column] if cfg.category_column else ["task_category", "construction"]):
        if col in frame.columns:
            return col
    return None


def gold_metrics(margins: np.ndarray, categories: Sequence[str] | None = None) -> dict[str, float]:
    """``gold_accuracy`` (margin > 0), ``gold_margin`` (mean), and ``gold_accuracy/<category>``.

    Example: ``gold_metrics(np.array([1., -1.]), ["a", "b"])`` ->
    ``{"gold_accuracy": .5, "gold_margin": 0., "gold_accuracy/a": 1., "gold_accuracy/b": 0.}``.
    """
    out = {"gold_accuracy": float(np.mean(margins > 0)), "gold_margin": float(np.mean(margins))}
    if categories is not None:
        cats = np.asarray(categories)
        for c in sorted(set(cats)):
            out[f"gold_accuracy/{c}"] = float(np.mean(margins[cats == c] > 0))
    return out


class _GoldEvaluator:
    """Scores the gold pairs with the model being trained (tokenised once)."""

    def __init__(self, tokenizer: Any, gold: PairFrame, cfg: RMTrainConfig):
        prompts = list(gold["prompt"]) * 2
        ids, _ = encode_sides(tokenizer, prompts, list(gold["chosen"]) + list(gold["rejected"]), max_length=cfg.max_length)
        self.ids, self.n, self.pad = ids, len(gold), tokenizer.pad_token_id
        col = _category_column(gold, cfg)
        self.categories = gold[col].astype(str).tolist() if col else None

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        was_training = model.training
        rewards = score_token_ids(model, self.ids, pad_id=self.pad, batch_size=32, progress=False)
        model.train(was_training)
        return gold_metrics(rewards[: self.n] - rewards[self.n:], self.categories)


# ---------------------------------------------------------------- model loading


def _load_transformers(cfg: RMTrainConfig) -> tuple[torch.nn.Module, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    name = cfg.backbone or default_embedder_path()
    tokenizer = AutoTokenizer.from_pretrained(name)
    model = AutoModelForSequenceClassification.from_pretrained(name, num_labels=1)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _head_module_names(model: torch.nn.Module) -> list[str]:
    return [n for n in ("score", "classifier") if hasattr(model, n)]


def load_backbone(cfg: RMTrainConfig) -> tuple[torch.nn.Module, Any, str]:
    """(model, tokenizer, backend used): Unsloth when the backend resolves to it, else transformers."""
    from workbench.models.unsloth import load_unsloth_reward_model, resolve_backend

    backend = resolve_backend(cfg.backend)
    if backend == "unsloth":
        model, tokenizer = load_unsloth_reward_model(
            cfg.backbone or "Qwen/Qwen3-0.6B", max_length=cfg.max_length, load_in_4bit=cfg.load_in_4bit,
            lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, seed=cfg.seed)
        return model, tokenizer, backend
    model, tokenizer = _load_transformers(cfg)
    return model, tokenizer, backend


# ---------------------------------------------------------------- padding-free batches (BERT family)

VARLEN_ATTENTION = "workbench_varlen_sdpa"


def _varlen_sdpa(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                 attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                 cu_seq_lens_q: torch.Tensor | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """SDPA where each packed sequence attends only to itself; plain SDPA when the batch is padded.

    ``query``/``key``/``value`` are ``(1, heads, total_tokens, head_dim)``; ``cu_seq_lens_q`` holds the
    sequences' start offsets and the total (FlashAttention's varlen convention, which transformers passes
    through to the attention function). Returns ``(1, total_tokens, heads, head_dim)`` like
    transformers' own attention functions. Example: ``cu_seq_lens_q = [0, 3, 5]`` -> tokens 0-2 and 3-4
    are two sequences, and no query of one sees a key of the other.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if cu_seq_lens_q is None:  # padded batches: gold evaluation, scoring
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    sizes = torch.diff(cu_seq_lens_q).tolist()
    out = [torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling)
           for q, k, v in zip(query.split(sizes, 2), key.split(sizes, 2), value.split(sizes, 2))]
    return torch.cat(out, dim=2).transpose(1, 2).contiguous(), None


def _register_varlen_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(VARLEN_ATTENTION, _varlen_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(VARLEN_ATTENTION, sdpa_mask)  # padded batches keep SDPA's mask


def supports_padding_free(model: torch.nn.Module) -> bool:
    """True for BERT-family sequence classifiers (MiniLM): an encoder with a pooler on the first token."""
    from transformers import BertForSequenceClassification

    return isinstance(model, BertForSequenceClassification)


def pack_preference_batch(examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collate pairs into one packed row: all chosen sequences, then all rejected ones, no padding.

    The padding-free twin of TRL's ``DataCollatorForPreference`` (same order: chosen half, rejected half).
    Example: ``[{"chosen_ids": [1, 2, 3], "rejected_ids": [4, 5]}]`` -> ``input_ids [[1, 2, 3, 4, 5]]``,
    ``position_ids [[0, 1, 2, 0, 1]]``, ``cu_seq_lens_q [0, 3, 5]``.
    """
    seqs = [e["chosen_ids"] for e in examples] + [e["rejected_ids"] for e in examples]
    sizes = [len(s) for s in seqs]
    cu = torch.tensor([0, *np.cumsum(sizes)], dtype=torch.int32)
    out: dict[str, Any] = {
        "input_ids": torch.tensor([[t for s in seqs for t in s]]),
        "position_ids": torch.cat([torch.arange(n) for n in sizes]).unsqueeze(0),
        "attention_mask": torch.ones(1, cu[-1].item(), dtype=torch.long),  # real tokens only (TRL counts them)
        "cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": max(sizes), "max_length_k": max(sizes),
    }
    if "margin" in examples[0]:
        out["margin"] = torch.tensor([e["margin"] for e in examples], dtype=torch.float)
    return out


def packed_rewards(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """Rewards ``(n_sequences, 1)`` of a `pack_preference_batch` batch for a BERT-family classifier.

    Runs the encoder once over the packed row, then the classifier's own pooler, dropout and head on each
    sequence's first token: what ``BertForSequenceClassification`` computes on the padded batch.
    The model's attention must be `VARLEN_ATTENTION` (``model.set_attn_implementation``).
    """
    cu = batch["cu_seq_lens_q"]
    hidden = model.bert(input_ids=batch["input_ids"], position_ids=batch["position_ids"], cu_seq_lens_q=cu,
                        cu_seq_lens_k=batch["cu_seq_lens_k"], max_length_q=batch["max_length_q"],
                        max_length_k=batch["max_length_k"]).last_hidden_state
    first = hidden[0, cu[:-1].long()].unsqueeze(1)  # (n, 1, hidden): each sequence's [CLS]
    return model.classifier(model.dropout(model.bert.pooler(first)))


# ---------------------------------------------------------------- fine-tuning with TRL


def _make_trainer_class():
    from transformers import TrainerCallback
    from transformers.modeling_outputs import SequenceClassifierOutput
    from transformers.trainer_pt_utils import LengthGroupedSampler
    from trl import RewardTrainer

    class WorkbenchRewardTrainer(RewardTrainer):
        """TRL's RewardTrainer plus length-grouped batches and gold-set evaluation (see module docstring)."""

        def __init__(self, *args, lengths=None, gold_eval=None, **kwargs):
            self._lengths, self._gold_eval = lengths, gold_eval
            super().__init__(*args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "cu_seq_lens_q" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # Packed batch: TRL's loss, margin, centering and metrics, over rewards of the packed forward.
            accelerator = self.accelerator

            def packed(**batch):
                with accelerator.autocast():  # accelerate puts autocast on model.forward; we call model.bert
                    return SequenceClassifierOutput(logits=packed_rewards(model, batch))

            return super().compute_loss(packed, inputs, return_outputs, num_items_in_batch)

        def _get_train_sampler(self, train_dataset=None):
            if self._lengths is None:
                return super()._get_train_sampler(train_dataset)
            # Megabatches of similar length: far less padding than random batches (pairs vary 10x in length).
            gen = torch.Generator().manual_seed(self.args.seed)
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=self._lengths, generator=gen)

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            if self._gold_eval is None:
                return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            metrics = {f"{metric_key_prefix}_{k}": v for k, v in self._gold_eval(self.model).items()}
            metrics["epoch"] = self.state.epoch
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    class EvalAtEnd(TrainerCallback):
        """Evaluate and checkpoint the last step too, so the best-checkpoint choice sees it.

        ``save_last=False`` (no gold pairs, checkpoints not kept): the last step is not checkpointed at all;
        the finished model is saved right after training and the checkpoint would only be deleted unread.
        """

        def __init__(self, save_last: bool = True):
            self.save_last = save_last

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_evaluate = args.eval_strategy != "no"
                control.should_save = self.save_last
            return control

    return WorkbenchRewardTrainer, EvalAtEnd


def _tie_token_type_embeddings(model: torch.nn.Module) -> None:
    """Make BERT-style models ignore ``token_type_ids``.

    TRL's collator feeds only input_ids and attention_mask, so training saw segment id 0 everywhere.
    Plain ``transformers`` users call ``tok(conversation, response)``, which marks the response as
    segment 1. Copying row 0 into the other rows makes both calls give the same reward.
    """
    for name, module in model.named_modules():
        if name.endswith("token_type_embeddings") and isinstance(module, torch.nn.Embedding):
            with torch.no_grad():
                module.weight[1:] = module.weight[0]


def _config_hash(cfg: RMTrainConfig, train: PairFrame) -> str:
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    h.update("".join(sorted(train["pair_id"])).encode())
    return h.hexdigest()[:16]


def _use_bf16(cfg: RMTrainConfig) -> bool:
    return cfg.bf16 == "on" or (cfg.bf16 == "auto" and bf16_supported(resolve_device("auto")))


def _finetune(train: PairFrame, gold: PairFrame | None, cfg: RMTrainConfig, output_dir: Path,
              callbacks: Sequence[Any], progress: bool) -> TrainResult:
    t_start = time.time()
    # Load first: Unsloth must be imported before transformers/trl to patch them.
    model, tokenizer, backend = load_backbone(cfg)
    import datasets
    from transformers.trainer_utils import get_last_checkpoint
    from trl import RewardConfig

    prompts = list(train["prompt"])
    chosen_ids, c_trunc = encode_sides(tokenizer, prompts, list(train["chosen"]), max_length=cfg.max_length)
    rejected_ids, r_trunc = encode_sides(tokenizer, prompts, list(train["rejected"]), max_length=cfg.max_length)
    columns: dict[str, Any] = {"chosen_ids": chosen_ids, "rejected_ids": rejected_ids}
    if cfg.use_margin:
        if "margin" not in train.columns:
            raise ValueError("use_margin=True needs a numeric `margin` column in the training pairs.")
        columns["margin"] = train["margin"].astype(float).tolist()
    dataset = datasets.Dataset.from_dict(columns)
    lengths = [len(c) + len(r) for c, r in zip(chosen_ids, rejected_ids)] if cfg.group_by_length else None
    evaluator = _GoldEvaluator(tokenizer, gold, cfg) if gold is not None and len(gold) else None

    ckpt_dir = output_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = _config_hash(cfg, train)
    stamp = ckpt_dir / "run_fingerprint.txt"
    last = get_last_checkpoint(str(ckpt_dir))
    if last and stamp.exists() and stamp.read_text() != fingerprint:
        raise ValueError(f"{ckpt_dir} holds checkpoints of a different config or dataset; use a new output_dir "
                         "or delete that folder to start over.")
    stamp.write_text(fingerprint)

    steps_per_epoch = math.ceil(len(dataset) / (cfg.batch_size * cfg.grad_accum))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    eval_steps = min(cfg.eval_steps, max(1, total_steps))
    peft_config = None
    if cfg.lora_r > 0 and backend != "unsloth":  # Unsloth applies its own LoRA at load time
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="SEQ_CLS", r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules="all-linear", modules_to_save=_head_module_names(model))
    on_cpu = resolve_device("auto").type == "cpu"
    args = RewardConfig(
        output_dir=str(ckpt_dir), per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=32,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, warmup_steps=int(cfg.warmup_ratio * total_steps), weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear", logging_steps=max(1, min(10, eval_steps)),
        eval_strategy="steps" if evaluator else "no", eval_steps=eval_steps,
        save_strategy="steps", save_steps=eval_steps, save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=evaluator is not None, metric_for_best_model="gold_accuracy" if evaluator else None,
        greater_is_better=True, seed=cfg.seed, data_seed=cfg.seed, bf16=_use_bf16(cfg), use_cpu=on_cpu,
        max_length=None,  # encoded and truncated (and counted) above; TRL would drop long pairs silently
        center_rewards_coefficient=cfg.center_rewards or None, report_to="none", disable_tqdm=not progress,
        remove_unused_columns=False, dataloader_num_workers=0,
    )
    pack = cfg.padding_free and peft_config is None and backend == "transformers" and supports_padding_free(model)
    attn_before = model.config._attn_implementation
    if pack:
        _register_varlen_attention()
        model.set_attn_implementation(VARLEN_ATTENTION)
    trainer_cls, eval_at_end = _make_trainer_class()
    # Trainer insists on an eval_dataset when evaluating; ours is ignored: `evaluate` scores the gold pairs.
    eval_dataset = dataset.select(range(min(2, len(dataset)))) if evaluator else None
    save_last = evaluator is not None or cfg.keep_checkpoints
    trainer = trainer_cls(model=model, args=args, train_dataset=dataset, eval_dataset=eval_dataset,
                          processing_class=tokenizer, peft_config=peft_config, lengths=lengths, gold_eval=evaluator,
                          data_collator=pack_preference_batch if pack else None,
                          callbacks=[eval_at_end(save_last=save_last), *callbacks])
    t_train = time.time()
    trainer.train(resume_from_checkpoint=last)
    train_seconds = time.time() - t_train

    model_dir = output_dir / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    final = trainer.model
    if hasattr(final, "merge_and_unload"):  # LoRA: keep the adapter, save a merged model plain transformers loads
        final.save_pretrained(str(output_dir / "adapter"))
        final = final.merge_and_unload()
    _tie_token_type_embeddings(final)
    if pack:
        final.set_attn_implementation(attn_before)  # the saved model loads with plain transformers
    final.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))

    history = pd.DataFrame(trainer.state.log_history)
    best = evaluator(final) if evaluator else {}
    best_checkpoint = trainer.state.best_model_checkpoint
    if not cfg.keep_checkpoints:  # training finished and the model is saved: resume state is no longer needed
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    steps_done = trainer.state.global_step
    metrics = {
        "kind": "finetune", "backend": backend, "n_train": len(train), "n_gold": 0 if gold is None else len(gold),
        "n_truncated": int((c_trunc | r_trunc).sum()), "steps": steps_done, "best_checkpoint": best_checkpoint,
        "resumed_from": last, "padding_free": pack,
        "train_seconds": round(train_seconds, 2), "total_seconds": round(time.time() - t_start, 2),
        "pairs_per_second": round(steps_done * cfg.batch_size * cfg.grad_accum / max(train_seconds, 1e-9), 3),
        **best,
    }
    return TrainResult(model_dir=model_dir, history=history, metrics=metrics)


# ---------------------------------------------------------------- fast head


def _head_gold_eval(gold: PairFrame | None, cfg: RMTrainConfig) -> Callable[[Any], dict[str, float]] | None:
    """Gold metrics of a fast head after each epoch (None without gold pairs)."""
    if gold is None or not len(gold):
        return None
    col = _category_column(gold, cfg)
    cats = gold[col].astype(str).tolist() if col else None
    features: list[torch.Tensor] = []  # gold features are computed once: the embedder is frozen across epochs

    def evaluate(rm: Any) -> dict[str, float]:
        if not features:
            features.append(rm.features(list(gold["prompt"]) * 2, list(gold["chosen"]) + list(gold["rejected"]), progress=False))
        rewards = rm.score_features(features[0])
        return gold_metrics(rewards[: len(gold)] - rewards[len(gold):], cats)

    return evaluate


def _train_head(train: PairFrame, gold: PairFrame | None, cfg: RMTrainConfig, output_dir: Path, cache: Any,
                progress: bool) -> TrainResult:
    t0 = time.time()
    head_cfg = fast_rm.HeadConfig(hidden=cfg.head_hidden, epochs=cfg.head_epochs, batch_size=max(cfg.batch_size, 64),
                                  learning_rate=1e-3, seed=cfg.seed)
    eval_fn = _head_gold_eval(gold, cfg)
    rm, rows = fast_rm.train_embedding_head(list(train["prompt"]), list(train["chosen"]), list(train["rejected"]),
                                            embedder_name=cfg.backbone, cfg=head_cfg, cache=cache, eval_fn=eval_fn,
                                            progress=progress)
    history = pd.DataFrame(rows)
    best = eval_fn(rm) if eval_fn else {}
    metrics = {"kind": "embedding_head", "backend": "torch", "n_train": len(train), "n_gold": 0 if gold is None else len(gold),
               "n_truncated": 0, "steps": len(rows), "total_seconds": round(time.time() - t0, 2),
               "pairs_per_second": round(float(history["pairs_per_second"].median()), 1), **best}
    model_dir = rm.save(output_dir / "model", metrics=metrics)
    return TrainResult(model_dir=model_dir, history=history, metrics=metrics)


# ---------------------------------------------------------------- entry point


def model_card(result: TrainResult, cfg: RMTrainConfig, train: PairFrame, *, title: str = "Workbench reward model") -> str:
    """A Hugging Face style README for the saved model: data, config, metrics, usage."""
    sources = train["source"].value_counts().to_dict() if "source" in train.columns else {}
    metrics = {k: v for k, v in result.metrics.items() if not isinstance(v, float) or not math.isnan(v)}
    usage = ("```python\nfrom transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
             f"tok = AutoTokenizer.from_pretrained(\"{result.model_dir.name}\")\n"
             f"rm = AutoModelForSequenceClassification.from_pretrained(\"{result.model_dir.name}\")\n"
             "# decoders: tok.apply_chat_template(messages + [{'role': 'assistant', 'content': response}])\n"
             "# encoders: tok(conversation_text, response)\n"
             "reward = rm(**tok(\"user: How do I boil an egg?\", \"Simmer it for 9 minutes.\", return_tensors='pt')).logits[0, 0]\n```"
             if cfg.kind == "finetune" else
             "Load with `workbench.models.scoring.load_reward_model(folder)`; it is a head over frozen sentence embeddings.")
    return (f"---\nlibrary_name: {'transformers' if cfg.kind == 'finetune' else 'workbench'}\npipeline_tag: text-classification\n"
            f"tags: [reward-model, bradley-terry, rm-curation-workbench]\n---\n\n# {title}\n\n"
            f"A Bradley-Terry reward model (one output logit: higher = better response) trained by the RM Curation "
            f"Workbench.\n\n## Data\n\n{len(train)} preference pairs. Sources: {json.dumps(sources)}\n\n"
            f"## Training config\n\n```json\n{json.dumps(asdict(cfg), indent=2)}\n```\n\n"
            f"## Metrics\n\n```json\n{json.dumps(metrics, indent=2, default=str)}\n```\n\n## Usage\n\n{usage}\n")


def train_reward_model(train: PairFrame, gold: PairFrame | None = None, *, cfg: RMTrainConfig = RMTrainConfig(),
                       output_dir: str | Path, cache: Any = None, callbacks: Sequence[Callable] = (),
                       progress: bool = True) -> TrainResult:
    """Train a BT reward model on ``train``, choose the best checkpoint on ``gold``, save it.

    Args:
        train: canonical pairs (``prompt``, ``chosen``, ``rejected``; ``margin`` with ``use_margin``).
        gold: held-out verified pairs; drives evaluation and the best checkpoint. Optional.
        cfg: `RMTrainConfig`.
        output_dir: gets ``model/`` (HF format + model card), ``checkpoints/`` (resumable),
            ``history.csv`` and ``summary.json``. Re-running after a crash resumes from the last
            checkpoint.
        cache: a `workbench.data.files.EmbeddingCache` for ``kind="embedding_head"``.
        callbacks: extra ``transformers.TrainerCallback`` objects (fine-tuning only).

    Returns:
        `TrainResult` (model folder, history frame, metrics incl. best gold accuracy).

    Example: ``res = train_reward_model(pool, gold, cfg=RMTrainConfig(max_steps=20), output_dir="runs/x/rm")``.
    """
    if len(train) == 0:
        raise ValueError("train has no pairs; check the split or the curation step that produced it.")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if cfg.kind == "finetune":
        result = _finetune(train, gold, cfg, output_dir, callbacks, progress)
    else:
        result = _train_head(train, gold, cfg, output_dir, cache, progress)
    (result.model_dir / "README.md").write_text(model_card(result, cfg, train), encoding="utf-8")
    result.history.to_csv(output_dir / "history.csv", index=False)
    (output_dir / "summary.json").write_text(json.dumps({"config": asdict(cfg), "metrics": result.metrics}, indent=2, default=str))
    return result


def fast_head_rm(train: PairFrame, gold: PairFrame | None, *, output_dir: str | Path, cache: Any = None,
                 epochs: int = 30, seed: int = 0, progress: bool = False) -> tuple[Any, TrainResult]:
    """A fast embedding-head RM trained on ``train`` (best epoch on ``gold`` when given), loaded for scoring:
    what Stage 1's rounds, the error map and the experiment's conditions train."""
    cfg = RMTrainConfig(kind="embedding_head", head_epochs=epochs, seed=seed)
    result = train_reward_model(train, gold, cfg=cfg, output_dir=output_dir, cache=cache, progress=progress)
    return load_reward_model(result.model_dir, embedding_cache=cache), result


def summary_metrics(result: TrainResult, test_table: pd.DataFrame, test_ci: dict[str, float], *, model_name: str,
                    hh_table: pd.DataFrame | None = None, head: TrainResult | None = None) -> dict[str, Any]:
    """A trained RM at a glance: its training metrics, test accuracy with its 95% bootstrap CI and the paired
    difference to *longer wins* (`workbench.models.scoring.accuracy_ci`), unseen HH-RLHF accuracy and the fast head's."""
    out: dict[str, Any] = {k: v for k, v in result.metrics.items() if not isinstance(v, dict)}
    out.update({"model_dir": str(result.model_dir), "test_accuracy": float(test_table.loc["all", model_name]),
                "test_longer_wins": float(test_table.loc["all", "longer wins"]),
                "test_accuracy_ci_low": test_ci["ci_low"], "test_accuracy_ci_high": test_ci["ci_high"],
                "test_minus_longer_wins": test_ci["diff_vs_longer"], "test_minus_longer_wins_ci_low": test_ci["diff_ci_low"],
                "test_minus_longer_wins_ci_high": test_ci["diff_ci_high"]})
    if hh_table is not None:
        out["hh_heldout_accuracy"] = float(hh_table.loc["all", model_name])
        out["hh_heldout_longer_wins"] = float(hh_table.loc["all", "longer wins"])
    if head is not None:
        out["fast_head_test_accuracy"] = float(test_table.loc["all", "fast_head"])
        out["fast_head_gold_accuracy"] = head.metrics.get("gold_accuracy")
    return out
