"""Provider clients shared across requests.

A client holds an HTTP connection pool; building one per chat would pay for a new TCP (and TLS)
connection and the SDK's set-up on every message. Clients are keyed by provider, endpoint and a
digest of the API key, kept least-recently-used, and closed only once no stream still uses them
(a lease counts the users), so evicting a client never cuts a running answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from app.config import settings
from app.llm_core import BaseClient, LLMClient

logger = logging.getLogger(__name__)

POOL_SIZE = 32
# Retries before the first output chunk (llm_core never retries after it).
CHAT_MAX_RETRIES = 2

_Key = tuple[str, str, str]


@dataclass
class _Entry:
    client: BaseClient
    leases: int = 0
    evicted: bool = False
    closing: set[asyncio.Task[None]] = field(default_factory=set)


class ClientPool:
    """LRU of clients; use `async with pool.lease(provider, endpoint, key) as client`."""

    def __init__(self, size: int = POOL_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._retired: list[_Entry] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def _key(provider: str, endpoint: str, api_key: str | None) -> _Key:
        digest = hashlib.sha256((api_key or "").encode()).hexdigest()
        return provider, endpoint, digest

    def _acquire(self, provider: str, endpoint: str, api_key: str | None) -> _Entry:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # Connections belong to the loop that opened them. The server runs one loop; a new
            # one (tests start an app per test client) starts from an empty pool.
            self._entries.clear()
            self._retired.clear()
            self._loop = loop
        key = self._key(provider, endpoint, api_key)
        entry = self._entries.get(key)
        if entry is None:
            client = LLMClient.create(
                provider,
                endpoint,
                api_key,
                connect_timeout=settings.LLM_CONNECT_TIMEOUT_SECONDS,
                idle_timeout=settings.LLM_IDLE_TIMEOUT_SECONDS,
                max_retries=CHAT_MAX_RETRIES,
            )
            entry = self._entries[key] = _Entry(client)
            while len(self._entries) > self._size:
                _, old = self._entries.popitem(last=False)
                old.evicted = True
                if old.leases == 0:
                    self._close_later(old)
                else:
                    self._retired.append(old)
        else:
            self._entries.move_to_end(key)
        entry.leases += 1
        return entry

    def _release(self, entry: _Entry) -> None:
        entry.leases -= 1
        if entry.evicted and entry.leases == 0:
            if entry in self._retired:
                self._retired.remove(entry)
            self._close_later(entry)

    def _close_later(self, entry: _Entry) -> None:
        task = asyncio.get_running_loop().create_task(self._close(entry.client))
        entry.closing.add(task)
        task.add_done_callback(entry.closing.discard)

    @staticmethod
    async def _close(client: BaseClient) -> None:
        try:
            await client.aclose()
        except Exception:  # a close that fails leaks at most a socket; never fail a request
            logger.warning("Closing a %s client failed", client.provider, exc_info=True)

    @asynccontextmanager
    async def lease(
        self, provider: str, endpoint: str, api_key: str | None
    ) -> AsyncIterator[BaseClient]:
        entry = self._acquire(provider, endpoint, api_key)
        try:
            yield entry.client
        finally:
            self._release(entry)

    async def aclose(self) -> None:
        """Close every client (server shutdown)."""
        entries = list(self._entries.values()) + self._retired
        self._entries.clear()
        self._retired.clear()
        for entry in entries:
            await self._close(entry.client)


pool = ClientPool()
