from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import Base, UTCDateTime, utcnow
from app.models.user import User

JOB_NAME_MAX = 100
JOB_DESCRIPTION_MAX = 2000
JOB_KINDS = ("train", "export")
JOB_STATUSES = ("created", "queued", "running", "succeeded", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


class TrainingJob(Base):
    """A fine-tuning run (`train`) or an adapter merge (`export`) of LLaMA-Factory, with its own
    folder TRAINING_OUTPUT_DIR/<id>/. The process fields identify the supervised process group
    (pid + start time survive a server restart); the progress fields are the latest
    trainer_log.jsonl line, the full series is in `training_metrics`.

    `config` holds the hyper-parameters as the API accepted them (TrainSpec field names), so
    a restart or a resume renders the same yaml again."""

    __tablename__ = "training_jobs"
    __table_args__ = (
        CheckConstraint("kind IN ('train', 'export')", name="kind_valid"),
        CheckConstraint(
            "status IN ('created', 'queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="status_valid",
        ),
        Index("ix_training_jobs_owner_created", "owner_id", "created_at"),
        # The scheduler's question: what is queued (FIFO) or running?
        Index("ix_training_jobs_status_queued", "status", "queued_at"),
        # Ids name the folders: never reuse one on SQLite either.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(JOB_NAME_MAX))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(8), default="train")
    # An export job merges the adapter of this train job.
    source_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="SET NULL"), nullable=True, index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="created")
    base_model: Mapped[str] = mapped_column(String(1000))
    template: Mapped[str] = mapped_column(String(100))
    stage: Mapped[str] = mapped_column(String(8), default="sft")
    finetuning_type: Mapped[str] = mapped_column(String(8), default="lora")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # [{id, name, kind}] as chosen at creation (the datasets may be deleted later; the job keeps
    # its own copy of their files in data/).
    datasets: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # SwanLab as resolved when the run started: {enabled, project, run_name, mode}.
    swanlab: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    resume_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    proc_start_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Bytes of trainer_log.jsonl already folded into training_metrics.
    metrics_offset: Mapped[int] = mapped_column(BigInteger, default=0)

    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    percentage: Mapped[float | None] = mapped_column(Float, nullable=True)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    lr: Mapped[float | None] = mapped_column(Float, nullable=True)
    epoch: Mapped[float | None] = mapped_column(Float, nullable=True)
    elapsed_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remaining_s: Mapped[int | None] = mapped_column(Integer, nullable=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class TrainingJobDataset(Base):
    """Which datasets a job reads: the delete guard of a dataset asks this table."""

    __tablename__ = "training_job_datasets"

    job_id: Mapped[int] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class TrainingMetric(Base):
    """One logged step of a job's metrics series (a repeated step replaces the earlier one)."""

    __tablename__ = "training_metrics"

    job_id: Mapped[int] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    lr: Mapped[float | None] = mapped_column(Float, nullable=True)
    epoch: Mapped[float | None] = mapped_column(Float, nullable=True)
    eval_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
