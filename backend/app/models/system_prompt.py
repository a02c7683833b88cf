from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import Base, UTCDateTime, utcnow
from app.models.user import User

PROMPT_NAME_MAX = 100
PROMPT_CONTENT_MAX = 20_000
CATEGORY_MAX = 50
TAG_MAX = 30
TAGS_MAX = 10
PROMPT_FORMATS = ("text", "markdown", "json", "yaml")


class SystemPrompt(Base):
    """A reusable system prompt: private to its owner unless shared; built-ins (builtin_key set)
    are seeded once, owned by an admin and visible to everyone."""

    __tablename__ = "system_prompts"
    __table_args__ = (
        CheckConstraint("format IN ('text', 'markdown', 'json', 'yaml')", name="format_valid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(PROMPT_NAME_MAX))
    content: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(CATEGORY_MAX), default="general", index=True)
    # JSON lists: small, always read whole; the tag filter matches the serialised element.
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    format: Mapped[str] = mapped_column(String(16), default="text")
    variables: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_shared: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set on the seeded templates only; unique so that seeding twice cannot duplicate.
    builtin_key: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)
