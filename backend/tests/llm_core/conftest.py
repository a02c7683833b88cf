"""Fixtures for the llm_core tests: one mock upstream for the session (reset before every
test), and a factory for clients that are closed after the test. No database is needed, so the
session-wide `clean_state` (which builds one) is replaced by a no-op here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from app.llm_core import BaseClient, LLMClient
from tests.upstream import MockUpstream


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Overrides the database clean-up of tests/conftest.py: these tests touch no database."""


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[MockUpstream]:
    with MockUpstream() as server:
        yield server


@pytest.fixture
def upstream(upstream_server: MockUpstream) -> MockUpstream:
    upstream_server.reset()
    return upstream_server


MakeClient = Callable[..., BaseClient]


@pytest.fixture
async def make_client(upstream: MockUpstream) -> AsyncIterator[MakeClient]:
    """make_client(provider="vllm", endpoint=None, api_key=None, **kwargs): a client for the
    mock (OpenAI-compatible providers get its /v1 URL, Ollama its root), closed afterwards."""
    clients: list[BaseClient] = []

    def make(
        provider: str = "vllm",
        endpoint: str | None = None,
        api_key: str | None = None,
        **kwargs: Any,
    ) -> BaseClient:
        if endpoint is None:
            endpoint = upstream.ollama_url if provider == "ollama" else upstream.openai_url
        client = LLMClient.create(provider, endpoint, api_key, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
