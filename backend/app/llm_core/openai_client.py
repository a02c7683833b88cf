"""OpenAI-compatible providers (OpenAI, DeepSeek, SiliconFlow, vLLM, LLaMA-Factory, custom) on
the official `openai` SDK.

- Reasoning arrives three ways and all become reasoning chunks: the `reasoning_content` delta
  field (DeepSeek, SiliconFlow, vLLM reasoning parsers), a `reasoning` field (OpenRouter, newer
  vLLM), and inline `<think>…</think>` in the content (ThinkParser).
- Only parameters that are set and that the provider accepts are sent: `top_k` is added to the
  body (as the SDK's `extra_body` would) where the registry says the provider supports it and
  left out otherwise (OpenAI, DeepSeek reject or ignore it); OpenAI gets
  `max_completion_tokens` (its reasoning models reject `max_tokens`), everyone else
  `max_tokens`.
- The SDK sends the request (base URL, auth headers, timeouts, HTTP error classes) through
  `client.post`, its documented way to send a body as is; for streams it hands back the raw
  response and the SSE body is parsed here. Its typed path costs ≈ 0.3 ms per request to walk
  the messages through TypedDict transforms and ≈ 70 µs per chunk to build pydantic models,
  which bench/llm_core_overhead.py showed to be most of llm_core's overhead.
- The SDK's own retries are off (max_retries=0): `retry.py` retries only before the first
  output chunk, which the SDK cannot know about.
- Streaming fallback: a provider that refuses `stream=true` (see `is_stream_refusal`) is asked
  again once with `stream=false`, and the answer is emitted as chunks (reasoning, content,
  usage, finish). The client remembers the refusal and goes straight to the fallback later.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import anyio
import httpx2
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from app.llm_core.base import BaseClient
from app.llm_core.errors import (
    LLMConnectionError,
    LLMError,
    LLMTimeout,
    LLMUpstreamError,
    error_from_status,
    parse_retry_after,
    scrub,
)
from app.llm_core.retry import RetryPolicy, aclose_shielded, call_with_retries, stream_with_retries
from app.llm_core.think_parser import ThinkParser, split_think
from app.llm_core.tls import shared_ssl_context
from app.llm_core.types import (
    ChatChunk,
    ChatMessage,
    ChatResult,
    GenerationParams,
    ModelInfo,
    TextPart,
    Usage,
)

# The SDK insists on a key; keyless servers (vLLM, LLaMA-Factory) ignore whatever is sent.
PLACEHOLDER_API_KEY = "not-needed"
# Idle connections kept per client for reuse (each stream holds one while it runs).
KEEPALIVE_CONNECTIONS = 64

# Providers whose chat API takes `max_completion_tokens` instead of `max_tokens`.
_MAX_COMPLETION_TOKENS_PROVIDERS = frozenset({"openai"})

# A refusal of stream=true: HTTP 400/422/501 whose error names the `stream` parameter, or whose
# message mentions stream(ing) together with a refusal word. Seen: OpenAI's o1 at launch
# ("Unsupported value: 'stream' does not support true with this model", param "stream"),
# gateways that answer 501 "streaming not implemented", and servers that say
# "Streaming is not supported".
_STREAM_WORD = re.compile(r"\bstream(ing|ed)?\b", re.IGNORECASE)
_REFUSAL_WORDS = re.compile(
    r"not (supported|allowed|available|enabled|implemented)|unsupported|does(n't| not) support"
    r"|disabled|only .*\bfalse\b",
    re.IGNORECASE,
)
_STREAM_REFUSAL_STATUSES = frozenset({400, 422, 501})

# Failures while reading a response body (what the SDK itself treats as connection errors).
_TRANSPORT_ERRORS = (httpx2.TransportError, ssl.SSLError, anyio.EndOfStream)
_DRAIN_S = 0.1


def is_stream_refusal(status: int, message: str, param: str | None = None) -> bool:
    """Whether an error answer to a stream=true request means "ask me without streaming"."""
    if status not in _STREAM_REFUSAL_STATUSES:
        return False
    if param == "stream":
        return True
    return bool(_STREAM_WORD.search(message) and _REFUSAL_WORDS.search(message))


def _to_openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message.content, str):
            out.append({"role": message.role, "content": message.content})
            continue
        parts: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, TextPart):
                parts.append({"type": "text", "text": part.text})
            else:
                parts.append({"type": "image_url", "image_url": {"url": part.url}})
        out.append({"role": message.role, "content": parts})
    return out


def _extra_field(model: Any, name: str) -> str | None:
    """A field the SDK's models do not declare (reasoning_content, reasoning), from the pydantic
    extras (or the instance dict, should a later SDK declare it)."""
    extra = model.model_extra
    value = extra.get(name) if extra else model.__dict__.get(name)
    return value if isinstance(value, str) and value else None


def _usage_from(raw: Any) -> Usage | None:
    """Usage from a JSON object (a stream event's "usage")."""
    if not isinstance(raw, dict):
        return None
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
    )


