"""Requests and responses of training datasets (`/api/training/datasets`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from app.models.dataset import DATASET_DESCRIPTION_MAX, DATASET_NAME_MAX
from app.schemas.chat import EXPORT_SESSIONS_MAX
from app.schemas.model_config import OwnerRef
from app.schemas.model_test import EXPORT_IDS_MAX, ModelTestExportFormat

DatasetScope = Literal["all", "mine", "shared"]
FileFormat = Literal["json", "jsonl", "csv", "txt"]
DetectedFormat = Literal["alpaca", "sharegpt", "openai", "preference", "kto", "text", "unknown"]
DatasetStatus = Literal["ready", "invalid"]
DatasetSource = Literal["upload", "chat", "tests"]

PREVIEW_LIMIT_MAX = 100

DatasetName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=DATASET_NAME_MAX)
]
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=DATASET_DESCRIPTION_MAX)
]


class DatasetFields(BaseModel):
    """What the user says about a new dataset: the upload's form fields, and part of the
    from-chat / from-tests bodies. Without a name, the file name (or the source) gives one."""

    name: DatasetName | None = None
    description: Description = ""
    is_shared: bool = False


class FromChatRequest(DatasetFields):
    """Own chat sessions to turn into a ShareGPT dataset (one conversation per session)."""

    session_ids: list[int] = Field(min_length=1, max_length=EXPORT_SESSIONS_MAX)


class FromTestsRequest(DatasetFields):
    """Own saved comparisons (all, or `test_ids`) to turn into a dataset: `dpo` preference
    pairs from the votes, or `sft` rows from the winning answers."""

    kind: ModelTestExportFormat = "dpo"
    test_ids: list[int] | None = Field(default=None, min_length=1, max_length=EXPORT_IDS_MAX)


def _not_null(value: object) -> object:
    if value is None:
        raise ValueError("This field may not be null")
    return value


class DatasetUpdate(BaseModel):
    """PATCH body: only the fields sent change."""

    name: DatasetName | None = None
    description: Description | None = None
    is_shared: bool | None = None

    _required = field_validator("name", "description", "is_shared", mode="before")(_not_null)


class DatasetError(BaseModel):
    """One problem found by validation: the line it is on (1-based) and what is wrong."""

    line: int
    message: str


class LengthStats(BaseModel):
    """Characters per record of one part (prompt, response, rejected answer)."""

    min: int
    max: int
    mean: float
    p50: float
    p95: float


class KtoLabels(BaseModel):
    """Valid KTO records by their kto_tag."""

    desirable: int
    undesirable: int


class DatasetStats(BaseModel):
    """Length statistics of the valid records. `prompt`: user-side text (instruction + input,
    user turns, history questions); `response`: model-side text (the chosen answer for
    preference data; none for pre-training text); `rejected`: preference data only;
    `labels`: KTO data only."""

    prompt: LengthStats | None = None
    response: LengthStats | None = None
    rejected: LengthStats | None = None
    labels: KtoLabels | None = None
    total_chars: int = 0


class DatasetPublic(BaseModel):
    """A dataset as the acting user sees it in a list."""

    id: int
    name: str
    description: str
    is_shared: bool
    owner: OwnerRef
    can_edit: bool
    file_name: str
    file_format: FileFormat
    detected_format: DetectedFormat
    status: DatasetStatus
    rows: int
    valid_rows: int
    invalid_rows: int
    error_count: int
    size_bytes: int
    source: DatasetSource
    created_at: datetime
    updated_at: datetime


class DatasetDetail(DatasetPublic):
    """One dataset with its validation report and the dataset_info entry a job will write
    (`llamafactory`, without `file_name`; null unless the dataset is ready)."""

    errors: list[DatasetError]
    stats: DatasetStats
    llamafactory: dict[str, Any] | None


class PreviewRow(BaseModel):
    """One record of the file: its value (long strings and lists clipped) or why it cannot be
    read."""

    line: int
    record: Any = None
    error: str | None = None


class DatasetPreview(BaseModel):
    """A page of records in file order."""

    items: list[PreviewRow]
    offset: int
    limit: int
    has_more: bool
    rows: int
