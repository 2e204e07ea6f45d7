"""A scriptable fake OpenAI-compatible chat-completions server for tests and benchmarks.

Stdlib only (``http.server.ThreadingHTTPServer`` on ``127.0.0.1``, a free port, a background thread).
It answers ``POST /v1/chat/completions`` with OpenAI-shaped JSON and ``GET /v1/models``.

Each request takes the next *planned* `Reply` from a queue (``server.plan(...)``) and, once the queue is
empty, answers with the default ``responder(request_json) -> content``; the client's preflight pings have
their own queue (``server.plan_preflight(...)``). Every request is recorded in
``server.requests`` (path, headers, parsed body) so tests can assert what the client sent (and that
nothing was sent twice).

What it does not do: streaming, tool calls, real tokenisation (token counts are word counts), TLS.

Example:
    >>> with FakeLLMServer(responder=lambda req: '{"ok": true}') as srv:
    ...     srv.plan(Reply.error(500), Reply.rate_limited(retry_after=1), Reply.ok("hello"))
    ...     base_url = srv.base_url          # "http://127.0.0.1:PORT/v1"
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from workbench.llm.client import PREFLIGHT_MESSAGES

Responder = Callable[[dict], str]


def echo_responder(request: dict) -> str:
    """Default responder: ``{"echo": <last user message>}`` as JSON text."""
    last = next((m.get("content") for m in reversed(request.get("messages", [])) if m.get("role") == "user"), "")
    return json.dumps({"echo": last})


@dataclass
class Reply:
    """One planned behaviour of the server.

    Attributes:
        status: HTTP status to send.
        content: Assistant content for a 200 (None -> use the responder).
        raw_body: Send these bytes as the body verbatim (e.g. malformed JSON), overriding everything else.
        error_message: Message for a non-200 answer (OpenAI ``{"error": {"message": ...}}`` shape).
        headers: Extra response headers (e.g. ``{"Retry-After": "1"}``).
        delay_s: Sleep this long before answering (longer than the client timeout -> a timeout).
        usage: ``(prompt_tokens, completion_tokens)``; None -> word counts; ``False`` -> omit ``usage``.
        finish_reason: ``finish_reason`` of the choice(s).
    """

    status: int = 200
    content: str | None = None
    raw_body: bytes | None = None
    error_message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    usage: tuple[int, int] | None | bool = None
    finish_reason: str = "stop"
    drip_s: float = 0.0  # send the body one byte at a time, this many seconds apart (a slow-drip server)
    filler_bytes: int = 0  # send this many bytes of spaces as the body instead (a huge reply), in 64 KiB writes
    declare_length: bool = True  # with filler_bytes: send Content-Length; False: none, the body ends at close

    @classmethod
    def ok(cls, content: str, **kw: Any) -> Reply:
        """A 200 with this assistant content."""
        return cls(content=content, **kw)

    @classmethod
    def error(cls, status: int, message: str = "", **kw: Any) -> Reply:
        """An HTTP error with an OpenAI-style error body."""
        return cls(status=status, error_message=message or f"fake server error {status}", **kw)

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1, status: int = 429) -> Reply:
        """A 429 (or 503) with an optional ``Retry-After`` header in seconds."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return cls(status=status, error_message="rate limited, slow down", headers=headers)

    @classmethod
    def sleep(cls, seconds: float, content: str | None = None) -> Reply:
        """Answer (normally) only after ``seconds``: a timeout for a client with a shorter timeout."""
        return cls(content=content, delay_s=seconds)

    @classmethod
    def drip(cls, seconds_per_byte: float, content: str = "{}") -> Reply:
        """A 200 whose body arrives one byte every ``seconds_per_byte`` (each read is quick; the whole is not)."""
        return cls(content=content, drip_s=seconds_per_byte)

    @classmethod
    def huge(cls, n_bytes: int, *, status: int = 200, declare_length: bool = True) -> Reply:
        """A reply whose body is ``n_bytes`` of spaces; stops sending when the client hangs up."""
        return cls(status=status, filler_bytes=n_bytes, declare_length=declare_length)

    @classmethod
    def malformed(cls) -> Reply:
        """A 200 whose body is not JSON."""
        return cls(raw_body=b'{"id": "x", "choices": [ this is not json')


