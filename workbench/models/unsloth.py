"""Optional Unsloth backend for reward-model training on a CUDA GPU (Colab, Kaggle, a workstation).

What it does:
    * :func:`unsloth_status` says whether Unsloth can be used here (a CUDA GPU visible to torch AND
      the ``unsloth`` package installed), without importing ``unsloth``.
    * :func:`resolve_backend` turns the ``rm_backend`` setting (``"auto"``, ``"transformers"``,
      ``"unsloth"``) into the backend that will actually run, or fails with a clear message.
    * :func:`load_unsloth_reward_model` loads an Unsloth-accelerated
      ``AutoModelForSequenceClassification`` with ``num_labels=1`` (a scalar reward head), applies
      LoRA with the head in ``modules_to_save``, and sets the pad token, so the model is ready for
      TRL's ``RewardTrainer``.
    * :data:`GPU_RECIPES` lists practical single-GPU settings per backbone.

What it does not do:
    There is no training loop here. The caller builds ``trl.RewardConfig`` / ``trl.RewardTrainer``
    (Bradley-Terry loss) on the returned ``(model, tokenizer)`` exactly as on the plain
    ``transformers`` path. Nothing here changes the CPU default: on a machine without a CUDA GPU or
    without ``unsloth`` the ``"auto"`` backend resolves to ``"transformers"``.

When it applies:
    Only with ``pip install -e ".[gpu]"`` on a machine with an NVIDIA GPU. ``unsloth`` pulls a CUDA
    torch and must never be installed in the CPU environment of this project; importing it on a CPU
    machine raises, which is why this module only imports it inside :func:`load_unsloth_reward_model`.

Unsloth API used (checked against Unsloth's own sources, not guessed):
    * ``FastModel.from_pretrained(model_name=..., auto_model=AutoModelForSequenceClassification,
      num_labels=..., max_seq_length=..., load_in_4bit=..., full_finetuning=..., dtype=None)``:
      the sequence-classification loading pattern of Unsloth's classification notebook
      (github.com/unslothai/notebooks, ``nb/bert_classification.ipynb``) and of the repository's
      feature-request template (github.com/unslothai/unsloth, ``.github/ISSUE_TEMPLATE/feature-request.md``);
      ``unsloth/models/loader.py`` (``FastModel.from_pretrained``) forwards ``num_labels`` into the model
      config and selects ``AutoModelForSequenceClassification`` when ``num_labels`` is given.
    * ``FastModel.get_peft_model(model, r=..., target_modules=[...], lora_alpha=..., lora_dropout=...,
      bias="none", use_gradient_checkpointing="unsloth", random_state=..., task_type="SEQ_CLS",
      modules_to_save=[...])``: same notebook (it passes ``task_type="SEQ_CLS"``); the keyword
      arguments are those of ``FastBaseModel.get_peft_model`` in ``unsloth/models/vision.py``, which
      forwards ``task_type`` and ``modules_to_save`` to ``peft.LoraConfig``.
    * ``import unsloth`` must happen before ``transformers`` / ``trl`` are imported for all of
      Unsloth's patches to apply (Unsloth warns otherwise); see :func:`load_unsloth_reward_model`.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)

VALID_BACKENDS: list[str] = ["auto", "transformers", "unsloth"]

GPU_INSTALL_HINT = "pip install -e '.[gpu]'"

# LoRA targets: every attention and MLP projection of Llama / Qwen3 decoders (the module list used
# in Unsloth's notebooks, including nb/bert_classification.ipynb).
LORA_TARGET_MODULES: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Tokens some tokenizers ship as a dedicated padding token but do not register as `pad_token`
# (Llama 3.x has "<|finetune_right_pad_id|>"). Preferred over reusing EOS, because the
# sequence-classification head pools the last non-pad token and EOS often ends the chat template.
_PAD_TOKEN_CANDIDATES: tuple[str, ...] = ("<|finetune_right_pad_id|>", "<|pad|>", "<pad>", "[PAD]")

# GPU recipes for the reward-model step.
#
# Where the numbers come from: the Skywork-Reward-V2 paper trains Qwen3 (0.6B-8B) and Llama 3.x
# (1B-8B) reward models with the Bradley-Terry loss only, for 1 epoch, with learning rate 1e-6 at 8B
# and 4e-6 for the smaller models in development runs, and a maximum sequence length of 16,384.
# learning_rate below follows the paper. max_length, batch_size, load_in_4bit and lora_r do NOT come
# from the paper: the paper fine-tunes the full model on a cluster, whereas these are practical
# LoRA / QLoRA values for ONE Colab/Kaggle-class GPU (T4 16 GB, L4 24 GB) so a run fits in memory.
# batch_size is the per-device number of preference pairs (each pair is two sequences); raise the
# effective batch with gradient accumulation. Raise max_length toward 16,384 on an A100/H100.
GPU_RECIPES: dict[str, dict] = {
    "qwen3-0.6b": {
        "model_name": "Qwen/Qwen3-0.6B",
        "max_length": 4096,
        "learning_rate": 4e-6,
        "batch_size": 8,
        "load_in_4bit": False,
        "lora_r": 16,
    },
    "qwen3-1.7b": {
        "model_name": "Qwen/Qwen3-1.7B",
        "max_length": 2048,
        "learning_rate": 4e-6,
        "batch_size": 4,
        "load_in_4bit": False,
        "lora_r": 16,
    },
    "qwen3-4b": {
        "model_name": "Qwen/Qwen3-4B",
        "max_length": 2048,
        "learning_rate": 4e-6,
        "batch_size": 2,
        "load_in_4bit": False,  # 16-bit LoRA fits an L4 (24 GB); set True on a 16 GB T4
        "lora_r": 16,
    },
    "qwen3-8b": {
        "model_name": "Qwen/Qwen3-8B",
        "max_length": 2048,
        "learning_rate": 1e-6,
        "batch_size": 1,
        "load_in_4bit": True,  # QLoRA: 8B in 16 bit does not fit a single T4/L4
        "lora_r": 16,
    },
    "llama-3.2-1b": {
        "model_name": "meta-llama/Llama-3.2-1B-Instruct",
        "max_length": 4096,
        "learning_rate": 4e-6,
        "batch_size": 8,
        "load_in_4bit": False,
        "lora_r": 16,
    },
    "llama-3.2-3b": {
        "model_name": "meta-llama/Llama-3.2-3B-Instruct",
        "max_length": 2048,
        "learning_rate": 4e-6,
        "batch_size": 2,
        "load_in_4bit": False,
        "lora_r": 16,
    },
    "llama-3.1-8b": {
        "model_name": "meta-llama/Llama-3.1-8B-Instruct",
        "max_length": 2048,
        "learning_rate": 1e-6,
        "batch_size": 1,
        "load_in_4bit": True,  # QLoRA: 8B in 16 bit does not fit a single T4/L4
        "lora_r": 16,
    },
}

# Reasons already logged by resolve_backend("auto"), so each fallback is reported once per process.
_LOGGED_AUTO_FALLBACKS: set[str] = set()


def _cuda_available() -> tuple[bool, str]:
    """Whether torch sees a CUDA GPU; the string explains a False answer."""
    try:
        import torch
    except Exception as exc:  # torch is a core dependency, but report rather than crash
        return False, f"torch cannot be imported ({type(exc).__name__}: {exc})"
    try:
        if torch.cuda.is_available():
            return True, ""
    except Exception as exc:
        return False, f"torch.cuda.is_available() raised {type(exc).__name__}: {exc}"
    return False, "no CUDA GPU visible to torch (torch.cuda.is_available() is False)"


def _unsloth_installed() -> bool:
    """Whether the ``unsloth`` package can be found, WITHOUT importing it."""
    try:
        return importlib.util.find_spec("unsloth") is not None
    except ValueError:
        # find_spec raises ValueError for a module in sys.modules whose __spec__ is None.
        return "unsloth" in sys.modules


def unsloth_status() -> tuple[bool, str]:
    """Report whether the Unsloth backend can run on this machine, without importing ``unsloth``.

    Unsloth is usable only when torch sees a CUDA GPU and the ``unsloth`` package is installed.
    ``unsloth`` itself is never imported here: importing it on a CPU machine raises and patches
    ``transformers`` as a side effect.

    Returns:
        ``(available, reason)``. ``available`` is True only when both conditions hold. ``reason`` is
        a human sentence: why Unsloth cannot be used (with the fix), or what was found when it can.
    """
    has_cuda, cuda_reason = _cuda_available()
    has_unsloth = _unsloth_installed()
    if has_cuda and has_unsloth:
        return True, "a CUDA GPU is visible to torch and the `unsloth` package is installed"
    if not has_cuda:
        reason = f"{cuda_reason}; Unsloth needs an NVIDIA CUDA GPU (e.g. Colab or Kaggle with a GPU runtime)"
        if not has_unsloth:
            reason += f", and the `unsloth` package is not installed (on a CUDA machine run: {GPU_INSTALL_HINT})"
        return False, reason
    return False, f"the `unsloth` package is not installed; on a CUDA machine run: {GPU_INSTALL_HINT}"


def resolve_backend(requested: str) -> str:
    """Resolve the requested reward-model backend to the one that will run.

    Args:
        requested: ``"auto"``, ``"transformers"`` or ``"unsloth"`` (case and surrounding spaces are
            ignored).

    Returns:
        ``"unsloth"`` or ``"transformers"``. ``"auto"`` gives ``"unsloth"`` when
        :func:`unsloth_status` says it is available, else ``"transformers"`` (the reason is logged
        once at INFO level).

    Raises:
        RuntimeError: ``"unsloth"`` was requested but is not available here; the message carries
            the reason and the fix.
        ValueError: ``requested`` is not one of :data:`VALID_BACKENDS`.
    """
    choice = requested.strip().lower() if isinstance(requested, str) else requested
    if choice not in VALID_BACKENDS:
        raise ValueError(
            f"unknown reward-model backend {requested!r}: valid choices are {VALID_BACKENDS}; "
            "set rm_backend to one of them (\"auto\" picks Unsloth on a CUDA GPU, else transformers)"
        )
    if choice == "transformers":
        return "transformers"
    available, reason = unsloth_status()
    if choice == "auto":
        if available:
            return "unsloth"
        if reason not in _LOGGED_AUTO_FALLBACKS:
            _LOGGED_AUTO_FALLBACKS.add(reason)
            logger.info("rm_backend='auto' -> 'transformers': Unsloth is not used because %s.", reason)
        return "transformers"
    if not available:
        raise RuntimeError(
            f"rm_backend='unsloth' was requested but Unsloth cannot run here: {reason}. "
            f"Fix: on a machine with an NVIDIA GPU (Colab/Kaggle GPU runtime) run {GPU_INSTALL_HINT} "
            "in the repository clone, or set rm_backend='transformers' (or 'auto') to train with "
            "plain transformers on this machine."
        )
    return "unsloth"


def _classification_head_name(model: Any) -> str:
    """Name of the sequence-classification head module: ``score`` for decoder LMs, ``classifier`` for encoders."""
    for name in ("score", "classifier"):
        if hasattr(model, name):
            return name
    return "score"  # Llama / Qwen *ForSequenceClassification


def _ensure_pad_token(tokenizer: Any, model: Any) -> None:
    """Give the tokenizer a pad token if it has none and copy its id into ``model.config.pad_token_id``.

    The sequence-classification head pools the last non-pad token of each row, so the model must
    know the pad id. A tokenizer's dedicated padding token is preferred over EOS.

    Raises:
        ValueError: the tokenizer has neither a pad token, a known padding token, nor an EOS token.
    """
    tok = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps the text tokenizer
    if tok.pad_token is None:
        vocab = tok.get_vocab() if hasattr(tok, "get_vocab") else {}
        candidate = next((t for t in _PAD_TOKEN_CANDIDATES if t in vocab), None)
        if candidate is not None:
            tok.pad_token = candidate
        elif tok.eos_token is not None:
            tok.pad_token = tok.eos_token
            logger.info("tokenizer has no pad token; using its EOS token %r for padding.", tok.eos_token)
        else:
            raise ValueError(
                f"tokenizer {type(tok).__name__} has no pad token and no EOS token to reuse: "
                "add one with tokenizer.add_special_tokens({'pad_token': '<pad>'}) and resize the "
                "model's embeddings, or choose a backbone whose tokenizer defines one"
            )
    model.config.pad_token_id = tok.pad_token_id


def load_unsloth_reward_model(
    model_name: str,
    *,
    max_length: int,
    load_in_4bit: bool = False,
    lora_r: int = 16,
    lora_alpha: int = 16,
    lora_dropout: float = 0.0,
    seed: int = 0,
    gradient_checkpointing: bool = True,
):
    """Load a reward model (scalar-head sequence classifier) with Unsloth, ready for TRL's RewardTrainer.

    Calls ``resolve_backend("unsloth")`` first, so on a machine without a CUDA GPU or without
    ``unsloth`` this raises a clear RuntimeError before anything is imported. ``unsloth`` is
    imported lazily here, before ``transformers``/``trl`` names are taken from it; for every Unsloth
    patch to apply, call this before the process imports ``trl`` (Unsloth warns if ``transformers``
    was imported first).

    Args:
        model_name: Hugging Face model id or local path, e.g. ``"Qwen/Qwen3-0.6B"``.
        max_length: Longest tokenized sequence (prompt + response) the model will see; passed to
            Unsloth as ``max_seq_length``. Use the same value as ``RewardConfig.max_length``.
        load_in_4bit: Load the base weights in 4-bit NF4 (QLoRA); needs ``bitsandbytes`` (in the
            ``gpu`` extra). Recommended for 8B backbones on a 16-24 GB GPU.
        lora_r: LoRA rank. ``> 0`` adds LoRA adapters to all attention/MLP projections and keeps
            the classification head fully trainable and saved (``modules_to_save``). ``0`` means
            full fine-tuning (no adapters); not possible together with ``load_in_4bit``.
        lora_alpha: LoRA scaling numerator.
        lora_dropout: Dropout on the LoRA branch (Unsloth is fastest at 0).
        seed: Seed for the head initialisation and LoRA init (``random_state``).
        gradient_checkpointing: Use Unsloth's offloaded gradient checkpointing (``"unsloth"``) to
            fit long sequences; False disables it.

    Returns:
        ``(model, tokenizer)``: the model is an Unsloth-patched
        ``AutoModelForSequenceClassification`` with ``num_labels=1`` (a PEFT model when
        ``lora_r > 0``) whose ``config.pad_token_id`` is set; the tokenizer has a pad token.

    Raises:
        RuntimeError: Unsloth is not usable here (no CUDA GPU, or ``unsloth`` not installed).
        ValueError: an argument is out of range (message names the value and the fix).
    """
    resolve_backend("unsloth")  # raises the clear RuntimeError on CPU / without unsloth

    if not isinstance(max_length, int) or max_length <= 0:
        raise ValueError(f"max_length must be a positive integer, got {max_length!r}: pass e.g. max_length=2048")
    if not isinstance(lora_r, int) or lora_r < 0:
        raise ValueError(f"lora_r must be an integer >= 0, got {lora_r!r}: use 16 for LoRA or 0 for full fine-tuning")
    if lora_r == 0 and load_in_4bit:
        raise ValueError(
            "lora_r=0 (full fine-tuning) cannot be combined with load_in_4bit=True: 4-bit weights are "
            "frozen; use lora_r > 0 (QLoRA) or load_in_4bit=False"
        )

    if "transformers" in sys.modules or "trl" in sys.modules:
        logger.info(
            "transformers/trl were imported before unsloth; Unsloth may skip some patches. "
            "For full speed, load the Unsloth model before importing trl."
        )
    # Import order matters: unsloth first, so it can patch transformers/peft/trl.
    import unsloth  # noqa: F401
    from transformers import AutoModelForSequenceClassification, set_seed
    from unsloth import FastModel

    set_seed(seed)  # the scalar head is freshly initialised: make it reproducible
    checkpointing: Any = "unsloth" if gradient_checkpointing else False

    # Unsloth nb/bert_classification.ipynb pattern: FastModel + auto_model=AutoModelForSequenceClassification.
    model, tokenizer = FastModel.from_pretrained(
        model_name=model_name,
        auto_model=AutoModelForSequenceClassification,
        num_labels=1,
        max_seq_length=max_length,
        dtype=None,  # auto: bfloat16 where supported, else float16
        load_in_4bit=load_in_4bit,
        full_finetuning=(lora_r == 0),
        use_gradient_checkpointing=checkpointing,
    )
    _ensure_pad_token(tokenizer, model)

    if lora_r > 0:
        head = _classification_head_name(model)
        model = FastModel.get_peft_model(
            model,
            r=lora_r,
            target_modules=list(LORA_TARGET_MODULES),
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            bias="none",
            use_gradient_checkpointing=checkpointing,
            random_state=seed,
            task_type="SEQ_CLS",
            modules_to_save=[head],  # train and save the freshly initialised reward head
        )
    return model, tokenizer
