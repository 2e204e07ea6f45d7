"""ChatClient against the scriptable fake server: retries, structured output, batching, secrets."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from fake_llm_server import FakeLLMServer, Reply

from workbench.llm.client import CallResult, ChatClient, EndpointConfig, check_schema, extract_json

SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["good", "bad"]}, "score": {"type": "integer", "minimum": 1,
                                                                                   "maximum": 5}},
    "required": ["label", "score"],
    "additionalProperties": False,
}
GOOD = json.dumps({"label": "good", "score": 4})
MSGS = [{"role": "user", "content": "rate this"}]
FAKE_KEY = "sk-test-SECRET-0123456789abcdef"


@pytest.fixture
def server():
    with FakeLLMServer(responder=lambda req: GOOD) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("WORKBENCH_LLM_BASE_URL", "WORKBENCH_LLM_MODEL", "WORKBENCH_LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def make_client(srv: FakeLLMServer, **kw) -> ChatClient:
    kw = {"backoff_s": 0.01, "timeout_s": 2.0, "max_retries": 3, **kw}
    return ChatClient(EndpointConfig(base_url=srv.base_url, model="fake-model", **kw))


def test_success_counts_usage_and_cost(server):
    server.plan(Reply.ok(GOOD, usage=(1000, 500)))
    client = make_client(server, price_in_per_1k=0.5, price_out_per_1k=2.0)
    r = client.complete(MSGS, schema=SCHEMA)
    assert isinstance(r, CallResult)
    assert r.ok and r.error is None and r.attempts == 1
    assert r.parsed == {"label": "good", "score": 4} and r.content == GOOD
    assert (r.prompt_tokens, r.completion_tokens) == (1000, 500)
    u = client.usage
    assert u["calls"] == 1 and u["requests"] == 1 and u["failures"] == 0
    assert (u["prompt_tokens"], u["completion_tokens"]) == (1000, 500)
    assert u["estimated_cost_usd"] == pytest.approx(0.5 + 1.0)
    body = server.chat_requests()[0].body
    assert body["model"] == "fake-model" and body["messages"] == MSGS
    assert body["temperature"] == 0.0 and body["max_tokens"] == 512
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "attributes", "schema": SCHEMA, "strict": True}}


def test_plain_text_without_schema_and_missing_usage(server):
    server.plan(Reply.ok("just text", usage=False))
    r = make_client(server).complete(MSGS, temperature=0.7, seed=3)
    assert r.ok and r.content == "just text" and r.parsed is None
    assert (r.prompt_tokens, r.completion_tokens) == (0, 0)
    body = server.chat_requests()[0].body
    assert "response_format" not in body and body["temperature"] == 0.7 and body["seed"] == 3


def test_500_then_success(server):
    server.plan(Reply.error(500), Reply.ok(GOOD))
    r = make_client(server).complete(MSGS, schema=SCHEMA)
    assert r.ok and r.attempts == 2 and r.parsed["score"] == 4


def test_429_retry_after_is_honoured(server):
    server.plan(Reply.rate_limited(retry_after=1), Reply.ok(GOOD))
    t = time.perf_counter()
    r = make_client(server).complete(MSGS, schema=SCHEMA)
    elapsed = time.perf_counter() - t
    assert r.ok and r.attempts == 2
    assert elapsed >= 1.0
    reqs = server.chat_requests()
    assert reqs[1].t - reqs[0].t >= 1.0


def test_timeout_then_success(server):
    server.plan(Reply.sleep(1.5), Reply.ok(GOOD))
    r = make_client(server, timeout_s=0.3).complete(MSGS, schema=SCHEMA)
    assert r.ok and r.attempts == 2


def test_timeout_every_time_reports_reason(server):
    server.plan(Reply.sleep(1.0), Reply.sleep(1.0))
    r = make_client(server, timeout_s=0.2, max_retries=1).complete(MSGS)
    assert not r.ok and r.attempts == 2
    assert r.error.startswith("timeout after 0.2s") and "after 1 retries" in r.error


def test_repeated_500_fails_without_exception(server):
    server.plan(*[Reply.error(500, "boom")] * 10)
    r = make_client(server, max_retries=4).complete(MSGS, schema=SCHEMA)
    assert not r.ok and r.attempts == 5 and r.parsed is None
    assert r.error.startswith("HTTP 500 after 4 retries") and "boom" in r.error
    assert len(server.chat_requests()) == 5
    assert server.pending == 5
    assert make_client(server).usage["failures"] == 0  # usage is per client
    c = make_client(server, max_retries=0)
    assert c.complete(MSGS).error == "HTTP 500: boom" and c.usage["failures"] == 1


@pytest.mark.parametrize("bad, reason", [
    (Reply.malformed(), "malformed response body (not JSON)"),
    (Reply.ok("Sure! The label is good."), "invalid JSON"),
    (Reply.ok(json.dumps({"label": "great", "score": 4})), "schema: field 'label' must be one of"),
    (Reply.ok(json.dumps({"label": "good"})), "schema: field 'score' is required"),
])
def test_bad_replies_are_retried_then_reported(server, bad, reason):
    server.plan(bad, Reply.ok(GOOD))
    r = make_client(server).complete(MSGS, schema=SCHEMA)
    assert r.ok and r.attempts == 2  # retried once, then fine

    server.clear()
    server.plan(*[bad] * 3)
    r = make_client(server, max_retries=2).complete(MSGS, schema=SCHEMA)
    assert not r.ok and r.attempts == 3 and r.parsed is None
    assert reason in r.error and "after 2 retries" in r.error


def test_reask_carries_the_reason(server):
    server.plan(Reply.ok("no json here"), Reply.ok(GOOD))
    r = make_client(server).complete(MSGS, schema=SCHEMA)
    assert r.ok
    second = server.chat_requests()[1].body["messages"]
    assert second[:1] == MSGS and second[1] == {"role": "assistant", "content": "no json here"}
    assert "invalid JSON" in second[2]["content"]


def test_validate_callable(server):
    def validate(d):
        if d["score"] < 3:
            raise ValueError(f"score {d['score']} too low")
        return (d["label"], d["score"])

    server.plan(Reply.ok('{"label": "bad", "score": 1}'), Reply.ok("```json\n" + GOOD + "\n```"))
    r = make_client(server).complete(MSGS, validate=validate)
    assert r.ok and r.parsed == ("good", 4) and r.attempts == 2
    # only a validator: JSON is still requested (json_object, no schema to send)
    assert server.chat_requests()[0].body["response_format"] == {"type": "json_object"}


def test_truncated_reply_names_max_tokens(server):
    server.plan(Reply.ok('{"label": "go', finish_reason="length"))
    r = make_client(server, max_retries=0).complete(MSGS, schema=SCHEMA)
    assert not r.ok and "max_tokens=512" in r.error


def test_auto_falls_back_from_json_schema_to_json_object():
    with FakeLLMServer(responder=lambda req: GOOD, reject_json_schema=True) as srv:
        client = make_client(srv)
        r = client.complete(MSGS, schema=SCHEMA)
        assert r.ok and r.parsed["label"] == "good"
        kinds = [req.body.get("response_format", {}).get("type") for req in srv.chat_requests()]
        assert kinds == ["json_schema", "json_object"]
        assert client.structured_mode == "json_object"
        assert client.complete(MSGS, schema=SCHEMA).ok  # remembered: no second probe
        kinds = [req.body.get("response_format", {}).get("type") for req in srv.chat_requests()]
        assert kinds == ["json_schema", "json_object", "json_object"]


def test_auto_falls_back_to_no_response_format():
    with FakeLLMServer(responder=lambda req: "Here: " + GOOD, reject_json_schema=True,
                       reject_json_object=True) as srv:
        client = make_client(srv)
        r = client.complete(MSGS, schema=SCHEMA)
        assert r.ok and r.parsed["score"] == 4 and client.structured_mode == "none"
        assert "response_format" not in srv.chat_requests()[-1].body


def test_explicit_json_schema_mode_does_not_fall_back():
    with FakeLLMServer(responder=lambda req: GOOD, reject_json_schema=True) as srv:
        r = make_client(srv, json_schema_mode="json_schema").complete(MSGS, schema=SCHEMA)
        assert not r.ok and r.attempts == 1 and "HTTP 400" in r.error and "json_schema_mode='auto'" in r.error


def test_401_is_not_retried_and_key_is_redacted(monkeypatch):
    monkeypatch.setenv("WORKBENCH_LLM_API_KEY", FAKE_KEY)
    with FakeLLMServer(responder=lambda req: GOOD, api_key="the-right-key") as srv:
        client = make_client(srv)
        r = client.complete(MSGS, schema=SCHEMA)
        assert not r.ok and r.attempts == 1 and len(srv.chat_requests()) == 1
        assert r.error.startswith("HTTP 401") and "WORKBENCH_LLM_API_KEY" in r.error
        # the key was sent, and the server echoed it, but it is nowhere in what the client shows
        assert srv.chat_requests()[0].headers["Authorization"] == f"Bearer {FAKE_KEY}"
        assert "***" in r.error
        shown = [repr(client), str(client), repr(client.cfg), repr(r), str(r), r.error, json.dumps(client.usage)]
        assert not any(FAKE_KEY in s for s in shown)


def test_key_sent_as_bearer_and_absent_from_reprs(monkeypatch):
    monkeypatch.setenv("MY_KEY_VAR", FAKE_KEY)
    with FakeLLMServer(responder=lambda req: GOOD, api_key=FAKE_KEY) as srv:
        client = make_client(srv, api_key_env="MY_KEY_VAR")
        results = client.complete_many([MSGS] * 3, schema=SCHEMA, progress=False)
        assert all(r.ok for r in results)
        assert all(req.headers["Authorization"] == f"Bearer {FAKE_KEY}" for req in srv.chat_requests())
        assert FAKE_KEY not in repr(client) + repr(client.cfg) + repr(results) + str(vars(client))


def test_404_error_explains(server):
    server.plan(Reply.error(404, "model 'fake-model' not found"))
    r = make_client(server).complete(MSGS)
    assert not r.ok and r.attempts == 1 and "HTTP 404" in r.error and "not found" in r.error


def test_connection_refused_is_retried_then_reported():
    with FakeLLMServer() as srv:
        url = srv.base_url
    client = ChatClient(EndpointConfig(base_url=url, model="m", backoff_s=0.01, max_retries=2, timeout_s=1))
    r = client.complete(MSGS)
    assert not r.ok and r.attempts == 3 and r.error.startswith("connection error")


def test_complete_many_order_and_overlap():
    with FakeLLMServer(responder=lambda req: json.dumps({"echo": req["messages"][0]["content"]}),
                       latency_s=0.2) as srv:
        client = make_client(srv, concurrency=8)
        batch = [[{"role": "user", "content": f"item {i}"}] for i in range(8)]
        t = time.perf_counter()
        results = client.complete_many(batch, validate=lambda d: d["echo"], progress=False)
        wall = time.perf_counter() - t
        assert [r.parsed for r in results] == [f"item {i}" for i in range(8)]
        assert wall < 4 * 0.2, f"8 requests at concurrency 8 took {wall:.2f}s: calls did not overlap"
        assert srv.max_in_flight > 1
        assert len(srv.chat_requests()) == 8  # zero repeated requests
        assert client.usage["calls"] == 8


def test_complete_many_one_failure_does_not_abort(server):
    def validate(d):
        if d.get("boom"):
            raise RuntimeError("bug in validator")  # not a validation error: an internal error
        return d

    server.plan(Reply.ok('{"boom": true}'))
    client = make_client(server, concurrency=1)
    results = client.complete_many([MSGS] * 3, validate=validate, progress=False)
    assert [r.ok for r in results] == [False, True, True]
    assert results[0].error.startswith("internal error: RuntimeError")
    assert client.usage["failures"] == 1


def test_n_samples_native_and_sequential_fallback():
    with FakeLLMServer(responder=lambda req: GOOD) as srv:
        rs = make_client(srv).complete(MSGS, schema=SCHEMA, n=3, temperature=0.8)
        assert isinstance(rs, list) and len(rs) == 3 and all(r.ok for r in rs)
        assert len(srv.chat_requests()) == 1 and srv.chat_requests()[0].body["n"] == 3
    with FakeLLMServer(responder=lambda req: GOOD, support_n=False) as srv:
        client = make_client(srv)
        rs = client.complete(MSGS, schema=SCHEMA, n=3, temperature=0.8, seed=10)
        assert len(rs) == 3 and all(r.ok for r in rs)
        seeds = [req.body.get("seed") for req in srv.chat_requests()]
        assert seeds == [10, 11, 12]
        assert client.complete(MSGS, schema=SCHEMA, n=2, temperature=0.8) and len(srv.chat_requests()) == 5


def test_n_sample_that_fails_validation_is_reasked():
    with FakeLLMServer(responder=lambda req: GOOD) as srv:
        srv.plan(Reply.ok('{"label": "meh", "score": 2}'))  # all n choices of the first request are invalid
        rs = make_client(srv).complete(MSGS, schema=SCHEMA, n=2, temperature=0.8)
        assert [r.ok for r in rs] == [True, True]
        assert len(srv.chat_requests()) == 3  # one n=2 request + one re-ask per sample


def test_config_resolution_and_validation(monkeypatch):
    with pytest.raises(ValueError, match=r"no LLM endpoint configured: set base_url or \$WORKBENCH_LLM_BASE_URL"):
        EndpointConfig().resolved()
    with pytest.raises(ValueError, match="no LLM endpoint configured"):
        ChatClient(EndpointConfig())
    monkeypatch.setenv("WORKBENCH_LLM_BASE_URL", "http://localhost:8000/v1/")
    with pytest.raises(ValueError, match=r"no LLM model configured: set model or \$WORKBENCH_LLM_MODEL"):
        EndpointConfig().resolved()
    monkeypatch.setenv("WORKBENCH_LLM_MODEL", "qwen")
    cfg = EndpointConfig().resolved()
    assert (cfg.base_url, cfg.model) == ("http://localhost:8000/v1", "qwen")
    with pytest.raises(ValueError, match="json_schema_mode='xml' is invalid"):
        EndpointConfig(json_schema_mode="xml")
    with pytest.raises(ValueError, match="looks like a key") as err:
        EndpointConfig(api_key_env=FAKE_KEY)
    assert FAKE_KEY not in str(err.value)
    with pytest.raises(ValueError, match="NAME of an environment variable") as err:
        EndpointConfig(api_key_env="my key 123")
    assert "my key 123" not in str(err.value)
    with pytest.raises(ValueError, match="base_url='localhost:8000' is invalid"):
        EndpointConfig(base_url="localhost:8000")
    for bad in ({"max_retries": -1}, {"concurrency": 0}, {"timeout_s": 0}, {"temperature": 3}, {"max_tokens": 0}):
        with pytest.raises(ValueError, match="is invalid"):
            EndpointConfig(**bad)


def test_extract_json_and_check_schema():
    assert extract_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('<think>maybe {"a": 0}</think>\nAnswer: {"a": 2} done') == {"a": 2}
    assert extract_json('[1, 2]') == [1, 2]
    with pytest.raises(ValueError, match="invalid JSON"):
        extract_json("nothing")
    with pytest.raises(ValueError, match=r"field 'score' must be <= 5, got 9"):
        check_schema({"label": "good", "score": 9}, SCHEMA)
    with pytest.raises(ValueError, match=r"field 'extra' is not allowed"):
        check_schema({"label": "good", "score": 1, "extra": 1}, SCHEMA)
    with pytest.raises(ValueError, match=r"field 'xs\[1\]' should be integer"):
        check_schema({"xs": [1, "2"]}, {"type": "object", "properties": {"xs": {"type": "array",
                                                                                "items": {"type": "integer"}}}})
    with pytest.raises(ValueError, match="should be integer"):
        check_schema(True, {"type": "integer"})


# ---------------------------------------------------------------- issue #22: preflight, capabilities, ignored structure


def test_wrong_model_fails_the_batch_at_once_with_one_request():
    from workbench.llm.client import EndpointError

    with FakeLLMServer(responder=lambda req: GOOD, model="served-model") as srv:
        client = make_client(srv, max_retries=4, backoff_s=1.0)
        t0 = time.perf_counter()
        with pytest.raises(EndpointError, match=r"cannot serve model 'fake-model'.*HTTP 404.*does not exist.*"
                                                r"The server lists: served-model"):
            client.complete_many([MSGS] * 10, schema=SCHEMA, progress=False)
        assert time.perf_counter() - t0 < 2.0 and client.usage["requests"] == 1 and srv.chat_requests() == []
    with FakeLLMServer(responder=lambda req: GOOD) as srv:  # the right name: one ping, then the batch, once per client
        client = make_client(srv)
        assert all(r.ok for r in client.complete_many([MSGS] * 3, schema=SCHEMA, progress=False))
        client.complete_many([MSGS] * 2, schema=SCHEMA, progress=False)
        assert client.usage["requests"] == 1 + 5 and len(srv.chat_requests()) == 5


def test_an_unrelated_400_does_not_turn_off_n():
    with FakeLLMServer(responder=lambda req: GOOD) as srv:
        client = make_client(srv)
        srv.plan(Reply.error(400, "The model `fake-modl` does not exist."))
        rs = client.complete(MSGS, schema=SCHEMA, n=2, temperature=0.8)
        assert not any(r.ok for r in rs) and "does not exist" in rs[0].error
        assert client._n_supported is None  # still untested, not "rejected"
        assert len(client.complete(MSGS, schema=SCHEMA, n=2, temperature=0.8)) == 2
        assert srv.chat_requests()[-1].body["n"] == 2 and client._n_supported is True
        srv.plan(Reply.error(400, "'n' is not supported with this model; use n=1"))
        assert all(r.ok for r in client.complete(MSGS, schema=SCHEMA, n=2, temperature=0.8))
        assert client._n_supported is False and "n" not in srv.chat_requests()[-1].body  # about n: sequential now


def test_a_server_that_ignores_response_format_is_named_once():
    with FakeLLMServer(responder=lambda req: "Sure! The label is good.") as srv:  # accepts json_schema, never obeys
        client = make_client(srv, max_retries=2)
        results = client.complete_many([MSGS] * 3, schema=SCHEMA, progress=False)
        assert not any(r.ok for r in results) and len(srv.chat_requests()) == 9  # re-asking unchanged: 3 x (1 + 2)
        assert client.usage["structured_output_ignored"] == 1 and client.structured_mode == "json_schema"
        assert len(client.notes) == 1 and "does not enforce it" in client.notes[0] and "llama.cpp" in client.notes[0]
    with FakeLLMServer(responder=lambda req: GOOD) as srv:  # an obeying server: nothing to say
        client = make_client(srv)
        client.complete_many([MSGS] * 5, schema=SCHEMA, progress=False)
        assert client.usage["structured_output_ignored"] == 0 and client.notes == []


# ---------------------------------------------------------------- issue #20: deadlines, odd replies, redirects


def test_a_slow_drip_body_stops_at_the_call_deadline():
    with FakeLLMServer(responder=lambda req: GOOD) as srv:
        srv.plan(Reply.drip(1.5))  # every read is quick (1.5 s < timeout_s=5); the body never ends in time
        client = make_client(srv, timeout_s=5, call_deadline_s=3)
        t0 = time.perf_counter()
        result = client.complete(MSGS, schema=SCHEMA)
        took = time.perf_counter() - t0
        assert not result.ok and "call deadline of 3s passed (the body was still arriving)" in result.error
        assert took < 3 + 1.0, took  # not 22.5 s: the deadline bounds the whole call


def test_a_huge_retry_after_fails_at_once_with_the_reason():
    with FakeLLMServer(responder=lambda req: GOOD) as srv:
        srv.plan(Reply.rate_limited(retry_after=99999))
        client = make_client(srv, call_deadline_s=30)
        t0 = time.perf_counter()
        result = client.complete(MSGS, schema=SCHEMA)
        assert time.perf_counter() - t0 < 1.0 and not result.ok
        # The openai SDK does not cap a Retry-After (the old client capped it at 300 s): over 120 s it does not
        # retry at all, so the reason names the server's own wait.
        assert "after 99999.0s (Retry-After), past the deadline" in result.error and "call_deadline_s=30" in result.error
        srv.plan(Reply.rate_limited(retry_after=0.2))  # a short one is still honoured
        assert client.complete(MSGS, schema=SCHEMA).ok


def test_the_batch_deadline_bounds_a_whole_batch():
    with FakeLLMServer(responder=lambda req: GOOD, latency_s=0.4) as srv:
        client = make_client(srv, concurrency=1, batch_deadline_s=1.0, call_deadline_s=60)
        t0 = time.perf_counter()
        results = client.complete_many([MSGS] * 8, schema=SCHEMA, progress=False)
        assert time.perf_counter() - t0 < 1.0 + 1.0
        assert results[0].ok and not results[-1].ok and "batch deadline of 1s passed" in results[-1].error
        assert all(r.ok for r in client.complete_many([MSGS], schema=SCHEMA, progress=False))  # the next batch is new


def test_list_of_parts_content_is_read_and_tool_calls_are_named():
    parts = {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": [
        {"type": "text", "text": '{"label": "good", '}, {"type": "text", "text": '"score": 4}'}]}}]}
    tools = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
             "tool_calls": [{"id": "1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]}}]}
    with FakeLLMServer(responder=lambda req: GOOD) as srv:
        srv.plan(Reply(raw_body=json.dumps(parts).encode()), *[Reply(raw_body=json.dumps(tools).encode())] * 2)
        client = make_client(srv, max_retries=1)
        assert client.complete(MSGS, schema=SCHEMA).parsed == {"label": "good", "score": 4}
        failed = client.complete(MSGS, schema=SCHEMA)
        assert not failed.ok and "the reply holds tool_calls (lookup) and no text content" in failed.error


def test_redirects_are_followed_on_the_same_host_and_named_otherwise():
    with FakeLLMServer(responder=lambda req: GOOD) as srv:
        same = f"http://127.0.0.1:{srv.port}/v1/chat/completions"
        srv.plan(Reply(status=307, raw_body=b"", headers={"Location": same}))
        assert make_client(srv).complete(MSGS, schema=SCHEMA).ok
        srv.plan(Reply(status=307, raw_body=b"", headers={"Location": "https://elsewhere.example/v1/chat/completions"}))
        result = make_client(srv).complete(MSGS, schema=SCHEMA)
        assert not result.ok and "redirected to https://elsewhere.example/v1/chat/completions, another host" in result.error


# ---------------------------------------------------------------- on the openai SDK: its backoff, our deadline


def test_sdk_backoff_follows_backoff_s_and_stops_at_the_deadline(server):
    server.plan(Reply.error(503, "busy"), Reply.ok(GOOD))
    assert make_client(server, backoff_s=0.3).complete(MSGS, schema=SCHEMA).ok
    first, second = server.chat_requests()
    assert 0.3 * 0.75 <= second.t - first.t < 1.0  # the SDK's backoff (jitter x0.75-1), rescaled to backoff_s
    assert "Authorization" not in first.headers  # no key set: no header at all
    server.clear()
    server.plan(Reply.error(503, "busy"))
    t0 = time.perf_counter()
    r = make_client(server, backoff_s=5, call_deadline_s=2).complete(MSGS, schema=SCHEMA)
    assert time.perf_counter() - t0 < 1.0 and not r.ok and r.attempts == 1
    assert r.error.startswith("HTTP 503: busy; the next try would start after") and "past the deadline" in r.error


def test_a_malformed_schema_is_the_callers_error_and_jsonschema_checks_all_of_it(server):
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        make_client(server).complete(MSGS, schema={"type": "intgr"})
    assert server.chat_requests() == []
    with pytest.raises(ValueError, match=r"field 'tag' 'x y' does not match"):  # a keyword the old subset ignored
        check_schema({"tag": "x y"}, {"type": "object", "properties": {"tag": {"type": "string", "pattern": "^\\w+$"}}})
    with pytest.raises(ValueError, match=r"field 'a.b' must have at least 2 characters, got 1"):
        check_schema({"a": {"b": "x"}}, {"$defs": {"s": {"type": "string", "minLength": 2}},
                                          "properties": {"a": {"properties": {"b": {"$ref": "#/$defs/s"}}}}})


# ---------------------------------------------------------------- issue #29: preflight, limits, odd replies


def test_a_transient_503_or_429_in_the_preflight_is_retried_and_only_a_model_error_blames_the_model(server):
    from workbench.llm.client import EndpointError

    server.plan_preflight(Reply.error(503, "loading"), Reply.rate_limited(retry_after=0.1))
    client = make_client(server)
    assert all(r.ok for r in client.complete_many([MSGS] * 2, schema=SCHEMA, progress=False))
    assert len(server.preflight_requests()) == 3 and client.usage["retries"] == 2
    server.clear()
    server.plan_preflight(*[Reply.error(503, "overloaded")] * 5)
    with pytest.raises(EndpointError, match=r"did not answer the preflight.*HTTP 503 after 2 retries.*overloaded") as err:
        make_client(server, max_retries=2).complete_many([MSGS], progress=False)
    assert "cannot serve" not in str(err.value) and "Check the model name" not in str(err.value)
    assert server.chat_requests() == []
    server.clear()
    server.plan_preflight(Reply.error(500, "no such model"))  # transformers serve's answer to a wrong name: final
    client = make_client(server, max_retries=2)
    with pytest.raises(EndpointError, match=r"cannot serve model .fake-model..*HTTP 500: no such model.*Check the model name"):
        client.complete_many([MSGS], progress=False)
    assert client.usage["requests"] == 1


def test_the_preflight_keeps_to_the_batch_and_call_deadlines(server):
    from workbench.llm.client import EndpointError

    server.plan_preflight(Reply.sleep(3))  # answers within timeout_s, but after the batch deadline
    t0 = time.perf_counter()
    with pytest.raises(EndpointError, match="batch deadline of 1s passed"):
        make_client(server, timeout_s=5, batch_deadline_s=1, call_deadline_s=60).complete_many([MSGS], progress=False)
    assert time.perf_counter() - t0 < 1.8
    server.clear()
    server.plan_preflight(*[Reply.sleep(3)] * 3)
    t0 = time.perf_counter()
    with pytest.raises(EndpointError, match="call deadline of 1s passed"):
        make_client(server, timeout_s=5, call_deadline_s=1).complete_many([MSGS], progress=False)
    assert time.perf_counter() - t0 < 1.8 and len(server.preflight_requests()) == 1  # no try after the deadline


def test_a_trickling_body_is_cut_by_the_default_limits(server):
    assert EndpointConfig(timeout_s=5).call_deadline == 10  # call_deadline_s=None: 2 x timeout_s
    server.plan(*[Reply.drip(0.2)] * 4)  # each read is quick; the whole body would take about a minute
    t0 = time.perf_counter()
    r = make_client(server, timeout_s=1, max_retries=0).complete(MSGS, schema=SCHEMA)
    assert time.perf_counter() - t0 < 1.9 and not r.ok
    assert r.error.startswith("timeout after 1s (the body was still arriving")
    t0 = time.perf_counter()
    r = make_client(server, timeout_s=1, max_retries=3).complete(MSGS, schema=SCHEMA)
    assert time.perf_counter() - t0 < 2.9 and not r.ok and r.attempts == 2
    assert "call deadline of 2s passed (the body was still arriving)" in r.error


@pytest.mark.parametrize("reply, shown", [
    (Reply.huge(10**9), "Content-Length 1000000000"),
    (Reply.huge(200 * 2**20, declare_length=False), "more than 1000000 bytes"),
    (Reply.huge(200 * 2**20, status=500, declare_length=False), "more than 1000000 bytes"),
    (Reply(raw_body=gzip.compress(b" " * 50 * 2**20), headers={"Content-Encoding": "gzip"}),  # 50 KB on the wire
     "more than 1000000 bytes once decompressed"),
])
def test_a_huge_reply_fails_the_call_without_being_read(server, reply, shown):
    assert EndpointConfig().max_reply_bytes == 8 * 2**20
    server.plan(reply)
    t0 = time.perf_counter()
    r = make_client(server, max_reply_bytes=10**6).complete(MSGS, schema=SCHEMA)
    assert time.perf_counter() - t0 < 1.5 and not r.ok and r.attempts == 1  # not retried: it would come again
    assert f"the reply is over max_reply_bytes=1000000 ({shown})" in r.error and "not read" in r.error
    assert server.bytes_sent < 40 * 2**20  # what the client read, plus the sockets' buffers


def test_a_reask_echoes_a_bounded_part_of_the_bad_reply(server):
    bad = "Sure! " + "la " * 50_000
    server.plan(Reply.ok(bad), Reply.ok(GOOD))
    assert make_client(server).complete(MSGS, schema=SCHEMA).ok
    echoed = server.chat_requests()[1].body["messages"][1]["content"]
    assert echoed.startswith("Sure! la la") and len(echoed) < 2100
    assert echoed.endswith(f"[... {len(bad) - 2000} more characters not repeated]")


def test_tool_calls_replies_are_named_as_such_not_as_an_ignored_response_format():
    tools = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
             "tool_calls": [{"id": "1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]}}]}
    with FakeLLMServer(responder=lambda req: GOOD) as srv:
        srv.plan(*[Reply(raw_body=json.dumps(tools).encode())] * 4)
        client = make_client(srv, max_retries=3)
        r = client.complete(MSGS, schema=SCHEMA)
        assert not r.ok and "the reply holds tool_calls (lookup)" in r.error
        assert client.usage["structured_output_ignored"] == 0 and client.structured_mode == "json_schema"
        assert len(client.notes) == 1 and "answered with tool_calls (lookup) instead of text" in client.notes[0]
        assert "does not enforce" not in client.notes[0]


def test_a_redirect_to_another_port_or_scheme_is_named_so(server):
    server.plan(Reply(status=307, raw_body=b"", headers={"Location": f"http://127.0.0.1:{server.port + 1}/v1/x"}))
    r = make_client(server).complete(MSGS, schema=SCHEMA)
    assert not r.ok and f"redirected to http://127.0.0.1:{server.port + 1}/v1/x, another port" in r.error
    assert "another host" not in r.error
    server.plan(Reply(status=307, raw_body=b"", headers={"Location": f"https://127.0.0.1:{server.port}/v1/x"}))
    r = make_client(server).complete(MSGS, schema=SCHEMA)
    assert not r.ok and "another scheme (https, not http)" in r.error
