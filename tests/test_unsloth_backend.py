"""The optional Unsloth backend: backend resolution, clear CPU errors, and the exact Unsloth calls.

Runs on the CPU machine without ``unsloth``: GPU/unsloth presence is simulated with monkeypatch, and
the Unsloth API is replaced by a recording fake module where the load path is exercised.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from workbench.models import unsloth as ub

REAL_FIND_SPEC = importlib.util.find_spec


def _simulate(monkeypatch: pytest.MonkeyPatch, *, cuda: bool, unsloth: bool) -> None:
    """Patch torch.cuda.is_available and importlib.util.find_spec as the module sees them."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)

    def fake_find_spec(name, package=None):
        if name == "unsloth":
            return importlib.machinery.ModuleSpec("unsloth", loader=None) if unsloth else None
        return REAL_FIND_SPEC(name, package)

    monkeypatch.setattr(ub.importlib.util, "find_spec", fake_find_spec)


@pytest.fixture(autouse=True)
def _fresh_log_state(monkeypatch):
    monkeypatch.setattr(ub, "_LOGGED_AUTO_FALLBACKS", set())


# ---------------------------------------------------------------- (a) no GPU


def test_no_gpu_auto_falls_back_to_transformers(monkeypatch, caplog):
    _simulate(monkeypatch, cuda=False, unsloth=True)
    with caplog.at_level(logging.INFO, logger=ub.__name__):
        assert ub.resolve_backend("auto") == "transformers"
        assert ub.resolve_backend("auto") == "transformers"
    fallback_logs = [r for r in caplog.records if "rm_backend='auto'" in r.getMessage()]
    assert len(fallback_logs) == 1  # logged once, at INFO
    assert fallback_logs[0].levelno == logging.INFO and "CUDA" in fallback_logs[0].getMessage()


def test_no_gpu_unsloth_request_raises_mentioning_cuda(monkeypatch):
    _simulate(monkeypatch, cuda=False, unsloth=True)
    with pytest.raises(RuntimeError, match="CUDA"):
        ub.resolve_backend("unsloth")
    available, reason = ub.unsloth_status()
    assert not available and "torch.cuda.is_available() is False" in reason


# ---------------------------------------------------------------- (b) GPU, no unsloth


def test_gpu_without_unsloth_auto_is_transformers(monkeypatch):
    _simulate(monkeypatch, cuda=True, unsloth=False)
    assert ub.resolve_backend("auto") == "transformers"
    available, reason = ub.unsloth_status()
    assert not available and "not installed" in reason


def test_gpu_without_unsloth_request_raises_with_reason_and_fix(monkeypatch):
    _simulate(monkeypatch, cuda=True, unsloth=False)
    with pytest.raises(RuntimeError) as err:
        ub.resolve_backend("unsloth")
    msg = str(err.value)
    assert "`unsloth` package is not installed" in msg
    assert "pip install -e '.[gpu]'" in msg


# ---------------------------------------------------------------- (c) GPU and unsloth


def test_gpu_with_unsloth_resolves_to_unsloth(monkeypatch):
    _simulate(monkeypatch, cuda=True, unsloth=True)
    assert ub.unsloth_status()[0] is True
    assert ub.resolve_backend("auto") == "unsloth"
    assert ub.resolve_backend("unsloth") == "unsloth"
    assert ub.resolve_backend("transformers") == "transformers"


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("bad", ["tpu", "", "cuda"])
def test_unknown_backend_lists_choices(bad):
    with pytest.raises(ValueError) as err:
        ub.resolve_backend(bad)
    for choice in ("auto", "transformers", "unsloth"):
        assert choice in str(err.value)
    assert repr(bad) in str(err.value)


def test_backend_names_are_case_insensitive():
    assert ub.resolve_backend(" Transformers ") == "transformers"


# ---------------------------------------------------------------- this real CPU machine


def test_real_machine_status_is_unavailable():
    available, reason = ub.unsloth_status()
    assert available is False
    assert "CUDA" in reason or "not installed" in reason


def test_real_machine_load_raises_clearly_without_importing_unsloth():
    assert "unsloth" not in sys.modules
    with pytest.raises(RuntimeError) as err:
        ub.load_unsloth_reward_model("Qwen/Qwen3-0.6B", max_length=512)
    assert "rm_backend='unsloth'" in str(err.value) and "pip install -e '.[gpu]'" in str(err.value)
    assert "unsloth" not in sys.modules


# ---------------------------------------------------------------- recipes


def test_gpu_recipes_have_required_keys():
    required = {"model_name", "max_length", "learning_rate", "batch_size", "load_in_4bit", "lora_r"}
    assert {"qwen3-0.6b", "qwen3-8b", "llama-3.2-1b", "llama-3.1-8b"} <= set(ub.GPU_RECIPES)
    for key, recipe in ub.GPU_RECIPES.items():
        assert required <= set(recipe), key
        assert "/" in recipe["model_name"] and recipe["max_length"] > 0 and recipe["batch_size"] > 0
        assert isinstance(recipe["load_in_4bit"], bool) and recipe["lora_r"] >= 0
        assert recipe["learning_rate"] == (1e-6 if key.endswith("8b") else 4e-6)
        assert recipe["load_in_4bit"] is key.endswith("8b")


