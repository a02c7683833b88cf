"""A mock LLM provider: a real HTTP server on 127.0.0.1 that speaks the documented wire formats
of OpenAI-compatible chat completions and of Ollama's native API, so that llm_core, the API
tests and the browser tests talk to something that behaves like the real thing.

Usage in tests::

    with MockUpstream() as upstream:           # port 0: a free port is picked
        client = LLMClient.create("vllm", upstream.openai_url)
        ...
        upstream.requests[-1].body             # what the client sent (JSON)
        upstream.wait_for_disconnect(1.0)      # when the client hung up on a stream

From the command line (run from backend/; serves until killed)::

    python -m tests.upstream --port 8765 [--host 127.0.0.1]

Endpoints
    POST /v1/chat/completions   OpenAI chat completions: JSON, or SSE (`data: {...}\\n\\n`,
                                ending `data: [DONE]`) when "stream": true; with
                                "stream_options": {"include_usage": true} a last chunk with
                                empty choices carries the usage.
    GET  /v1/models             OpenAI list format: every scenario below as a model.
    POST /api/chat              Ollama: NDJSON lines when "stream" is true or absent (Ollama's
                                default), one JSON object otherwise; thinking in
                                message.thinking; the last line has done, done_reason,
                                prompt_eval_count and eval_count. Images arrive in
                                message.images (bare base64).
    GET  /api/tags              Ollama's model list (name, model, size, digest, details).
    GET  /api/version, /health  liveness.

API keys (OpenAI endpoints): any key, or none, is accepted, except "sk-wrong-key", which gets
401 with OpenAI's error JSON whose message quotes the key (as OpenAI's does, partly masked), so
that tests can check that clients scrub it.

Scenarios: the requested model name picks the behaviour (for Ollama a ":tag" suffix is
ignored, so "plain:latest" is "plain"). Answers honour max_tokens / max_completion_tokens /
options.num_predict by cutting the answer after that many chunks (finish_reason "length").

    plain              "Hello! I am the mock upstream. …", streamed word by word.
    echo               "You said: <last user text>" (+ " [N image(s)]" when images came).
    think-inline       content "<think>…</think>\\n\\nHello there! …" streamed in 3-character
                       pieces, so both tags are split across chunks.
    think-no-open      like think-inline without the opening tag (DeepSeek-R1 distills).
    reasoning-content  reasoning in the `reasoning_content` delta field (DeepSeek, vLLM);
                       Ollama: message.thinking.
    reasoning-field    reasoning in a `reasoning` delta field; Ollama: message.thinking.
    think              alias of reasoning-content.
    reasoning-slow     like reasoning-content, 150 ms between chunks (≈ 2.8 s): a browser
                       can watch the reasoning arrive.
    long               200 chunks, 20 ms apart (4 s): for early-stop tests.
    chunks-N-MS        N chunks ("tok0 ", "tok1 ", …) MS milliseconds apart (benchmarks).
    stall              streams 2 chunks, then sends nothing until the client hangs up
                       (at most 5 minutes); not streamed: never answers.
    drop               streams 3 chunks, then drops the TCP connection mid-body.
    drop-early-once    first request: 200 headers, then the connection drops before any
                       data; later requests: plain.
    stream-error       streams 2 chunks, then an in-band error (SSE `data: {"error": …}`,
                       Ollama `{"error": …}` line).
    sse-quirks         plain, streamed as legal SSE that naive readers get wrong: comment
                       lines, CRLF line ends, an `event:` field, "data:" without a space, and
                       one JSON object split over two `data:` lines.
    no-stream          stream=true is refused: 400 "Streaming is not supported for this
                       model" (param "stream"); stream=false answers with reasoning_content.
    auth-fail          401 (OpenAI: code invalid_api_key; Ollama: {"error": "unauthorized"}).
    forbidden          403.
    rate-limit         429 with Retry-After: 1, always.
    rate-limit-once    429 with Retry-After: 1 on the first request, then plain.
    rate-limit-long    429 with Retry-After: 120.
    server-error       500, always.
    flaky-500-once     500 on the first request, then plain.
    context-too-long   400 "This model's maximum context length is 4096 tokens…"
                       (code context_length_exceeded).
    bad-request        400 invalid temperature (param "temperature").
    anything else      404 model not found (OpenAI: code model_not_found; Ollama:
                       'model "x" not found, try pulling it first').

"-once" counters are per server and per scenario name; `reset()` clears them together with
the recorded requests and disconnects.

Records: every request (method, path, JSON body, headers without secrets, whether an
Authorization header came) in `.requests`; every streamed response the client abandoned
(time, chunks sent) in `.disconnects`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

WRONG_KEY = "sk-wrong-key"
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie"})
MAX_STALL_S = 300.0

PLAIN_TEXT = "Hello! I am the mock upstream. How can I help you today?"
THINK_REASONING = "The user greets me. I should greet back and mention 42."
THINK_ANSWER = "Hello there! The answer is 42."
THINK_INLINE_TEXT = f"<think>\n{THINK_REASONING}\n</think>\n\n{THINK_ANSWER}"
THINK_NO_OPEN_TEXT = f"{THINK_REASONING}\n</think>\n\n{THINK_ANSWER}"

OPENAI_MODELS = (
    "plain",
    "echo",
    "think-inline",
    "think-no-open",
    "reasoning-content",
    "reasoning-field",
    "think",
    "reasoning-slow",
    "long",
    "stall",
    "drop",
    "stream-error",
    "no-stream",
    "sse-quirks",
)
OLLAMA_MODELS = ("plain", "echo", "think", "think-inline", "long")

Piece = tuple[Literal["reasoning", "content"], str]


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the mock saw it (secrets left out)."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    has_auth: bool
    at: float  # time.monotonic()

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None


@dataclass(frozen=True)
class Disconnect:
    """A client that hung up before a streamed (or stalled) response was complete."""

    path: str
    model: str
    at: float  # time.monotonic()
    chunks_sent: int


@dataclass
class _State:
    requests: list[RecordedRequest] = field(default_factory=list)
    disconnects: list[Disconnect] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    disconnected: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.disconnected = threading.Condition(self.lock)

    def count(self, key: str) -> int:
        """How many earlier requests had this key (0 for the first)."""
        with self.lock:
            seen = self.counters.get(key, 0)
            self.counters[key] = seen + 1
            return seen

    def add_disconnect(self, item: Disconnect) -> None:
        with self.disconnected:
            self.disconnects.append(item)
            self.disconnected.notify_all()


# --------------------------------------------------------------------------- scripts


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _words(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text)


def _last_user_text(messages: Any) -> tuple[str, int]:
    """(text, image count) of the last user message, in either wire format."""
    if not isinstance(messages, list):
        return "", 0
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        images = len(message.get("images") or [])
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if p.get("type") == "text"]
            images += sum(1 for p in content if p.get("type") == "image_url")
            return "".join(texts), images
        return str(content or ""), images
    return "", 0


def _script(scenario: str, body: dict[str, Any]) -> tuple[list[Piece], float] | None:
    """The pieces of the answer and the pause between them, or None for an unknown name."""
    if scenario in ("plain", "stall", "drop", "stream-error", "sse-quirks") or scenario.endswith(
        "-once"
    ):
        return [("content", w) for w in _words(PLAIN_TEXT)], 0.0
    if scenario == "echo":
        text, images = _last_user_text(body.get("messages"))
        answer = f"You said: {text}" + (f" [{images} image(s)]" if images else "")
        return [("content", w) for w in _words(answer)], 0.0
    if scenario == "think-inline":
        return [("content", p) for p in _pieces(THINK_INLINE_TEXT, 3)], 0.0
    if scenario == "think-no-open":
        return [("content", p) for p in _pieces(THINK_NO_OPEN_TEXT, 4)], 0.0
    if scenario in ("reasoning-content", "reasoning-field", "think", "no-stream", "reasoning-slow"):
        reasoning: list[Piece] = [("reasoning", w) for w in _words(THINK_REASONING)]
        pause = 0.150 if scenario == "reasoning-slow" else 0.0
        return reasoning + [("content", w) for w in _words(THINK_ANSWER)], pause
    if scenario == "long":
        return [("content", f"word{i} ") for i in range(200)], 0.020
    match = re.fullmatch(r"chunks-(\d+)-(\d+(?:\.\d+)?)", scenario)
    if match:
        count = min(int(match.group(1)), 100_000)
        return [("content", f"tok{i} ") for i in range(count)], float(match.group(2)) / 1000.0
    return None


def _limit(pieces: list[Piece], limit: Any) -> tuple[list[Piece], str]:
    if isinstance(limit, int) and 0 < limit < len(pieces):
        return pieces[:limit], "length"
    return pieces, "stop"


def _prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        total += len(str(content or "").split()) + 3
    return total


# --------------------------------------------------------------------------- responses


class _Drop(Exception):
    """Raised inside the app to make the server drop the connection mid-response."""


class _DropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _Drop)


# The deliberate drops would otherwise log a traceback each ("Exception in ASGI application").
logging.getLogger("uvicorn.error").addFilter(_DropFilter())


class TrackedStream(Response):
    """A streamed body that notices when the client hangs up, even while it is silent (the
    stall scenario), and records that in `.disconnects`. `body` yields bytes, or `None` to drop
    the connection at that point."""

    def __init__(
        self,
        state: _State,
        path: str,
        model: str,
        body: AsyncIterator[bytes | None],
        media_type: str,
        *,
        send_headers: bool = True,
    ) -> None:
        # Not Response.__init__: it would set Content-Length: 0 for the empty `body`.
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers({"cache-control": "no-cache"})
        self._state = state
        self._path = path
        self._model = model
        self._body = body
        self._send_headers = send_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent = 0
        finished = False
        drop = False

        async def watch(cancel: anyio.CancelScope) -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not finished:
                        self._state.add_disconnect(
                            Disconnect(self._path, self._model, time.monotonic(), sent)
                        )
                    cancel.cancel()
                    return

        async with anyio.create_task_group() as group:
            group.start_soon(watch, group.cancel_scope)
            if self._send_headers:
                await send(
                    {
                        "type": "http.response.start",
                        "status": self.status_code,
                        "headers": self.raw_headers,
                    }
                )
            async for piece in self._body:
                if piece is None:
                    drop = True
                    break
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                sent += 1
            if not drop and self._send_headers:
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            group.cancel_scope.cancel()
        if drop:
            raise _Drop("mock upstream: dropping the connection on purpose")


async def _stall() -> AsyncIterator[bytes | None]:
    await anyio.sleep(MAX_STALL_S)
    return
    yield  # an async generator that yields nothing


def _openai_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": code}},
        status_code=status,
        headers=headers,
    )


# --------------------------------------------------------------------------- the app


class MockUpstream:
    """The mock provider, served by uvicorn in a background thread. Use as a context manager
    or call start() / stop(). `port=0` picks a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self.port = port
        self._state = _State()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    # ---------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def ollama_url(self) -> str:
        return self.base_url

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._state.requests

    @property
    def disconnects(self) -> list[Disconnect]:
        return self._state.disconnects

    def chat_requests(self) -> list[RecordedRequest]:
        """Requests to either chat endpoint."""
        return [r for r in self.requests if r.path in ("/v1/chat/completions", "/api/chat")]

    def reset(self) -> None:
        with self._state.lock:
            self._state.requests.clear()
            self._state.disconnects.clear()
            self._state.counters.clear()

    def wait_for_disconnect(self, timeout: float) -> Disconnect | None:
        """The first recorded disconnect, waiting up to `timeout` seconds for one."""
        with self._state.disconnected:
            self._state.disconnected.wait_for(lambda: bool(self._state.disconnects), timeout)
            return self._state.disconnects[0] if self._state.disconnects else None

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            lifespan="off",
            access_log=False,
            log_level="warning",
            log_config=None,
            timeout_graceful_shutdown=1,
        )

    def start(self) -> MockUpstream:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(self._config())
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="mock-upstream", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10.0
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("mock upstream did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        self._server = None
        self._thread = None

    def __enter__(self) -> MockUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- handlers

    def _build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai_chat, methods=["POST"]),
                Route("/v1/models", self._openai_models, methods=["GET"]),
                Route("/api/chat", self._ollama_chat, methods=["POST"]),
                Route("/api/tags", self._ollama_tags, methods=["GET"]),
                Route("/api/version", self._version, methods=["GET"]),
                Route("/health", self._version, methods=["GET"]),
            ]
        )

    async def _record(self, request: Request) -> tuple[Any, RecordedRequest]:
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS}
        record = RecordedRequest(
            method=request.method,
            path=request.url.path,
            body=body,
            headers=headers,
            has_auth="authorization" in request.headers,
            at=time.monotonic(),
        )
        with self._state.lock:
            self._state.requests.append(record)
        return body, record

    @staticmethod
    def _bearer(request: Request) -> str | None:
        value = request.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else None

    async def _version(self, request: Request) -> Response:
        return JSONResponse({"version": "0.12.0-mock"})

    # OpenAI ----------------------------------------------------------------

    async def _openai_models(self, request: Request) -> Response:
        await self._record(request)
        key = self._bearer(request)
        if key == WRONG_KEY:
            return self._openai_bad_key(key)
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "mock"}
                    for name in OPENAI_MODELS
                ],
            }
        )

    @staticmethod
    def _openai_bad_key(key: str) -> Response:
        return _openai_error(
            401,
            f"Incorrect API key provided: {key}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    def _openai_failure(self, scenario: str, key: str | None) -> Response | None:
        """The error answer for error scenarios, None to answer normally."""
        if key == WRONG_KEY or scenario == "auth-fail":
            return self._openai_bad_key(key or "")
        if scenario == "forbidden":
            return _openai_error(403, "You are not allowed to sample from this model")
        if scenario == "rate-limit" or (
            scenario == "rate-limit-once" and self._state.count(scenario) == 0
        ):
            return _openai_error(
                429,
                "Rate limit reached for requests",
                type_="requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": "1"},
            )
        if scenario == "rate-limit-long":
            return _openai_error(
                429,
                "Rate limit reached for requests",
                type_="requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": "120"},
            )
        if scenario == "server-error" or (
            scenario == "flaky-500-once" and self._state.count(scenario) == 0
        ):
            return _openai_error(
                500,
                "The server had an error while processing your request. Sorry about that!",
                type_="server_error",
            )
        if scenario == "context-too-long":
            return _openai_error(
                400,
                "This model's maximum context length is 4096 tokens. However, your messages "
                "resulted in 5123 tokens. Please reduce the length of the messages.",
                code="context_length_exceeded",
                param="messages",
            )
        if scenario == "bad-request":
            return _openai_error(
                400,
                "Invalid value for 'temperature': must be between 0 and 2.",
                code="invalid_value",
                param="temperature",
            )
        return None

    async def _openai_chat(self, request: Request) -> Response:
        body, _record = await self._record(request)
        if not isinstance(body, dict):
            return _openai_error(400, "We could not parse the JSON body of your request.")
        model = str(body.get("model") or "")
        stream = bool(body.get("stream"))
        failure = self._openai_failure(model, self._bearer(request))
        if failure is not None:
            return failure
        if model == "no-stream" and stream:
            return _openai_error(
                400,
                "Streaming is not supported for this model",
                code="unsupported_value",
                param="stream",
            )
        script = _script(model, body)
        if script is None:
            return _openai_error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        pieces, interval = script
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        pieces, finish = _limit(pieces, limit)
        path = request.url.path
        if model == "stall" and not stream:
            return TrackedStream(
                self._state, path, model, _stall(), "application/json", send_headers=False
            )
        if model == "drop-early-once" and self._state.count(model) == 0:
            return TrackedStream(self._state, path, model, _just_drop(), "text/event-stream")
        usage = {
            "prompt_tokens": _prompt_tokens(body),
            "completion_tokens": len(pieces),
            "total_tokens": _prompt_tokens(body) + len(pieces),
        }
        field_name = "reasoning" if model == "reasoning-field" else "reasoning_content"
        if not stream:
            reasoning = "".join(t for k, t in pieces if k == "reasoning")
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(t for k, t in pieces if k == "content"),
            }
            if reasoning:
                message[field_name] = reasoning
            return JSONResponse(
                {
                    "id": "chatcmpl-mock",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
            )
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        events = _openai_events(
            model, pieces, interval, finish, usage if include_usage else None, field_name
        )
        return TrackedStream(self._state, path, model, events, "text/event-stream")

    # Ollama ----------------------------------------------------------------

    async def _ollama_tags(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse(
            {
                "models": [
                    {
                        "name": f"{name}:latest",
                        "model": f"{name}:latest",
                        "modified_at": "2025-01-01T00:00:00Z",
                        "size": 4_683_087_332,
                        "digest": f"sha256:{index:064x}",
                        "details": {
                            "parent_model": "",
                            "format": "gguf",
                            "family": "qwen2",
                            "families": ["qwen2"],
                            "parameter_size": "7.6B",
                            "quantization_level": "Q4_K_M",
                        },
                    }
                    for index, name in enumerate(OLLAMA_MODELS)
                ]
            }
        )

    async def _ollama_chat(self, request: Request) -> Response:
        body, _record = await self._record(request)
        if not isinstance(body, dict):
            return JSONResponse({"error": "invalid JSON body"}, status_code=400)
        name = str(body.get("model") or "")
        scenario = name.split(":", 1)[0]
        stream = body.get("stream", True) is not False  # Ollama streams unless told not to
        if scenario == "auth-fail":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if scenario == "rate-limit" or (
            scenario == "rate-limit-once" and self._state.count("ollama:" + scenario) == 0
        ):
            return JSONResponse(
                {"error": "too many requests"}, status_code=429, headers={"Retry-After": "1"}
            )
        if scenario == "server-error" or (
            scenario == "flaky-500-once" and self._state.count("ollama:" + scenario) == 0
        ):
            return JSONResponse({"error": "llama runner process has terminated"}, status_code=500)
        script = _script(scenario, body)
        if script is None:
            return JSONResponse(
                {"error": f'model "{name}" not found, try pulling it first'}, status_code=404
            )
        pieces, interval = script
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        pieces, finish = _limit(pieces, (options or {}).get("num_predict"))
        path = request.url.path
        if scenario == "stall" and not stream:
            return TrackedStream(
                self._state, path, name, _stall(), "application/json", send_headers=False
            )
        if scenario == "drop-early-once" and self._state.count("ollama:" + scenario) == 0:
            return TrackedStream(self._state, path, name, _just_drop(), "application/x-ndjson")
        stats = {
            "total_duration": 1_000_000,
            "load_duration": 100_000,
            "prompt_eval_count": _prompt_tokens(body),
            "prompt_eval_duration": 200_000,
            "eval_count": len(pieces),
            "eval_duration": 700_000,
        }
        if not stream:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(t for k, t in pieces if k == "content"),
            }
            thinking = "".join(t for k, t in pieces if k == "reasoning")
            if thinking:
                message["thinking"] = thinking
            return JSONResponse(
                {
                    "model": name,
                    "created_at": _now(),
                    "message": message,
                    "done": True,
                    "done_reason": finish,
                    **stats,
                }
            )
        lines = _ollama_lines(name, scenario, pieces, interval, finish, stats)
        return TrackedStream(self._state, path, name, lines, "application/x-ndjson")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def _just_drop() -> AsyncIterator[bytes | None]:
    yield None


async def _openai_events(
    model: str,
    pieces: list[Piece],
    interval: float,
    finish: str,
    usage: dict[str, int] | None,
    field_name: str,
) -> AsyncIterator[bytes | None]:
    created = int(time.time())

    def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk = {
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    if model == "sse-quirks":
        async for quirky in _quirky_events(event, pieces, finish, usage):
            yield quirky
        return
    yield event({"role": "assistant", "content": ""})
    for index, (kind, text) in enumerate(pieces):
        if interval:
            await asyncio.sleep(interval)
        if model == "stall" and index == 2:
            await anyio.sleep(MAX_STALL_S)
        if model == "drop" and index == 3:
            yield None
            return
        if model == "stream-error" and index == 2:
            error = {"error": {"message": "The model crashed mid-answer", "type": "server_error"}}
            yield b"data: " + json.dumps(error).encode() + b"\n\n"
            return
        yield event({field_name: text} if kind == "reasoning" else {"content": text})
    yield event({}, finish)
    if usage is not None:
        chunk = {
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


async def _quirky_events(
    event: Any, pieces: list[Piece], finish: str, usage: dict[str, int] | None
) -> AsyncIterator[bytes | None]:
    yield b": keep-alive comment\r\n\r\n"
    yield b"event: message\r\n" + event({"role": "assistant", "content": ""}).replace(
        b"\n", b"\r\n"
    )
    for index, (_kind, text) in enumerate(pieces):
        raw = event({"content": text})
        if index == 1:  # the same object, split over two data lines (joined with "\n")
            body = raw[len(b"data: ") : -2]
            cut = body.index(b'"choices"')
            raw = b"data: " + body[:cut] + b"\ndata: " + body[cut:] + b"\n\n"
        elif index == 2:
            raw = b"data:" + raw[len(b"data: ") :]  # no space after the colon
        yield raw
        if index == 3:
            yield b": ping\n\n"
    yield event({}, finish)
    if usage is not None:
        chunk = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "choices": []}
        yield b"data: " + json.dumps({**chunk, "usage": usage}).encode() + b"\r\n\r\n"
    yield b"data: [DONE]\r\n\r\n"


async def _ollama_lines(
    name: str,
    scenario: str,
    pieces: list[Piece],
    interval: float,
    finish: str,
    stats: dict[str, int],
) -> AsyncIterator[bytes | None]:
    def line(data: dict[str, Any]) -> bytes:
        return json.dumps(data).encode() + b"\n"

    for index, (kind, text) in enumerate(pieces):
        if interval:
            await asyncio.sleep(interval)
        if scenario == "stall" and index == 2:
            await anyio.sleep(MAX_STALL_S)
        if scenario == "drop" and index == 3:
            yield None
            return
        if scenario == "stream-error" and index == 2:
            yield line({"error": "llama runner process has terminated"})
            return
        message = {"role": "assistant", "content": ""}
        message["thinking" if kind == "reasoning" else "content"] = text
        yield line({"model": name, "created_at": _now(), "message": message, "done": False})
    yield line(
        {
            "model": name,
            "created_at": _now(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": finish,
            **stats,
        }
    )


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the mock LLM upstream until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    upstream = MockUpstream(args.host, args.port)
    config = upstream._config()
    server = uvicorn.Server(config)
    print(
        f"mock upstream on http://{args.host}:{args.port} (OpenAI: /v1, Ollama: /api)", flush=True
    )
    server.run()  # in the main thread, so uvicorn handles SIGINT / SIGTERM
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
