"""Requests and responses of model runtimes (`/api/model`) and of deploying a training job."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.models.model_runtime import RUNTIME_NAME_MAX
from app.schemas.model_config import OwnerRef

RuntimeStatus = Literal["stopped", "loading", "ready", "failed"]
RuntimeEngine = Literal["vllm", "llamafactory"]
RuntimeBackend = Literal["huggingface", "vllm"]
SourceKind = Literal["path", "hub", "job"]
JobArtifact = Literal["adapter", "merged", "model"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _served_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError("Use letters, digits, '_', '.' or '-' (starting with a letter or digit)")
    return value


RuntimeName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=RUNTIME_NAME_MAX),
    AfterValidator(_served_name),
]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Port = Annotated[int, Field(ge=1024, le=65535)]


class RuntimeCreate(BaseModel):
    """POST body. `source_kind` path / hub: `source` is the model; job: `job_id` and which of its
    artifacts (the adapter is served on the job's base model)."""

    model_config = ConfigDict(extra="forbid")

    name: RuntimeName
    description: Description = ""
    source_kind: SourceKind = "path"
    source: str | None = Field(default=None, max_length=1000)
    job_id: int | None = None
    artifact: JobArtifact | None = None
    template: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
        | None
    ) = None
    engine: RuntimeEngine = "llamafactory"
    backend: RuntimeBackend = "huggingface"
    engine_args: dict[str, Any] = Field(default_factory=dict)
    port: Port | None = None
    load: bool = Field(default=False, description="Load it at once")


class RuntimeUpdate(BaseModel):
    """PATCH body: only the fields sent change; serving settings only while it is not loaded."""

    model_config = ConfigDict(extra="forbid")

    description: Description | None = None
    template: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
        | None
    ) = None
    engine_args: dict[str, Any] | None = None
    port: Port | None = None


class RuntimePublic(BaseModel):
    id: int
    name: str
    description: str
    owner: OwnerRef
    can_manage: bool
    source_kind: SourceKind
    source: str
    job_id: int | None
    base_model: str
    adapter_path: str | None
    template: str
    engine: RuntimeEngine
    backend: RuntimeBackend
    engine_args: dict[str, Any]
    requested_port: int | None
    status: RuntimeStatus
    unload_requested: bool
    port: int | None
    endpoint: str | None
    reason: str | None
    exit_code: int | None
    model_config_id: int | None
    uptime_s: int | None
    load_requested_at: datetime | None
    started_at: datetime | None
    ready_at: datetime | None
    stopped_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ServingEngineInfo(BaseModel):
    engine: RuntimeEngine
    available: bool
    missing: str | None
    install_hint: str | None


class DeployRequest(BaseModel):
    """Serve a finished training job (its adapter on the base model, or its merged / full
    model) and, with `with_base`, its base model beside it for a comparison."""

    model_config = ConfigDict(extra="forbid")

    name: RuntimeName | None = None
    engine: RuntimeEngine | None = Field(
        default=None, description="null: vllm on a GPU host with vLLM, else llamafactory"
    )
    with_base: bool = True


class DeployResult(BaseModel):
    runtime: RuntimePublic
    base_runtime: RuntimePublic | None