# ---------------------------------------------------------------- the Unsloth calls, with a fake unsloth


class _FakeTokenizer:
    def __init__(self, vocab: dict[str, int], pad_token=None, eos_token="</s>"):
        self._vocab = vocab
        self.pad_token = pad_token
        self.eos_token = eos_token

    def get_vocab(self):
        return dict(self._vocab)

    @property
    def pad_token_id(self):
        return None if self.pad_token is None else self._vocab[self.pad_token]


class _FakeModel:
    def __init__(self):
        self.config = SimpleNamespace(pad_token_id=None)
        self.score = object()  # the *ForSequenceClassification head of Llama / Qwen


def _install_fake_unsloth(monkeypatch, vocab=None, pad_token=None):
    calls: dict[str, list] = {"from_pretrained": [], "get_peft_model": []}
    vocab = vocab or {"</s>": 2, "hello": 5}

    class FastModel:
        @staticmethod
        def from_pretrained(**kwargs):
            calls["from_pretrained"].append(kwargs)
            return _FakeModel(), _FakeTokenizer(vocab, pad_token=pad_token)

        @staticmethod
        def get_peft_model(model, **kwargs):
            calls["get_peft_model"].append(kwargs)
            model.peft_kwargs = kwargs
            return model

    fake = types.ModuleType("unsloth")
    fake.FastModel = FastModel
    fake.FastLanguageModel = FastModel
    monkeypatch.setitem(sys.modules, "unsloth", fake)
    _simulate(monkeypatch, cuda=True, unsloth=True)
    return calls


def test_load_passes_seq_cls_settings_and_lora_head(monkeypatch):
    from transformers import AutoModelForSequenceClassification

    calls = _install_fake_unsloth(monkeypatch)
    model, tok = ub.load_unsloth_reward_model(
        "Qwen/Qwen3-0.6B", max_length=1024, load_in_4bit=True, lora_r=8, lora_alpha=32, lora_dropout=0.05, seed=7
    )
    (fp,) = calls["from_pretrained"]
    assert fp["model_name"] == "Qwen/Qwen3-0.6B"
    assert fp["auto_model"] is AutoModelForSequenceClassification
    assert fp["num_labels"] == 1
    assert fp["max_seq_length"] == 1024
    assert fp["load_in_4bit"] is True and fp["full_finetuning"] is False
    assert fp["use_gradient_checkpointing"] == "unsloth"

    (peft,) = calls["get_peft_model"]
    assert peft["r"] == 8 and peft["lora_alpha"] == 32 and peft["lora_dropout"] == 0.05
    assert peft["random_state"] == 7 and peft["task_type"] == "SEQ_CLS"
    assert peft["modules_to_save"] == ["score"]
    assert peft["use_gradient_checkpointing"] == "unsloth"
    assert set(peft["target_modules"]) >= {"q_proj", "v_proj", "down_proj"}

    assert tok.pad_token == "</s>" and model.config.pad_token_id == 2


def test_load_without_lora_skips_get_peft_model(monkeypatch):
    calls = _install_fake_unsloth(monkeypatch)
    model, _ = ub.load_unsloth_reward_model("Qwen/Qwen3-0.6B", max_length=256, lora_r=0, gradient_checkpointing=False)
    assert calls["get_peft_model"] == []
    (fp,) = calls["from_pretrained"]
    assert fp["full_finetuning"] is True and fp["load_in_4bit"] is False
    assert fp["use_gradient_checkpointing"] is False
    assert not hasattr(model, "peft_kwargs")


def test_load_prefers_dedicated_pad_token_over_eos(monkeypatch):
    _install_fake_unsloth(monkeypatch, vocab={"<|eot_id|>": 9, "<|finetune_right_pad_id|>": 4})
    model, tok = ub.load_unsloth_reward_model("meta-llama/Llama-3.2-1B-Instruct", max_length=128)
    assert tok.pad_token == "<|finetune_right_pad_id|>" and model.config.pad_token_id == 4


def test_load_keeps_existing_pad_token(monkeypatch):
    _install_fake_unsloth(monkeypatch, vocab={"<|endoftext|>": 3, "</s>": 2}, pad_token="<|endoftext|>")
    model, tok = ub.load_unsloth_reward_model("Qwen/Qwen3-0.6B", max_length=128)
    assert tok.pad_token == "<|endoftext|>" and model.config.pad_token_id == 3


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"max_length": 0}, "max_length must be a positive integer"),
        ({"max_length": 128, "lora_r": -1}, "lora_r must be an integer >= 0"),
        ({"max_length": 128, "lora_r": 0, "load_in_4bit": True}, "cannot be combined with load_in_4bit"),
    ],
)
def test_load_rejects_bad_arguments(monkeypatch, kwargs, fragment):
    calls = _install_fake_unsloth(monkeypatch)
    with pytest.raises(ValueError, match=fragment):
        ub.load_unsloth_reward_model("Qwen/Qwen3-0.6B", **kwargs)
    assert calls["from_pretrained"] == []
