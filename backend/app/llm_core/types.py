"""The data that crosses the llm_core boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class TextPart:
    """A piece of text in a multi-part message."""

    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class ImagePart:
    """An image as a data URL (data:image/png;base64,...) or an http(s) URL."""

    url: str
    type: Literal["image"] = "image"


@dataclass(frozen=True)
class ChatMessage:
    """One turn of the conversation: plain text, or text and image parts."""

    role: Role
    content: str | list[TextPart | ImagePart]

    @property
    def text(self) -> str:
        """The text of the message, image parts left out."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters; None means "the provider's default" and is not sent."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Usage:
    """Token counts as the provider reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    """A complete answer: reasoning split from content; latency covers retries too."""

    content: str
    reasoning: str
    usage: Usage | None
    finish_reason: str | None
    latency_ms: float
    model: str


@dataclass(frozen=True)
class ChatChunk:
    """One streamed delta: exactly one of reasoning / content / usage (/ finish_reason) is set.

    A successful stream ends with at most one "usage" chunk followed by exactly one "finish"
    chunk (finish_reason None when the provider did not say)."""

    kind: Literal["reasoning", "content", "usage", "finish"]
    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """One entry of a provider's model list; `extra` holds what else it told (Ollama's
    details and size, OpenAI's created)."""

    id: str
    owned_by: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
