"""Scoring: encodings match a manual computation, dynamic padding changes nothing, caching, clear errors."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import make_pairs
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from workbench.data import files as io
from workbench.models.scoring import HFRewardModel, ScoreConfig, encode_sides, load_reward_model, score_pairs, settings_key
from workbench.runs.folder import start_run
from workbench.runs.stores import ScoreCache

FP32 = ScoreConfig(dtype="fp32", max_length=128, batch_size=4)


@pytest.fixture(scope="module")
def decoder_rm(tiny_decoder):
    return load_reward_model(tiny_decoder)


def test_chat_template_scoring_matches_manual(decoder_rm, tiny_decoder):
    pairs = make_pairs(6)
    scores = score_pairs(decoder_rm, pairs, cfg=FP32, progress=False)
    tok = AutoTokenizer.from_pretrained(tiny_decoder)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_decoder).eval()
    for row, s in zip(pairs.itertuples(), scores.itertuples()):
        manual = []
        for response in (row.chosen, row.rejected):
            ids = tok.apply_chat_template(row.prompt + [{"role": "assistant", "content": response}], tokenize=True)["input_ids"]
            with torch.no_grad():
                manual.append(model(input_ids=torch.tensor([ids])).logits[0, 0].item())
        assert s.r_chosen == pytest.approx(manual[0], abs=1e-5) and s.r_rejected == pytest.approx(manual[1], abs=1e-5)
        assert s.margin == pytest.approx(manual[0] - manual[1], abs=1e-5)
        assert s.p == pytest.approx(1 / (1 + np.exp(-(manual[0] - manual[1]))), abs=1e-6)


def test_encoder_text_pair_scoring_matches_manual(minilm_path):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=1)
    tok = AutoTokenizer.from_pretrained(minilm_path)
    rm = HFRewardModel(model, tok, name="minilm-random-head")
    pairs = make_pairs(3)
    scores = score_pairs(rm, pairs, cfg=FP32, progress=False)
    row = pairs.iloc[0]
    enc = tok(f"user: {row['prompt'][0]['content']}", row["chosen"], return_tensors="pt")
    with torch.no_grad():
        manual = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[0, 0].item()
    assert scores["r_chosen"].iloc[0] == pytest.approx(manual, abs=1e-5)


def test_batched_dynamic_padding_equals_one_by_one(decoder_rm):
    pairs = make_pairs(10)
    batched = score_pairs(decoder_rm, pairs, cfg=FP32, progress=False)
    single = score_pairs(decoder_rm, pairs, cfg=ScoreConfig(dtype="fp32", max_length=128, batch_size=1), progress=False)
    np.testing.assert_allclose(batched["r_chosen"], single["r_chosen"], atol=1e-5)
    assert batched["pair_id"].tolist() == pairs["pair_id"].tolist()


def test_cache_skips_scored_pairs(decoder_rm, tmp_path):
    pairs = make_pairs(8)
    run = start_run(tmp_path / "run")
    cache = ScoreCache(run, settings_key(decoder_rm, FP32))
    calls = []
    real = decoder_rm.score_sides

    def counting(prompts, responses, cfg, progress=True):
        calls.append(len(prompts))
        return real(prompts, responses, cfg, progress=progress)

    decoder_rm.score_sides = counting
    try:
        first = score_pairs(decoder_rm, pairs.iloc[:5], cfg=FP32, cache=cache, progress=False)
        both = score_pairs(decoder_rm, pairs, cfg=FP32, cache=cache, progress=False)
        again = score_pairs(decoder_rm, pairs, cfg=FP32, cache=cache, progress=False)
    finally:
        del decoder_rm.score_sides
    assert calls == [10, 6]  # 5 pairs x 2 sides, then only the 3 new pairs
    assert both["pair_id"].tolist() == pairs["pair_id"].tolist() and again.equals(both)
    np.testing.assert_allclose(both["r_chosen"].iloc[:5], first["r_chosen"])


def test_long_pairs_are_reported_not_silent(decoder_rm):
    pairs = make_pairs(3)
    pairs.at[0, "prompt"] = [{"role": "user", "content": "old " * 200}, {"role": "assistant", "content": "ok"},
                             {"role": "user", "content": "now?"}]
    with pytest.warns(UserWarning, match=r"1 of 3 pairs are longer than max_length=64 tokens"):
        scores = score_pairs(decoder_rm, pairs, cfg=ScoreConfig(max_length=64), progress=False)
    assert scores["truncated"].tolist() == [True, False, False]
    with pytest.raises(ValueError, match="truncation='error'"):
        score_pairs(decoder_rm, pairs, cfg=ScoreConfig(max_length=64, truncation="error"), progress=False)


def test_truncation_drops_oldest_turns_first(tiny_decoder):
    tok = AutoTokenizer.from_pretrained(tiny_decoder)
    prompt = [{"role": "user", "content": "alpha " * 50}, {"role": "assistant", "content": "beta"},
              {"role": "user", "content": "gamma question"}]
    (ids,), (trunc,) = encode_sides(tok, [prompt], ["delta answer"], max_length=30)
    text = tok.decode(ids)
    assert trunc and len(ids) <= 30 and "gamma" in text and "delta" in text and "alpha" not in text


def test_not_a_reward_model_errors(tmp_path, minilm_path):
    with pytest.raises(ValueError, match="classification head.*is not in the checkpoint"):
        load_reward_model(minilm_path)  # a sentence-embedding backbone, no trained head
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=3)
    model.save_pretrained(tmp_path / "three")
    with pytest.raises(ValueError, match="num_labels=3"):
        load_reward_model(tmp_path / "three")
    with pytest.raises(ValueError, match="num_labels=3: not a reward model"):
        HFRewardModel(model, AutoTokenizer.from_pretrained(minilm_path))


def test_save_load_fresh_process_identical(decoder_rm, tiny_decoder, tmp_path):
    pairs = make_pairs(4)
    io.write_pairs(pairs, tmp_path / "p.parquet")
    here = score_pairs(decoder_rm, pairs, cfg=ScoreConfig(max_length=128), progress=False)
    code = ("import sys; from workbench.data import files as io; from workbench.models.scoring import *; "
            f"s = score_pairs(load_reward_model(r'{tiny_decoder}'), io.load_pairs(r'{tmp_path / 'p.parquet'}'), "
            "cfg=ScoreConfig(max_length=128), progress=False); print(','.join(repr(x) for x in s['r_chosen']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True).stdout
    assert [float(x) for x in out.strip().splitlines()[-1].split(",")] == here["r_chosen"].tolist()


def test_score_config_validation():
    with pytest.raises(ValueError, match="truncation must be one of"):
        ScoreConfig(truncation="drop")
    with pytest.raises(ValueError, match="max_length must be >= 8"):
        ScoreConfig(max_length=2)


def test_accuracy_ci_is_paired_and_brackets_the_point():
    import pandas as pd

    from workbench.models.scoring import accuracy_ci

    pairs = make_pairs(40)
    margin = np.where(np.arange(40) % 4 == 0, -1.0, 1.0)  # 30 of 40 right
    margin[1] = 0.0  # a tie counts half
    scores = pd.DataFrame({"pair_id": pairs["pair_id"], "margin": margin})
    out = accuracy_ci(pairs, scores, n_boot=500)
    assert out["accuracy"] == pytest.approx(29.5 / 40) and out["ci_low"] < out["accuracy"] < out["ci_high"]
    assert out["diff_vs_longer"] == pytest.approx(out["accuracy"] - out["longer_wins"])
    assert out["diff_ci_low"] <= out["diff_vs_longer"] <= out["diff_ci_high"] and out["n"] == 40
    with pytest.raises(ValueError, match="1 pairs have no score"):
        accuracy_ci(pairs, scores.iloc[1:], n_boot=10)
