"""Requests and responses of training jobs (`/api/training`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.models.training import JOB_DESCRIPTION_MAX, JOB_NAME_MAX
from app.schemas.model_config import OwnerRef

JobStatus = Literal["created", "queued", "running", "succeeded", "failed", "cancelled"]
JobKind = Literal["train", "export"]
JobScope = Literal["all", "mine"]
Stage = Literal["sft", "pt", "dpo", "kto"]
FinetuningType = Literal["lora", "qlora", "full", "freeze"]
Scheduler = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
]
ExportDtype = Literal["auto", "float16", "bfloat16", "float32"]
ArtifactKind = Literal["adapter", "model", "merged", "checkpoint"]

DATASETS_PER_JOB_MAX = 10

JobName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=JOB_NAME_MAX)
]
JobDescription = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=JOB_DESCRIPTION_MAX)
]


class TrainingParams(BaseModel):
    """The hyper-parameters of a run (LLaMA-Factory's names; ranges and combinations are
    checked against the engine and this host by engines.llamafactory.validate_spec)."""

    model_config = ConfigDict(extra="forbid")

    num_train_epochs: float | None = 3.0
    max_steps: int | None = None
    learning_rate: float = 5e-5
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 8
    cutoff_len: int = 1024
    max_samples: int | None = None
    lora_rank: int = 8
    lora_alpha: int | None = None
    lora_dropout: float = 0.0
    lora_target: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = "all"
    freeze_trainable_layers: int = 2
    quantization_bit: int = 4
    pref_beta: float = 0.1
    warmup: float = 0.0
    lr_scheduler_type: Scheduler = "cosine"
    save_steps: int = 500
    save_total_limit: int | None = 3
    logging_steps: int = 10
    val_size: float = 0.0
    eval_steps: int | None = None
    bf16: bool = False
    fp16: bool = False
    seed: int = 42


PARAM_NAMES: tuple[str, ...] = tuple(TrainingParams.model_fields)


class TrainingJobCreate(TrainingParams):
    """POST body: what to train on, how, and the hyper-parameters."""

    name: JobName
    description: JobDescription = ""
    dataset_ids: list[int] = Field(min_length=1, max_length=DATASETS_PER_JOB_MAX)
    base_model: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        max_length=1000, description="An absolute local model folder or a hub id"
    )
    template: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
    ] = "default"
    stage: Stage = "sft"
    finetuning_type: FinetuningType = "lora"
    use_swanlab: bool | None = Field(
        default=None, description="null: follow the server's SwanLab configuration"
    )
    swanlab_project: str | None = Field(default=None, max_length=100)
    swanlab_run_name: str | None = Field(default=None, max_length=100)
    start: bool = Field(default=False, description="Queue the job at once")


class TrainingJobUpdate(BaseModel):
    """PATCH body: only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    name: JobName | None = None
    description: JobDescription | None = None


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    export_dtype: ExportDtype = "auto"


class JobDatasetRef(BaseModel):
    id: int
    name: str


class SwanlabRun(BaseModel):
    enabled: bool = False
    project: str | None = None
    run_name: str | None = None
    mode: str | None = None


class JobProgress(BaseModel):
    step: int
    total: int
    percentage: float
    loss: float | None = None
    lr: float | None = None
    epoch: float | None = None
    elapsed_s: int | None = None
    remaining_s: int | None = None


class TrainingJobPublic(BaseModel):
    """A job as its owner (or an admin) sees it in the list."""

    id: int
    name: str
    description: str
    kind: JobKind
    source_job_id: int | None
    owner: OwnerRef
    status: JobStatus
    cancel_requested: bool
    reason: str | None
    exit_code: int | None
    resumable: bool
    queue_position: int | None
    attempt: int
    base_model: str
    template: str
    stage: Stage
    finetuning_type: FinetuningType
    datasets: list[JobDatasetRef]
    params: dict[str, Any]
    swanlab: SwanlabRun
    progress: JobProgress | None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class Artifact(BaseModel):
    """Something a run left that can be downloaded (as a zip) or deployed."""

    name: str
    kind: ArtifactKind
    size_bytes: int
    file_count: int
    step: int | None = None


class ExportRef(BaseModel):
    id: int
    name: str
    status: JobStatus


class TrainingJobDetail(TrainingJobPublic):
    artifacts: list[Artifact]
    exports: list[ExportRef]


class MetricPointOut(BaseModel):
    step: int
    loss: float | None = None
    lr: float | None = None
    epoch: float | None = None
    eval_loss: float | None = None


class JobMetrics(BaseModel):
    progress: JobProgress | None
    points: list[MetricPointOut]


class JobLogs(BaseModel):
    """A slice of the job's log: whole lines from `offset` up to `next_offset` (bytes)."""

    offset: int
    next_offset: int
    size: int
    lines: list[str]
    truncated: bool = Field(description="More whole lines follow next_offset")


class EngineInfo(BaseModel):
    """Whether this server can train, and with what."""

    available: bool
    version: str | None
    version_supported: bool
    missing: str | None
    install_hint: str
    gpus: list[str]
    quantization: bool
    templates: list[str]
    cpu_threads: int | None = None  # torch threads per run (TRAIN_CPU_THREADS); None: default
