"""A scriptable OpenAI-compatible chat-completions server on 127.0.0.1, for the LLM-path tests.

    fake = FakeLLM().start()
    fake.reply = "Sora was delayed [1]."            # or a function of the received messages
    fake.reply = lambda messages: Fault.STALL        # a function may return a Fault instead of text
    fake.fault = Fault.UNAUTHORIZED                  # every request fails this way
    ... Settings(llm_base_url=fake.url + "/v1") ...
    fake.requests[-1].messages                       # what the client sent
    fake.stop()

Streaming replies use HTTP/1.1 chunked transfer and Server-Sent Events, exactly as OpenAI does:
one `data: {chat.completion.chunk}` per piece of the reply, a final chunk with finish_reason, then
`data: [DONE]`. A broken stream sends a few chunks and closes the socket without the terminating
chunk, which a client can tell apart from a normal end.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Fault(StrEnum):
    STALL = "stall"  # accept the request, then say nothing for `stall_seconds`
    STALL_MIDSTREAM = "stall_midstream"  # stream a few chunks, then say nothing
    UNAUTHORIZED = "401"
    FORBIDDEN = "403"
    RATE_LIMITED = "429"
    SERVER_ERROR = "500"
    MALFORMED = "malformed"  # 200 with a body (or SSE event) that is not JSON
    NO_CHOICES = "no_choices"  # 200 with valid JSON that is not a chat completion
    BROKEN_STREAM = "broken"  # send part of the reply, then close the connection
    EMPTY = "empty"  # 200 with an empty reply text


ERROR_STATUS = {Fault.UNAUTHORIZED: 401, Fault.FORBIDDEN: 403, Fault.RATE_LIMITED: 429, Fault.SERVER_ERROR: 500}
ERROR_BODY = {
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: {key}."),
    403: ("invalid_request_error", "unsupported_country", "Key {key} may not use this model."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for key {key}. Please try again in 20s."),
    500: ("server_error", None, "The server had an error while processing your request (key {key})."),
}

Reply = str | Fault | Callable[[list[dict]], "str | Fault"]


@dataclass
class Received:
    """One request as the fake saw it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict | None
    raw: bytes = b""

    @property
    def messages(self) -> list[dict]:
        return (self.body or {}).get("messages", [])

    @property
    def stream(self) -> bool:
        return bool((self.body or {}).get("stream"))

    @property
    def system(self) -> str:
        return next((m["content"] for m in self.messages if m.get("role") == "system"), "")

    @property
    def user(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m.get("role") == "user"), "")


