"""Where and how to call an LLM endpoint: `EndpointConfig`, checked as it is built, and `safe_url`.

Split from `workbench.llm.client` (which re-exports `EndpointConfig`) so the settings, their defaults and
limits can be read on their own. Nothing here sends a request; the API key itself is never stored, only
the name of the environment variable holding it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENV_BASE_URL = "WORKBENCH_LLM_BASE_URL"
ENV_MODEL = "WORKBENCH_LLM_MODEL"
JSON_SCHEMA_MODES = ("auto", "json_schema", "json_object", "none")
_NUMBER = (int, float)



def _seconds(v: Any) -> bool:
    return isinstance(v, _NUMBER) and 0 < v < math.inf


_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "timeout_s": (_seconds, "must be a finite number of seconds > 0"),
    "call_deadline_s": (lambda v: v is None or _seconds(v), "must be a finite number of seconds > 0 or None "
                        "(None: 2 x timeout_s)"),
    "max_reply_bytes": (lambda v: isinstance(v, int) and v >= 1024, "must be an int >= 1024 (bytes)"),
    "batch_deadline_s": (lambda v: v is None or _seconds(v), "must be a finite number of seconds > 0 or None"),
    "max_retries": (lambda v: isinstance(v, int) and v >= 0, "must be an int >= 0 (0 = no retries)"),
    "backoff_s": (lambda v: isinstance(v, _NUMBER) and v >= 0, "must be seconds >= 0"),
    "concurrency": (lambda v: isinstance(v, int) and v >= 1, "must be an int >= 1"),
    "temperature": (lambda v: isinstance(v, _NUMBER) and 0 <= v <= 2, "must be in [0, 2]"),
    "max_tokens": (lambda v: isinstance(v, int) and v >= 1, "must be an int >= 1"),
    "json_schema_mode": (lambda v: v in JSON_SCHEMA_MODES, f"choose one of {', '.join(JSON_SCHEMA_MODES)}"),
    "price_in_per_1k": (lambda v: isinstance(v, _NUMBER) and v >= 0, "must be USD per 1k tokens >= 0"),
    "price_out_per_1k": (lambda v: isinstance(v, _NUMBER) and v >= 0, "must be USD per 1k tokens >= 0"),
}


@dataclass(frozen=True)
class EndpointConfig:
    """Where and how to call an OpenAI-compatible chat-completions endpoint.

    Attributes:
        base_url: API root including the version, e.g. ``"http://localhost:8000/v1"``; ``""`` means
            ``$WORKBENCH_LLM_BASE_URL`` (filled in by `resolved`).
        model: Model name as the server knows it; ``""`` means ``$WORKBENCH_LLM_MODEL``.
        api_key_env: NAME of the environment variable holding the API key. The key itself is never
            stored here. When the variable is unset or empty, no Authorization header is sent (local servers).
        timeout_s: Longest one HTTP request may take, its whole reply included: the SDK's ``timeout`` bounds
            connecting and each read; a body still arriving ``timeout_s`` after the request was sent is cut
            and the request counts as timed out (retried like any timeout).
        max_retries: Retries after the first attempt (so at most ``max_retries + 1`` attempts per call),
            shared between the SDK's retries of transport failures and re-asks for invalid replies.
        backoff_s: First wait of the SDK's exponential backoff: retry ``k`` (0-based) waits about
            ``backoff_s * 2**k`` (jitter x0.75-1, at most ``16 * backoff_s``) unless the server sent ``Retry-After``.
        concurrency: Worker threads for `ChatClient.complete_many`.
        temperature: Default sampling temperature.
        max_tokens: Completion token limit per request.
        json_schema_mode: How to ask for structured output: ``"auto"`` (``json_schema`` then
            ``json_object`` then nothing, as the server allows), ``"json_schema"``, ``"json_object"``
            or ``"none"`` (prompt-only; replies are still parsed and checked client-side).
        price_in_per_1k: Optional USD per 1,000 prompt tokens, for the cost estimate.
        price_out_per_1k: Optional USD per 1,000 completion tokens.
        call_deadline_s: Wall-clock limit of one logical call, everything included (connecting, waiting,
            a body that trickles in, retries, backoff and ``Retry-After`` waits, re-asks); None (default):
            ``2 * timeout_s`` (see `call_deadline`). ``timeout_s`` bounds each request; this bounds the call.
            A wait that would cross it fails the call at once.
        batch_deadline_s: Wall-clock limit of one `ChatClient.complete_many` batch (None: none). Items not
            started by then fail with that reason; running ones stop at it. It covers the preflight too.
        max_reply_bytes: Largest reply body read (8 MiB; a chat reply of 512 tokens is a few KB). A larger
            one fails the call, not retried, as soon as it is known (from ``Content-Length`` or while
            it arrives), without reading the rest.
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
    call_deadline_s: float | None = None  # None: 2 x timeout_s, one full-length reply plus room for retries
    batch_deadline_s: float | None = None
    max_reply_bytes: int = 8 * 2**20  # 8 MiB: hundreds of times a normal reply, bounded memory per call

    def __post_init__(self) -> None:
        if self.base_url and not re.match(r"^https?://[^/\s]+", self.base_url):
            raise ValueError(f"EndpointConfig.base_url={self.base_url!r} is invalid: expected an http(s) URL such as "
                             "'http://localhost:8000/v1'")
        # The value of api_key_env is never echoed: it might be a key pasted into the wrong field.
        if not isinstance(self.api_key_env, str) or self.api_key_env.startswith(("sk-", "sk_")) \
                or len(self.api_key_env) > 64:
            raise ValueError("EndpointConfig.api_key_env looks like a key (value not shown): put the key in an "
                             "environment variable and give that variable's NAME, e.g. 'WORKBENCH_LLM_API_KEY'")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            raise ValueError("EndpointConfig.api_key_env is invalid (value not shown): give the NAME of an "
                             "environment variable (letters, digits, _), e.g. 'OPENAI_API_KEY', never the key itself")
        for name, (ok, rule) in _RULES.items():
            if not ok(getattr(self, name)):
                raise ValueError(f"EndpointConfig.{name}={getattr(self, name)!r} is invalid: {rule}")

    @property
    def call_deadline(self) -> float:
        """The call deadline in force: ``call_deadline_s``, or ``2 * timeout_s`` when that is None.

        Twice the per-request limit lets a reply that takes the whole ``timeout_s`` arrive and still leaves
        room for a retry, backoff or a short ``Retry-After``; a server that trickles or hangs holds a call no
        longer than that.
        """
        return self.call_deadline_s if self.call_deadline_s is not None else 2 * self.timeout_s

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={(safe_url(v) if f.name == 'base_url' else v)!r}"
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
                f"{safe_url(base_url)} serves (GET {safe_url(base_url)}/models lists them)")
        return replace(self, base_url=base_url, model=model)  # replace() re-runs __post_init__ validation


def safe_url(url: str) -> str:
    """Drop any ``user:password@`` from a URL so it can be shown."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.username or parts.password:
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))
    return url
