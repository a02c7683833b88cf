"""SwanLab experiment tracking: the server-wide configuration, its test, the local dashboard."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SwanlabMode = Literal["local", "cloud", "offline", "disabled"]
RunStatus = Literal["running", "finished", "crashed", "unknown"]
SWANLAB_MODES: tuple[str, ...] = ("local", "cloud", "offline", "disabled")
DEFAULT_PORT = 5092
API_KEY_MAX = 1000

# The names LLaMA-Factory/SwanLab accept for a project or workspace (engines.llamafactory checks
# the same pattern when it validates a training spec).
_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,100}$")
_API_KEY_RE = re.compile(r"^[\x21-\x7e]*$")


def _clean_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not _NAME_RE.match(value):
        raise ValueError("Use 1-100 letters, digits, '_', '.', '+' or '-'")
    return value


def _clean_optional_name(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None  # "" clears the workspace (the key's own account is used)
    return _clean_name(value)


def _clean_logdir(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None  # the default folder in the data dir
    value = value.strip()
    if "\x00" in value or not PurePosixPath(value).is_absolute():
        raise ValueError("Log folder must be an absolute path")
    if ".." in PurePosixPath(value).parts:
        raise ValueError("Log folder must not contain '..'")
    return value


def _clean_host(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None  # the official cloud API
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("Host must be an http(s) URL, e.g. https://api.swanlab.cn")
    if parts.username or parts.password:
        raise ValueError("Host must not contain credentials; use the API key field")
    if parts.query or parts.fragment:
        raise ValueError("Host must not contain a query or fragment")
    return value


def _clean_api_key(value: str | None) -> str | None:
    # None: keep the stored key; "": remove it (the service tells the two apart).
    if value is None:
        return None
    value = value.strip()
    if not _API_KEY_RE.match(value):
        raise ValueError("API key must be printable ASCII without spaces")
    return value


class SwanlabConfigUpdate(BaseModel):
    """PUT body: the fields sent replace the stored ones, omitted fields keep them. `api_key` is
    write-only: absent or null keeps the stored key, "" removes it."""

    model_config = ConfigDict(extra="forbid")

    mode: SwanlabMode | None = None
    project: Annotated[str | None, AfterValidator(_clean_name)] = Field(
        default=None, max_length=100
    )
    workspace: Annotated[str | None, AfterValidator(_clean_optional_name)] = Field(
        default=None, max_length=100
    )
    logdir: Annotated[str | None, AfterValidator(_clean_logdir)] = Field(
        default=None, max_length=4096
    )
    host: Annotated[str | None, AfterValidator(_clean_host)] = Field(default=None, max_length=2048)
    port: int | None = Field(default=None, ge=1024, le=65535)
    api_key: Annotated[str | None, AfterValidator(_clean_api_key)] = Field(
        default=None, max_length=API_KEY_MAX
    )


class SwanlabConfigPublic(BaseModel):
    """The stored configuration; the API key only as a mask."""

    mode: SwanlabMode
    project: str
    workspace: str | None
    logdir: str = Field(description="The folder runs write to and the dashboard reads")
    logdir_is_default: bool
    host: str | None = Field(description="SwanLab API host for cloud mode; null: the official one")
    port: int = Field(description="Port of the local dashboard (127.0.0.1)")
    has_api_key: bool
    api_key_masked: str | None = Field(
        default=None,
        description="A hint such as '…a1b2'; null when there is no key or it cannot be "
        "decrypted with the current ENCRYPTION_KEY (has_api_key is then still true)",
    )


class SwanlabCheck(BaseModel):
    """One step of a configuration test."""

    name: str
    ok: bool
    message: str


class SwanlabTestResult(BaseModel):
    """Whether the stored configuration works, with each step that was checked."""

    ok: bool
    mode: SwanlabMode
    message: str
    checks: list[SwanlabCheck]


class SwanlabStatus(BaseModel):
    """The supervised local dashboard (`swanlab watch`)."""

    running: bool
    healthy: bool = Field(description="The dashboard's HTTP port answers")
    pid: int | None
    port: int | None
    url: str | None
    logdir: str | None
    started_at: datetime | None
    engine_available: bool
    install_hint: str | None = Field(description="What to run when the engine is missing")
    log_tail: list[str] = Field(description="The last lines of the dashboard's log")


class SwanlabRun(BaseModel):
    """One experiment (run) of a project, as SwanLab recorded it in the log folder."""

    run_id: str
    name: str
    status: RunStatus
    created_at: datetime | None
    finished_at: datetime | None


class SwanlabProject(BaseModel):
    name: str
    created_at: datetime | None
    updated_at: datetime | None
    runs: list[SwanlabRun]


class SwanlabProjects(BaseModel):
    """The projects and runs in the configured local log folder."""

    logdir: str
    projects: list[SwanlabProject]