@dataclass
class RecordedRequest:
    """What the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it did not parse
    t: float  # time.perf_counter() on arrival


class FakeLLMServer:
    """The fake server; use as a context manager or call `start`/`stop`.

    Args:
        responder: ``request_json -> content`` for requests with no planned `Reply` left.
        latency_s: Fixed artificial latency added to every request (throughput benchmarks).
        reject_json_schema: Answer 400 to ``response_format: {"type": "json_schema"}`` (like older servers).
        reject_json_object: Also answer 400 to ``response_format: {"type": "json_object"}``.
        support_n: Honour the ``n`` parameter (return n choices); False returns one choice like Ollama.
        api_key: When set, requests must carry ``Authorization: Bearer <api_key>``; otherwise a 401
            whose message echoes the key received (as some servers do) — to test client-side redaction.
        model: The model name reported by ``GET /v1/models``.
    """

    def __init__(self, responder: Responder | None = None, *, latency_s: float = 0.0,
                 reject_json_schema: bool = False, reject_json_object: bool = False, support_n: bool = True,
                 api_key: str | None = None, model: str = "fake-model"):
        self.responder = responder or echo_responder
        self.latency_s = latency_s
        self.reject_json_schema = reject_json_schema
        self.reject_json_object = reject_json_object
        self.support_n = support_n
        self.api_key = api_key
        self.model = model
        self.requests: list[RecordedRequest] = []
        self.bytes_sent = 0  # body bytes of `Reply.huge` replies that went out before the client hung up
        self._plan: deque[Reply] = deque()
        self._preflight_plan: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._in_flight = 0
        self.max_in_flight = 0  # highest number of requests handled at the same time
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        """Bind ``127.0.0.1:0`` and serve in a daemon thread."""
        server = self

        class Handler(_Handler):
            fake = server

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # the default backlog of 5 drops connections under concurrency 32

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes handlers that are sleeping."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "FakeLLMServer is not started: call start() or use `with`"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting -------------------------------------------------------------------------------

    def plan(self, *replies: Reply | str) -> None:
        """Queue behaviours for the next requests, in order. A str is shorthand for ``Reply.ok(str)``."""
        with self._lock:
            self._plan.extend(Reply.ok(r) if isinstance(r, str) else r for r in replies)

    def plan_preflight(self, *replies: Reply) -> None:
        """Queue behaviours for the next preflight pings (errors, delays); then the model check answers."""
        with self._lock:
            self._preflight_plan.extend(replies)

    @property
    def pending(self) -> int:
        """Planned replies not used yet."""
        with self._lock:
            return len(self._plan)

    def preflight_requests(self) -> list[RecordedRequest]:
        """Recorded preflight pings."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions") and _is_preflight(r.body)]

    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded ``POST .../chat/completions`` requests, without the client's preflight pings."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions") and not _is_preflight(r.body)]

    def clear(self) -> None:
        """Forget recorded requests and planned replies."""
        with self._lock:
            self.requests.clear()
            self._plan.clear()
            self._preflight_plan.clear()
            self.max_in_flight = 0

    # -- internals used by the handler -----------------------------------------------------------

    def _next(self, preflight: bool = False) -> Reply | None:
        with self._lock:
            plan = self._preflight_plan if preflight else self._plan
            return plan.popleft() if plan else None

    def _enter(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _is_preflight(body: Any) -> bool:
    """`ChatClient.preflight`'s one-token ping: answered by the model check, never from the main plan (only
    from `FakeLLMServer.plan_preflight`'s)."""
    return isinstance(body, dict) and body.get("max_tokens") == 1 and body.get("messages") == PREFLIGHT_MESSAGES


def _headers(headers: Any) -> dict[str, str]:
    """Request headers with canonical names (``Authorization``): HTTP names are case-insensitive, clients differ."""
    return {k.title(): v for k, v in headers.items()}


def _words(text: str) -> int:
    return len(str(text).split())


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLLMServer
    protocol_version = "HTTP/1.1"  # keep-alive, like real servers

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle + delayed ACK add ~40 ms
        # to every keep-alive response, which would swamp the latency the benchmark sets.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, drip_s: float = 0.0) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if drip_s <= 0:
                self.wfile.write(body)
            for i in range(len(body) if drip_s > 0 else 0):
                self.wfile.write(body[i: i + 1])
                self.wfile.flush()
                if self.fake._stopping.wait(drip_s):
                    return
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            self.close_connection = True

    def _send_filler(self, reply: Reply) -> None:
        """`Reply.huge`: spaces until ``filler_bytes`` are out or the client hangs up; counts what went out."""
        sent, chunk = 0, b" " * 65536
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            if reply.declare_length:
                self.send_header("Content-Length", str(reply.filler_bytes))
            else:  # HTTP/1.1 without a length: the body ends when the connection closes
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            while sent < reply.filler_bytes and not self.fake._stopping.is_set():
                self.wfile.write(chunk[: reply.filler_bytes - sent])
                sent += min(len(chunk), reply.filler_bytes - sent)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with self.fake._lock:
                self.fake.bytes_sent += sent

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": "invalid_request_error", "code": status}}, headers)

    def do_GET(self) -> None:  # noqa: N802
        self.fake._enter(RecordedRequest("GET", self.path, _headers(self.headers), None, time.perf_counter()))
        try:
            if self.path.rstrip("/").endswith("/models"):
                self._json(200, {"object": "list", "data": [{"id": self.fake.model, "object": "model"}]})
            else:
                self._error(404, f"no route GET {self.path}")
        finally:
            self.fake._leave()

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = raw.decode("utf-8", "replace")
        fake = self.fake
        fake._enter(RecordedRequest("POST", self.path, _headers(self.headers), body, time.perf_counter()))
        try:
            self._answer(fake, body)
        finally:
            fake._leave()

    def _answer(self, fake: FakeLLMServer, body: Any) -> None:
        fake._wait(fake.latency_s)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._error(404, f"no route POST {self.path}; expected /v1/chat/completions")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._error(400, "request body must be JSON with a 'messages' list")
        if fake.api_key is not None:
            auth = self.headers.get("Authorization", "")
            if auth != f"Bearer {fake.api_key}":
                got = auth.removeprefix("Bearer ")
                return self._error(401, f"Incorrect API key provided: {got}. You can find your API key at ...")
        if _is_preflight(body):  # like a real server: the model name is checked, nothing else happens
            planned = fake._next(preflight=True)
            if planned is not None:
                fake._wait(planned.delay_s)
                if planned.status != 200:
                    return self._error(planned.status, planned.error_message or f"error {planned.status}",
                                       planned.headers)
            if body.get("model") != fake.model:
                return self._error(404, f"The model `{body.get('model')}` does not exist.")
            return self._json(200, {"id": "ping", "object": "chat.completion", "model": fake.model, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "length"}]})
        fmt = (body.get("response_format") or {}).get("type")
        if (fmt == "json_schema" and fake.reject_json_schema) or (fmt == "json_object" and fake.reject_json_object):
            return self._error(400, f"response_format type '{fmt}' is not supported by this server")
        reply = fake._next() or Reply()
        fake._wait(reply.delay_s)
        if reply.filler_bytes:
            return self._send_filler(reply)
        if reply.raw_body is not None:
            return self._send(reply.status, reply.raw_body, reply.headers)
        if reply.status != 200:
            return self._error(reply.status, reply.error_message or f"error {reply.status}", reply.headers)
        n = int(body.get("n") or 1) if fake.support_n else 1
        contents = [reply.content if reply.content is not None else fake.responder(body) for _ in range(n)]
        prompt_words = sum(_words(m.get("content", "")) for m in body["messages"] if isinstance(m, dict))
        if reply.usage is None or reply.usage is True:
            usage: tuple[int, int] | None = (prompt_words, sum(_words(c) for c in contents))
        else:
            usage = reply.usage or None
        out: dict[str, Any] = {
            "id": f"chatcmpl-fake-{len(fake.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", fake.model),
            "choices": [{"index": i, "message": {"role": "assistant", "content": c},
                         "finish_reason": reply.finish_reason} for i, c in enumerate(contents)],
        }
        if usage is not None:
            out["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                            "total_tokens": usage[0] + usage[1]}
        self._send(200, json.dumps(out).encode(), reply.headers, drip_s=reply.drip_s)
