"""The OpenVINO scoring runtime gives PyTorch's rewards (within `PARITY_TOLERANCE`) on real HH pairs."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from workbench.data import demo as demo_data
from workbench.models.runtime import PARITY_TOLERANCE, resolve_runtime
from workbench.models.scoring import HFRewardModel, ScoreConfig, score_pairs

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def minilm_rm(minilm_path):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=1)
    torch.nn.init.normal_(model.classifier.weight, std=0.5)  # a head with a spread of rewards, like a trained one
    return HFRewardModel(model, AutoTokenizer.from_pretrained(minilm_path), name="minilm-parity", device="cpu")


@pytest.fixture(scope="module")
def hh_pairs(shared_data):
    pairs = demo_data.build_demo_pairs(data_dir=shared_data).pairs
    return pairs[pairs["source"].str.startswith("hh")].sample(24, random_state=0).reset_index(drop=True)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_openvino_rewards_match_torch_on_hh_pairs(minilm_rm, hh_pairs, dtype):
    reference = score_pairs(minilm_rm, hh_pairs, cfg=ScoreConfig(dtype="fp32", runtime="torch", max_length=512), progress=False)
    fast = score_pairs(minilm_rm, hh_pairs, cfg=ScoreConfig(dtype=dtype, runtime="openvino", max_length=512), progress=False)
    ref = np.r_[reference["r_chosen"], reference["r_rejected"]]
    got = np.r_[fast["r_chosen"], fast["r_rejected"]]
    assert ref.std() > 0.1  # the comparison is not between near-constant rewards
    assert np.abs(got - ref).max() <= PARITY_TOLERANCE[dtype] * ref.std()
    assert fast["pair_id"].tolist() == hh_pairs["pair_id"].tolist()
    if dtype == "bf16":  # bf16 PyTorch is no closer to fp32 than bf16 OpenVINO is (within a factor of 3)
        torch_bf16 = score_pairs(minilm_rm, hh_pairs, cfg=ScoreConfig(dtype="bf16", runtime="torch", max_length=512), progress=False)
        assert np.abs(got - ref).max() <= 3 * max(np.abs(np.r_[torch_bf16["r_chosen"], torch_bf16["r_rejected"]] - ref).max(), 1e-3)
    else:
        assert (np.sign(fast["margin"]) == np.sign(reference["margin"])).all()


def test_runtime_choice(minilm_rm):
    assert resolve_runtime("auto", torch.device("cpu"), minilm_rm.model) == "openvino"
    assert resolve_runtime("torch", torch.device("cpu"), minilm_rm.model) == "torch"
    with pytest.raises(RuntimeError, match="OpenVINO runs on the CPU"):
        resolve_runtime("openvino", torch.device("cuda"), minilm_rm.model)
    with pytest.raises(ValueError, match="runtime must be one of"):
        ScoreConfig(runtime="onnx")


def test_auto_keeps_untested_architectures_on_torch(tiny_decoder):
    from workbench.models.scoring import load_reward_model

    rm = load_reward_model(tiny_decoder, device="cpu")
    assert rm.scoring_conditions(ScoreConfig())["runtime"] == "torch"
    assert rm.scoring_conditions(ScoreConfig(runtime="openvino", dtype="fp32"))["runtime"] == "openvino"


def test_openvino_minilm_embeddings_match_sentence_transformers(hh_pairs):
    from workbench.data.schema import topic_text
    from workbench.models.embedding import OpenVINOSentenceEmbedder, embed_texts, load_embedder

    texts = [topic_text(p) for p in hh_pairs["prompt"]] + list(hh_pairs["chosen"])  # short and long (cut at 256 tokens)
    fast_model = load_embedder("")
    assert isinstance(fast_model, OpenVINOSentenceEmbedder)  # the default on a CPU
    reference = embed_texts(texts, model=load_embedder("", runtime="torch"), progress=False)
    fast = embed_texts(texts, model=fast_model, progress=False)
    cosine = (fast * reference).sum(axis=1)
    assert cosine.min() >= 0.999  # tolerance: bf16 rounding of activations on both paths
    nearest = lambda x: np.argsort(-(x @ x.T), axis=1)[:, 1:6]  # noqa: E731
    assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(nearest(fast), nearest(reference))]) >= 0.95
