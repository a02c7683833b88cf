"""Application settings, read from the environment and the repo-root `.env` file."""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BACKEND_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BACKEND_DIR.parent

SECRET_KEY_MIN_LENGTH = 32
SECRET_KEY_FILE = "secret_key"  # noqa: S105  (a file name)
DEFAULT_ADMIN_PASSWORD = "admin"  # noqa: S105  (must be changed at first sign-in)

logger = logging.getLogger(__name__)

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|m|min|h|hour)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}


def parse_rate(value: str) -> tuple[int, int]:
    """Parse "5/15m" into (5 attempts, 900 seconds)."""
    match = _RATE_RE.match(value)
    if not match:
        raise ValueError(f"rate must look like '5/15m', got {value!r}")
    count, amount, unit = match.groups()
    seconds = int(amount or 1) * _UNIT_SECONDS[(unit or "s").lower()]
    if int(count) < 1 or seconds < 1:
        raise ValueError("rate count and window must be positive")
    return int(count), seconds


class Settings(BaseSettings):
    """Every setting of the service; `.env.example` documents each key."""

    model_config = SettingsConfigDict(
        # MODELTRAIN_ENV_FILE="" (the tests) reads no file at all.
        env_file=os.environ.get("MODELTRAIN_ENV_FILE", str(REPO_ROOT / ".env")) or None,
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    APP_NAME: str = "ModelTrain"
    DATABASE_URL: str = f"sqlite:///{BACKEND_DIR / 'modeltrain.db'}"
    DATA_DIR: Path = BACKEND_DIR / "data"
    # User uploads (images, later datasets), each kind in its own sub-folder.
    UPLOAD_DIR: Path = BACKEND_DIR / "uploads"
    FRONTEND_DIST: Path = REPO_ROOT / "frontend" / "dist"
    SECRET_KEY: str | None = None
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=15, ge=1, le=24 * 60)
    REFRESH_TOKEN_EXPIRE_DAYS: int = Field(default=7, ge=1, le=365)
    PASSWORD_RESET_EXPIRE_MINUTES: int = Field(default=30, ge=1, le=24 * 60)
    COOKIE_SECURE: bool = False
    CORS_ORIGINS: Annotated[list[str], NoDecode] = [
        "http://127.0.0.1:5173",
        "http://localhost:5173",
    ]
    ALLOW_REGISTRATION: bool = True
    ADMIN_USERNAME: str = "admin"
    ADMIN_PASSWORD: str = DEFAULT_ADMIN_PASSWORD
    ADMIN_EMAIL: str = "admin@example.com"
    PUBLIC_URL: str = "http://127.0.0.1:8000"
    SMTP_HOST: str | None = None
    SMTP_PORT: int = 587
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_FROM: str = "ModelTrain <no-reply@example.com>"
    SMTP_STARTTLS: bool = True
    SMTP_SSL: bool = False
    SMTP_TIMEOUT_SECONDS: float = 10.0
    LOGIN_RATE_LIMIT: str = "5/15m"
    MIGRATE_ON_START: bool = True
    MAX_JSON_BODY_BYTES: int = 1024 * 1024
    LOG_LEVEL: str = "INFO"
    # Fernet key(s) for provider API keys at rest; unset -> derived from the secret key.
    ENCRYPTION_KEY: str | None = None
    LLM_CONNECT_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0, le=600)
    LLM_IDLE_TIMEOUT_SECONDS: float = Field(default=120.0, gt=0, le=3600)
    IMAGE_MAX_BYTES: int = Field(default=10 * 1024 * 1024, ge=1024)
    DATASET_MAX_BYTES: int = Field(default=2 * 1024 * 1024 * 1024, ge=1024)
    # Training engine (LLaMA-Factory in its own venv, `make train-env`): its bin/ folder (or the
    # llamafactory-cli executable), how many runs at once, and where each task's folder goes.
    TRAIN_ENGINE_BIN: Path = REPO_ROOT / ".venv-train" / "bin"
    TRAIN_MAX_CONCURRENT: int = Field(default=1, ge=1, le=64)
    # torch threads per training/export process; 0 = auto: on a host without a GPU, the usable
    # cores less one, shared by TRAIN_MAX_CONCURRENT (nice-19 runs crawl beside a busy core when
    # they hold a thread on every core); with a GPU, torch's own default.
    TRAIN_CPU_THREADS: int = Field(default=0, ge=0, le=1024)
    TRAINING_OUTPUT_DIR: Path = BACKEND_DIR / "outputs" / "training"
    # Model serving (`/api/model`): each runtime's folder (yaml, log, caches), the vllm executable
    # (None: `vllm` on PATH), and how long a model may take to answer /v1/models once started.
    SERVING_DIR: Path = BACKEND_DIR / "outputs" / "serving"
    VLLM_BIN: Path | None = None
    SERVING_LOAD_TIMEOUT_S: float = Field(default=900.0, gt=0, le=86_400)

    @field_validator("CORS_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("SECRET_KEY")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        if value is not None and value.strip() == "":
            return None
        if value is not None and len(value) < SECRET_KEY_MIN_LENGTH:
            raise ValueError(
                f"SECRET_KEY must be at least {SECRET_KEY_MIN_LENGTH} characters; "
                "unset it to have one generated"
            )
        return value

    @field_validator("ENCRYPTION_KEY")
    @classmethod
    def _check_encryption_key(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        keys = [part.strip() for part in value.split(",") if part.strip()]
        for key in keys:
            if not is_fernet_key(key):
                raise ValueError(
                    "ENCRYPTION_KEY must be one or more comma-separated Fernet keys "
                    "(32 bytes, url-safe base64; see .env.example for how to make one)"
                )
        return ",".join(keys)

    @field_validator("LOGIN_RATE_LIMIT")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator(
        "DATA_DIR",
        "UPLOAD_DIR",
        "FRONTEND_DIST",
        "TRAIN_ENGINE_BIN",
        "TRAINING_OUTPUT_DIR",
        "SERVING_DIR",
        "VLLM_BIN",
    )
    @classmethod
    def _absolute_data_dir(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        return value if value.is_absolute() else (REPO_ROOT / value).resolve()

    @property
    def database_url(self) -> str:
        """DATABASE_URL with the driver SQLAlchemy should use (psycopg 3 for PostgreSQL)."""
        url = self.DATABASE_URL
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def login_rate(self) -> tuple[int, int]:
        return parse_rate(self.LOGIN_RATE_LIMIT)

    @property
    def smtp_configured(self) -> bool:
        return bool(self.SMTP_HOST)

    @cached_property
    def secret_key(self) -> str:
        """SECRET_KEY, or the key kept in DATA_DIR (generated with mode 0600 on first use)."""
        if self.SECRET_KEY:
            return self.SECRET_KEY
        return load_or_create_secret(self.DATA_DIR / SECRET_KEY_FILE)


def is_fernet_key(key: str) -> bool:
    """True for a url-safe base64 encoding of 32 bytes (what `Fernet.generate_key()` returns)."""
    try:
        return len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False


def load_or_create_secret(path: Path) -> str:
    """Read the generated key at `path`, creating it atomically (0600) when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text(encoding="utf-8").strip()
        if len(key) < SECRET_KEY_MIN_LENGTH:
            raise RuntimeError(
                f"{path} holds a key shorter than {SECRET_KEY_MIN_LENGTH} characters; "
                "delete it to have a new one generated"
            ) from None
        return key
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    logger.warning("Generated a new SECRET_KEY and stored it in %s (mode 0600)", path)
    return key


settings = Settings()
