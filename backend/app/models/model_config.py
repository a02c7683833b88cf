from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import Base, UTCDateTime, utcnow
from app.models.user import User

NAME_MAX = 100
ENDPOINT_MAX = 500
MODEL_MAX = 200
PROVIDER_MAX = 32


class ModelConfig(Base):
    """A provider config the whole team shares; status 1 means complete and usable."""

    __tablename__ = "model_configs"
    __table_args__ = (CheckConstraint("status IN (0, 1)", name="status_valid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    # A key of llm_core.MODEL_PROVIDERS: checked on input (the registry is code, not data).
    provider: Mapped[str] = mapped_column(String(PROVIDER_MAX))
    # Stored normalised (llm_core.normalize_endpoint), so equal endpoints compare equal.
    endpoint: Mapped[str] = mapped_column(String(ENDPOINT_MAX))
    # Fernet token (app.utils.crypto); the key itself is never stored or returned.
    api_key_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    model: Mapped[str | None] = mapped_column(String(MODEL_MAX), nullable=True)
    temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    top_p: Mapped[float | None] = mapped_column(Float, nullable=True)
    top_k: Mapped[int | None] = mapped_column(Integer, nullable=True)
    capability_vision: Mapped[bool] = mapped_column(Boolean, default=False)
    capability_reasoning: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set on the seeded default templates only; unique so that seeding twice cannot duplicate.
    template_key: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    # Loaded with the row (inner join: owner_id is NOT NULL): every view shows the owner, and the
    # team-wide list then costs one query instead of one per row.
    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class ProviderModel(Base):
    """One model a provider endpoint listed the last time someone refreshed it."""

    __tablename__ = "provider_models"
    __table_args__ = (UniqueConstraint("provider", "endpoint", "model_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(PROVIDER_MAX))
    endpoint: Mapped[str] = mapped_column(String(ENDPOINT_MAX))
    model_id: Mapped[str] = mapped_column(String(255))
    owned_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AppState(Base):
    """Small key/value facts the server remembers about itself (e.g. "templates seeded")."""

    __tablename__ = "app_state"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
