"""What every provider client offers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Sequence

from app.llm_core.types import ChatChunk, ChatMessage, ChatResult, GenerationParams, ModelInfo


class BaseClient(ABC):
    """One endpoint with one credential; use as an async context manager or call aclose()."""

    provider: str
    base_url: str  # normalised, as the client uses it

    @abstractmethod
    async def chat(
        self, model: str, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> ChatResult:
        """One complete answer (reasoning split out of the content)."""

    @abstractmethod
    def stream(
        self, model: str, messages: Sequence[ChatMessage], params: GenerationParams | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        """Deltas as they arrive. Stopping early (aclose(), `contextlib.aclosing`, cancellation,
        or a `break` once the generator is dropped) closes the upstream response at once.
        Errors raised before the first chunk may have been retried; after it, never."""

    @abstractmethod
    async def list_models(self) -> list[ModelInfo]:
        """The models the endpoint offers."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""

    async def __aenter__(self) -> BaseClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