@dataclass
class FakeLLM:
    reply: Reply = "Sora was delayed for safety reasons [1]."
    fault: Fault | None = None  # overrides `reply` for every request when set
    chunk_chars: int = 3  # characters per streamed delta, small so that markers are split across deltas
    chunk_delay: float = 0.0  # seconds between streamed chunks
    stall_seconds: float = 30.0
    retry_after: str | None = None  # Retry-After header sent with 429/500 replies
    model: str = "fake-model"
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self):
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._release = threading.Event()  # set at stop() so that stalled handlers end at once
        self._lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "FakeLLM":
        fake = self

        class Handler(_Handler):
            owner = fake

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.handle_error = lambda request, client_address: None  # clients hanging up is expected here
        self._server = server
        self._release.clear()
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeLLM":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake LLM is not running"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Root URL; the OpenAI base URL is url + '/v1'."""
        return f"http://127.0.0.1:{self.port}"

    # --- inspection -----------------------------------------------------------------------------
    @property
    def chat_requests(self) -> list[Received]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    def _record(self, r: Received) -> None:
        with self._lock:
            self.requests.append(r)

    def _decide(self, r: Received) -> str | Fault:
        if self.fault is not None:
            return self.fault
        reply = self.reply
        if callable(reply):
            reply = reply(r.messages)
        return reply


def refused_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler(BaseHTTPRequestHandler):
    owner: FakeLLM
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming like real servers

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    # --- plumbing -------------------------------------------------------------------------------
    def _read_request(self) -> Received:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        r = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, raw)
        self.owner._record(r)
        return r

    def _send_json(self, status: int, payload, headers: dict | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_fake")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, payload) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self._chunk(f"data: {data}\n\n".encode())

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _stall(self) -> None:
        self.owner._release.wait(self.owner.stall_seconds)
        self._hang_up()

    # --- endpoints ------------------------------------------------------------------------------
    def do_GET(self):
        r = self._read_request()
        if r.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": self.owner.model, "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        r = self._read_request()
        if not r.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {r.path}", "type": "invalid_request_error"}})
            return
        if r.body is None:
            self._send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        outcome = self.owner._decide(r)
        if isinstance(outcome, Fault) and outcome in ERROR_STATUS:
            return self._error(outcome, r)
        if outcome is Fault.STALL:
            return self._stall()
        if r.stream:
            self._stream(outcome)
        else:
            self._complete(outcome)

    def _error(self, fault: Fault, r: Received) -> None:
        status = ERROR_STATUS[fault]
        kind, code, message = ERROR_BODY[status]
        # Echo the received key, as a careless proxy would: nothing downstream may repeat it.
        key = r.headers.get("authorization", "").removeprefix("Bearer ")
        headers = {}
        if self.owner.retry_after is not None and status in (429, 500):
            headers["Retry-After"] = self.owner.retry_after
        self._send_json(status, {"error": {"message": message.format(key=key), "type": kind, "param": None,
                                           "code": code}}, headers)

    def _completion(self, text: str) -> dict:
        return {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": self.owner.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    def _complete(self, outcome: str | Fault) -> None:
        if outcome is Fault.MALFORMED:
            self._send_json(200, b'{"id": "chatcmpl-fake", "choices": [{"message": {"content": "Sora was')
        elif outcome is Fault.NO_CHOICES:
            self._send_json(200, {"status": "ok", "detail": "this is not a chat completion"})
        elif outcome in (Fault.BROKEN_STREAM, Fault.STALL_MIDSTREAM):
            data = json.dumps(self._completion("Sora was delayed for safety reasons [1].")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if outcome is Fault.STALL_MIDSTREAM:
                self.owner._release.wait(self.owner.stall_seconds)
            self._hang_up()
        else:
            self._send_json(200, self._completion("" if outcome is Fault.EMPTY else str(outcome)))

    def _stream(self, outcome: str | Fault) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": self.owner.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        broken = outcome in (Fault.BROKEN_STREAM, Fault.STALL_MIDSTREAM, Fault.MALFORMED)
        text = "Sora was delayed for safety reasons [1]." if broken else ("" if isinstance(outcome, Fault) else outcome)
        n = max(1, self.owner.chunk_chars)
        pieces = [text[i : i + n] for i in range(0, len(text), n)]
        if broken:
            pieces = pieces[: max(2, len(pieces) // 2)]
        self._event(chunk({"role": "assistant", "content": ""}))
        for piece in pieces:
            if self.owner.chunk_delay:
                time.sleep(self.owner.chunk_delay)
            self._event(chunk({"content": piece}))
        if outcome is Fault.MALFORMED:
            self._event('{"id": "chatcmpl-fake", "choices": [{"delta": {"content": "oops')
            self._chunk(b"")
            return
        if outcome is Fault.STALL_MIDSTREAM:
            self.owner._release.wait(self.owner.stall_seconds)
        if broken:
            self._hang_up()
            return
        self._event(chunk({}, "stop"))
        self._event("[DONE]")
        self._chunk(b"")  # the terminating zero-length chunk


@pytest.fixture
def fake_llm():
    """A running FakeLLM, stopped after the test."""
    fake = FakeLLM().start()
    try:
        yield fake
    finally:
        fake.stop()
