"""The SSE relay between a provider stream and the browser (DESIGN.md principle 8).

`relay` turns llm_core chunks into event dicts and collects the answer; the three public
generators frame them for a session chat (user turn saved before, answer saved once after,
whatever ends the stream), for the stateless playground, and for a comparison of up to three
configs in one stream, each event tagged with its `model_index`.

A stream ends because the provider finished, because it failed, or because the client went
away (the response task is cancelled). The session stream saves the answer in every case:
`complete`, `error` (with the partial text) or `interrupted`; the last one is written from a
`finally` under a shielded cancel scope, so the cancellation that ends the stream cannot also
cancel its write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import anyio

from app.exceptions import BadGateway, GatewayTimeout
from app.llm_core import ChatMessage, GenerationParams, LLMError
from app.llm_core.errors import scrub
from app.schemas.chat import ChatMessagePublic, ChatResponse
from app.services.chat_service import (
    Answer,
    PreparedCall,
    PreparedTurn,
    save_answer,
)
from app.services.llm_pool import pool
from app.services.model_config_service import ChatTarget

logger = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
ERROR = b"data: [ERROR]\n\n"
SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx (deploy/nginx.conf) must pass chunks on at once, not buffer the answer.
    "X-Accel-Buffering": "no",
}


def frame(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"


@dataclass
class _Clock:
    started: float
    first: float | None = None

    def mark(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def ms(self, until: float | None) -> int | None:
        return None if until is None else round((until - self.started) * 1000)


def metrics_event(answer: Answer, clock: _Clock) -> dict[str, Any]:
    """Timing and throughput of one answer (also stored on the message)."""
    now = time.perf_counter()
    total_ms = round((now - clock.started) * 1000)
    output_tokens = answer.completion_tokens or answer.chunks
    generating = now - clock.first if clock.first is not None else 0.0
    tokens_per_s = (
        round(output_tokens / generating, 2) if generating > 0 and output_tokens else None
    )
    return {
        "type": "metrics",
        "ttft_ms": answer.ttft_ms,
        "total_ms": total_ms,
        "output_tokens": output_tokens,
        "tokens_per_s": tokens_per_s,
        "finish_reason": answer.finish_reason,
    }


def error_event(answer: Answer) -> dict[str, Any]:
    return {
        "type": "error",
        "code": answer.error_code or "provider_error",
        "message": answer.error or "The provider failed",
    }


async def relay(
    target: ChatTarget,
    messages: list[ChatMessage],
    params: GenerationParams,
    answer: Answer,
    clock: _Clock,
) -> AsyncGenerator[dict[str, Any], None]:
    """Events of one provider stream; fills `answer` as it goes. A provider failure ends the
    iteration with `answer.status == "error"` (the caller sends the error event)."""
    content: list[str] = []
    reasoning: list[str] = []
    try:
        async with pool.lease(target.provider, target.endpoint, target.api_key) as client:
            stream = client.stream(target.model, messages, params)
            try:
                async for chunk in stream:
                    if chunk.kind == "content":
                        clock.mark()
                        answer.chunks += 1
                        content.append(chunk.text)
                        yield {"type": "content", "text": chunk.text}
                    elif chunk.kind == "reasoning":
                        clock.mark()
                        answer.chunks += 1
                        reasoning.append(chunk.text)
                        yield {"type": "reasoning", "text": chunk.text}
                    elif chunk.kind == "usage" and chunk.usage is not None:
                        answer.prompt_tokens = chunk.usage.prompt_tokens
                        answer.completion_tokens = chunk.usage.completion_tokens
                        yield {
                            "type": "usage",
                            "prompt_tokens": chunk.usage.prompt_tokens,
                            "completion_tokens": chunk.usage.completion_tokens,
                        }
                    elif chunk.kind == "finish":
                        answer.finish_reason = chunk.finish_reason
            finally:
                await stream.aclose()
    except LLMError as exc:
        answer.status = "error"
        answer.error_code = exc.code
        answer.error = scrub(exc.message, target.api_key)
        answer.finish_reason = answer.finish_reason or "error"
        logger.warning(
            "Chat with %s (%s) failed: %s (HTTP %s)",
            target.name,
            target.provider,
            exc.code,
            exc.status,
        )
    finally:
        # Also on cancellation: the caller saves what arrived so far.
        answer.content = "".join(content)
        answer.reasoning = "".join(reasoning)
        answer.ttft_ms = clock.ms(clock.first)
        answer.latency_ms = clock.ms(time.perf_counter())
        answer.model = target.model


async def session_stream(turn: PreparedTurn) -> AsyncGenerator[bytes, None]:
    """A chat turn in a saved session: the saved user turn, the live answer, the saved answer.
    Must be consumed by an SSEResponse (it closes the generator, which runs the final write)."""
    answer = Answer()
    clock = _Clock(time.perf_counter())
    saved = False
    try:
        if turn.user_message is not None:
            yield frame({"type": "message", "message": turn.user_message.model_dump(mode="json")})
        async with aclosing(
            relay(turn.target, turn.messages, turn.params, answer, clock)
        ) as events:
            async for event in events:
                yield frame(event)
        metrics = metrics_event(answer, clock)
        message = await anyio.to_thread.run_sync(save_answer, turn, answer)
        saved = True
        if message is not None:
            yield frame({"type": "message", "message": message.model_dump(mode="json")})
        if answer.status == "error":
            yield frame(error_event(answer))
            yield ERROR
        else:
            yield frame(metrics)
            yield DONE
    finally:
        if not saved:
            if answer.status == "complete":
                answer.status = "interrupted"
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(save_answer, turn, answer)


async def playground_stream(call: PreparedCall) -> AsyncGenerator[bytes, None]:
    """A stateless streamed answer: the same events, nothing saved."""
    answer = Answer()
    clock = _Clock(time.perf_counter())
    async with aclosing(relay(call.target, call.messages, call.params, answer, clock)) as events:
        async for event in events:
            yield frame(event)
    if answer.status == "error":
        yield frame(error_event(answer))
        yield ERROR
    else:
        yield frame(metrics_event(answer, clock))
        yield DONE


@dataclass
class Compared:
    """One model's result of a comparison."""

    answer: Answer
    metrics: dict[str, Any] | None


