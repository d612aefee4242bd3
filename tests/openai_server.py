"""A real HTTP server speaking the OpenAI chat completions API, for tests that must not reach a real provider.

It listens on 127.0.0.1 on a free port in a background thread. A responder decides each answer: it receives the
parsed request body and returns the reply's content (a string) or a `Fault` (delay, HTTP error, connection reset,
garbage body, null or truncated content). Every request is recorded, so a test can assert on what the client sent.
A request for `n` choices asks the responder n times, one choice per reply (a fault of the whole response, such
as an HTTP error, answers the request as it stands); `max_choices` makes a server that gives fewer, as a provider
without `n` does.

    with OpenAIServer(lambda request: "def f(): return 1") as server:
        server.base_url    # "http://127.0.0.1:PORT/v1"
        server.requests    # [RecordedRequest(...), ...]

`sequence(...)` builds a responder that plays its replies in order (the last one repeats), which is how the retry
tests script "500, then success". As a pytest fixture: `from openai_server import openai_server`, then
`def test_x(openai_server): openai_server.responder = sequence(Fault.http(500), "ok")`.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = [
    "Fault", "OpenAIServer", "RecordedRequest", "Reply", "Responder", "count_tokens", "openai_server", "sequence",
]


@dataclass(frozen=True)
class Fault:
    """A scripted misbehaviour of the server; build one with the class methods, not the constructor."""

    kind: str  # "delay", "status", "reset", "garbage", "null_content", "truncated"
    seconds: float = 0.0  # delay: how long to wait before answering
    then: Reply | None = None  # delay: the reply after the wait
    status: int = 0  # status: the HTTP status code
    retry_after: float | None = None  # status: the Retry-After header in seconds
    message: str = ""  # status: the error message; garbage: the body; truncated: the content

    @classmethod
    def delay(cls, seconds: float, then: Reply = "ok") -> Fault:
        """Wait `seconds` (interrupted when the server stops), then answer with `then`."""
        return cls("delay", seconds=seconds, then=then)

    @classmethod
    def http(cls, status: int, message: str = "", *, retry_after: float | None = None) -> Fault:
        """Answer with an OpenAI-style error body and this HTTP status (429, 500, 503, 401, ...)."""
        return cls("status", status=status, message=message or f"scripted HTTP {status}", retry_after=retry_after)

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection with a TCP reset without sending any response."""
        return cls("reset")

    @classmethod
    def garbage(cls, body: str = "<html>502 bad gateway, not JSON</html>") -> Fault:
        """Answer 200 with a body that is not JSON (though the header claims it is)."""
        return cls("garbage", message=body)

    @classmethod
    def null_content(cls) -> Fault:
        """Answer a well-formed completion whose message content is null."""
        return cls("null_content")

    @classmethod
    def truncated(cls, content: str) -> Fault:
        """Answer `content` with finish_reason "length", as a model does when it hits max_tokens."""
        return cls("truncated", message=content)


