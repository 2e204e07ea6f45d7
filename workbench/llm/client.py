"""A thin layer over the `openai` SDK for any OpenAI-compatible chat-completions endpoint.

Used by the LLM tagger and judge. The SDK (``openai.OpenAI(base_url=...)``: vLLM, SGLang, Ollama, the
llama.cpp server, OpenAI) does the HTTP: auth header, timeouts, retries of connection errors, timeouts,
408/409/429/5xx with exponential backoff and jitter, ``Retry-After`` / ``retry-after-ms`` (up to 120 s;
longer is not retried) and ``x-should-retry``. This layer adds what batch curation needs:

* one budget per call: ``max_retries`` shared by the SDK's retries, malformed bodies and re-asks;
  ``backoff_s`` scales the SDK's backoff; ``call_deadline_s`` / ``batch_deadline_s`` bound the whole call,
  the SDK's waits included (a wait that would cross the deadline fails the call at once, saying why);
* limits that hold by default: ``timeout_s`` (60 s) bounds each request with its whole body, the call
  deadline defaults to ``2 * timeout_s``, ``max_reply_bytes`` (8 MiB) fails a larger reply without reading
  the rest (`EndpointConfig`); a re-ask repeats at most `REASK_ECHO_CHARS` of the bad reply;
* structured output: ``response_format`` ``json_schema`` (strict), falling back (``json_schema_mode="auto"``)
  to ``json_object`` and none on a 400/422 about it; replies are always checked here too (`extract_json`,
  `check_schema`, an optional ``validate``) and a bad one is re-asked with the reason; a server that accepts
  ``response_format`` and ignores it (``transformers serve``) is named once in `ChatClient.notes`, and so
  is a model that answers with ``tool_calls`` (not counted against ``response_format``);
* ``n`` sampling, or ``n`` sequential calls (seeds ``seed + i``) where a server rejects ``n`` or returns fewer;
* `ChatClient.complete_many`: a thread pool with a ``tqdm`` bar, results in input order, after one
  `ChatClient.preflight` (a 1-token call inside the batch deadline: a busy server is retried, a wrong model
  name fails the batch at once);
* never raising for a failed call (`CallResult` says why), `ChatClient.usage` (requests, retries, tokens,
  failures, estimated cost), the key read from the variable *named* by ``cfg.api_key_env`` as each request
  is built and redacted from every message (no key: no ``Authorization``), redirects only within one origin
  (scheme, host and port; the one that differs is named).

The HTTP details live in `workbench.llm.transport`, the settings in `workbench.llm.endpoint`.

Not done: streaming, tool calling, images, the legacy ``/completions`` endpoint, caching (callers cache).
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import openai

from workbench.llm.endpoint import (  # noqa: F401 - EndpointConfig and the env names are re-exported
    ENV_BASE_URL,
    ENV_MODEL,
    JSON_SCHEMA_MODES,
    EndpointConfig,
    safe_url,
)
from workbench.llm.structured import _short, check_schema, extract_json, schema_validator  # noqa: F401 - re-exported
from workbench.llm.transport import (
    REFUSED_LOCATION,
    REFUSED_WHY,
    SDK,
    SDK_BACKOFF_BASE_S,
    SDK_MAX_RETRY_AFTER_S,
    TOOL_CALLS_REPLY,
    Choice,
    Failure,
    ReplyTooLarge,
    WaitPastDeadline,
    on_response,
    parse_body,
    server_message,
)

log = logging.getLogger(__name__)

SCHEMA_NAME = "attributes"
IGNORED_AFTER = 3  # consecutive unparseable replies under a structured mode before the client says it is ignored
ENFORCING_SERVERS = ("vLLM or SGLang (guided decoding: response_format json_schema is enforced), llama.cpp server "
                     "(--json-schema / a GBNF grammar), Ollama (format=<schema>)")
PREFLIGHT_MESSAGES = [{"role": "user", "content": "ping"}]  # `ChatClient.preflight`'s one-token chat call
_FALLBACK = {"json_schema": "json_object", "json_object": "none"}
_RESPONSE_FORMAT_RE = re.compile(r"response_format|json_schema|json_object|structured output|guided_json", re.I)
_VALIDATION_ERRORS = (ValueError, TypeError, KeyError, AssertionError)
_NUMBER = (int, float)
# A 400 about the `n` parameter: "'n' is not supported", "n must be 1", "Invalid value for n", "number of choices".
_N_PARAM_RE = re.compile(r"(?<![\w.\-/])['\"`]?n['\"`]?(?![\w.\-/])|num(ber)?[_ ]of[_ ](choices|completions|samples)", re.I)
# Statuses the preflight retries: busy, rate-limited or starting. Any other answer (a 500 included: transformers
# serve answers a wrong model name with one) is the endpoint's final word on the model.
_TRANSIENT_STATUSES = frozenset({408, 409, 429, 502, 503, 504})
REASK_ECHO_CHARS = 2000  # of a bad reply sent back with a re-ask; the rest is left out, and said to be


class EndpointError(RuntimeError):
    """The endpoint cannot serve this batch at all (wrong model name, not a chat-completions URL, unreachable)."""


# --------------------------------------------------------------------------------------------- results


@dataclass
class CallResult:
    """The outcome of one logical call (or one sample when ``n > 1``).

    Attributes:
        ok: True when a reply arrived and (if a schema/validator was given) it parsed and validated.
        content: Raw assistant text of the last reply received (also on failure, for debugging).
        parsed: The parsed JSON (after ``validate`` when given); None without a schema/validator or on failure.
        error: Why it failed, e.g. ``"HTTP 500 after 4 retries (5 attempts): ..."``; None when ok.
        attempts: HTTP requests sent for this result (retries, re-asks and format fallbacks included).
        prompt_tokens: Prompt tokens over all attempts, from the responses' ``usage`` (0 where absent).
        completion_tokens: Completion tokens over all attempts.
        seconds: Wall time of the call.
    """

    ok: bool
    content: str | None
    parsed: Any | None
    error: str | None
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float




@dataclass
class _Budget:
    """Retries left for one logical call, shared by the SDK's retries and re-asks, and its deadline."""

    retries_left: int
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    deadline: float = math.inf  # time.monotonic() by which the call must be over
    deadline_name: str = "call_deadline_s"
    attempt_start: float = 0.0  # time.monotonic() when the request in flight was sent (timeout_s runs from it)

    def left(self) -> float:
        return self.deadline - time.monotonic()


