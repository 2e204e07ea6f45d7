"""Long inputs are shortened like upstream expects: special tokens and role headers stay, texts get shorter.

Issue #23: rewards of inputs that fit are identical with truncation on; inputs that do not fit keep BOS
(Llama-style), their role headers (Llama- and Qwen3-style) and ``[CLS]``/``[SEP]`` (encoders); and the
project's encoding equals the Skywork-Reward-V2 card's recipe (``apply_chat_template(tokenize=False)``,
strip one leading BOS string, ``tokenizer(text)``), the rendering allenai/reward-bench's run_rm.py uses.
"""

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

from workbench.bench import data as benchmark_data
from workbench.models.scoring import HFRewardModel, ScoreConfig, encode_sides, fit_conversation

LONG_PROMPT = ("Please summarise the following article. " + "The quick brown fox jumps over the lazy dog. " * 20
               + "Keep the main claim.")
LONG_RESPONSE = "Reward models score a response. " * 30
CASES = [(LONG_PROMPT, "Short answer."), ("Short question?", LONG_RESPONSE), (LONG_PROMPT, LONG_RESPONSE)]


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _recipe_ids(tok, messages: list[dict]) -> list[int]:
    """Skywork-Reward-V2 model card / reward-bench rendering, written independently of workbench.models.scoring."""
    text = tok.apply_chat_template(messages, tokenize=False)
    if tok.bos_token is not None and text.startswith(tok.bos_token):
        text = text[len(tok.bos_token):]
    return list(tok(text)["input_ids"])


@pytest.mark.parametrize("style", ["llama", "qwen"])
def test_cut_inputs_keep_special_tokens_and_headers(style, llama_style_tokenizer, qwen_style_tokenizer):
    tok = llama_style_tokenizer if style == "llama" else qwen_style_tokenizer
    header = "<|start_header_id|>" if style == "llama" else "<|im_start|>"
    head_id, end_id = tok.convert_tokens_to_ids(header), tok.convert_tokens_to_ids("<|eot_id|>" if style == "llama" else "<|im_end|>")
    for prompt, response in CASES:
        whole, _ = encode_sides(tok, [_user(prompt)], [response], max_length=4096)
        (ids,), (cut,) = encode_sides(tok, [_user(prompt)], [response], max_length=60)
        assert cut and len(ids) == 60 < len(whole[0])
        assert ids.count(head_id) == 2 and ids.count(end_id) == 2, tok.decode(ids)
        if style == "llama":
            assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
        else:
            assert tok.bos_token_id is None and ids[0] == head_id
        text = tok.decode(ids)
        if prompt == LONG_PROMPT:  # the prompt is cut in its middle: both ends survive
            assert "Please summarise" in text and "Keep the main claim." in text
        if response == LONG_RESPONSE:  # the response keeps its beginning
            assert "Reward models score a response." in text
        if prompt != LONG_PROMPT or response != LONG_RESPONSE:  # the short side is untouched
            assert (prompt if prompt != LONG_PROMPT else response) in text


def test_inputs_that_fit_are_untouched_and_multi_turn_drops_oldest_first(llama_style_tokenizer):
    tok = llama_style_tokenizer
    prompt = _user("alpha " * 40) + [{"role": "assistant", "content": "beta"}] + _user("gamma question")
    whole = fit_conversation(tok, prompt, "delta answer", max_length=4096)
    exact = fit_conversation(tok, prompt, "delta answer", max_length=len(whole[1]))
    assert exact == (whole[0], whole[1], False) and whole[0] == prompt + [{"role": "assistant", "content": "delta answer"}]
    messages, ids, cut = fit_conversation(tok, prompt, "delta answer", max_length=len(whole[1]) - 1)
    assert cut and [m["content"] for m in messages] == ["beta", "gamma question", "delta answer"]  # the oldest turn went
    assert ids == _recipe_ids(tok, messages) and ids[0] == tok.bos_token_id
    with pytest.raises(ValueError, match="max_length=12 tokens cannot hold this input"):
        fit_conversation(tok, _user("hi"), "there", max_length=12)  # the template alone is longer


