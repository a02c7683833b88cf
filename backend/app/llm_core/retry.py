"""Retries and clean-up shared by the clients.

A request is retried (at most `max_retries` times) only when it failed with a connection
error, a 429 or a 5xx, and only before the first chunk of output reached the consumer: once
output has started, a retry would repeat text the user has already seen, so the error is raised.
Timeouts are not retried: the idle timeout already waited long, and a retry would double it.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio

from app.llm_core.errors import LLMConnectionError, LLMError, LLMRateLimited, LLMUpstreamError
from app.llm_core.types import ChatChunk

T = TypeVar("T")


class SupportsAclose(Protocol):
    def aclose(self) -> Awaitable[object]: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait. Retry n (0-based) waits base_delay * 2**n (at most
    max_delay, minus up to 25 % jitter so that clients that failed together do not come back
    together), or what Retry-After says. A Retry-After longer than max_retry_after is not
    waited for: the error is raised at once with `.retry_after`, so the caller can tell the user
    when to come back instead of holding the request open."""

    max_retries: int = 2
    base_delay: float = 0.25
    max_delay: float = 2.0
    max_retry_after: float = 10.0

    def delay_before_retry(self, retries_done: int, error: LLMError) -> float | None:
        """Seconds to wait before the next try, or None when `error` must be raised."""
        if retries_done >= self.max_retries or not is_retryable(error):
            return None
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            return error.retry_after
        backoff = min(self.base_delay * 2.0**retries_done, self.max_delay)
        return backoff * (1.0 - 0.25 * random.random())


def is_retryable(error: LLMError) -> bool:
    """Connection failures, 429 and 5xx (or an error event before any output)."""
    return isinstance(error, LLMConnectionError | LLMRateLimited | LLMUpstreamError)


async def call_with_retries(policy: RetryPolicy, attempt: Callable[[], Awaitable[T]]) -> T:
    """Await `attempt()` until it succeeds or raises an error the policy does not retry."""
    retries = 0
    while True:
        try:
            return await attempt()
        except LLMError as exc:
            delay = policy.delay_before_retry(retries, exc)
            if delay is None:
                raise
        await anyio.sleep(delay)
        retries += 1


async def stream_with_retries(
    policy: RetryPolicy, attempt: Callable[[], AsyncGenerator[ChatChunk, None]]
) -> AsyncGenerator[ChatChunk, None]:
    """Yield the chunks of `attempt()`; when it fails before its first chunk, try again."""
    retries = 0
    while True:
        chunks = attempt()
        started = False
        try:
            async for chunk in chunks:
                started = True
                yield chunk
            return
        except LLMError as exc:
            delay = None if started else policy.delay_before_retry(retries, exc)
            if delay is None:
                raise
        finally:
            await aclose_shielded(chunks)
        await anyio.sleep(delay)
        retries += 1


async def aclose_shielded(resource: SupportsAclose) -> None:
    """`await resource.aclose()` even inside a cancelled scope: under anyio cancellation is
    level-triggered, so an unshielded close in a `finally` would itself be cancelled and leave
    the upstream connection open until garbage collection."""
    with anyio.CancelScope(shield=True):
        await resource.aclose()
