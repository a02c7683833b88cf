"""Clients for remote inference APIs. Plain arguments in, dataclasses and async iterators out:
no FastAPI, no ORM. Chat, playground and serving call only this package."""

from app.llm_core.base import BaseClient
from app.llm_core.client import LLMClient
from app.llm_core.errors import (
    LLMAuthError,
    LLMBadRequest,
    LLMConnectionError,
    LLMContextTooLong,
    LLMError,
    LLMRateLimited,
    LLMTimeout,
    LLMUpstreamError,
)
from app.llm_core.providers import MODEL_PROVIDERS, ProviderSpec, normalize_endpoint
from app.llm_core.retry import RetryPolicy
from app.llm_core.think_parser import ThinkParser, split_think
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

__all__ = [
    "MODEL_PROVIDERS",
    "BaseClient",
    "ChatChunk",
    "ChatMessage",
    "ChatResult",
    "GenerationParams",
    "ImagePart",
    "LLMAuthError",
    "LLMBadRequest",
    "LLMClient",
    "LLMConnectionError",
    "LLMContextTooLong",
    "LLMError",
    "LLMRateLimited",
    "LLMTimeout",
    "LLMUpstreamError",
    "ModelInfo",
    "ProviderSpec",
    "RetryPolicy",
    "TextPart",
    "ThinkParser",
    "Usage",
    "normalize_endpoint",
    "split_think",
]
