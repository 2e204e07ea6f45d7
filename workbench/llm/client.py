"""A robust client for any OpenAI-compatible chat-completions endpoint.

Used by the LLM attribute tagger and the LLM judge. It talks plain HTTP (``httpx``) to
``{base_url}/chat/completions`` of vLLM, SGLang, Ollama, the llama.cpp server or OpenAI, and adds what
batch curation needs on top of one POST:

* **Retries** with exponential backoff and jitter on 408, 429, 500, 502, 503, 504, connection errors
  and timeouts; a ``Retry-After`` header (seconds or an HTTP date) is honoured. Other 4xx answers
  (400, 401, 403, 404, 422, ...) fail at once with the server's message.
* **Structured output**: with a JSON schema the request asks for ``response_format`` ``json_schema``
  (strict), and in ``json_schema_mode="auto"`` falls back to ``json_object`` and then to no
  ``response_format`` when the server answers 400 saying it does not support it; the working mode is
  remembered for later calls. The reply is *always* parsed and checked client-side as well: the first
  JSON value is extracted from the text (```` ```json ```` fences and ``<think>`` blocks tolerated),
  checked against the schema (a common subset of JSON Schema, see `check_schema`) and passed through
  an optional ``validate`` callable. A reply that fails any of these is re-asked (the bad reply and
  the reason are appended to the conversation) within the same retry budget.
* **Never raises for a failed call**: every outcome is a `CallResult` with ``ok`` and a reason.
* **Sampling** (``n > 1``) for self-consistency voting: uses the ``n`` request parameter, and falls
  back to ``n`` sequential calls (seeds ``seed, seed+1, ...``) for servers that ignore or reject it.
* **Batches**: `ChatClient.complete_many` runs a thread pool of ``cfg.concurrency`` workers with a
  ``tqdm`` progress bar; results come back in input order and one failed item never aborts the batch.
  Before its first batch a client checks the endpoint once (`ChatClient.preflight`: one 1-token chat
  call without retries): a wrong model name or a URL that is not a chat-completions endpoint fails the
  whole batch at once with the server's message, instead of every item retrying a 500.
* **What the server enforced**: a server may accept ``response_format`` and ignore it (``transformers
  serve`` does). When replies under a structured mode fail to parse `IGNORED_AFTER` times in a row, the
  client says so once (a warning, ``usage["structured_output_ignored"]`` and `ChatClient.notes`) and names
  server options that enforce a schema; re-asking goes on as before.
* **Capabilities change only on answers about them**: ``n`` sampling is turned off only by a 400 whose
  message is about ``n`` (or a reply with fewer choices), structured modes only by a 400/422 about
  ``response_format``; an unrelated 400 (e.g. a bad model name) changes nothing.
* **Accounting**: running totals of requests, tokens, failures and an estimated cost (`ChatClient.usage`).
* **Secrets**: the API key is read from the environment variable *named* by ``cfg.api_key_env`` at
  request time. It is never stored in the config, in reprs, logs or error strings (any echo of it in a
  server message is replaced by ``***``).

What it does not do: streaming, tool/function calling, images, the legacy ``/completions`` endpoint,
caching of answers (callers cache), token counting before the call, or rate limiting beyond the bounded
concurrency and server-driven backoff. Client-side schema checking covers the keywords listed in
`check_schema`; other keywords are ignored rather than enforced.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from workbench.llm.structured import _short, check_schema, extract_json  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

ENV_BASE_URL = "WORKBENCH_LLM_BASE_URL"
ENV_MODEL = "WORKBENCH_LLM_MODEL"
JSON_SCHEMA_MODES = ("auto", "json_schema", "json_object", "none")
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 300.0  # a Retry-After above this is capped (a misconfigured proxy must not hang a batch)
MAX_BACKOFF_S = 60.0
SCHEMA_NAME = "attributes"
_FALLBACK = {"json_schema": "json_object", "json_object": "none"}
_RESPONSE_FORMAT_RE = re.compile(r"response_format|json_schema|json_object|structured output|guided_json", re.I)
_VALIDATION_ERRORS = (ValueError, TypeError, KeyError, AssertionError)
# A 400 about the `n` parameter: "'n' is not supported", "n must be 1", "Invalid value for n", "number of choices".
_N_PARAM_RE = re.compile(r"(?<![\w.\-/])['\"`]?n['\"`]?(?![\w.\-/])|num(ber)?[_ ]of[_ ](choices|completions|samples)", re.I)
IGNORED_AFTER = 3  # consecutive unparseable replies under a structured mode before the client says it is ignored
ENFORCING_SERVERS = ("vLLM or SGLang (guided decoding: response_format json_schema is enforced), llama.cpp server "
                     "(--json-schema / a GBNF grammar), Ollama (format=<schema>)")


TOOL_CALLS_REPLY = "the reply holds tool_calls"
PREFLIGHT_MESSAGES = [{"role": "user", "content": "ping"}]  # `ChatClient.preflight`'s one-token chat call


class EndpointError(RuntimeError):
    """The endpoint cannot serve this batch at all (wrong model name, not a chat-completions URL, unreachable)."""


# --------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class EndpointConfig:
    """Where and how to call an OpenAI-compatible chat-completions endpoint.

    Attributes:
        base_url: API root including the version, e.g. ``"http://localhost:8000/v1"``; ``""`` means
            ``$WORKBENCH_LLM_BASE_URL`` (filled in by `resolved`).
        model: Model name as the server knows it; ``""`` means ``$WORKBENCH_LLM_MODEL``.
        api_key_env: NAME of the environment variable holding the API key. The key itself is never
            stored here. When the variable is unset or empty, no Authorization header is sent (local servers).
        timeout_s: Per-request timeout in seconds (connect, read and write each).
        max_retries: Retries after the first attempt (so at most ``max_retries + 1`` attempts per call),
            shared between transport failures and re-asks for invalid replies.
        backoff_s: Exponential backoff base: retry ``k`` (0-based) waits about ``backoff_s * 2**k``
            (jitter x0.5-1.5, capped at 60 s) unless the server sent ``Retry-After``.
        concurrency: Worker threads for `ChatClient.complete_many`.
        temperature: Default sampling temperature.
        max_tokens: Completion token limit per request.
        json_schema_mode: How to ask for structured output: ``"auto"`` (``json_schema`` then
            ``json_object`` then nothing, as the server allows), ``"json_schema"``, ``"json_object"``
            or ``"none"`` (prompt-only; replies are still parsed and checked client-side).
        price_in_per_1k: Optional USD per 1,000 prompt tokens, for the cost estimate.
        price_out_per_1k: Optional USD per 1,000 completion tokens.
        call_deadline_s: Wall-clock limit of one logical call, everything included (connecting, waiting,
            a body that trickles in, retries, backoff and ``Retry-After`` waits, re-asks). ``timeout_s``
            bounds each read; this bounds the call. A wait that would cross it fails the call at once.
        batch_deadline_s: Wall-clock limit of one `ChatClient.complete_many` batch (None: none). Items not
            started by then fail with that reason; running ones stop at it.
    """

    base_url: str = ""
    model: str = ""
    api_key_env: str = "WORKBENCH_LLM_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_s: float = 1.0
    concurrency: int = 8
    temperature: float = 0.0
    max_tokens: int = 512
    json_schema_mode: str = "auto"
    price_in_per_1k: float = 0.0
    price_out_per_1k: float = 0.0
    call_deadline_s: float = 600.0
    batch_deadline_s: float | None = None

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(f"EndpointConfig.{name}={getattr(self, name)!r} is invalid: {rule}")

        if self.base_url and not re.match(r"^https?://[^/\s]+", self.base_url):
            raise bad("base_url", "expected an http(s) URL such as 'http://localhost:8000/v1'")
        # The value of api_key_env is never echoed: it might be a key pasted into the wrong field.
        if not isinstance(self.api_key_env, str) or self.api_key_env.startswith(("sk-", "sk_")) \
                or len(self.api_key_env) > 64:
            raise ValueError("EndpointConfig.api_key_env looks like a key (value not shown): put the key in an "
                             "environment variable and give that variable's NAME, e.g. 'WORKBENCH_LLM_API_KEY'")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            raise ValueError("EndpointConfig.api_key_env is invalid (value not shown): give the NAME of an "
                             "environment variable (letters, digits, _), e.g. 'OPENAI_API_KEY', never the key itself")
        if not (isinstance(self.timeout_s, (int, float)) and self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise bad("timeout_s", "must be a finite number of seconds > 0")
        for name in ("call_deadline_s", "batch_deadline_s"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise bad(name, "must be a finite number of seconds > 0" + (" or None" if name == "batch_deadline_s" else ""))
        if not (isinstance(self.max_retries, int) and self.max_retries >= 0):
            raise bad("max_retries", "must be an int >= 0 (0 = no retries)")
        if not (isinstance(self.backoff_s, (int, float)) and self.backoff_s >= 0):
            raise bad("backoff_s", "must be seconds >= 0")
        if not (isinstance(self.concurrency, int) and self.concurrency >= 1):
            raise bad("concurrency", "must be an int >= 1")
        if not (isinstance(self.temperature, (int, float)) and 0 <= self.temperature <= 2):
            raise bad("temperature", "must be in [0, 2]")
        if not (isinstance(self.max_tokens, int) and self.max_tokens >= 1):
            raise bad("max_tokens", "must be an int >= 1")
        if self.json_schema_mode not in JSON_SCHEMA_MODES:
            raise bad("json_schema_mode", f"choose one of {', '.join(JSON_SCHEMA_MODES)}")
        for name in ("price_in_per_1k", "price_out_per_1k"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0):
                raise bad(name, "must be USD per 1k tokens >= 0")

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={(_safe_url(v) if f.name == 'base_url' else v)!r}"
                          for f in fields(self) for v in [getattr(self, f.name)])
        return f"EndpointConfig({shown})"

    def resolved(self) -> EndpointConfig:
        """Return a copy with ``base_url``/``model`` filled from the environment where empty.

        Raises:
            ValueError: When no base URL or model is configured either way, or the env URL is malformed.
        """
        base_url = (self.base_url or os.environ.get(ENV_BASE_URL, "")).strip().rstrip("/")
        model = (self.model or os.environ.get(ENV_MODEL, "")).strip()
        if not base_url:
            raise ValueError(
                f"no LLM endpoint configured: set base_url or ${ENV_BASE_URL} "
                "(e.g. 'http://localhost:8000/v1' for vLLM, 'http://localhost:11434/v1' for Ollama, "
                "'https://api.openai.com/v1' for OpenAI)")
        if not model:
            raise ValueError(
                f"no LLM model configured: set model or ${ENV_MODEL} to the model name the server at "
                f"{_safe_url(base_url)} serves (GET {_safe_url(base_url)}/models lists them)")
        return replace(self, base_url=base_url, model=model)  # replace() re-runs __post_init__ validation


def _safe_url(url: str) -> str:
    """Drop any ``user:password@`` from a URL so it can be shown."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))
    return url


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
    """Retries left for one logical call, shared by transport retries and re-asks, and its deadline."""

    retries_left: int
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    deadline: float = math.inf  # time.monotonic() by which the call must be over
    deadline_name: str = "call_deadline_s"

    def left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class _Reply:
    """One successful HTTP exchange: the choices' texts and finish reasons."""

    contents: list[str | None]
    finish_reasons: list[str | None]
    refusals: list[str | None] = field(default_factory=list)


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None when absent/unparseable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _server_message(resp: httpx.Response, limit: int = 300) -> str:
    """The server's error message: ``error.message`` / ``message`` / ``detail`` from JSON, else the text."""
    text = resp.text or ""
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        body = None
    msg = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            msg = err.get("message")
        elif isinstance(err, str):
            msg = err
        msg = msg or body.get("message") or body.get("detail")
    msg = str(msg if msg is not None else text).strip().replace("\n", " ")
    return (msg[:limit] + "...") if len(msg) > limit else (msg or resp.reason_phrase or "(empty body)")