def test_encoder_pairs_keep_cls_and_sep(minilm_path):
    tok = AutoTokenizer.from_pretrained(minilm_path)
    for prompt, response in CASES:
        (ids,), (cut,) = encode_sides(tok, [_user(prompt)], [response], max_length=48)
        assert cut and len(ids) <= 48 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
        assert ids.count(tok.sep_token_id) == 2  # [CLS] conversation [SEP] response [SEP]
        text = tok.decode(ids)
        assert ("please summarise" in text) == (prompt == LONG_PROMPT)
        assert ("reward models" in text) == (response == LONG_RESPONSE)


@pytest.fixture(scope="module")
def llama_rm(llama_style_tokenizer):
    torch.manual_seed(0)
    tok = llama_style_tokenizer
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, num_labels=1, pad_token_id=tok.pad_token_id,
                      max_position_embeddings=4096)
    return HFRewardModel(LlamaForSequenceClassification(cfg).eval(), tok, name="tiny-llama-rm", device="cpu")


def test_parity_with_the_upstream_rendering_on_rewardbench_items(llama_rm, shared_data):
    """Real RewardBench v1 items (one per section); the reference reward is one unpadded forward pass."""
    items = benchmark_data.load_benchmark("rewardbench", data_dir=shared_data).items
    items = items.groupby("subset").head(1).iloc[::4].reset_index(drop=True)  # 6 subsets, all four sections
    prompts = [p for p in items["prompt"] for _ in range(2)]
    responses = [r for rs in items["responses"] for r in rs]
    tok = llama_rm.tokenizer

    def reference(messages: list[dict]) -> float:
        ids = torch.tensor([_recipe_ids(tok, messages)])
        with torch.inference_mode():
            return float(llama_rm.model(input_ids=ids).logits[0, 0])

    for max_length in (4096, 160):
        cfg = ScoreConfig(max_length=max_length, dtype="fp32", batch_size=4)
        rewards, truncated = llama_rm.score_sides(prompts, responses, cfg, progress=False)
        ids, _ = encode_sides(tok, prompts, responses, max_length=max_length)
        assert truncated.any() == (max_length == 160)
        for i, (p, r) in enumerate(zip(prompts, responses)):
            messages, _, cut = fit_conversation(tok, p, r, max_length=max_length)
            assert cut == truncated[i]
            assert ids[i] == _recipe_ids(tok, messages)  # a cut input is still a template rendering of whole messages
            assert rewards[i] == pytest.approx(reference(messages), abs=1e-5)
            if not cut:
                assert messages == p + [{"role": "assistant", "content": r}]
    whole = llama_rm.score_sides(prompts, responses, ScoreConfig(max_length=4096, dtype="fp32"), progress=False)[0]
    cut = llama_rm.score_sides(prompts, responses, ScoreConfig(max_length=160, dtype="fp32"), progress=False)
    np.testing.assert_array_equal(whole[~cut[1]], cut[0][~cut[1]])  # rewards of inputs that fit stay identical


def test_benchmark_defaults_follow_run_rm_and_cap_at_the_model(minilm_path):
    from transformers import AutoModelForSequenceClassification

    from workbench.models.scoring import BENCHMARK_SCORING

    assert (BENCHMARK_SCORING.max_length, BENCHMARK_SCORING.dtype) == (2048, "fp32")
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=1)
    rm = HFRewardModel(model, AutoTokenizer.from_pretrained(minilm_path), device="cpu")
    # MiniLM has 512 positions
    assert rm.scoring_conditions(BENCHMARK_SCORING) == {"max_length": 512, "dtype": "fp32", "runtime": "openvino"}
    rewards, truncated = rm.score_sides([_user("q " * 600)], ["a"], BENCHMARK_SCORING, progress=False)
    assert truncated.tolist() == [True] and np.isfinite(rewards).all()
