"""Requests and responses of chat (`/api/chat`) and the playground (`/api/playground`).

Streaming endpoints answer Server-Sent Events, one JSON object per `data:` frame:

- `{"type": "message", "message": ChatMessagePublic}`: a persisted turn (chat streams only: the
  user turn right after it was saved, the assistant turn after its one final write);
- `{"type": "reasoning", "text": str}` / `{"type": "content", "text": str}`: deltas;
- `{"type": "usage", "prompt_tokens": int, "completion_tokens": int}`;
- `{"type": "metrics", "ttft_ms": int|null, "total_ms": int, "output_tokens": int,
  "tokens_per_s": float|null, "finish_reason": str|null}`;
- `{"type": "error", "code": str, "message": str}`.

The stream ends with `data: [DONE]` after success, `data: [ERROR]` after an error event. Compare
streams tag every event with `model_index` (0-2) and end with one `[DONE]` once every model ended
(a failed model sends its own error event; the others go on).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from app.models.chat import TITLE_MAX
from app.schemas.model_config import ModelParams

MESSAGE_CONTENT_MAX = 100_000
MESSAGES_MAX = 200
IMAGES_MAX = 4
PAGE_LIMIT_MAX = 200
COMPARE_MAX = 3
EXPORT_SESSIONS_MAX = 100

Role = Literal["system", "user", "assistant"]
MessageStatus = Literal["complete", "interrupted", "error"]
ExportFormat = Literal["markdown", "json", "openai-jsonl", "sharegpt"]
ImageId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Title = Annotated[str, StringConstraints(strip_whitespace=True, max_length=TITLE_MAX)]


class GenerationOverrides(ModelParams):
    """Per-request sampling overrides; unset fields fall back to the model config's values."""


class ChatSessionCreate(BaseModel):
    title: Title | None = None
    model_config_id: int | None = None
    system_prompt_id: int | None = None


class ChatSessionUpdate(BaseModel):
    """PATCH: only the fields sent change; null clears the config / prompt."""

    title: Title | None = None
    model_config_id: int | None = None
    system_prompt_id: int | None = None


class ChatSessionPublic(BaseModel):
    id: int
    title: str
    model_config_id: int | None
    system_prompt_id: int | None
    message_count: int
    last_message_preview: str
    created_at: datetime
    updated_at: datetime


class ChatMessagePublic(BaseModel):
    id: int
    session_id: int
    role: Role
    content: str
    reasoning: str | None
    status: MessageStatus
    error: str | None
    image_ids: list[str]
    model_config_id: int | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int | None
    ttft_ms: int | None
    finish_reason: str | None
    created_at: datetime


class MessagePage(BaseModel):
    """Messages oldest first; `has_more`: older ones exist (ask with before=items[0].id)."""

    items: list[ChatMessagePublic]
    has_more: bool


class ChatSessionDetail(BaseModel):
    session: ChatSessionPublic
    messages: MessagePage


class MessageCreate(BaseModel):
    """Write-back of a turn produced elsewhere (e.g. a client that streamed from the playground)."""

    session_id: int
    role: Role
    content: str = Field(max_length=MESSAGE_CONTENT_MAX)
    reasoning: str | None = Field(default=None, max_length=MESSAGE_CONTENT_MAX)
    model_config_id: int | None = None
    image_ids: list[ImageId] = Field(default_factory=list, max_length=IMAGES_MAX)


class InputMessage(BaseModel):
    role: Role
    content: str = Field(max_length=MESSAGE_CONTENT_MAX)
    image_ids: list[ImageId] = Field(default_factory=list, max_length=IMAGES_MAX)


class ChatRequest(BaseModel):
    """Non-streaming chat: either a whole conversation with a config, or a new user turn in a
    saved session (both turns are then saved)."""

    model_config_id: int | None = None
    messages: list[InputMessage] | None = Field(default=None, min_length=1, max_length=MESSAGES_MAX)
    session_id: int | None = None
    content: str | None = Field(default=None, min_length=1, max_length=MESSAGE_CONTENT_MAX)
    image_ids: list[ImageId] = Field(default_factory=list, max_length=IMAGES_MAX)
    system_prompt_id: int | None = None
    system_prompt: str | None = Field(default=None, max_length=MESSAGE_CONTENT_MAX)
    params: GenerationOverrides | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> ChatRequest:
        if self.session_id is not None:
            if self.messages is not None:
                raise ValueError("Send either session_id with content, or messages, not both")
            if self.content is None:
                raise ValueError("content is required with session_id")
        elif self.messages is None or self.model_config_id is None:
            raise ValueError("Send model_config_id with messages, or session_id with content")
        return self


class ChatResponse(BaseModel):
    content: str
    reasoning: str
    usage: dict[str, int] | None
    finish_reason: str | None
    latency_ms: int
    model: str
    user_message: ChatMessagePublic | None = None
    assistant_message: ChatMessagePublic | None = None


class StreamRequest(BaseModel):
    """A new user turn streamed in a session; `regenerate` re-answers the last user turn instead
    (its previous answer is replaced) and then takes no content."""

    content: str | None = Field(default=None, min_length=1, max_length=MESSAGE_CONTENT_MAX)
    image_ids: list[ImageId] = Field(default_factory=list, max_length=IMAGES_MAX)
    regenerate: bool = False
    model_config_id: int | None = None
    system_prompt_id: int | None = None
    params: GenerationOverrides | None = None

    @model_validator(mode="after")
    def _content_or_regenerate(self) -> StreamRequest:
        if self.regenerate and (self.content is not None or self.image_ids):
            raise ValueError("regenerate takes no content or images")
        if not self.regenerate and self.content is None:
            raise ValueError("content is required")
        return self


class PlaygroundRequest(BaseModel):
    """A stateless streamed chat: nothing is saved."""

    model_config_id: int
    messages: list[InputMessage] = Field(min_length=1, max_length=MESSAGES_MAX)
    system_prompt: str | None = Field(default=None, max_length=MESSAGE_CONTENT_MAX)
    params: GenerationOverrides | None = None


class CompareRequest(BaseModel):
    """The same conversation sent to 1-3 configs at once. `image_ids` are attached to the last
    user message."""

    model_config_ids: list[int] = Field(min_length=1, max_length=COMPARE_MAX)
    messages: list[InputMessage] = Field(min_length=1, max_length=MESSAGES_MAX)
    system_prompt: str | None = Field(default=None, max_length=MESSAGE_CONTENT_MAX)
    image_ids: list[ImageId] = Field(default_factory=list, max_length=IMAGES_MAX)
    params: GenerationOverrides | None = None


class CompareMetrics(BaseModel):
    ttft_ms: int | None
    total_ms: int
    output_tokens: int
    tokens_per_s: float | None
    finish_reason: str | None


class CompareResult(BaseModel):
    model_index: int
    model_config_id: int
    config_name: str
    model: str
    content: str
    reasoning: str
    error: dict[str, str] | None
    metrics: CompareMetrics | None


class CompareResponse(BaseModel):
    results: list[CompareResult]


class ExportRequest(BaseModel):
    session_ids: list[int] = Field(min_length=1, max_length=EXPORT_SESSIONS_MAX)
    format: ExportFormat = "json"
