"""The data that crosses the llm_core boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class ImagePart:
    """An image as a data URL (data:image/png;base64,...) or an http(s) URL."""

    url: str
    type: Literal["image"] = "image"


@dataclass(frozen=True)
class ChatMessage:
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
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    content: str
    reasoning: str
    usage: Usage | None
    finish_reason: str | None
    latency_ms: float
    model: str


@dataclass(frozen=True)
class ChatChunk:
    """One streamed delta: exactly one of reasoning / content / usage (/ finish_reason) is set."""

    kind: Literal["reasoning", "content", "usage", "finish"]
    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    id: str
    owned_by: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
