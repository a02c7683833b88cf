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

DATASET_NAME_MAX = 100
DATASET_DESCRIPTION_MAX = 2000
FILE_NAME_MAX = 255
DATASET_SOURCES = ("upload", "chat", "tests")
DATASET_STATUSES = ("ready", "invalid")


class Dataset(Base):
    """A training-data file under UPLOAD_DIR/datasets/<id>/<file_name> with what its validation
    found. Private to its owner unless shared. `llamafactory` is the dataset_info entry (without
    `file_name`) a training job writes for it; set only when the dataset is `ready`.

    Validation runs while the upload request waits (off the event loop), so a row only ever
    exists validated: `ready` or `invalid`."""

    __tablename__ = "datasets"
    __table_args__ = (
        CheckConstraint("file_format IN ('json', 'jsonl', 'csv', 'txt')", name="file_format_valid"),
        CheckConstraint(
            "detected_format IN "
            "('alpaca', 'sharegpt', 'openai', 'preference', 'kto', 'text', 'unknown')",
            name="detected_format_valid",
        ),
        CheckConstraint("status IN ('ready', 'invalid')", name="status_valid"),
        CheckConstraint("source IN ('upload', 'chat', 'tests')", name="source_valid"),
        Index("ix_datasets_owner_updated", "owner_id", "updated_at"),
        # Ids name the folders: never reuse one on SQLite either.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(DATASET_NAME_MAX))
    description: Mapped[str] = mapped_column(Text, default="")
    is_shared: Mapped[bool] = mapped_column(Boolean, default=False)
    # The sanitised client file name: the file's name inside its folder.
    file_name: Mapped[str] = mapped_column(String(FILE_NAME_MAX))
    file_format: Mapped[str] = mapped_column(String(8))
    detected_format: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    valid_rows: Mapped[int] = mapped_column(Integer, default=0)
    invalid_rows: Mapped[int] = mapped_column(Integer, default=0)
    # The first 100 problems, [{line, message}]; error_count counts them all.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    llamafactory: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16), default="upload")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)
