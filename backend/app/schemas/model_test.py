"""Requests and responses of uploaded images (`/api/model/upload-image`, `/api/model/images`)
and saved model comparisons (`/api/model/tests`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from app.schemas.chat import (
    COMPARE_MAX,
    IMAGES_MAX,
    MESSAGE_CONTENT_MAX,
    GenerationOverrides,
    ImageId,
)


class ImagePublic(BaseModel):
    """An uploaded image; `url` serves it to its owner only."""

    id: str
    mime_type: str
    size_bytes: int
    width: int
    height: int
    url: str


# ---------------------------------------------------------------------------- model tests

TEST_TITLE_MAX = 200
NOTES_MAX = 10_000
NAME_MAX = 200
ERROR_MESSAGE_MAX = 2000
EXPORT_IDS_MAX = 1000

Rating = Annotated[int, Field(ge=1, le=5)]
TestTitle = Annotated[str, StringConstraints(strip_whitespace=True, max_length=TEST_TITLE_MAX)]
ModelTestExportFormat = Literal["dpo", "sft"]


class ResultMetrics(BaseModel):
    """What the compare stream's `metrics` event reported for one model."""

    ttft_ms: int | None = Field(default=None, ge=0)
    total_ms: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    tokens_per_s: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    finish_reason: str | None = Field(default=None, max_length=32)


class ResultError(BaseModel):
    """A model that failed: the compare stream's `error` event."""

    code: str = Field(default="error", max_length=64)
    message: str = Field(default="", max_length=ERROR_MESSAGE_MAX)


class ModelTestResult(BaseModel):
    """One compared model's answer."""

    model_config_id: int | None = None
    config_name: str = Field(default="", max_length=NAME_MAX)
    model: str = Field(default="", max_length=NAME_MAX)
    content: str = Field(default="", max_length=MESSAGE_CONTENT_MAX)
    reasoning: str = Field(default="", max_length=MESSAGE_CONTENT_MAX)
    metrics: ResultMetrics | None = None
    error: ResultError | None = None
    rating: Rating | None = None

    @field_validator("reasoning", mode="before")
    @classmethod
    def _no_reasoning(cls, value: object) -> object:
        return "" if value is None else value


def _not_null(value: object) -> object:
    # Runs only for values the client sent (defaults are not validated): an explicit null.
    if value is None:
        raise ValueError("This field may not be null")
    return value


def _check_winner(winner_index: int | None, results: list[ModelTestResult]) -> None:
    if winner_index is None:
        return
    if winner_index >= len(results):
        raise ValueError(f"winner_index must index results (0-{len(results) - 1})")
    if results[winner_index].error is not None:
        raise ValueError("The winner cannot be a result that failed")


class ModelTestCreate(BaseModel):
    """A comparison to save: the prompt sent to 1-3 models and what each answered.
    `image_ids` must be the caller's own uploads."""

    title: TestTitle | None = None
    prompt: str = Field(min_length=1, max_length=MESSAGE_CONTENT_MAX)
    system_prompt: str | None = Field(default=None, max_length=MESSAGE_CONTENT_MAX)
    image_ids: list[ImageId] = Field(default_factory=list, max_length=IMAGES_MAX)
    params: GenerationOverrides | None = None
    results: list[ModelTestResult] = Field(min_length=1, max_length=COMPARE_MAX)
    winner_index: int | None = Field(default=None, ge=0)
    notes: str | None = Field(default=None, max_length=NOTES_MAX)

    @model_validator(mode="after")
    def _winner_is_a_result(self) -> ModelTestCreate:
        _check_winner(self.winner_index, self.results)
        return self


class ModelTestUpdate(BaseModel):
    """PATCH: only the fields sent change. `ratings` holds one entry per result (null clears a
    rating); `winner_index` null clears the winner."""

    title: TestTitle | None = None
    notes: str | None = Field(default=None, max_length=NOTES_MAX)
    winner_index: int | None = Field(default=None, ge=0)
    ratings: list[Rating | None] | None = Field(default=None, min_length=1, max_length=COMPARE_MAX)

    _required = field_validator("title", "ratings", mode="before")(_not_null)


class ModelTestPublic(BaseModel):
    id: int
    title: str
    prompt: str
    system_prompt: str | None
    image_ids: list[str]
    params: dict[str, Any]
    results: list[ModelTestResult]
    winner_index: int | None
    notes: str | None
    created_at: datetime