# --------------------------------------------------------------------------------------------- client


class _Failure(Exception):
    """Internal: a failed attempt. ``retryable`` decides whether the loop tries again."""

    def __init__(self, reason: str, *, retryable: bool, status: int | None = None, detail: str = "",
                 retry_after: float | None = None, fallback: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status = status
        self.detail = detail  # for HTTP errors: the server's message (+ hint), without the "HTTP nnn: " prefix
        self.retry_after = retry_after
        self.fallback = fallback  # a 400 about response_format: try the next structured-output mode


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
        self._url = self.cfg.base_url + "/chat/completions"
        self._http = httpx.Client(
            timeout=httpx.Timeout(self.cfg.timeout_s),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=max(self.cfg.concurrency, 10)),
        )
        self._lock = threading.Lock()
        self._mode = "json_schema" if self.cfg.json_schema_mode == "auto" else self.cfg.json_schema_mode
        self._n_supported: bool | None = None
        self._preflight_done = False
        self._batch_end: float | None = None  # monotonic end of the running complete_many batch
        self._unparsed_in_a_row = 0  # replies under a structured mode that did not parse, consecutively
        self._structured_ignored = False
        self.notes: list[str] = []  # things the user should know about this endpoint, said once each
        self._totals = {"calls": 0, "requests": 0, "retries": 0, "failures": 0,
                        "prompt_tokens": 0, "completion_tokens": 0}

    # -- bookkeeping -----------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"ChatClient(base_url={_safe_url(self.cfg.base_url)!r}, model={self.cfg.model!r}, "
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

    def _redact(self, text: str) -> str:
        key = self._api_key()
        if key and len(key) >= 4 and key in text:
            text = text.replace(key, "***")
        return text

    def _record(self, results: Sequence[CallResult]) -> None:
        with self._lock:
            self._totals["calls"] += len(results)
            self._totals["failures"] += sum(not r.ok for r in results)

    # -- one HTTP exchange -----------------------------------------------------------------------

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

    def _auth_headers(self) -> dict[str, str]:
        """``Authorization`` when a key is set (read now, never stored); nothing for keyless local servers."""
        key = self._api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _post(self, payload: dict, budget: _Budget) -> _Reply:
        """Send one POST; return the reply or raise `_Failure`. Counts the attempt and its tokens."""
        headers = {"Content-Type": "application/json", **self._auth_headers()}
        if budget.left() <= 0:
            raise _Failure(self._deadline_text(budget), retryable=False)
        budget.attempts += 1
        with self._lock:
            self._totals["requests"] += 1
        resp = self._send(self._url, payload, headers, budget)
        if resp.status_code in (301, 302, 303, 307, 308):
            target = urljoin(self._url, resp.headers.get("location", ""))
            if urlsplit(target).netloc != urlsplit(self._url).netloc or not target:
                raise _Failure(f"HTTP {resp.status_code}: redirected to {_safe_url(target) or '(no Location)'}, another "
                               "host; not followed (set base_url to it if you trust it)", retryable=False,
                               status=resp.status_code, detail=f"redirected to {_safe_url(target)}")
            resp = self._send(target, payload, headers, budget)  # same host (e.g. a trailing-slash redirect)
        if resp.status_code != 200:
            msg = self._redact(_server_message(resp))
            status = resp.status_code
            retryable = status in RETRYABLE_STATUS
            hint = {401: " (check the key in $" + self.cfg.api_key_env + ")",
                    403: " (the key lacks access to this model/endpoint)",
                    404: f" (check base_url {_safe_url(self.cfg.base_url)!r} ends in /v1 and model "
                         f"{self.cfg.model!r} is served)"}.get(status, "")
            fallback = status in (400, 422) and bool(_RESPONSE_FORMAT_RE.search(msg)) \
                and "response_format" in payload
            raise _Failure(f"HTTP {status}: {msg}{hint}", retryable=retryable, status=status, detail=msg + hint,
                           retry_after=_parse_retry_after(resp.headers.get("retry-after")), fallback=fallback)
        try:
            body = resp.json()
        except (json.JSONDecodeError, ValueError):
            preview = (resp.text or "")[:120].replace("\n", "\\n")
            raise _Failure(f"malformed response body (not JSON): starts {preview!r}", retryable=True) from None
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict):
            budget.prompt_tokens += _as_int(usage.get("prompt_tokens"))
            budget.completion_tokens += _as_int(usage.get("completion_tokens"))
            with self._lock:
                self._totals["prompt_tokens"] += _as_int(usage.get("prompt_tokens"))
                self._totals["completion_tokens"] += _as_int(usage.get("completion_tokens"))
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            got = sorted(body)[:8] if isinstance(body, dict) else type(body).__name__
            raise _Failure(f"malformed response body: no 'choices' list (got {got})", retryable=True)
        contents, finishes, refusals = [], [], []
        for choice in sorted(choices, key=lambda c: _as_int(c.get("index"))):
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            content = message.get("content")
            if isinstance(content, list):  # a list of content parts: keep the text parts, in order
                texts = [p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
                content = "".join(texts) if texts else None
            refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else None
            calls = message.get("tool_calls")
            if not content and isinstance(calls, list) and calls:
                names = [str((c.get("function") or {}).get("name", "?")) for c in calls if isinstance(c, dict)]
                refusal = (f"{TOOL_CALLS_REPLY} ({', '.join(names)}) and no text content; this client does not call "
                           "tools: turn tool use off on the server or in the prompt")
            contents.append(content if isinstance(content, str) else None)
            finishes.append(choice.get("finish_reason"))
            refusals.append(refusal)
        return _Reply(contents, finishes, refusals)

    def _send(self, url: str, payload: dict, headers: dict, budget: _Budget) -> httpx.Response:
        """One POST whose whole exchange, body included, ends by the budget's deadline.

        httpx's timeouts are per read, so a body that trickles in a byte at a time would never time out;
        a timer closes the stream at the deadline instead. Returns the response with its body read.
        """
        left = budget.left()
        timeout = httpx.Timeout(min(self.cfg.timeout_s, left))
        closed_by_deadline = threading.Event()
        try:
            with self._http.stream("POST", url, json=payload, headers=headers, timeout=timeout) as resp:
                def stop() -> None:
                    closed_by_deadline.set()
                    resp.close()

                timer = threading.Timer(max(budget.left(), 0.0), stop) if math.isfinite(budget.left()) else None
                if timer is not None:
                    timer.daemon = True
                    timer.start()
                try:
                    body = b"".join(resp.iter_bytes())
                finally:
                    if timer is not None:
                        timer.cancel()
                if closed_by_deadline.is_set():
                    raise _Failure(self._deadline_text(budget, "the body was still arriving"), retryable=False)
                return httpx.Response(resp.status_code, headers=resp.headers, content=body, request=resp.request)
        except _Failure:
            raise
        except httpx.TimeoutException as exc:
            if budget.left() <= 0:
                raise _Failure(self._deadline_text(budget), retryable=False) from None
            raise _Failure(f"timeout after {self.cfg.timeout_s:g}s ({type(exc).__name__}); raise timeout_s "
                           "or lower max_tokens/concurrency", retryable=True) from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            if closed_by_deadline.is_set():
                raise _Failure(self._deadline_text(budget, "the body was still arriving"), retryable=False) from None
            raise _Failure(self._redact(f"connection error to {_safe_url(url)}: {type(exc).__name__}: "
                                        f"{exc}; is the server running and base_url right?"),
                           retryable=True) from None

    def _deadline_text(self, budget: _Budget, what: str = "") -> str:
        name = budget.deadline_name
        limit = getattr(self.cfg, name)
        return (f"{name.removesuffix('_s').replace('_', ' ')} of {limit:g}s passed" + (f" ({what})" if what else "")
                + f" after {budget.attempts} attempts; raise {name} or lower max_tokens")

    def _post_with_retries(self, build: Callable[[str], dict], budget: _Budget, structured: bool) -> _Reply:
        """POST until a reply arrives, retrying transport failures and stepping down structured-output modes."""
        while True:
            mode = self._mode if structured else "none"
            try:
                return self._post(build(mode), budget)
            except _Failure as fail:
                if fail.fallback and self.cfg.json_schema_mode == "auto" and mode in _FALLBACK:
                    with self._lock:
                        if self._mode == mode:
                            self._mode = _FALLBACK[mode]
                            log.warning("server at %s rejected response_format %r (%s); using %r from now on",
                                        _safe_url(self.cfg.base_url), mode, fail.reason, self._mode)
                    continue  # a capability probe, not a retry: the budget is not charged
                if fail.fallback:
                    fail.reason += (f" (the server does not support response_format {mode!r}; "
                                    "set json_schema_mode='auto' or a weaker mode)")
                retry_index = self.cfg.max_retries - budget.retries_left
                if not fail.retryable or not self._spend_retry(budget):
                    raise
                delay = fail.retry_after if fail.retry_after is not None else min(
                    self.cfg.backoff_s * 2 ** retry_index * random.uniform(0.5, 1.5), MAX_BACKOFF_S)
                if delay >= budget.left():  # waiting would cross the deadline: fail now, saying why
                    fail.retryable = False
                    fail.reason = (f"{fail.reason}; the next try would start after {delay:.1f}s"
                                   f"{' (Retry-After)' if fail.retry_after is not None else ''}, past the deadline "
                                   f"({max(budget.left(), 0):.1f}s left of {budget.deadline_name}="
                                   f"{getattr(self.cfg, budget.deadline_name):g})")
                    raise fail
                log.info("LLM call failed (%s); retry %d/%d in %.2fs", fail.reason, retry_index + 1,
                         self.cfg.max_retries, delay)
                time.sleep(delay)

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
        truncated = (f" (finish_reason='length': the reply was cut at max_tokens={max_tokens}; raise max_tokens)"
                     if finish == "length" else "")
        try:
            value = extract_json(content)
        except ValueError as exc:
            raise ValueError(f"{exc}{truncated}") from None
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

    def _fail_text(self, fail: _Failure, budget: _Budget) -> str:
        """Final reason for a call that ran out of tries: says how many retries were spent."""
        used = self.cfg.max_retries - budget.retries_left
        if not fail.retryable or not used:
            return fail.reason
        if fail.status is not None:
            return f"HTTP {fail.status} after {used} retries ({budget.attempts} attempts): {fail.detail}"
        return f"{fail.reason} (after {used} retries, {budget.attempts} attempts)"

    def _new_budget(self) -> _Budget:
        """A fresh retry budget whose deadline is the call deadline, or the batch's if that comes first."""
        deadline = time.monotonic() + self.cfg.call_deadline_s
        if self._batch_end is not None and self._batch_end < deadline:
            return _Budget(self.cfg.max_retries, deadline=self._batch_end, deadline_name="batch_deadline_s")
        return _Budget(self.cfg.max_retries, deadline=deadline)

    def _spend_retry(self, budget: _Budget) -> bool:
        """Take one retry from the budget; False when none is left."""
        if budget.retries_left <= 0:
            return False
        budget.retries_left -= 1
        with self._lock:
            self._totals["retries"] += 1
        return True

    def _complete_one(self, messages: list[dict], schema: dict | None, validate: Callable[[Any], Any] | None,
                      temperature: float, seed: int | None, budget: _Budget | None = None,
                      first: tuple[str | None, str | None, str | None] | None = None,
                      t0: float | None = None) -> CallResult:
        """One logical call with retries and re-asks.

        ``first`` is an already received reply (content, finish_reason, refusal) from an ``n > 1``
        request: it is checked first and only re-asked when invalid.
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
                    reply = self._post_with_retries(
                        lambda mode: self._payload(convo, mode, schema, temperature, seed, 1), budget, structured)
                except _Failure as fail:
                    return self._result(False, last_content, None, self._fail_text(fail, budget), budget, t0)
                pending = (reply.contents[0], reply.finish_reasons[0], reply.refusals[0])
            last_content = pending[0]
            try:
                value = self._check_reply(*pending, structured, schema, validate, self.cfg.max_tokens)
                self._note_parse(structured, ok=True)
                return self._result(True, last_content, value, None, budget, t0)
            except ValueError as exc:
                reason = str(exc)
                # not JSON at all, or (json_schema mode) JSON off the schema: what an enforcing server never sends
                off_structure = reason.startswith("invalid JSON") or (
                    self._mode == "json_schema" and not reason.startswith(("validation:", "model refused", "empty reply")))
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
            note = (f"{_safe_url(self.cfg.base_url)} accepted response_format {self._mode!r} but {IGNORED_AFTER} replies "
                    f"in a row were not JSON: the server does not enforce it (model {self.cfg.model!r}). Replies are "
                    f"still checked and re-asked, at extra requests per item. Servers that enforce a schema: "
                    f"{ENFORCING_SERVERS}.")
            self.notes.append(note)
        log.warning(note)

    @staticmethod
    def _reask(bad_content: str | None, reason: str) -> list[dict]:
        return [{"role": "assistant", "content": bad_content or ""},
                {"role": "user", "content": f"Your previous reply could not be used: {reason}. "
                                            "Reply again with only a single valid JSON object, no other text."}]

    # -- public API ------------------------------------------------------------------------------

    def complete(self, messages: list[dict], *, schema: dict | None = None,
                 validate: Callable[[Any], Any] | None = None, n: int = 1, temperature: float | None = None,
                 seed: int | None = None) -> CallResult | list[CallResult]:
        """Send one chat completion (with retries) and return its result; never raises for a failed call.

        Args:
            messages: OpenAI chat messages, e.g. ``[{"role": "user", "content": "..."}]``.
            schema: JSON schema the reply must satisfy. Sent as ``response_format`` per
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
            ValueError: For invalid arguments (empty messages, n < 1, bad temperature).
        """
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts, "
                             f"got {_short(messages)}")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n={n!r} is invalid: must be an int >= 1")
        temp = self.cfg.temperature if temperature is None else temperature
        if not (isinstance(temp, (int, float)) and 0 <= temp <= 2):
            raise ValueError(f"temperature={temp!r} is invalid: must be in [0, 2]")
        if n == 1:
            result = self._complete_one(messages, schema, validate, temp, seed)
            self._record([result])
            return result
        if temp == 0:
            log.warning("complete(n=%d) with temperature=0: samples will usually be identical; "
                        "pass temperature>0 for self-consistency voting", n)
        results = self._complete_n(messages, schema, validate, temp, seed, n)
        self._record(results)
        return results

    def _complete_n(self, messages: list[dict], schema: dict | None, validate: Callable[[Any], Any] | None,
                    temp: float, seed: int | None, n: int) -> list[CallResult]:
        def sequential(start: int) -> list[CallResult]:
            return [self._complete_one(messages, schema, validate, temp, None if seed is None else seed + i)
                    for i in range(start, n)]

        if self._n_supported is False:
            return sequential(0)
        t0 = time.perf_counter()
        budget = self._new_budget()
        structured = schema is not None or validate is not None
        try:
            reply = self._post_with_retries(
                lambda mode: self._payload(messages, mode, schema, temp, seed, n), budget, structured)
        except _Failure as fail:
            if fail.status == 400 and not fail.fallback and _N_PARAM_RE.search(fail.detail):
                log.warning("server rejected n=%d (%s); falling back to sequential samples", n, fail.reason)
                self._n_supported = False
                return sequential(0)
            first = self._result(False, None, None, self._fail_text(fail, budget), budget, t0)
            rest = [CallResult(False, None, None, first.error, 0, 0, 0, first.seconds) for _ in range(n - 1)]
            return [first, *rest]
        got = len(reply.contents)
        if got < n:
            if self._n_supported is None:
                log.info("server returned %d of n=%d choices; using sequential samples for the rest", got, n)
            self._n_supported = False
        else:
            self._n_supported = True
        results: list[CallResult] = []
        for i in range(min(got, n)):
            # Each sample keeps its own re-ask budget; the shared request's attempts/tokens go on sample 0.
            own = budget if i == 0 else replace(budget, retries_left=self.cfg.max_retries, attempts=0,
                                                prompt_tokens=0, completion_tokens=0)
            sample_seed = None if seed is None else seed + i
            results.append(self._complete_one(
                messages, schema, validate, temp, sample_seed, own,
                first=(reply.contents[i], reply.finish_reasons[i], reply.refusals[i]), t0=t0))
        return results + sequential(len(results))

    def preflight(self) -> None:
        """Check once that the endpoint serves ``cfg.model`` for chat completions; raise `EndpointError` if not.

        One chat call with ``max_tokens=1`` and no retries (`PREFLIGHT_MESSAGES`): any HTTP error is final
        here, so a mistyped model name that a server answers with a 500 fails in one request instead of a
        batch of retried ones (a connection reset is tried once more: servers close kept-alive connections
        after an error). On failure ``GET /models`` is asked, briefly, for the names the server lists.
        """
        if self._preflight_done:
            return
        payload = {"model": self.cfg.model, "messages": PREFLIGHT_MESSAGES, "max_tokens": 1}
        try:
            try:
                self._post(payload, replace(self._new_budget(), retries_left=0))
            except _Failure as fail:
                if fail.status is not None:
                    raise
                # a kept-alive connection the server closed: once more, fresh
                self._post(payload, replace(self._new_budget(), retries_left=0))
        except _Failure as fail:
            served = self._served_models()
            listed = f" The server lists: {', '.join(served[:10])}." if served else ""
            raise EndpointError(f"{_safe_url(self.cfg.base_url)} cannot serve model {self.cfg.model!r} for chat "
                                f"completions: {fail.reason}.{listed} Check the model name and that base_url ends "
                                "in /v1 (nothing of this batch was sent).") from None
        self._preflight_done = True

    def _served_models(self) -> list[str]:
        """Model ids from ``GET /models`` (0.5 s at most: some servers build the list slowly), [] when unknown."""
        try:
            resp = self._http.get(self.cfg.base_url + "/models", headers=self._auth_headers(), timeout=min(self.cfg.timeout_s, 0.5))
            body = resp.json() if resp.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return []
        data = body.get("data") if isinstance(body, dict) else None
        return [str(m.get("id")) for m in data or [] if isinstance(m, dict)]

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
            EndpointError: from `preflight`, before anything of the batch is sent, when the endpoint cannot
                serve the model at all.
        """
        from tqdm.auto import tqdm

        results: list[Any] = [None] * len(batch)
        if not batch:
            return results
        self.preflight()
        self._batch_end = time.monotonic() + self.cfg.batch_deadline_s if self.cfg.batch_deadline_s else None
        failures = 0
        workers = min(self.cfg.concurrency, len(batch))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm")
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
                    self._record([results[i]])
                items = results[i] if isinstance(results[i], list) else [results[i]]
                failures += sum(not r.ok for r in items)
                bar.update(1)
                if failures:
                    bar.set_postfix(failures=failures, refresh=False)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            bar.close()
            self._batch_end = None
        pool.shutdown(wait=True)
        return results


def _as_int(value: Any) -> int:
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0
