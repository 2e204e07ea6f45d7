"""The LLM client, tagger and judge against a real OpenAI-compatible server nobody here wrote (issue #22).

`transformers serve` runs on 127.0.0.1 (unpinned: the model is named per request, loaded from a local
folder) with tiny Llama models built from a config in this file, no download:
* ``random``: random weights, so it never writes valid JSON (the failure path);
* ``judge`` / ``tagger``: every block zeroed and the embeddings/LM head set so that after the chat
  template's generation prompt the next token is one added token whose text is a fixed valid JSON
  answer, then EOS (the success path).
`transformers serve` accepts ``response_format`` and ignores it, which the client must notice.
Skipped with the reason when the serving extras (fastapi, uvicorn: in the ``dev`` extra) are missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="transformers serve needs the serving extras: pip install -e '.[dev]' (fastapi, uvicorn)")
pytest.importorskip("uvicorn", reason="transformers serve needs the serving extras: pip install -e '.[dev]' (fastapi, uvicorn)")

import torch  # noqa: E402
from conftest import free_port, make_chat_tokenizer, make_pairs, wait_until_healthy  # noqa: E402
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM  # noqa: E402

from workbench.curation import stage2
from workbench.curation.review import JudgeReviewer  # noqa: E402
from workbench.curation.tagging import LLMTagger, tag_pairs  # noqa: E402
from workbench.llm.client import ChatClient, EndpointConfig, EndpointError  # noqa: E402
from workbench.llm.judge import FAILED, JudgeConfig, LLMJudge, judge_pairs  # noqa: E402
from workbench.runs.stores import ResultStore

JUDGE_ANSWER = json.dumps({"reason": "Candidate 1 answers the question.", "better": 1})
TAGGER_ANSWER = json.dumps({"task_category": "knowledge_qa", "objectivity": "objective", "controversiality": "low",
                            "desired_attributes": ["accurate"], "annotation_guideline": "Prefer the accurate answer."})


def _tiny_chat_model(folder: Path, answer: str | None) -> Path:
    tok = make_chat_tokenizer("qwen")
    tok.add_special_tokens({"additional_special_tokens": ["<|gen|>"]})
    if answer:
        tok.add_tokens([answer])  # a plain added token: decoded as its text
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant<|gen|>{% endif %}")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=8192, tie_word_embeddings=False,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    if answer:
        gen, ans, eos = tok.convert_tokens_to_ids("<|gen|>"), tok.convert_tokens_to_ids(answer), tok.eos_token_id
        with torch.no_grad():
            for p in model.model.layers.parameters():
                p.zero_()  # no block adds anything: the last hidden state is the current token's embedding
            emb, head = model.model.embed_tokens.weight, model.lm_head.weight
            emb.zero_()
            emb[:, 2] = 1.0
            emb[gen], emb[ans] = 0.0, 0.0
            emb[gen, 0], emb[ans, 1] = 1.0, 1.0
            head.zero_()
            head[ans, 0] = 50.0  # after the generation prompt: the answer token
            head[eos, 1] = head[eos, 2] = 50.0  # after the answer (or anything else): EOS
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, do_sample=False)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base_url, {"random": path, "judge": path, "tagger": path}) of a running `transformers serve`."""
    root = tmp_path_factory.mktemp("served")
    models = {"random": _tiny_chat_model(root / "random", None), "judge": _tiny_chat_model(root / "judge", JUDGE_ANSWER),
              "tagger": _tiny_chat_model(root / "tagger", TAGGER_ANSWER)}
    port = free_port()
    cli = Path(sys.executable).with_name("transformers")
    log = open(root / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(cli), "serve", "--host", "127.0.0.1", "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc, root / "serve.log", "transformers serve", timeout_s=120)
        # The server's very first request costs ~2.5 s whatever it asks (lazy imports, cache scan): pay it here,
        # so the timings below are the client's, as on a server that has answered before.
        warm_up = json.dumps({"model": str(models["judge"]), "messages": [{"role": "user", "content": "warm up"}],
                              "max_tokens": 1}).encode()
        try:
            urllib.request.urlopen(urllib.request.Request(base + "/v1/chat/completions", data=warm_up, headers={
                "Content-Type": "application/json"}), timeout=120).close()
        except urllib.error.HTTPError:  # an error answer warms up as well
            pass
        yield base + "/v1", {k: str(v) for k, v in models.items()}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _client(base_url: str, model: str, **kw) -> ChatClient:
    settings = {"max_tokens": 8, "timeout_s": 60, "backoff_s": 0.01, "concurrency": 2, **kw}
    return ChatClient(EndpointConfig(base_url=base_url, model=model, **settings))


def test_wrong_model_name_fails_the_batch_in_under_two_seconds(served):
    base, _ = served
    client = _client(base, "/no/such/model")
    t0 = time.perf_counter()
    with pytest.raises(EndpointError, match=r"cannot serve model '/no/such/model'.*HTTP 500"):
        client.complete_many([[{"role": "user", "content": "hi"}]] * 8, progress=False)
    assert time.perf_counter() - t0 < 2.0 and client.usage["requests"] == 1  # one preflight, no retries


def test_judge_success_path_gives_valid_labels(served, tmp_path):
    base, models = served
    judge = LLMJudge([_client(base, models["judge"])], JudgeConfig(samples=2))
    out = judge_pairs(make_pairs(3), judge, store=ResultStore(tmp_path / "j.sqlite", "judge"), progress=False)
    assert out["n_valid"].eq(2).all() and out["judge_label"].isin(["chosen", "rejected", "tie"]).all()
    assert not out["judge_label"].eq(FAILED).any()


def test_a_judge_that_never_answers_json_fails_not_ties_and_retry_asks_again(served, tmp_path):
    base, models = served
    pairs = make_pairs(2)
    store = ResultStore(tmp_path / "j.sqlite", "judge")
    client = _client(base, models["random"], max_retries=1)
    reviewer = JudgeReviewer(LLMJudge([client], JudgeConfig(samples=1)), store)
    out = judge_pairs(pairs, reviewer.judge, store=store, progress=False)
    assert out["judge_label"].eq(FAILED).all() and out["n_valid"].eq(0).all()  # a failure, not the judge's opinion
    # Stage 2: the failed pairs are recorded as failed and get no judge vote
    labels = stage2.judge_labels(pairs, [0.5, 0.5], reviewer, stage2.Stage2Config())
    assert labels == [FAILED, FAILED] and reviewer.failed_ids == set(pairs["pair_id"])
    decisions = stage2.consistency_decisions(pairs["pair_id"], [0.5, 0.5], [0.9, 0.9], labels)
    assert decisions["judge_vote"].eq(0).all() and decisions["stage2_decision"].eq("drop").all()
    assert reviewer.decide(pairs) == []  # no decision: the pairs stay open for people in Stage 1
    sent = client.usage["requests"]
    judge_pairs(pairs, reviewer.judge, store=store, progress=False)
    assert client.usage["requests"] == sent  # stored failures are not asked again by default ...
    judge_pairs(pairs, reviewer.judge, store=store, retry_failed=True, progress=False)
    assert client.usage["requests"] > sent  # ... and are with retry_failed=True
    # transformers serve accepted response_format and ignored it: the client says so once
    assert client.usage["structured_output_ignored"] == 1 and client.structured_mode == "json_schema"
    assert len(client.notes) == 1 and "does not enforce it" in client.notes[0] and "vLLM" in client.notes[0]


def test_llm_tagger_against_the_real_server(served, tmp_path):
    base, models = served
    tagger = LLMTagger(_client(base, models["tagger"], max_tokens=4))
    tags = tag_pairs(make_pairs(3), tagger, store=ResultStore(tmp_path / "t.sqlite", "tags"), progress=False)
    assert tags["tag_ok"].all() and set(tags["task_category"]) == {"knowledge_qa"} and not tags["heuristic"].any()
    broken = LLMTagger(_client(base, models["random"], max_retries=1))
    failed = tag_pairs(make_pairs(2), broken, store=ResultStore(tmp_path / "t2.sqlite", "tags"), progress=False)
    assert not failed["tag_ok"].any() and failed["tag_error"].str.contains("invalid JSON").all()
