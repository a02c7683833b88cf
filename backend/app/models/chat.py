from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UTCDateTime, utcnow

TITLE_MAX = 200
PREVIEW_MAX = 200
MESSAGE_ROLES = ("system", "user", "assistant")
# complete: the answer ended normally; interrupted: the client went away or pressed stop;
# error: the provider failed (the partial text is kept, the reason is in `error`).
MESSAGE_STATUSES = ("complete", "interrupted", "error")


class ChatSession(Base):
    """A conversation of one user. Counters and the preview are kept on the row, so listing
    sessions and appending a message never count or scan the messages."""

    __tablename__ = "chat_sessions"
    __table_args__ = (Index("ix_chat_sessions_user_updated", "user_id", "updated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(TITLE_MAX), default="")
    # The config and prompt may be deleted later: the session keeps its history.
    model_config_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_configs.id", ondelete="SET NULL"), nullable=True
    )
    system_prompt_id: Mapped[int | None] = mapped_column(
        ForeignKey("system_prompts.id", ondelete="SET NULL"), nullable=True
    )
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    last_message_preview: Mapped[str] = mapped_column(String(PREVIEW_MAX), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ChatMessageRow(Base):
    """One persisted turn. Assistant turns carry what the provider reported about them."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        CheckConstraint("role IN ('system', 'user', 'assistant')", name="role_valid"),
        CheckConstraint("status IN ('complete', 'interrupted', 'error')", name="status_valid"),
        # Pages of a session by id (the cursor) without a sort.
        Index("ix_chat_messages_session_id_id", "session_id", "id"),
        # Ids are cursors and client keys: SQLite must never hand a deleted id out again (it
        # would reuse the highest one after a regenerate replaced the last answer).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    reasoning: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="complete")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Public ids of uploaded images sent with a user turn.
    image_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    model_config_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_configs.id", ondelete="SET NULL"), nullable=True
    )
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ttft_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