Reply = str | Fault
Responder = Callable[[dict[str, Any]], Reply]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # the parsed JSON body, or None
    received_at: float  # time.monotonic() on arrival

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of a completion request."""
        return self.body["messages"]


def count_tokens(text: str | None) -> int:
    """A deterministic stand-in for a tokenizer: the number of whitespace-separated words."""
    return len(text.split()) if text else 0


def sequence(*replies: str | Fault) -> Responder:
    """A responder that answers with `replies` in order and repeats the last one after that."""
    if not replies:
        raise ValueError("sequence() needs at least one reply")
    lock = threading.Lock()
    index = 0

    def respond(_request: dict[str, Any]) -> str | Fault:
        nonlocal index
        with lock:
            reply = replies[min(index, len(replies) - 1)]
            index += 1
        return reply

    return respond


class OpenAIServer:
    """A threaded OpenAI-compatible HTTP server on 127.0.0.1; use it as a context manager."""

    def __init__(
        self,
        responder: Responder | str | Fault = "ok",
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = (),
        max_choices: int | None = None,
    ) -> None:
        """`responder`: a callable, or one reply given to every request. `api_key`: when set, any other bearer token
        gets 401. `models`: when set, any other model gets 404 (and GET /v1/models lists them). `max_choices`: the
        most choices one response holds, whatever `n` asked (None: as many as asked)."""
        if isinstance(responder, (str, Fault)):
            self.responder: Responder = lambda _request, reply=responder: reply
        else:
            self.responder = responder
        self.api_key = api_key
        self.models = models
        self.max_choices = max_choices
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        """Bind a free port and serve in a daemon thread."""
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},  # shutdown() waits up to one poll interval; the default is 0.5 s
            name="openai-test-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; delayed answers still waiting are abandoned."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what tests read -----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on."""
        assert self._httpd is not None, "the server is not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """The api_base to give a client, e.g. http://127.0.0.1:PORT/v1."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def completion_requests(self) -> list[RecordedRequest]:
        """The POST /v1/chat/completions requests received so far."""
        return [r for r in self.requests if r.method == "POST" and r.path.rstrip("/").endswith("/chat/completions")]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A started server answering "ok"; set `.responder` in the test to script it. Import it into a test module
    (or a conftest.py) to use it."""
    with OpenAIServer("ok") as server:
        yield server


class _Handler(BaseHTTPRequestHandler):
    server_state: OpenAIServer  # set on the subclass that start() builds
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers do
    timeout = 30  # an idle keep-alive connection's thread ends after this many seconds

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass  # keep test output clean

    # -- routes --------------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._record(None)
        if self.path.rstrip("/") == "/v1/models":
            models = self.server_state.models or ("test-model",)
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "evoforge-tests"} for m in models]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_error(404, f"no route GET {self.path}", "invalid_request_error", "not_found")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        self._record(body)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_error(404, f"no route POST {self.path}", "invalid_request_error", "not_found")
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._send_error(400, "the body must be a JSON object with a 'messages' list", "invalid_request_error")
            return
        state = self.server_state
        if state.api_key is not None and self.headers.get("Authorization") != f"Bearer {state.api_key}":
            self._send_error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
            return
        if state.models and body.get("model") not in state.models:
            message = f"The model `{body.get('model')}` does not exist or you do not have access to it."
            self._send_error(404, message, "invalid_request_error", "model_not_found")
            return
        if body.get("stream"):
            self._send_error(400, "this test server does not support stream: true", "invalid_request_error")
            return
        self._answer(body, state.responder(body))

    # -- answers -------------------------------------------------------------------------------------------------

    def _answer(self, body: dict[str, Any], reply: str | Fault) -> None:
        if isinstance(reply, str) or reply.kind in _CHOICE_KINDS:
            self._send_completion(body, [reply, *self._more_choices(body)])
            return
        if reply.kind == "delay":
            if self.server_state._stopping.wait(reply.seconds):
                self._reset()
                return
            self._answer(body, reply.then if reply.then is not None else "ok")
        elif reply.kind == "status":
            headers = {} if reply.retry_after is None else {"Retry-After": _format_seconds(reply.retry_after)}
            error_type = {429: "rate_limit_error", 401: "invalid_request_error"}.get(reply.status, "server_error")
            self._send_error(reply.status, reply.message, error_type, headers=headers)
        elif reply.kind == "reset":
            self._reset()
        elif reply.kind == "garbage":
            self._send_bytes(200, reply.message.encode(), "application/json")
        else:
            raise ValueError(f"unknown Fault kind {reply.kind!r}")

    def _more_choices(self, body: dict[str, Any]) -> list[str | Fault]:
        """The replies for the second and later choices a request's `n` asks for (within max_choices)."""
        state = self.server_state
        wanted = body.get("n") if isinstance(body.get("n"), int) else 1
        count = min(wanted, state.max_choices) if state.max_choices is not None else wanted
        more = [state.responder(body) for _ in range(count - 1)]
        for reply in more:
            if isinstance(reply, Fault) and reply.kind not in _CHOICE_KINDS:
                raise ValueError(f"a {reply.kind!r} fault cannot be one choice of several; script it first")
        return more

    def _send_completion(self, body: dict[str, Any], replies: list[str | Fault]) -> None:
        choices = [_choice(i, reply) for i, reply in enumerate(replies)]
        prompt_tokens = sum(count_tokens(_text_of(m.get("content"))) for m in body["messages"])
        completion_tokens = sum(count_tokens(c["message"]["content"]) for c in choices)
        self._send_json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "test-model"),
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    def _send_error(
        self,
        status: int,
        message: str,
        error_type: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        error = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
        self._send_json(status, error, headers)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its timeout fired while we were delayed)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN: a real "connection reset by peer".
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass

    def _record(self, body: Any) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server_state._record(RecordedRequest(self.command, self.path, headers, body, time.monotonic()))


_CHOICE_KINDS = ("null_content", "truncated")  # faults of one choice, not of the whole response


def _choice(index: int, reply: str | Fault) -> dict[str, Any]:
    """One choice of a completion: a reply's text, a null content, or a text cut at max_tokens."""
    content = reply if isinstance(reply, str) else None if reply.kind == "null_content" else reply.message
    finish_reason = "length" if isinstance(reply, Fault) and reply.kind == "truncated" else "stop"
    return {"index": index, "message": {"role": "assistant", "content": content}, "logprobs": None,
            "finish_reason": finish_reason}


def _text_of(content: Any) -> str:
    """The text of a message's content, which is a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"
