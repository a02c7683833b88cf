"""Ollama on its native API (https://github.com/ollama/ollama/blob/main/docs/api.md).

- POST /api/chat: with stream=true the answer is NDJSON, one object per line with
  `message.content`, `message.thinking` (thinking models), and a last line with `done: true`,
  `done_reason`, `prompt_eval_count`, `eval_count`; with stream=false one such object. Errors are
  `{"error": "..."}`, as the whole body of a 4xx/5xx or as a line inside a stream.
- Images travel as bare base64 in `message.images`. A data URL has its prefix stripped; an
  http(s) URL is refused (LLMBadRequest) rather than downloaded: fetching arbitrary URLs from the
  server would let any user make it request internal addresses, and the chat layer already
  turns uploads into data URLs.
- Sampling parameters go in `options` (temperature, top_p, top_k, num_predict, stop, seed).
- Inline `<think>` in the content is split out as well (models without native thinking).
- GET /api/tags lists the local models.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.llm_core.base import BaseClient
from app.llm_core.errors import (
    LLMBadRequest,
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
    ImagePart,
    ModelInfo,
    TextPart,
    Usage,
)


def image_base64(url: str, provider: str = "ollama") -> str:
    """The bare base64 payload Ollama wants, from a data URL (or bare base64)."""
    if url.startswith("data:"):
        header, sep, payload = url.partition(",")
        if not sep or ";base64" not in header:
            raise LLMBadRequest("images must be base64 data URLs", provider=provider)
        return payload
    if url.startswith(("http://", "https://")):
        raise LLMBadRequest(
            "Ollama needs images inline: send a data URL (data:image/...;base64,...), not a link",
            provider=provider,
        )
    return url  # already bare base64


def _to_ollama_messages(messages: Sequence[ChatMessage], provider: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message.content, str):
            out.append({"role": message.role, "content": message.content})
            continue
        text = "".join(part.text for part in message.content if isinstance(part, TextPart))
        entry: dict[str, Any] = {"role": message.role, "content": text}
        images = [
            image_base64(part.url, provider)
            for part in message.content
            if isinstance(part, ImagePart)
        ]
        if images:
            entry["images"] = images
        out.append(entry)
    return out


def _options(params: GenerationParams | None) -> dict[str, Any]:
    if params is None:
        return {}
    mapping = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "num_predict": params.max_tokens,
        "stop": params.stop,
        "seed": params.seed,
    }
    return {key: value for key, value in mapping.items() if value is not None}


def _usage(data: dict[str, Any]) -> Usage | None:
    if "prompt_eval_count" not in data and "eval_count" not in data:
        return None
    return Usage(
        prompt_tokens=int(data.get("prompt_eval_count") or 0),
        completion_tokens=int(data.get("eval_count") or 0),
    )


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):  # behind an OpenAI-style proxy
            error = error.get("message")
        if isinstance(error, str):
            return error
    return body.decode("utf-8", "replace")


class OllamaClient(BaseClient):
    """One Ollama server (base URL = the server root, e.g. http://127.0.0.1:11434). An API key
    is optional and sent as a Bearer token, for Ollama behind an authenticating proxy."""

    def __init__(
        self,
        *,
        provider: str = "ollama",
        base_url: str,
        api_key: str | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float = 120.0,
        max_retries: int = 2,
        think_open: bool = False,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._think_open = think_open
        self._policy = retry_policy or RetryPolicy(max_retries=max_retries)
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else None
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            # read = the idle timeout: httpx applies it to each read, i.e. between two lines.
            timeout=httpx.Timeout(
                connect=connect_timeout, read=idle_timeout, write=idle_timeout, pool=connect_timeout
            ),
            verify=shared_ssl_context(),
            # Not capped: a shared client carries many concurrent streams (see openai_client).
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )

    # ------------------------------------------------------------------ public API

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> ChatResult:
        body = self._body(model, messages, params, stream=False)
        started = time.perf_counter()

        async def once() -> dict[str, Any]:
            response = await self._send("POST", "/api/chat", json=body)
            try:
                data = response.json()
            except ValueError:
                raise LLMUpstreamError(
                    "malformed response from the provider", provider=self.provider
                ) from None
            if not isinstance(data, dict):
                raise LLMUpstreamError(
                    "malformed response from the provider", provider=self.provider
                )
            if "error" in data:
                raise self._in_band_error(data)
            return data

        data = await call_with_retries(self._policy, once)
        message = data.get("message") or {}
        reasoning = message.get("thinking") or ""
        content = message.get("content") or ""
        if "think>" in content or (self._think_open and not reasoning):
            inline, content = split_think(content, think_open=self._think_open and not reasoning)
            reasoning = "\n\n".join(part for part in (reasoning, inline) if part)
        return ChatResult(
            content=content,
            reasoning=reasoning,
            usage=_usage(data),
            finish_reason=data.get("done_reason"),
            latency_ms=(time.perf_counter() - started) * 1000.0,
            model=data.get("model") or model,
        )

    def stream(
        self, model: str, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        body = self._body(model, messages, params, stream=True)
        return stream_with_retries(self._policy, lambda: self._stream_once(body))

    async def list_models(self) -> list[ModelInfo]:
        async def once() -> list[ModelInfo]:
            response = await self._send("GET", "/api/tags")
            try:
                models = response.json().get("models") or []
            except (ValueError, AttributeError):
                raise LLMUpstreamError(
                    "malformed model list from the provider", provider=self.provider
                ) from None
            return [
                ModelInfo(
                    id=str(item.get("name") or item.get("model")),
                    owned_by=None,
                    extra={
                        key: item[key]
                        for key in ("details", "size", "modified_at", "digest")
                        if key in item
                    },
                )
                for item in models
                if isinstance(item, dict) and (item.get("name") or item.get("model"))
            ]

        return await call_with_retries(self._policy, once)

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ internals

    def _body(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        params: GenerationParams | None,
        *,
        stream: bool,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": _to_ollama_messages(messages, self.provider),
            "stream": stream,
        }
        options = _options(params)
        if options:
            body["options"] = options
        return body

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A non-streamed request; HTTP errors mapped."""
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._status_error(response, response.content)
        return response

    async def _stream_once(self, body: dict[str, Any]) -> AsyncGenerator[ChatChunk, None]:
        """One attempt: open the NDJSON stream and translate it. Retries live in the caller."""
        request = self._http.build_request("POST", "/api/chat", json=body)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        try:
            if response.status_code >= 400:
                try:
                    raw = await response.aread()
                except httpx.HTTPError:
                    raw = b""
                raise self._status_error(response, raw)
            parser = ThinkParser(think_open=self._think_open)
            last: dict[str, Any] = {}
            try:
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        data = json.loads(line)
                    except ValueError:
                        raise LLMUpstreamError(
                            "malformed stream line from the provider", provider=self.provider
                        ) from None
                    if "error" in data:
                        raise self._in_band_error(data)
                    message = data.get("message") or {}
                    thinking = message.get("thinking")
                    if thinking:
                        parser.provider_separates_reasoning()
                        yield ChatChunk(kind="reasoning", text=thinking)
                    content = message.get("content")
                    if content:
                        for chunk in parser.feed(content):
                            yield chunk
                    if data.get("done"):
                        last = data
                        break
            except httpx.HTTPError as exc:
                raise self._transport_error(exc) from None
            for chunk in parser.flush():
                yield chunk
        finally:
            # Early stop (aclose, break, cancellation) lands here: close the upstream response
            # now (DESIGN principle 5).
            await aclose_shielded(response)
        usage = _usage(last)
        if usage is not None:
            yield ChatChunk(kind="usage", usage=usage)
        yield ChatChunk(kind="finish", finish_reason=last.get("done_reason"))

    # ------------------------------------------------------------------ errors

    def _status_error(self, response: httpx.Response, body: bytes) -> LLMError:
        return error_from_status(
            self.provider,
            response.status_code,
            _error_text(body),
            api_key=self._api_key,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

    def _in_band_error(self, data: dict[str, Any]) -> LLMError:
        error = data.get("error")
        text = error.get("message") if isinstance(error, dict) else error
        return LLMUpstreamError(scrub(str(text), self._api_key), provider=self.provider)

    def _transport_error(self, exc: httpx.HTTPError) -> LLMError:
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return LLMTimeout(
                f"could not connect within {self._connect_timeout:g} s", provider=self.provider
            )
        if isinstance(exc, httpx.TimeoutException):
            return LLMTimeout(
                f"no data from the provider for {self._idle_timeout:g} s (idle timeout)",
                provider=self.provider,
            )
        if isinstance(exc, httpx.ConnectError):
            parts = urlsplit(self.base_url)
            where = parts.hostname or "?"
            if parts.port:
                where += f":{parts.port}"
            return LLMConnectionError(
                scrub(f"cannot connect to {where}: {exc}", self._api_key), provider=self.provider
            )
        return LLMConnectionError(
            scrub(f"connection to the provider failed: {exc or type(exc).__name__}", self._api_key),
            provider=self.provider,
        )