def _usage(raw: Any) -> Usage | None:
    """Usage from the SDK's CompletionUsage."""
    if raw is None:
        return None
    return Usage(
        prompt_tokens=int(getattr(raw, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(raw, "completion_tokens", 0) or 0),
    )


def _error_body(body: object) -> tuple[str, str | None, str | None]:
    """(message, code, param) from an OpenAI-style error body (the SDK already unwrapped
    {"error": {...}}) or a plain-text body."""
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error") or ""
        code = body.get("code")
        param = body.get("param")
        return (
            message if isinstance(message, str) else str(message),
            str(code) if code is not None else None,
            param if isinstance(param, str) else None,
        )
    if isinstance(body, str):
        return body, None, None
    return "", None, None


class OpenAICompatibleClient(BaseClient):
    """One OpenAI-compatible endpoint (base URL ending in /v1 as a rule) with one API key."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        api_key: str | None = None,
        supports_top_k: bool = True,
        connect_timeout: float = 10.0,
        idle_timeout: float = 120.0,
        max_retries: int = 2,
        think_open: bool = False,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url
        self._api_key = api_key or None
        self._supports_top_k = supports_top_k
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._think_open = think_open
        self._policy = retry_policy or RetryPolicy(max_retries=max_retries)
        self._stream_refused = False
        # OpenAI's reasoning models reject max_tokens; the others may not know the new name.
        self._max_tokens_field = (
            "max_completion_tokens"
            if provider in _MAX_COMPLETION_TOKENS_PROVIDERS
            else "max_tokens"
        )
        # read = the idle timeout: httpx applies it to every read, i.e. between two chunks
        # (and, for stream=false, to the whole wait for the answer, since no byte flows).
        timeout = httpx2.Timeout(
            connect=connect_timeout, read=idle_timeout, write=idle_timeout, pool=connect_timeout
        )
        self._http = httpx2.AsyncClient(
            timeout=timeout,
            verify=shared_ssl_context(),
            follow_redirects=True,
            # One client may carry many concurrent streams (the chat relay shares it): every
            # stream needs its own connection, so the count is not capped (httpx caps at 100).
            limits=httpx2.Limits(
                max_connections=None, max_keepalive_connections=KEEPALIVE_CONNECTIONS
            ),
        )
        self._sdk = AsyncOpenAI(
            api_key=self._api_key or PLACEHOLDER_API_KEY,
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
            http_client=self._http,
        )
        # The SDK fills these from OPENAI_ORG_ID / OPENAI_PROJECT_ID; a third-party provider
        # must not receive the server's OpenAI organisation.
        self._sdk.organization = None
        self._sdk.project = None

    # ------------------------------------------------------------------ public API

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> ChatResult:
        started = time.perf_counter()
        completion = await call_with_retries(
            self._policy, lambda: self._complete(model, messages, params)
        )
        reasoning, content, usage, finish = self._unpack(completion)
        return ChatResult(
            content=content,
            reasoning=reasoning,
            usage=usage,
            finish_reason=finish,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            model=completion.model or model,
        )

    def stream(
        self, model: str, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        return stream_with_retries(self._policy, lambda: self._stream_once(model, messages, params))

    async def list_models(self) -> list[ModelInfo]:
        async def once() -> list[ModelInfo]:
            try:
                response = cast(
                    httpx2.Response, await self._sdk.get("/models", cast_to=httpx2.Response)
                )
                payload = response.json()
            except (openai.OpenAIError, ValueError) as exc:
                raise self._error(exc) from None
            # {"object": "list", "data": [...]} as a rule; some servers answer a bare list or
            # {"models": [...]}: accept what is recognisable rather than fail the whole list.
            if isinstance(payload, dict):
                payload = payload.get("data", payload.get("models"))
            if not isinstance(payload, list):
                raise LLMUpstreamError(
                    "malformed model list from the provider", provider=self.provider
                )
            models: list[ModelInfo] = []
            for item in payload:
                if not isinstance(item, dict) or not (item.get("id") or item.get("name")):
                    continue
                owned_by = item.get("owned_by")
                models.append(
                    ModelInfo(
                        id=str(item.get("id") or item.get("name")),
                        owned_by=str(owned_by) if owned_by is not None else None,
                        extra={k: v for k, v in item.items() if k in ("created", "max_model_len")},
                    )
                )
            return models

        return await call_with_retries(self._policy, once)

    async def aclose(self) -> None:
        await self._sdk.close()
        await self._http.aclose()

    # ------------------------------------------------------------------ requests

    def _body(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        params: GenerationParams | None,
        *,
        stream: bool,
    ) -> dict[str, Any]:
        """The JSON body of a chat completion: only the parameters that are set and that this
        provider accepts."""
        body: dict[str, Any] = {
            "model": model,
            "messages": _to_openai_messages(messages),
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if params is None:
            return body
        for name, value in (
            ("temperature", params.temperature),
            ("top_p", params.top_p),
            ("stop", params.stop),
            ("seed", params.seed),
        ):
            if value is not None:
                body[name] = value
        if params.max_tokens is not None:
            body[self._max_tokens_field] = params.max_tokens
        if params.top_k is not None and self._supports_top_k:
            body["top_k"] = params.top_k  # what the SDK's extra_body would add
        return body

    async def _complete(
        self, model: str, messages: Sequence[ChatMessage], params: GenerationParams | None
    ) -> ChatCompletion:
        try:
            # client.post (the SDK's documented way to send a body as is) rather than
            # chat.completions.create: the latter walks every message through its TypedDict
            # transform, ≈ 0.3 ms per request before a byte is sent.
            completion = await self._sdk.post(
                "/chat/completions",
                cast_to=ChatCompletion,
                body=self._body(model, messages, params, stream=False),
            )
        except (openai.OpenAIError, ValueError) as exc:
            raise self._error(exc) from None
        # The SDK does not validate: a 200 that is not a JSON object arrives as a str.
        if not isinstance(completion, ChatCompletion):
            raise LLMUpstreamError("malformed answer from the provider", provider=self.provider)
        return completion

    async def _stream_once(
        self, model: str, messages: Sequence[ChatMessage], params: GenerationParams | None
    ) -> AsyncGenerator[ChatChunk, None]:
        """One attempt: open the stream and translate it. Retries live in the caller."""
        if self._stream_refused:
            async for chunk in self._fallback(model, messages, params):
                yield chunk
            return
        try:
            # The SDK builds, authenticates and sends the request and maps HTTP errors; the
            # body is read here (see _translate) rather than through its AsyncStream, which
            # builds a pydantic model per chunk (≈ 70 µs each: most of llm_core's CPU cost).
            response = cast(
                httpx2.Response,
                await self._sdk.post(
                    "/chat/completions",
                    cast_to=httpx2.Response,
                    body=self._body(model, messages, params, stream=True),
                    stream=True,
                ),
            )
        except openai.APIStatusError as exc:
            message, _code, param = _error_body(exc.body)
            if not is_stream_refusal(exc.status_code, message, param):
                raise self._error(exc) from None
            self._stream_refused = True
        except (openai.OpenAIError, ValueError) as exc:
            raise self._error(exc) from None
        else:
            async for chunk in self._translate(response):
                yield chunk
            return
        async for chunk in self._fallback(model, messages, params):
            yield chunk

    async def _translate(self, response: httpx2.Response) -> AsyncGenerator[ChatChunk, None]:
        """Server-sent events (`data: {...}` lines, blank-line separated, `data: [DONE]` at the
        end) -> chunks. Usage and finish go out when [DONE] arrives (or the body ends)."""
        parser = ThinkParser(think_open=self._think_open)
        usage: Usage | None = None
        finish: str | None = None
        data: list[str] = []
        lines = response.aiter_lines()
        try:
            try:
                async for line in lines:
                    if line:
                        if line.startswith("data:"):
                            data.append(line[6:] if line.startswith("data: ") else line[5:])
                        continue  # comments (": ping") and event:/id:/retry: fields
                    if not data:
                        continue
                    payload = data[0] if len(data) == 1 else "\n".join(data)
                    data.clear()
                    if payload.startswith("[DONE]"):
                        break
                    event = self._event(payload)
                    if event.get("usage"):
                        usage = _usage_from(event["usage"])
                    choices = event.get("choices")
                    if not choices:
                        continue
                    choice = choices[0]
                    delta = choice.get("delta") or {}
                    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                    if reasoning and isinstance(reasoning, str):
                        parser.provider_separates_reasoning()
                        yield ChatChunk(kind="reasoning", text=reasoning)
                    content = delta.get("content")
                    if content and isinstance(content, str):
                        for chunk in parser.feed(content):
                            yield chunk
                    if choice.get("finish_reason"):
                        finish = str(choice["finish_reason"])
            except _TRANSPORT_ERRORS as exc:
                raise self._transport_error(exc) from None
            for chunk in parser.flush():
                yield chunk
            if usage is not None:
                yield ChatChunk(kind="usage", usage=usage)
            yield ChatChunk(kind="finish", finish_reason=finish)
            # Read what follows [DONE] (normally just the end of the body) so that the
            # keep-alive connection can be reused; a server that keeps it open gets 0.1 s.
            with anyio.move_on_after(_DRAIN_S):
                async for _line in lines:
                    pass
        except _TRANSPORT_ERRORS:
            pass  # only the drain can get here: the answer is complete
        finally:
            # Early stop (aclose, break, cancellation) lands here: close the upstream response
            # now, not when the garbage collector gets to it (DESIGN principle 5).
            await aclose_shielded(response)
            if isinstance(lines, AsyncGenerator):
                await aclose_shielded(lines)

    def _event(self, payload: str) -> dict[str, Any]:
        try:
            event = json.loads(payload)
        except ValueError:
            raise LLMUpstreamError(
                "malformed stream data from the provider", provider=self.provider
            ) from None
        if not isinstance(event, dict):
            raise LLMUpstreamError(
                "malformed stream data from the provider", provider=self.provider
            )
        error = event.get("error")
        if error:
            # An error event inside a 200 stream, e.g. vLLM's {"error": {"code": 400, ...}}.
            raise self._in_band_error(error)
        return event

    async def _fallback(
        self, model: str, messages: Sequence[ChatMessage], params: GenerationParams | None
    ) -> AsyncGenerator[ChatChunk, None]:
        completion = await self._complete(model, messages, params)
        reasoning, content, usage, finish = self._unpack(completion)
        if reasoning:
            yield ChatChunk(kind="reasoning", text=reasoning)
        if content:
            yield ChatChunk(kind="content", text=content)
        if usage is not None:
            yield ChatChunk(kind="usage", usage=usage)
        yield ChatChunk(kind="finish", finish_reason=finish)

    def _unpack(self, completion: ChatCompletion) -> tuple[str, str, Usage | None, str | None]:
        """(reasoning, content, usage, finish_reason) of a complete answer."""
        usage = _usage(completion.usage)
        if not completion.choices:
            return "", "", usage, None
        choice = completion.choices[0]
        message = getattr(choice, "message", None)  # not validated: may be missing
        if message is None:
            return "", "", usage, getattr(choice, "finish_reason", None)
        reasoning = _extra_field(message, "reasoning_content") or _extra_field(message, "reasoning")
        content = message.content if isinstance(message.content, str) else ""
        if "think>" in content or (self._think_open and not reasoning):
            inline_reasoning, content = split_think(
                content, think_open=self._think_open and not reasoning
            )
            reasoning = "\n\n".join(part for part in (reasoning, inline_reasoning) if part)
        return reasoning or "", content, usage, choice.finish_reason

    # ------------------------------------------------------------------ errors

    def _error(self, exc: BaseException) -> LLMError:
        """The llm_core error for an SDK (or parsing) exception; secrets scrubbed."""
        if isinstance(exc, openai.APITimeoutError):
            if isinstance(exc.__cause__, httpx2.ConnectTimeout | httpx2.PoolTimeout):
                message = f"could not connect within {self._connect_timeout:g} s"
            else:
                message = f"no data from the provider for {self._idle_timeout:g} s (idle timeout)"
            return LLMTimeout(message, provider=self.provider)
        if isinstance(exc, openai.APIConnectionError):
            return LLMConnectionError(self._connection_message(exc), provider=self.provider)
        if isinstance(exc, openai.APIStatusError):
            message, code, _param = _error_body(exc.body)
            headers = exc.response.headers
            return error_from_status(
                self.provider,
                exc.status_code,
                message,
                api_key=self._api_key,
                retry_after=parse_retry_after(
                    headers.get("retry-after"), headers.get("retry-after-ms")
                ),
                code=code,
            )
        if isinstance(exc, openai.APIError):
            return self._in_band_error(exc.body if exc.body is not None else exc.message)
        if isinstance(exc, ValueError):
            return LLMUpstreamError(
                "malformed response from the provider: " + scrub(str(exc)[:200], self._api_key),
                provider=self.provider,
            )
        return LLMUpstreamError(scrub(str(exc), self._api_key), provider=self.provider)

    def _in_band_error(self, body: object) -> LLMError:
        """An error reported inside a 200 answer; a numeric code is treated as a status."""
        message, code, _param = _error_body(body)
        message = message or "the provider reported an error"
        if code is not None and code.isdigit() and 400 <= int(code) < 600:
            return error_from_status(
                self.provider, int(code), message, api_key=self._api_key, code=code
            )
        return LLMUpstreamError(scrub(message, self._api_key), provider=self.provider)

    def _transport_error(self, exc: BaseException) -> LLMError:
        """A failure while reading the body ourselves (the SDK maps those of the request)."""
        if isinstance(exc, httpx2.TimeoutException):
            return LLMTimeout(
                f"no data from the provider for {self._idle_timeout:g} s (idle timeout)",
                provider=self.provider,
            )
        detail = str(exc) or type(exc).__name__
        return LLMConnectionError(
            scrub(f"connection to the provider failed: {detail}", self._api_key),
            provider=self.provider,
        )

    def _connection_message(self, exc: openai.APIConnectionError) -> str:
        cause = exc.__cause__
        detail = str(cause) if cause is not None and str(cause) else exc.message
        if isinstance(cause, httpx2.ConnectError):
            # Host and port only: a URL may carry user:password.
            parts = urlsplit(self.base_url)
            where = parts.hostname or "?"
            if parts.port:
                where += f":{parts.port}"
            return scrub(f"cannot connect to {where}: {detail}", self._api_key)
        return scrub(f"connection to the provider failed: {detail}", self._api_key)