# --------------------------------------------------------------------------------------------- client


class ChatClient:
    """Thread-safe client for one OpenAI-compatible endpoint (see the module docstring).

    Args:
        cfg: Endpoint settings; resolved against the environment here, so a missing URL/model fails early.

    Raises:
        ValueError: From `EndpointConfig.resolved` when no endpoint or model is configured.

    Example::

        client = ChatClient(EndpointConfig(base_url="http://localhost:8000/v1", model="Qwen/Qwen3-8B"))
        r = client.complete([{"role": "user", "content": 'Reply with {"ok": true}'}],
                            schema={"type": "object", "properties": {"ok": {"type": "boolean"}}})
        r.ok, r.parsed, r.error, client.usage
    """

    def __init__(self, cfg: EndpointConfig):
        self.cfg = cfg.resolved()
        self._http = openai.DefaultHttpxClient(
            event_hooks={"response": [partial(on_response, max_bytes=self.cfg.max_reply_bytes)]})
        # api_key as a callable: the SDK reads the key as it builds each request; nothing here keeps it
        self._sdk = SDK(base_url=self.cfg.base_url, api_key=self._api_key, timeout=self.cfg.timeout_s,
                         max_retries=self.cfg.max_retries, http_client=self._http)
        self._lock = threading.Lock()
        self._mode = "json_schema" if self.cfg.json_schema_mode == "auto" else self.cfg.json_schema_mode
        self._n_supported: bool | None = None
        self._preflight_done = False
        self._batch_end: float | None = None  # monotonic end of the running complete_many batch
        self._unparsed_in_a_row = 0  # replies under a structured mode that did not parse, consecutively
        self._structured_ignored = False
        self._tool_calls_named = False
        self.notes: list[str] = []  # things the user should know about this endpoint, said once each
        self._totals = {"calls": 0, "requests": 0, "retries": 0, "failures": 0,
                        "prompt_tokens": 0, "completion_tokens": 0}

    def __repr__(self) -> str:
        return (f"ChatClient(base_url={safe_url(self.cfg.base_url)!r}, model={self.cfg.model!r}, "
                f"api_key_env={self.cfg.api_key_env!r}, mode={self._mode!r})")

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    @property
    def structured_mode(self) -> str:
        """The structured-output mode in use now (``auto`` settles on one after the first refusal)."""
        return self._mode

    @property
    def usage(self) -> dict[str, float]:
        """Running totals since this client was made.

        Returns:
            ``calls`` (results returned), ``requests`` (HTTP POSTs), ``retries``, ``failures`` (results with
            ``ok=False``), ``prompt_tokens``, ``completion_tokens`` (every attempt counts: you pay for
            them), ``structured_output_ignored`` (1 when the server seems to ignore ``response_format``,
            see `notes`) and ``estimated_cost_usd`` from the configured prices.
        """
        with self._lock:
            out: dict[str, float] = dict(self._totals)
            out["structured_output_ignored"] = int(self._structured_ignored)
        out["estimated_cost_usd"] = (out["prompt_tokens"] / 1000 * self.cfg.price_in_per_1k
                                     + out["completion_tokens"] / 1000 * self.cfg.price_out_per_1k)
        return out

    def _api_key(self) -> str:
        return os.environ.get(self.cfg.api_key_env, "").strip()

    def _no_key_headers(self) -> dict[str, Any] | None:
        """Without a key, no ``Authorization`` header: the SDK must be told so explicitly."""
        return None if self._api_key() else {"Authorization": openai.omit}

    def _redact(self, text: str) -> str:
        key = self._api_key()
        return text.replace(key, "***") if key and len(key) >= 4 else text

    def _count(self, budget: _Budget | None = None, *, results: Sequence[CallResult] = (), **add: int) -> None:
        """Add to the running totals (and count an attempt on ``budget`` for each request)."""
        if budget is not None:
            budget.attempts += add.get("requests", 0)
        with self._lock:
            for key, value in add.items():
                self._totals[key] += value
            self._totals["calls"] += len(results)
            self._totals["failures"] += sum(not r.ok for r in results)

    # -- one request, which the SDK retries ------------------------------------------------------

    def _payload(self, messages: list[dict], mode: str, schema: dict | None, temperature: float,
                 seed: int | None, n: int) -> dict:
        payload: dict[str, Any] = {"model": self.cfg.model, "messages": messages,
                                   "temperature": temperature, "max_tokens": self.cfg.max_tokens}
        if n > 1:
            payload["n"] = n
        if seed is not None:
            payload["seed"] = seed
        if mode == "json_schema" and schema is not None:
            payload["response_format"] = {"type": "json_schema",
                                          "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": True}}
        elif mode in ("json_schema", "json_object"):
            payload["response_format"] = {"type": "json_object"}
        return payload

    def _request(self, payload: dict, budget: _Budget, retry_statuses: frozenset[int] | None = None) -> list[Choice]:
        """One ``chat.completions.create``, the SDK retrying within the budget: the choices, or `Failure`.

        ``retry_statuses``: only these HTTP statuses are retried (None: the SDK's rule, 408/409/429/5xx).
        """
        if budget.left() <= 0:
            raise Failure(self._deadline_text(budget), retryable=False)
        sdk = self._sdk.with_options(max_retries=budget.retries_left)
        sdk.before_retry = partial(self._before_retry, budget)
        sdk.retry_statuses = retry_statuses
        self._count(budget, requests=1)
        budget.attempt_start = time.monotonic()
        try:
            with sdk.chat.completions.with_streaming_response.create(
                    **payload, timeout=min(self.cfg.timeout_s, budget.left()),
                    extra_headers=self._no_key_headers()) as resp:
                raw = self._read_body(resp, budget)
        except ReplyTooLarge as exc:
            raise Failure(self._too_large_text(exc), retryable=False, status=exc.status) from None
        except WaitPastDeadline as stop:
            if budget.left() <= 0:
                raise Failure(self._deadline_text(budget), retryable=False) from None
            fail = self._failure(stop.__context__)
            fail.reason += self._wait_text(stop.wait, stop.server_asked, budget)
            fail.retryable = False
            raise fail from None
        except openai.OpenAIError as exc:
            fail = self._failure(exc)
            if isinstance(exc, openai.APIStatusError) and fail.retryable and budget.retries_left > 0:
                fail.retryable = False  # the SDK declined: x-should-retry: false, or a Retry-After over its cap
                asked = self._sdk._parse_retry_after_header(exc.response.headers)
                fail.reason += self._wait_text(asked, True, budget) if asked and asked > SDK_MAX_RETRY_AFTER_S else ""
            fail.fallback = fail.status in (400, 422) and "response_format" in payload \
                and bool(_RESPONSE_FORMAT_RE.search(fail.detail))
            raise fail from None
        choices, prompt_tokens, completion_tokens = parse_body(raw)
        budget.prompt_tokens += prompt_tokens
        budget.completion_tokens += completion_tokens
        self._count(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        return choices

    def _before_retry(self, budget: _Budget, wait: float, retry_after: float | None) -> tuple[float, float]:
        """Called by the SDK before each retry: rescale its backoff, keep the wait and the retry in the deadline.

        A server's Retry-After past the deadline fails the call even where the SDK would wait less (early 2.x
        releases use their own backoff instead of a Retry-After over 60 s). The SDK was given
        ``max_retries=budget.retries_left``, so a retry is left here to spend.
        """
        if retry_after is not None and retry_after >= budget.left():
            raise WaitPastDeadline(retry_after, True)
        if retry_after is None:
            wait *= self.cfg.backoff_s / SDK_BACKOFF_BASE_S
        if wait >= budget.left():
            raise WaitPastDeadline(wait, False)
        budget.retries_left -= 1
        self._count(budget, requests=1, retries=1)
        budget.attempt_start = time.monotonic() + wait
        return wait, min(self.cfg.timeout_s, budget.left() - wait)

    def _read_body(self, resp: Any, budget: _Budget) -> bytes:
        """The body, in by ``timeout_s`` after the request was sent and by the deadline, ``max_reply_bytes`` at most.

        httpx's timeouts are per read, so a body that trickles in would never time out; a timer closes the
        stream at whichever limit comes first instead. The size is counted again after decompression (the
        hook counted the bytes on the wire): a small gzip body can inflate a thousandfold.
        """
        end_of_request = budget.attempt_start + self.cfg.timeout_s
        closed = threading.Event()

        def stop() -> None:
            closed.set()
            resp.http_response.close()

        timer = threading.Timer(max(min(end_of_request, budget.deadline) - time.monotonic(), 0.0), stop)
        timer.daemon = True
        timer.start()
        chunks, size = [], 0
        try:
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > self.cfg.max_reply_bytes:
                    raise ReplyTooLarge(f"more than {self.cfg.max_reply_bytes} bytes once decompressed",
                                         resp.http_response.status_code)
                chunks.append(chunk)
        except ReplyTooLarge:
            raise
        except Exception as exc:  # the transport errors of the SDK's httpx: this layer retries them
            if not closed.is_set():
                raise Failure(self._redact(f"connection error to {safe_url(self.cfg.base_url)} while reading the "
                                            f"body: {type(exc).__name__}: {exc}"), retryable=True) from None
        finally:
            timer.cancel()
        if closed.is_set() and end_of_request < budget.deadline:
            raise Failure(f"timeout after {self.cfg.timeout_s:g}s (the body was still arriving: the server sends it "
                           "slowly); raise timeout_s if its replies are this slow", retryable=True)
        if closed.is_set():
            raise Failure(self._deadline_text(budget, "the body was still arriving"), retryable=False)
        return b"".join(chunks)

    def _too_large_text(self, exc: ReplyTooLarge) -> str:
        status = f"HTTP {exc.status}: " if exc.status >= 400 else ""
        return (f"{status}the reply is over max_reply_bytes={self.cfg.max_reply_bytes} ({exc.what}); not read further "
                f"and not retried. A chat reply of max_tokens={self.cfg.max_tokens} is far smaller: check that "
                f"base_url {safe_url(self.cfg.base_url)!r} is a chat-completions API, or raise max_reply_bytes")

    def _failure(self, exc: BaseException | None) -> Failure:
        """An `openai.OpenAIError` (or, inside the SDK's retry loop, httpx's error) as a `Failure`."""
        response = getattr(exc, "response", None)
        if response is not None:
            status, msg = response.status_code, self._redact(server_message(response))
            if REFUSED_LOCATION in response.headers:
                target = safe_url(response.headers[REFUSED_LOCATION])
                other = response.headers.get(REFUSED_WHY, "another origin")
                return Failure(f"HTTP {status}: redirected to {target}, {other}; not followed (set base_url "
                                "to it if you trust it)", retryable=False, status=status, detail=f"redirected to {target}")
            hint = {401: f" (check the key in ${self.cfg.api_key_env})",
                    403: " (the key lacks access to this model/endpoint)",
                    404: f" (check base_url {safe_url(self.cfg.base_url)!r} ends in /v1 and model "
                         f"{self.cfg.model!r} is served)"}.get(status, "")
            return Failure(f"HTTP {status}: {msg}{hint}", retryable=status in (408, 409, 429) or status >= 500,
                            status=status, detail=msg + hint)
        cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) and exc.__cause__ else exc
        if isinstance(exc, openai.APITimeoutError) or "Timeout" in type(cause).__name__:
            return Failure(f"timeout after {self.cfg.timeout_s:g}s ({type(cause).__name__}); raise timeout_s or "
                            "lower max_tokens/concurrency", retryable=True)
        return Failure(self._redact(f"connection error to {safe_url(self.cfg.base_url)}: {type(cause).__name__}: "
                                     f"{cause}; is the server running and base_url right?"), retryable=True)

    def _deadline_value(self, name: str) -> float:
        """The deadline in force under this name (``call_deadline_s`` may be None: 2 x timeout_s)."""
        return self.cfg.call_deadline if name == "call_deadline_s" else getattr(self.cfg, name)

    def _wait_text(self, wait: float, server_asked: bool, budget: _Budget) -> str:
        left, name = max(budget.left(), 0.0), budget.deadline_name
        why = (f"past the deadline ({left:.1f}s left of {name}={self._deadline_value(name):g})" if wait >= left
               else f"more than the {SDK_MAX_RETRY_AFTER_S:g}s the openai SDK waits")
        return f"; the next try would start after {wait:.1f}s{' (Retry-After)' if server_asked else ''}, {why}"

    def _deadline_text(self, budget: _Budget, what: str = "") -> str:
        name = budget.deadline_name
        return (f"{name.removesuffix('_s').replace('_', ' ')} of {self._deadline_value(name):g}s passed"
                + (f" ({what})" if what else "") + f" after {budget.attempts} attempts; raise {name} or lower max_tokens")

    def _send(self, build: Callable[[str], dict], budget: _Budget, structured: bool) -> list[Choice]:
        """Send until a reply arrives, stepping down structured-output modes and retrying malformed bodies."""
        while True:
            mode = self._mode if structured else "none"
            try:
                return self._request(build(mode), budget)
            except Failure as fail:
                if fail.fallback and self.cfg.json_schema_mode == "auto" and mode in _FALLBACK:
                    with self._lock:
                        if self._mode == mode:
                            self._mode = _FALLBACK[mode]
                            log.warning("server at %s rejected response_format %r (%s); using %r from now on",
                                        safe_url(self.cfg.base_url), mode, fail.reason, self._mode)
                    continue  # a capability probe, not a retry: the budget is not charged
                if fail.fallback:
                    fail.reason += (f" (the server does not support response_format {mode!r}; "
                                    "set json_schema_mode='auto' or a weaker mode)")
                # the SDK's failures arrive with its retries spent; what is left to retry is this layer's own
                if not fail.retryable or not self._spend_retry(budget):
                    raise
                log.info("LLM reply unusable (%s); asking again", fail.reason)

    # -- checking a reply ------------------------------------------------------------------------

    @staticmethod
    def _check_reply(content: str | None, finish: str | None, refusal: str | None, structured: bool,
                     schema: dict | None, validate: Callable[[Any], Any] | None, max_tokens: int) -> Any:
        """Parse and validate one choice; return the final value or raise ValueError with the reason."""
        if refusal and not content:
            raise ValueError(refusal if refusal.startswith(TOOL_CALLS_REPLY) else f"model refused: {refusal[:200]}")
        if not structured:
            if content is None:
                raise ValueError(f"empty reply (no message content; finish_reason={finish!r})")
            return None
        try:
            value = extract_json(content)
        except ValueError as exc:
            if finish == "length":
                raise ValueError(f"{exc} (finish_reason='length': the reply was cut at max_tokens={max_tokens}; "
                                 "raise max_tokens)") from None
            raise
        if schema is not None:
            check_schema(value, schema)
        if validate is not None:
            try:
                value = validate(value)
            except _VALIDATION_ERRORS as exc:
                raise ValueError(f"validation: {type(exc).__name__}: {exc}") from None
        return value

    def _result(self, ok: bool, content: str | None, parsed: Any, error: str | None, budget: _Budget,
                t0: float) -> CallResult:
        return CallResult(ok=ok, content=content, parsed=parsed if ok else None,
                          error=self._redact(error) if error else None, attempts=budget.attempts,
                          prompt_tokens=budget.prompt_tokens, completion_tokens=budget.completion_tokens,
                          seconds=time.perf_counter() - t0)

    def _fail_text(self, fail: Failure, budget: _Budget) -> str:
        """Final reason for a call that ran out of tries: says how many retries were spent."""
        used = self.cfg.max_retries - budget.retries_left
        if not fail.retryable or not used:
            return fail.reason
        if fail.status is not None:
            return f"HTTP {fail.status} after {used} retries ({budget.attempts} attempts): {fail.detail}"
        return f"{fail.reason} (after {used} retries, {budget.attempts} attempts)"

    def _new_budget(self, retries: int | None = None) -> _Budget:
        """A fresh retry budget whose deadline is the call deadline, or the batch's if that comes first."""
        retries = self.cfg.max_retries if retries is None else retries
        deadline = time.monotonic() + self.cfg.call_deadline
        if self._batch_end is not None and self._batch_end < deadline:
            return _Budget(retries, deadline=self._batch_end, deadline_name="batch_deadline_s")
        return _Budget(retries, deadline=deadline)

    def _spend_retry(self, budget: _Budget) -> bool:
        """Take one retry from the budget; False when none is left."""
        if budget.retries_left <= 0:
            return False
        budget.retries_left -= 1
        self._count(retries=1)
        return True

    def _complete_one(self, messages: list[dict], schema: dict | None, validate: Callable[[Any], Any] | None,
                      temperature: float, seed: int | None, budget: _Budget | None = None,
                      first: Choice | None = None, t0: float | None = None) -> CallResult:
        """One logical call with retries and re-asks.

        ``first`` is an already received choice of an ``n > 1`` request: checked first, re-asked when invalid.
        """
        t0 = time.perf_counter() if t0 is None else t0
        budget = budget or self._new_budget()
        structured = schema is not None or validate is not None
        convo = list(messages)
        pending = first
        last_content: str | None = None
        while True:
            if pending is None:
                try:
                    pending = self._send(lambda mode, convo=convo: self._payload(convo, mode, schema, temperature, seed, 1),
                                         budget, structured)[0]
                except Failure as fail:
                    return self._result(False, last_content, None, self._fail_text(fail, budget), budget, t0)
            last_content = pending[0]
            try:
                value = self._check_reply(*pending, structured, schema, validate, self.cfg.max_tokens)
                self._note_parse(structured, ok=True)
                return self._result(True, last_content, value, None, budget, t0)
            except ValueError as exc:
                reason = str(exc)
                if reason.startswith(TOOL_CALLS_REPLY):  # the model chose a tool: no evidence about response_format
                    self._note_tool_calls(reason)
                else:
                    # not JSON at all, or (json_schema mode) JSON off the schema: what an enforcing server never sends
                    off_structure = reason.startswith("invalid JSON") or (
                        self._mode == "json_schema" and not reason.startswith(("validation:", "model refused",
                                                                               "empty reply")))
                    self._note_parse(structured, ok=False, unparsed=off_structure)
            pending = None
            if not self._spend_retry(budget):
                used = self.cfg.max_retries
                suffix = f" (after {used} retries, {budget.attempts} attempts)" if used else ""
                return self._result(False, last_content, None, reason + suffix, budget, t0)
            log.info("LLM reply rejected (%s); re-asking", reason)
            convo = list(messages) + self._reask(last_content, reason)

    def _note_parse(self, structured: bool, *, ok: bool, unparsed: bool = False) -> None:
        """Track replies that ignore the requested structure; say so once after `IGNORED_AFTER` in a row."""
        if not structured or self._mode == "none":
            return
        with self._lock:
            self._unparsed_in_a_row = 0 if ok or not unparsed else self._unparsed_in_a_row + 1
            if self._unparsed_in_a_row < IGNORED_AFTER or self._structured_ignored:
                return
            self._structured_ignored = True
            note = (f"{safe_url(self.cfg.base_url)} accepted response_format {self._mode!r} but {IGNORED_AFTER} replies "
                    f"in a row were not JSON: the server does not enforce it (model {self.cfg.model!r}). Replies are "
                    f"still checked and re-asked, at extra requests per item. Servers that enforce a schema: "
                    f"{ENFORCING_SERVERS}.")
            self.notes.append(note)
        log.warning(note)

    def _note_tool_calls(self, reason: str) -> None:
        """Say once that the model answers with tool calls, which this client neither sends nor runs."""
        names = re.match(re.escape(TOOL_CALLS_REPLY) + r" \((.*?)\)", reason)
        with self._lock:
            if self._tool_calls_named:
                return
            self._tool_calls_named = True
            note = (f"{safe_url(self.cfg.base_url)}: model {self.cfg.model!r} answered with tool_calls "
                    f"({names.group(1) if names else '?'}) instead of text, though this client offers no tools: the "
                    "server parses the model's output as tool calls (a tool-call parser or chat template is on). "
                    "Such replies are re-asked like any unusable one; they say nothing about response_format. "
                    "Turn tool calling off on the server, or tell the model in the prompt not to call tools.")
            self.notes.append(note)
        log.warning(note)

    @staticmethod
    def _reask(bad_content: str | None, reason: str) -> list[dict]:
        """The re-ask turns: the bad reply (its first `REASK_ECHO_CHARS` characters) and why it was unusable."""
        echo = bad_content or ""
        if len(echo) > REASK_ECHO_CHARS:
            echo = echo[:REASK_ECHO_CHARS] + f" [... {len(echo) - REASK_ECHO_CHARS} more characters not repeated]"
        reason = reason if len(reason) <= 500 else reason[:500] + "..."
        return [{"role": "assistant", "content": echo},
                {"role": "user", "content": f"Your previous reply could not be used: {reason}. "
                                            "Reply again with only a single valid JSON object, no other text."}]

    # -- public API ------------------------------------------------------------------------------

    def complete(self, messages: list[dict], *, schema: dict | None = None,
                 validate: Callable[[Any], Any] | None = None, n: int = 1, temperature: float | None = None,
                 seed: int | None = None) -> CallResult | list[CallResult]:
        """Send one chat completion (with retries) and return its result; never raises for a failed call.

        Args:
            messages: OpenAI chat messages, e.g. ``[{"role": "user", "content": "..."}]``.
            schema: JSON schema (Draft 2020-12) the reply must satisfy. Sent as ``response_format`` per
                ``cfg.json_schema_mode`` (strict mode: objects should list every property in ``required``
                and set ``additionalProperties: false`` for OpenAI) and always checked client-side.
            validate: Callable turning the parsed JSON into the final value; raising ValueError, TypeError,
                KeyError or AssertionError (pydantic's ValidationError is a ValueError) marks the reply
                invalid, which is re-asked within the retry budget. Giving only ``validate`` asks for JSON.
            n: Number of samples (self-consistency). Sampling needs ``temperature > 0``.
            temperature: Overrides ``cfg.temperature`` for this call.
            seed: Sampling seed passed to the server; sequential samples use ``seed + i``.

        Returns:
            A `CallResult` when ``n == 1``, else a list of ``n`` results. With the server's ``n``
            parameter the single request's tokens are counted on the first result.

        Raises:
            ValueError: For invalid arguments (empty messages, n < 1, bad temperature, a malformed schema).
        """
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts, "
                             f"got {_short(messages)}")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r} is invalid: must be an int >= 1")
        temp = self.cfg.temperature if temperature is None else temperature
        if not (isinstance(temp, _NUMBER) and 0 <= temp <= 2):
            raise ValueError(f"temperature={temp!r} is invalid: must be in [0, 2]")
        if schema is not None:
            schema_validator(schema)  # a malformed schema is the caller's bug, not a reply to re-ask
        if n == 1:
            results = [self._complete_one(messages, schema, validate, temp, seed)]
        else:
            if temp == 0:
                log.warning("complete(n=%d) with temperature=0: samples will usually be identical; "
                            "pass temperature>0 for self-consistency voting", n)
            results = self._complete_n(messages, schema, validate, temp, seed, n)
        self._count(results=results)
        return results[0] if n == 1 else results

    def _complete_n(self, messages: list[dict], schema: dict | None, validate: Callable[[Any], Any] | None,
                    temp: float, seed: int | None, n: int) -> list[CallResult]:
        def sequential(start: int) -> list[CallResult]:
            return [self._complete_one(messages, schema, validate, temp, None if seed is None else seed + i)
                    for i in range(start, n)]

        if self._n_supported is False:
            return sequential(0)
        t0 = time.perf_counter()
        budget = self._new_budget()
        try:
            choices = self._send(lambda mode: self._payload(messages, mode, schema, temp, seed, n), budget,
                                 schema is not None or validate is not None)
        except Failure as fail:
            if fail.status == 400 and not fail.fallback and _N_PARAM_RE.search(fail.detail):
                log.warning("server rejected n=%d (%s); falling back to sequential samples", n, fail.reason)
                self._n_supported = False
                return sequential(0)
            first = self._result(False, None, None, self._fail_text(fail, budget), budget, t0)
            return [first] + [CallResult(False, None, None, first.error, 0, 0, 0, first.seconds) for _ in range(n - 1)]
        if len(choices) < n and self._n_supported is None:
            log.info("server returned %d of n=%d choices; using sequential samples for the rest", len(choices), n)
        self._n_supported = len(choices) >= n
        results = [
            # Each sample keeps its own re-ask budget; the shared request's attempts/tokens go on sample 0.
            self._complete_one(messages, schema, validate, temp, None if seed is None else seed + i,
                               budget if i == 0 else replace(budget, retries_left=self.cfg.max_retries, attempts=0,
                                                             prompt_tokens=0, completion_tokens=0),
                               first=choice, t0=t0)
            for i, choice in enumerate(choices[:n])]
        return results + sequential(len(results))

    def preflight(self) -> None:
        """Check once that the endpoint serves ``cfg.model`` for chat completions; raise `EndpointError` if not.

        One chat call with ``max_tokens=1`` (`PREFLIGHT_MESSAGES`) under one call's budget: ``max_retries``
        with backoff, ``Retry-After``, the call deadline and, inside `complete_many`, the batch deadline.
        Only a busy, rate-limited or unreachable server is retried (`_TRANSIENT_STATUSES`, connection errors,
        timeouts); any other HTTP error is final, so a mistyped model name that a server answers with a 404
        or a 500 fails in one request instead of a batch of retried ones. Then ``GET /models`` is asked,
        briefly, for the names the server lists.
        """
        if self._preflight_done:
            return
        payload = {"model": self.cfg.model, "messages": PREFLIGHT_MESSAGES, "max_tokens": 1}
        budget = self._new_budget()
        try:
            while True:
                try:
                    self._request(payload, budget, retry_statuses=_TRANSIENT_STATUSES)
                    break
                except Failure as fail:  # a body cut or malformed: asked again like any call's
                    if fail.status is not None or not fail.retryable or not self._spend_retry(budget):
                        raise
        except Failure as fail:
            where, reason = safe_url(self.cfg.base_url), self._fail_text(fail, budget)
            if fail.status is None or fail.status in _TRANSIENT_STATUSES:
                retry = "" if budget.left() <= 0 else " try again later, or raise max_retries;"
                raise EndpointError(f"{where} did not answer the preflight for model {self.cfg.model!r}: {reason}. "
                                    "The server is unreachable, busy or slow, which says nothing about the model "
                                    f"name;{retry} nothing of this batch was sent.") from None
            served = self._served_models(budget)
            listed = f" The server lists: {', '.join(served[:10])}." if served else ""
            raise EndpointError(f"{where} cannot serve model {self.cfg.model!r} for chat completions: {reason}."
                                f"{listed} Check the model name and that base_url ends in /v1 (nothing of this "
                                "batch was sent).") from None
        self._preflight_done = True

    def _served_models(self, budget: _Budget) -> list[str]:
        """Model ids from ``GET /models`` (0.5 s at most, within the deadline: some servers build the list slowly),
        [] when unknown."""
        if budget.left() <= 0.05:
            return []
        try:
            sdk = self._sdk.with_options(timeout=min(self.cfg.timeout_s, 0.5, budget.left()), max_retries=0)
            return [str(m.id) for m in sdk.models.list(extra_headers=self._no_key_headers()).data]
        except Exception:  # only a hint in an error message: any odd answer means "unknown"
            return []

    def complete_many(self, batch: list[list[dict]], *, progress: bool = True, desc: str = "LLM calls",
                      **kw: Any) -> list[CallResult | list[CallResult]]:
        """Run `complete` over many conversations with bounded concurrency.

        Args:
            batch: One message list per item.
            progress: Show a ``tqdm`` progress bar (rate, ETA, failures).
            desc: Progress bar label.
            **kw: Passed to `complete` (``schema``, ``validate``, ``n``, ``temperature``, ``seed``).

        Returns:
            Results in input order (a list per item when ``n > 1``). An item whose call raised (e.g. bad
            messages or a bug in ``validate``) gets ``ok=False`` with ``"internal error: ..."``.

        Raises:
            EndpointError: from `preflight` (run inside the batch deadline), before anything of the batch is
                sent, when the endpoint cannot serve the model at all.
        """
        if not batch:
            return []
        self._batch_end = time.monotonic() + self.cfg.batch_deadline_s if self.cfg.batch_deadline_s else None
        try:
            self.preflight()
            return self._run_batch(batch, progress, desc, kw)
        finally:
            self._batch_end = None

    def _run_batch(self, batch: list[list[dict]], progress: bool, desc: str,
                   kw: dict[str, Any]) -> list[CallResult | list[CallResult]]:
        from tqdm.auto import tqdm

        results: list[Any] = [None] * len(batch)
        failures = 0
        pool = ThreadPoolExecutor(max_workers=min(self.cfg.concurrency, len(batch)), thread_name_prefix="llm")
        bar = tqdm(total=len(batch), desc=desc, unit="call", disable=not progress, dynamic_ncols=True)
        try:
            futures = {pool.submit(self.complete, messages, **kw): i for i, messages in enumerate(batch)}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except Exception as exc:  # one bad item never aborts the batch
                    log.exception("LLM batch item %d raised", i)
                    error = self._redact(f"internal error: {type(exc).__name__}: {exc}")
                    results[i] = CallResult(False, None, None, error, 0, 0, 0, 0.0)
                    self._count(results=[results[i]])
                failures += sum(not r.ok for r in (results[i] if isinstance(results[i], list) else [results[i]]))
                bar.update(1)
                if failures:
                    bar.set_postfix(failures=failures, refresh=False)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            bar.close()
        pool.shutdown(wait=True)
        return results
