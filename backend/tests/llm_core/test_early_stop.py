"""When the consumer stops early, the upstream response is closed at once: the mock upstream
must see the client hang up within 1 s, however the consumer stopped (DESIGN principle 5)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
import httpx
import httpx2
import pytest

from app.llm_core import BaseClient, ChatChunk, ChatMessage
from tests.llm_core.conftest import MakeClient
from tests.upstream import MockUpstream

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("provider", ["vllm", "ollama"])]

HELLO = [ChatMessage(role="user", content="hi")]


@pytest.fixture(autouse=True)
async def no_rescue_by_refcounting(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Keep every response's line iterator (and so the response) referenced by the test, so
    that CPython finalising abandoned generators cannot hang up for llm_core: only its own
    explicit close of the upstream response can make the mock see the disconnect."""
    held: list[Any] = []
    for cls in (httpx.Response, httpx2.Response):
        original = cls.aiter_lines

        def aiter_lines(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            iterator = _original(self, *args, **kwargs)
            held.append(iterator)
            return iterator

        monkeypatch.setattr(cls, "aiter_lines", aiter_lines)
    yield
    for iterator in held:
        await iterator.aclose()


async def assert_disconnect_within_1s(upstream: MockUpstream, stopped_at: float) -> None:
    disconnect = await anyio.to_thread.run_sync(upstream.wait_for_disconnect, 2.0)
    assert disconnect is not None, "the upstream never saw the client hang up"
    assert disconnect.at - stopped_at < 1.0
    assert disconnect.model.startswith("long")
    assert disconnect.chunks_sent < 50  # "long" has 200; the rest was never sent
    assert len(upstream.chat_requests()) == 1


async def test_aclose(make_client: MakeClient, upstream: MockUpstream, provider: str) -> None:
    client = make_client(provider)
    stream = client.stream("long", HELLO)
    first = await anext(stream)
    assert first.kind == "content"
    stopped = time.monotonic()
    await stream.aclose()
    await assert_disconnect_within_1s(upstream, stopped)


async def test_break_out_of_async_with_aclosing(
    make_client: MakeClient, upstream: MockUpstream, provider: str
) -> None:
    async with aclosing(make_client(provider).stream("long", HELLO)) as stream:
        async for chunk in stream:
            if chunk.kind == "content":
                break
    await assert_disconnect_within_1s(upstream, time.monotonic())


async def test_plain_break(make_client: MakeClient, upstream: MockUpstream, provider: str) -> None:
    # No aclose by the consumer: the generator is finalised (asyncio schedules its aclose) as
    # soon as the loop drops it.
    count = 0
    async for _chunk in make_client(provider).stream("long", HELLO):
        count += 1
        if count == 3:
            break
    stopped = time.monotonic()
    gc.collect()
    await assert_disconnect_within_1s(upstream, stopped)


async def test_task_cancelled(
    make_client: MakeClient, upstream: MockUpstream, provider: str
) -> None:
    client = make_client(provider)
    got_one = asyncio.Event()

    async def consume() -> None:
        async for _chunk in client.stream("long", HELLO):
            got_one.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_one.wait(), 5)
    stopped = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_disconnect_within_1s(upstream, stopped)


async def test_anyio_cancel_scope(
    make_client: MakeClient, upstream: MockUpstream, provider: str
) -> None:
    # anyio cancellation is level-triggered: an unshielded close would itself be cancelled.
    received: list[ChatChunk] = []
    client: BaseClient = make_client(provider)
    with anyio.move_on_after(0.2):
        async for chunk in client.stream("long", HELLO):
            received.append(chunk)
    stopped = time.monotonic()
    assert received
    await assert_disconnect_within_1s(upstream, stopped)
