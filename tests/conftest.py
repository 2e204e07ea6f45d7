"""Shared fixtures: the real shared data folder, and tiny hand-made pair records."""

from __future__ import annotations

import os
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from workbench.data import files as io

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
    from workbench.models.embedding import default_embedder_path

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

    from workbench.data.pairs import records_to_pairs

    rng = random.Random(seed)
    words = ["apple", "river", "guitar", "planet", "window", "coffee", "tiger", "castle"]
    recs = []
    for i in range(n):
        w, other = rng.sample(words, 2)
        recs.append({"prompt": f"Tell me about the {w} number {i}.", "chosen": f"The {w} is great, number {i}.",
                     "rejected": f"The {other} is fine, number {i}."})
    pairs, _ = records_to_pairs(list(enumerate(recs, 1)), where="mem", source="planted")
    return pairs.assign(construction=["a" if i % 2 else "b" for i in range(n)])


# Chat templates in the shape of the real ones (Llama 3.1: one BOS from the template, role headers,
# content trimmed; Qwen3: no BOS at all), for truncation and parity tests.
LLAMA_STYLE_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
)
QWEN_STYLE_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
_CORPUS = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Reward models score a response to a conversation; higher means better.",
    "def add(a, b):\n    return a + b  # a tiny function with code-like text",
    "Please summarise the following article in three sentences, keeping the main claim.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and punctuation: ,.;:!?()[]{}",
] * 20


def make_chat_tokenizer(style: str):
    """A byte-level BPE tokenizer (vocab ~600) with a Llama-3.1-like (BOS added by the tokenizer *and* the
    template) or a Qwen3-like (no BOS) chat template; built in memory, no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = (["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|pad|>"]
                if style == "llama" else ["<|im_start|>", "<|im_end|>", "<|endoftext|>"])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_CORPUS, trainers.BpeTrainer(vocab_size=600, special_tokens=specials, show_progress=False,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if style == "llama":
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B",
                                                           special_tokens=[("<|begin_of_text|>", bos)])
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                       pad_token="<|pad|>")
        fast.chat_template = LLAMA_STYLE_TEMPLATE
    else:
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
        fast.chat_template = QWEN_STYLE_TEMPLATE
    return fast


@pytest.fixture(scope="session")
def llama_style_tokenizer():
    return make_chat_tokenizer("llama")


@pytest.fixture(scope="session")
def qwen_style_tokenizer():
    return make_chat_tokenizer("qwen")


# ---------------------------------------------------------------- the real-browser tests (review panel, docs site)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


def require_browser() -> None:
    """Skip without Debian's chromium and Playwright; fail instead in CI (`.ci/run` sets WORKBENCH_REQUIRE_BROWSER)."""
    if not Path(CHROMIUM).exists():
        message = "Debian chromium is not installed (apt-get install -y chromium; .ci/run does this)"
        if os.environ.get("WORKBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the dev extra)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(url: str, proc, log: Path, what: str, *, timeout_s: float, tail: int = 2000) -> None:
    """Poll ``url + "/health"`` until it answers 200; fail with the tail of ``log`` if ``proc`` exits or time runs out."""
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:  # not listening yet (refused, reset, timed out, an error status)
            pass
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"{what} did not start: {log.read_text()[-tail:]}")
        time.sleep(0.5)
