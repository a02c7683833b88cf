from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import Base, UTCDateTime, utcnow
from app.models.user import User

RUNTIME_NAME_MAX = 64
RUNTIME_STATUSES = ("stopped", "loading", "ready", "failed")
RUNTIME_ENGINES = ("vllm", "llamafactory")
RUNTIME_SOURCES = ("path", "hub", "job")


class ModelRuntime(Base):
    """A model the platform serves itself: a base model (local path or hub id), optionally with
    a LoRA adapter, or a training job's artifact, run by vLLM or `llamafactory-cli api` as a
    supervised process on 127.0.0.1. While it is ready, `model_config_id` points at an enabled
    model config (provider vllm, endpoint http://127.0.0.1:<port>/v1) so chat and the playground
    use it like any other model; unloading disables that config.

    The API key the engine requires is generated per load and kept only encrypted (here and in
    the config). The process fields identify the supervised process group across restarts."""

    __tablename__ = "model_runtimes"
    __table_args__ = (
        CheckConstraint("status IN ('stopped', 'loading', 'ready', 'failed')", name="status_valid"),
        CheckConstraint("engine IN ('vllm', 'llamafactory')", name="engine_valid"),
        CheckConstraint("source_kind IN ('path', 'hub', 'job')", name="source_kind_valid"),
        Index("ix_model_runtimes_status", "status"),
        # Ids name the folders: never reuse one on SQLite either.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The served model name (what chat requests name), unique across the platform.
    name: Mapped[str] = mapped_column(String(RUNTIME_NAME_MAX), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    source_kind: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(1000))
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="SET NULL"), nullable=True, index=True
    )
    base_model: Mapped[str] = mapped_column(String(1000))
    adapter_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    template: Mapped[str] = mapped_column(String(100), default="default")
    engine: Mapped[str] = mapped_column(String(16))
    backend: Mapped[str] = mapped_column(String(16), default="huggingface")
    engine_args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A fixed port, or None for a free one picked at every load.
    requested_port: Mapped[int | None] = mapped_column(Integer, nullable=True)

    status: Mapped[str] = mapped_column(String(16), default="stopped")
    unload_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    proc_start_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    api_key_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_config_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_configs.id", ondelete="SET NULL"), nullable=True
    )

    load_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)
