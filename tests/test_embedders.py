"""The fast embedders against the full MiniLM on real HH-RLHF conversations: how many of MiniLM's neighbours each
finds (the tolerance the README states), and the static model's durable first-use distillation."""

import numpy as np
import pytest

from workbench.data import files as io
from workbench.data.schema import topic_text
from workbench.models.embedding import MINILM_STATIC, embed_texts, load_embedder, static_model_dir


@pytest.fixture(scope="module")
def hh_texts(shared_data):
    pairs, _ = io.read_pairs(shared_data / "hh_rlhf" / "helpful-base" / "test.jsonl.gz", strict=False)
    return list(dict.fromkeys(topic_text(p) for p in pairs["prompt"]))[:600]


def neighbour_recall(x: np.ndarray, reference: np.ndarray, k: int = 10) -> float:
    nearest = lambda v: np.argsort(-(v @ v.T), axis=1)[:, 1: k + 1]  # noqa: E731
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(nearest(x), nearest(reference))]))


def test_static_minilm_keeps_more_of_minilms_neighbours_than_hashing(hh_texts):
    minilm = embed_texts(hh_texts, progress=False)
    static = embed_texts(hh_texts, model_name=MINILM_STATIC, progress=False)
    hashing = embed_texts(hh_texts, model_name="hashing", progress=False)
    assert static.shape == (len(hh_texts), 256) and np.allclose(np.linalg.norm(static, axis=1), 1, atol=1e-5)
    recall_static, recall_hashing = neighbour_recall(static, minilm), neighbour_recall(hashing, minilm)
    assert recall_static >= 0.2 and recall_static >= 2 * recall_hashing, (recall_static, recall_hashing)


def test_static_model_is_distilled_once_and_kept():
    folder = static_model_dir()
    load_embedder(MINILM_STATIC)
    assert (folder / "config.json").exists() and not list(folder.parent.glob(".distilling-*"))
    stamp = (folder / "config.json").stat().st_mtime
    from workbench.models.embedding import distill_static_minilm

    assert distill_static_minilm() == folder and (folder / "config.json").stat().st_mtime == stamp
