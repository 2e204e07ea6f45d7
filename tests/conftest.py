"""Shared fixtures: the real shared data folder, and tiny hand-made pair records."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from workbench import io  # noqa: E402

HH_FILES = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data; fails (does not skip) with the resolver's clear message when it is missing."""
    return io.shared_data_dir()


@pytest.fixture
def hh_record() -> dict:
    return {
        "chosen": "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.\n\nHuman: Sure?\n\nAssistant: Yes, 2+2 = 4.",
        "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.\n\nHuman: Sure?\n\nAssistant: No, it is 5.",
    }


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% if not loop.last %} [SEP] {% endif %}{% endfor %}"
)


@pytest.fixture(scope="session")
def minilm_path() -> str:
    from workbench.embedding import default_embedder_path

    return default_embedder_path()


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory, minilm_path) -> Path:
    """A tiny random Qwen3 sequence classifier (2 layers, hidden 64) + the MiniLM tokenizer with a chat template."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForSequenceClassification

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(minilm_path)
    tok.chat_template = CHAT_TEMPLATE
    cfg = Qwen3Config(vocab_size=tok.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_labels=1,
                      pad_token_id=tok.pad_token_id, max_position_embeddings=512)
    model = Qwen3ForSequenceClassification(cfg)
    folder = tmp_path_factory.mktemp("tiny_qwen3")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def make_pairs(n: int, *, seed: int = 0):
    """Tiny planted task: the chosen response answers with the prompt's keyword, the rejected one does not."""
    import random

    from workbench.pairs import records_to_pairs

    rng = random.Random(seed)
    words = ["apple", "river", "guitar", "planet", "window", "coffee", "tiger", "castle"]
    recs = []
    for i in range(n):
        w, other = rng.sample(words, 2)
        recs.append({"prompt": f"Tell me about the {w} number {i}.", "chosen": f"The {w} is great, number {i}.",
                     "rejected": f"The {other} is fine, number {i}."})
    pairs, _ = records_to_pairs(list(enumerate(recs, 1)), where="mem", source="planted")
    return pairs.assign(construction=["a" if i % 2 else "b" for i in range(n)])