async def _run_one(call: PreparedCall, emit: Callable[[dict[str, Any]], None] | None) -> Compared:
    answer = Answer()
    clock = _Clock(time.perf_counter())
    async with aclosing(relay(call.target, call.messages, call.params, answer, clock)) as events:
        async for event in events:
            if emit is not None:
                emit(event)
    if answer.status == "error":
        if emit is not None:
            emit(error_event(answer))
        return Compared(answer, None)
    metrics = metrics_event(answer, clock)
    if emit is not None:
        emit(metrics)
    return Compared(answer, metrics)


async def compare_stream(calls: list[PreparedCall]) -> AsyncGenerator[bytes, None]:
    """Up to three answers at once in one stream, every event tagged with its model_index; a
    failing model sends its error event and the others go on; one [DONE] when all ended.

    The models run as plain asyncio tasks feeding a queue (no task group is held across a
    `yield`); the `finally` cancels whatever still runs when the client goes away."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def produce(index: int, call: PreparedCall) -> None:
        def emit(event: dict[str, Any]) -> None:
            event["model_index"] = index
            queue.put_nowait(frame(event))

        try:
            await _run_one(call, emit)
        finally:
            queue.put_nowait(None)

    tasks = [asyncio.create_task(produce(i, call)) for i, call in enumerate(calls)]
    try:
        running = len(tasks)
        while running:
            data = await queue.get()
            if data is None:
                running -= 1
            else:
                yield data
        yield DONE
    finally:
        for task in tasks:
            task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(*tasks, return_exceptions=True)


async def compare_all(calls: list[PreparedCall]) -> list[Compared]:
    """The non-streaming comparison: every model's full answer, run concurrently."""
    return list(await asyncio.gather(*(_run_one(call, None) for call in calls)))


# --------------------------------------------------------------------- non-streaming


def _raise_for(answer: Answer) -> None:
    if answer.status != "error":
        return
    message = answer.error or "The provider failed"
    if answer.error_code == "provider_timeout":
        raise GatewayTimeout(message, code="provider_timeout")
    raise BadGateway(message, code=answer.error_code or "provider_error")


def _response(
    answer: Answer,
    user_message: ChatMessagePublic | None = None,
    assistant_message: ChatMessagePublic | None = None,
) -> ChatResponse:
    usage = None
    if answer.prompt_tokens is not None or answer.completion_tokens is not None:
        usage = {
            "prompt_tokens": answer.prompt_tokens or 0,
            "completion_tokens": answer.completion_tokens or 0,
        }
    return ChatResponse(
        content=answer.content,
        reasoning=answer.reasoning,
        usage=usage,
        finish_reason=answer.finish_reason,
        latency_ms=answer.latency_ms or 0,
        model=answer.model or "",
        user_message=user_message,
        assistant_message=assistant_message,
    )


async def complete_turn(turn: PreparedTurn) -> ChatResponse:
    """A session turn answered whole; saved like a streamed one (also when the provider fails,
    which then answers 502 / 504)."""
    result = await _run_one(PreparedCall(turn.target, turn.messages, turn.params), None)
    answer = result.answer
    saved = await anyio.to_thread.run_sync(save_answer, turn, answer)
    _raise_for(answer)
    return _response(answer, turn.user_message, saved)


async def complete_call(call: PreparedCall) -> ChatResponse:
    """A stateless conversation answered whole."""
    answer = (await _run_one(call, None)).answer
    _raise_for(answer)
    return _response(answer)
