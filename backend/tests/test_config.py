"""Settings: secret key handling, parsing of lists, rates and URLs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings, load_or_create_secret, parse_rate


def test_short_secret_key_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(SECRET_KEY="too-short")


def test_given_secret_key_used_as_is(tmp_path: Path) -> None:
    key = "k" * 40
    assert Settings(SECRET_KEY=key, DATA_DIR=tmp_path).secret_key == key
    assert not (tmp_path / "secret_key").exists()


def test_secret_key_generated_once_with_mode_0600(tmp_path: Path) -> None:
    first = Settings(DATA_DIR=tmp_path / "data").secret_key
    path = tmp_path / "data" / "secret_key"
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(DATA_DIR=tmp_path / "data").secret_key == first  # kept across restarts


def test_corrupt_stored_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    path.write_text("short\n")
    with pytest.raises(RuntimeError, match="shorter than 32"):
        load_or_create_secret(path)


def test_defaults() -> None:
    defaults = Settings()
    assert defaults.ACCESS_TOKEN_EXPIRE_MINUTES == 15
    assert defaults.REFRESH_TOKEN_EXPIRE_DAYS == 7
    assert defaults.CORS_ORIGINS == ["http://127.0.0.1:5173", "http://localhost:5173"]
    assert defaults.login_rate == (5, 900)
    assert defaults.MIGRATE_ON_START is True


def test_cors_origins_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().CORS_ORIGINS == ["https://a.example", "https://b.example"]
    monkeypatch.setenv("CORS_ORIGINS", '["https://c.example"]')
    assert Settings().CORS_ORIGINS == ["https://c.example"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5/15m", (5, 900)), ("10/1h", (10, 3600)), ("3/30s", (3, 30)), ("7/min", (7, 60))],
)
def test_parse_rate(text: str, expected: tuple[int, int]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "five per minute", "0/1m", "5/0m"])
def test_bad_rate_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Settings(LOGIN_RATE_LIMIT=text)


def test_postgres_url_uses_psycopg3() -> None:
    assert (
        Settings(DATABASE_URL="postgresql://u:p@h:5432/d").database_url
        == "postgresql+psycopg://u:p@h:5432/d"
    )
    assert Settings(DATABASE_URL="postgres://h/d").database_url == "postgresql+psycopg://h/d"
    assert Settings(DATABASE_URL="sqlite:///x.db").database_url == "sqlite:///x.db"


def test_relative_data_dir_resolved_against_repo_root() -> None:
    resolved = Settings(DATA_DIR=Path("somewhere")).DATA_DIR
    assert resolved.is_absolute() and resolved.name == "somewhere"
