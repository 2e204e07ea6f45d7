"""The HTTP side of `workbench.llm.client`: what sits between `ChatClient` and the wire.

* `SDK`: ``openai.OpenAI`` that shows each retry to the client before sleeping for it (rescaled backoff,
  deadlines) and can narrow the statuses it retries (the preflight's);
* `on_response`, the httpx response hook: a reply-size cap that stops reading as soon as a body is known to
  be too large, error bodies read before the SDK drops them, redirects followed within one origin only;
* `server_message` and `parse_body`: an error body as one line, a chat-completions body as choices and
  token counts, every odd shape a reason rather than an exception.

Internal to `workbench.llm`: the names are public so the client can import them, not an API. It does not
retry, wait or decide anything; `ChatClient` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

import openai

SDK_BACKOFF_BASE_S = 0.5  # openai._constants.INITIAL_RETRY_DELAY: the SDK's first backoff, rescaled to backoff_s
SDK_MAX_RETRY_AFTER_S = 120.0  # openai._constants.MAX_RETRY_AFTER_DELAY: a longer Retry-After is not retried
TOOL_CALLS_REPLY = "the reply holds tool_calls"
REFUSED_LOCATION = "x-workbench-refused-location"
REFUSED_WHY = "x-workbench-refused-why"


Choice = tuple[str | None, str | None, str | None]  # (content, finish_reason, refusal) of one reply choice


class Failure(Exception):
    """Internal: a failed exchange. ``retryable``: a transient kind (the SDK retried it, or this layer will)."""

    def __init__(self, reason: str, *, retryable: bool, status: int | None = None, detail: str = ""):
        super().__init__(reason)
        self.reason, self.retryable, self.status = reason, retryable, status
        self.detail = detail  # for HTTP errors: the server's message (+ hint), without the "HTTP nnn: " prefix
        self.fallback = False  # a 400/422 about response_format: try the next structured-output mode


class ReplyTooLarge(Exception):
    """Raised while a response arrives, as soon as its body is known to pass ``max_reply_bytes``."""

    def __init__(self, what: str, status: int):
        super().__init__(what)
        self.what, self.status = what, status


class WaitPastDeadline(Exception):
    """Raised in the SDK's retry loop, which it ends, when the next wait would cross the call's deadline."""

    def __init__(self, wait: float, server_asked: bool):
        super().__init__(f"wait {wait:.1f}s")
        self.wait, self.server_asked = wait, server_asked


# --------------------------------------------------------------------------------------------- the SDK


class SDK(openai.OpenAI):
    """`openai.OpenAI` that shows each retry to `ChatClient` before sleeping for it.

    The SDK has no public hook there. `_calculate_retry_timeout` is where it decides every wait (its backoff or
    the server's Retry-After) before each retry, with the same signature in openai 1.40, 2.0, 2.54 and 3.54;
    it is the one override (and `_parse_retry_after_header` the one private helper used).
    ``before_retry(wait, retry_after) -> (wait, next attempt's timeout)`` may raise to end the retries.
    ``retry_statuses`` narrows the statuses the SDK retries (`_should_retry`, same signature in those releases).
    """

    before_retry: Callable[[float, float | None], tuple[float, float]] | None = None  # set on the per-call copy
    retry_statuses: frozenset[int] | None = None  # set on the per-call copy; None: the SDK's own rule

    def _should_retry(self, response: Any) -> bool:
        if self.retry_statuses is not None and response.status_code not in self.retry_statuses:
            return False
        return super()._should_retry(response)

    def _calculate_retry_timeout(self, remaining_retries: int, options: Any, response_headers: Any = None) -> float:
        wait = super()._calculate_retry_timeout(remaining_retries, options, response_headers)
        if self.before_retry is not None:
            wait, options.timeout = self.before_retry(wait, self._parse_retry_after_header(response_headers))
        return wait


def on_response(response: Any, *, max_bytes: int) -> None:
    """httpx response hook, before any of the body is read.

    Caps the body at ``max_bytes`` (`ReplyTooLarge` at once for a larger ``Content-Length``, else when the
    running count passes it: nothing more is read); reads error bodies now (the SDK drops them unread before
    a retry); follows a redirect within the same origin only: without ``Location`` the 3xx reaches the SDK
    as an error naming where it pointed and what differs.
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ReplyTooLarge(f"Content-Length {int(declared)}", response.status_code)
    response.stream = _capped_stream_type(type(response.stream))(response.stream, max_bytes, response.status_code)
    if response.is_error:
        response.read()
    if response.has_redirect_location:
        here, there = response.url, response.url.join(response.headers["location"])
        other = _other_origin(here, there)
        if other:
            response.headers[REFUSED_LOCATION] = str(there)
            response.headers[REFUSED_WHY] = other
            del response.headers["location"]


def _other_origin(here: Any, there: Any) -> str:
    """What makes URL ``there`` another origin than ``here``, e.g. ``"another port (8001, not 8000)"``; "" if same."""
    if there.host != here.host:
        return "another host"
    if there.scheme != here.scheme:
        return f"another scheme ({there.scheme}, not {here.scheme})"
    ports = [u.port or {"http": 80, "https": 443}.get(u.scheme) for u in (there, here)]
    return f"another port ({ports[0]}, not {ports[1]})" if ports[0] != ports[1] else ""


@cache
def _capped_stream_type(stream_type: type) -> type:
    """A byte stream of the SDK's httpx (``httpx2`` from openai 3.x, ``httpx`` before) that stops at a size.

    httpx accepts only its own ``SyncByteStream`` as a response stream; the base is taken from the stream
    being wrapped so the cap works on either package.
    """
    base = next(c for c in stream_type.__mro__ if c.__name__ == "SyncByteStream")

    class CappedStream(base):  # type: ignore[valid-type, misc]
        def __init__(self, inner: Any, max_bytes: int, status: int):
            self.inner, self.max_bytes, self.status, self.seen = inner, max_bytes, status, 0

        def __iter__(self) -> Any:
            for chunk in self.inner:
                self.seen += len(chunk)
                if self.seen > self.max_bytes:
                    raise ReplyTooLarge(f"more than {self.max_bytes} bytes", self.status)
                yield chunk

        def close(self) -> None:
            self.inner.close()

        @property
        def elapsed(self) -> Any:  # httpx reads the time taken from the stream it wrapped
            return getattr(self.inner, "elapsed", None)

    return CappedStream


def server_message(response: Any, limit: int = 300) -> str:
    """The server's error message: ``error.message`` / ``error`` / ``message`` / ``detail`` of JSON, else the text."""
    try:
        body = json.loads(response.text)
    except ValueError:
        body = response.text
    body = body.get("error", body) if isinstance(body, dict) else body
    msg = (body.get("message") or body.get("detail") or json.dumps(body)) if isinstance(body, dict) else body
    msg = str(msg or response.reason_phrase or "(empty body)").strip().replace("\n", " ")
    return (msg[:limit] + "...") if len(msg) > limit else msg


def parse_body(raw: bytes) -> tuple[list[Choice], int, int]:
    """A chat-completions body as (choices, prompt tokens, completion tokens); `Failure` when it is not one.

    Plain JSON rather than the SDK's models: servers differ (content as a list of parts, tool calls, no
    ``usage``), and every shape must become a reason, not an exception.
    """
    try:
        body = json.loads(raw)
    except ValueError:
        preview = raw[:120].decode("utf-8", "replace").replace("\n", "\\n")
        raise Failure(f"malformed response body (not JSON): starts {preview!r}", retryable=True) from None
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
        got = sorted(body)[:8] if isinstance(body, dict) else type(body).__name__
        raise Failure(f"malformed response body: no 'choices' list (got {got})", retryable=True)
    out: list[Choice] = []
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
        out.append((content if isinstance(content, str) else None, choice.get("finish_reason"), refusal))
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return out, _as_int(usage.get("prompt_tokens")), _as_int(usage.get("completion_tokens"))


def _as_int(value: Any) -> int:
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0

