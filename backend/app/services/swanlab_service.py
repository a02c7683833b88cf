"""SwanLab experiment tracking: the server-wide configuration (DATA_DIR/swanlab_config.json, the
API key Fernet-encrypted), its test, the supervised local dashboard (`swanlab watch`) and the
projects/runs a local log folder holds. `job_options()` tells the jobs layer what to pass to
LLaMA-Factory.

SwanLab lives in the training venv (`.venv-train`, TRAIN_ENGINE_BIN). What it writes in local
mode (0.10.3): `<logdir>/runs.swanlab`, an SQLite database with tables `project` (name,
create_time, update_time) and `experiment` (project_id, run_id, name, status 0 running /
1 finished / -1 crashed, create_time, finish_time), plus one `run-<stamp>-<id>/` folder per run.
A log folder holds one project: the first run names it, later runs with another project name
join it (what `swanlab watch` shows too).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.config import settings
from app.engines import engine_env, engine_status, is_alive, start_process, tail, terminate_group
from app.engines.process import ProcessHandle
from app.exceptions import BadRequest, Conflict
from app.schemas.swanlab import (
    DEFAULT_PORT,
    SWANLAB_MODES,
    RunStatus,
    SwanlabCheck,
    SwanlabConfigPublic,
    SwanlabConfigUpdate,
    SwanlabMode,
    SwanlabProject,
    SwanlabProjects,
    SwanlabRun,
    SwanlabStatus,
    SwanlabTestResult,
)
from app.utils.crypto import SecretUnreadable, decrypt_secret, encrypt_secret, mask_secret

CONFIG_FILE = "swanlab_config.json"
DASHBOARD_STATE_FILE = "swanlab_dashboard.json"
DASHBOARD_LOG_FILE = "swanlab_dashboard.log"
DEFAULT_PROJECT = "modeltrain"
DEFAULT_CLOUD_HOST = "https://api.swanlab.cn"  # swanlab's own default api_host
CLOUD_TIMEOUT_S = 5.0
HEALTH_TIMEOUT_S = 1.0
START_WAIT_S = 20.0  # `swanlab watch` answered after 1.2 s on this machine
PROBE_TIMEOUT_S = 20.0
_RUN_STATUS: dict[int, RunStatus] = {0: "running", 1: "finished", -1: "crashed"}

_PACKAGE_PROBE = (
    "import importlib.metadata as m, json\n"
    "out = {}\n"
    "for name in ('swanlab', 'swanboard'):\n"
    "    try:\n"
    "        out[name] = m.version(name)\n"
    "    except m.PackageNotFoundError:\n"
    "        out[name] = None\n"
    "print(json.dumps(out))\n"
)


# ---------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class StoredConfig:
    mode: SwanlabMode = "disabled"
    project: str = DEFAULT_PROJECT
    workspace: str | None = None
    logdir: str | None = None  # None: DATA_DIR/swanlog
    host: str | None = None  # None: the official cloud API
    port: int = DEFAULT_PORT
    api_key_encrypted: str | None = None

    @property
    def effective_logdir(self) -> Path:
        return Path(self.logdir) if self.logdir else settings.DATA_DIR / "swanlog"

    @property
    def api_host(self) -> str:
        return self.host or DEFAULT_CLOUD_HOST


def _config_path() -> Path:
    return settings.DATA_DIR / CONFIG_FILE


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write `data` to `path` through a temporary file in the same folder (0600) and
    os.replace: a reader never sees half a file, a crash leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_config() -> StoredConfig:
    """The stored configuration, defaults for a missing file or missing/invalid keys."""
    try:
        raw = json.loads(_config_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return StoredConfig()
    if not isinstance(raw, dict):
        return StoredConfig()
    known = {name: raw[name] for name in StoredConfig.__dataclass_fields__ if name in raw}
    if known.get("mode") not in SWANLAB_MODES:
        known.pop("mode", None)  # a hand-edited file: back to the default
    try:
        return StoredConfig(**known)
    except TypeError:
        return StoredConfig()


def _decrypted_key(config: StoredConfig) -> str | None:
    if not config.api_key_encrypted:
        return None
    try:
        return decrypt_secret(config.api_key_encrypted)
    except SecretUnreadable:
        return None


def to_public(config: StoredConfig) -> SwanlabConfigPublic:
    key = _decrypted_key(config)
    return SwanlabConfigPublic(
        mode=config.mode,
        project=config.project,
        workspace=config.workspace,
        logdir=str(config.effective_logdir),
        logdir_is_default=config.logdir is None,
        host=config.host,
        port=config.port,
        has_api_key=config.api_key_encrypted is not None,
        api_key_masked=mask_secret(key) if key is not None else None,
    )


def get_config() -> SwanlabConfigPublic:
    return to_public(load_config())


def update_config(data: SwanlabConfigUpdate) -> SwanlabConfigPublic:
    """Apply the fields sent (see SwanlabConfigUpdate) and store the result atomically."""
    current = load_config()
    values: dict[str, Any] = {
        "mode": current.mode,
        "project": current.project,
        "workspace": current.workspace,
        "logdir": current.logdir,
        "host": current.host,
        "port": current.port,
        "api_key_encrypted": current.api_key_encrypted,
    }
    sent = data.model_dump(exclude_unset=True)
    for name in ("mode", "project", "port"):
        if sent.get(name) is not None:  # null for a required field: keep it
            values[name] = sent[name]
    for name in ("workspace", "logdir", "host"):
        if name in sent:  # null or "": back to the default
            values[name] = sent[name]
    api_key = sent.get("api_key")
    if api_key == "":
        values["api_key_encrypted"] = None
    elif api_key is not None:
        values["api_key_encrypted"] = encrypt_secret(api_key)
    elif "host" in sent and (sent["host"] or None) != current.host:
        # A stored key only ever goes to the host it was entered for.
        values["api_key_encrypted"] = None
    _write_json_atomic(_config_path(), values)
    return to_public(StoredConfig(**values))


def job_options() -> dict[str, Any]:
    """What a training job passes to LLaMA-Factory (TrainSpec fields) and its environment.

    {"use_swanlab": False} when SwanLab is disabled; otherwise use_swanlab, swanlab_project,
    swanlab_workspace, swanlab_mode ("cloud" or "local": LLaMA-Factory knows only these two;
    "offline" runs as "local", which keeps everything in the log folder and needs no network),
    swanlab_logdir (absolute), and `api_key` (decrypted, for the SWANLAB_API_KEY environment
    variable only, never the yaml; None without one) and `env` (SWANLAB_API_HOST for a custom
    cloud host)."""
    config = load_config()
    if config.mode == "disabled":
        return {"use_swanlab": False}
    env: dict[str, str] = {}
    if config.mode == "cloud" and config.host:
        env["SWANLAB_API_HOST"] = config.host
    return {
        "use_swanlab": True,
        "swanlab_project": config.project,
        "swanlab_workspace": config.workspace,
        "swanlab_mode": "cloud" if config.mode == "cloud" else "local",
        "swanlab_logdir": str(config.effective_logdir),
        "api_key": _decrypted_key(config) if config.mode == "cloud" else None,
        "env": env,
    }


# --------------------------------------------------------------------------------- testing


def _swanlab_bin() -> Path:
    return engine_status().bin_dir / "swanlab"


def _package_versions() -> tuple[dict[str, str | None] | None, str]:
    """The installed swanlab/swanboard versions in the training venv, or None and why not."""
    status = engine_status()
    if not status.available:
        return None, f"{status.missing}; run `{status.install_hint}`"
    try:
        done = subprocess.run(  # noqa: S603  (our own fixed probe, no shell)
            [str(status.bin_dir / "python"), "-I", "-c", _PACKAGE_PROBE],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
        versions = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        return None, f"the training venv does not run: {exc}"
    return versions, ""


def _check_logdir(logdir: Path) -> SwanlabCheck:
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".modeltrain-write-test-", dir=logdir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return SwanlabCheck(
            name="logdir", ok=False, message=f"{logdir} is not writable: {exc.strerror or exc}"
        )
    return SwanlabCheck(name="logdir", ok=True, message=f"{logdir} is writable")


def _check_cloud(config: StoredConfig) -> SwanlabCheck:
    """Log in with the API key the way the SDK does (POST <host>/api/login/api_key)."""
    key = _decrypted_key(config)
    if key is None:
        message = (
            "The stored API key cannot be decrypted with the current keys; enter it again"
            if config.api_key_encrypted
            else "Cloud mode needs an API key"
        )
        return SwanlabCheck(name="api_key", ok=False, message=message)
    url = f"{config.api_host}/api/login/api_key"
    try:
        with httpx.Client(timeout=CLOUD_TIMEOUT_S, follow_redirects=False) as client:
            response = client.post(url, headers={"authorization": key})
    except httpx.TimeoutException:
        return SwanlabCheck(
            name="cloud",
            ok=False,
            message=f"SwanLab at {config.api_host} did not answer within {CLOUD_TIMEOUT_S:g} s",
        )
    except httpx.HTTPError as exc:
        return SwanlabCheck(
            name="cloud",
            ok=False,
            message=f"SwanLab at {config.api_host} cannot be reached: {exc}",
        )
    if response.status_code in (401, 403):
        return SwanlabCheck(name="cloud", ok=False, message="SwanLab rejected the API key")
    if response.is_success:
        return SwanlabCheck(
            name="cloud", ok=True, message=f"Signed in to SwanLab at {config.api_host}"
        )
    return SwanlabCheck(
        name="cloud",
        ok=False,
        message=f"SwanLab at {config.api_host} answered HTTP {response.status_code}",
    )


def test_config() -> SwanlabTestResult:
    """Check the stored configuration: the package and a writable log folder for local and
    offline mode, the package and a sign-in with the key for cloud mode. Never hangs: the
    cloud call has a short timeout."""
    config = load_config()
    mode = config.mode
    if mode == "disabled":
        return SwanlabTestResult(
            ok=True, mode="disabled", message="SwanLab is disabled: jobs do not log", checks=[]
        )
    checks: list[SwanlabCheck] = []
    versions, why = _package_versions()
    if versions is None:
        checks.append(SwanlabCheck(name="package", ok=False, message=why))
    elif not versions.get("swanlab"):
        checks.append(
            SwanlabCheck(
                name="package",
                ok=False,
                message="swanlab is not installed in the training venv; run `make train-env`",
            )
        )
    else:
        message = f"swanlab {versions['swanlab']}"
        if mode == "local" and not versions.get("swanboard"):
            checks.append(
                SwanlabCheck(
                    name="package",
                    ok=False,
                    message=f"{message}, but swanboard (the local dashboard) is missing",
                )
            )
        else:
            checks.append(SwanlabCheck(name="package", ok=True, message=message))
    if mode in ("local", "offline"):
        checks.append(_check_logdir(config.effective_logdir))
    else:
        checks.append(_check_cloud(config))
    failed = [check for check in checks if not check.ok]
    return SwanlabTestResult(
        ok=not failed,
        mode=mode,
        message="; ".join(check.message for check in failed) if failed else "OK",
        checks=checks,
    )


# ------------------------------------------------------------------------------- dashboard


@dataclass(frozen=True)
class DashboardState:
    pid: int
    start_time: int
    port: int
    logdir: str
    started_at: str  # ISO 8601, UTC


# The handle of a dashboard this server process started (so it can be reaped); the state file
# is the truth, this is only a cache. A restarted server has None here and re-attaches from
# the file.
_handle: ProcessHandle | None = None
_lock: asyncio.Lock | None = None


def _lock_for_loop() -> asyncio.Lock:
    global _lock
    if _lock is None:
        _lock = asyncio.Lock()
    return _lock


def _state_path() -> Path:
    return settings.DATA_DIR / DASHBOARD_STATE_FILE


def _log_path() -> Path:
    return settings.DATA_DIR / DASHBOARD_LOG_FILE


def _read_state() -> DashboardState | None:
    try:
        raw = json.loads(_state_path().read_text(encoding="utf-8"))
        return DashboardState(
            pid=int(raw["pid"]),
            start_time=int(raw["start_time"]),
            port=int(raw["port"]),
            logdir=str(raw["logdir"]),
            started_at=str(raw["started_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget_handle() -> None:
    """Drop the in-memory handle (what a server restart does); the state file stays."""
    global _handle
    _handle = None


def _running_state() -> DashboardState | None:
    """The recorded dashboard if that very process still runs; a stale record is removed."""
    state = _read_state()
    if state is None:
        return None
    if is_alive(state.pid, state.start_time):
        return state
    _state_path().unlink(missing_ok=True)
    return None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _healthy(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=HEALTH_TIMEOUT_S) as client:
            response = await client.get(f"http://127.0.0.1:{port}/api/v1/project")
    except httpx.HTTPError:
        return False
    return response.status_code < 500


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


async def _status_of(state: DashboardState | None) -> SwanlabStatus:
    engine = engine_status()
    base: dict[str, Any] = {
        "engine_available": engine.available,
        "install_hint": None if engine.available else engine.install_hint,
        "log_tail": tail(_log_path(), 20),
    }
    if state is None:
        return SwanlabStatus(
            running=False,
            healthy=False,
            pid=None,
            port=None,
            url=None,
            logdir=None,
            started_at=None,
            **base,
        )
    return SwanlabStatus(
        running=True,
        healthy=await _healthy(state.port),
        pid=state.pid,
        port=state.port,
        url=_url(state.port),
        logdir=state.logdir,
        started_at=datetime.fromisoformat(state.started_at),
        **base,
    )


async def dashboard_status() -> SwanlabStatus:
    """Whether the dashboard runs (re-attached by pid and start time) and answers."""
    return await _status_of(_running_state())


async def start_dashboard() -> SwanlabStatus:
    """Start `swanlab watch <logdir> -h 127.0.0.1 -p <port>` (idempotent while it runs) and
    wait until it answers. 409 engine_unavailable / port_in_use; 400 logdir_not_writable;
    502 dashboard_failed when it exits at once."""
    global _handle
    async with _lock_for_loop():
        running = _running_state()
        if running is not None:
            return await _status_of(running)
        engine = engine_status()
        if not engine.available:
            raise Conflict(
                f"The training engine is not available ({engine.missing}); "
                f"run `{engine.install_hint}`",
                code="engine_unavailable",
            )
        swanlab = _swanlab_bin()
        if not swanlab.is_file():
            raise Conflict(
                f"swanlab is not installed in {engine.bin_dir}; run `{engine.install_hint}`",
                code="engine_unavailable",
            )
        config = load_config()
        logdir = config.effective_logdir
        check = _check_logdir(logdir)
        if not check.ok:
            raise BadRequest(check.message, code="logdir_not_writable")
        if not _port_free(config.port):
            raise Conflict(
                f"Port {config.port} is already in use; choose another port",
                code="port_in_use",
            )
        home = settings.DATA_DIR / "swanlab_home"
        home.mkdir(parents=True, exist_ok=True)
        env = engine_env(
            bin_dir=engine.bin_dir,
            hf_home=home / "hf",
            mpl_dir=home / "mpl",
            offline=True,
            extra={"HOME": str(home)},  # swanlab may keep its own settings under ~
        )
        handle = await start_process(
            [str(swanlab), "watch", str(logdir), "-h", "127.0.0.1", "-p", str(config.port)],
            cwd=settings.DATA_DIR,
            env=env,
            log_path=_log_path(),
        )
        _handle = handle
        state = DashboardState(
            pid=handle.pid,
            start_time=handle.start_time,
            port=config.port,
            logdir=str(logdir),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        _write_json_atomic(_state_path(), state.__dict__)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_WAIT_S
        while loop.time() < deadline:
            if not is_alive(handle.pid, handle.start_time):
                _state_path().unlink(missing_ok=True)
                lines = tail(_log_path(), 5)
                raise Conflict(
                    "The SwanLab dashboard exited at once: "
                    + (" / ".join(lines[-3:]) if lines else "no output"),
                    code="dashboard_failed",
                )
            if await _healthy(config.port):
                break
            await asyncio.sleep(0.2)
        return await _status_of(state)


async def stop_dashboard() -> SwanlabStatus:
    """Stop the dashboard's process group (SIGTERM, then SIGKILL); fine when not running."""
    global _handle
    async with _lock_for_loop():
        state = _read_state()
        if state is not None:
            await terminate_group(
                state.pid,
                grace_s=3.0,
                leader_start_time=state.start_time,
                first_signal=signal.SIGTERM,
                term_grace_s=2.0,
            )
            _state_path().unlink(missing_ok=True)
        _handle = None
        return await _status_of(None)


# -------------------------------------------------------------------------------- projects


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def list_projects() -> SwanlabProjects:
    """The projects and their runs in the configured log folder (runs.swanlab, read-only)."""
    logdir = load_config().effective_logdir
    database = logdir / "runs.swanlab"
    if not database.is_file():
        return SwanlabProjects(logdir=str(logdir), projects=[])
    try:
        conn = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error as exc:
        raise BadRequest(
            f"Cannot read {database}: {exc}", code="swanlab_logdir_unreadable"
        ) from exc
    try:
        projects = conn.execute(
            "SELECT id, name, create_time, update_time FROM project ORDER BY create_time"
        ).fetchall()
        experiments = conn.execute(
            "SELECT project_id, run_id, name, status, create_time, finish_time "
            "FROM experiment ORDER BY create_time DESC"
        ).fetchall()
    except sqlite3.Error as exc:
        raise BadRequest(
            f"Cannot read {database}: {exc}", code="swanlab_logdir_unreadable"
        ) from exc
    finally:
        conn.close()
    runs: dict[int, list[SwanlabRun]] = {}
    for project_id, run_id, name, status, created, finished in experiments:
        runs.setdefault(project_id, []).append(
            SwanlabRun(
                run_id=str(run_id),
                name=str(name),
                status=_RUN_STATUS.get(status, "unknown"),
                created_at=_parse_time(created),
                finished_at=_parse_time(finished),
            )
        )
    return SwanlabProjects(
        logdir=str(logdir),
        projects=[
            SwanlabProject(
                name=str(name),
                created_at=_parse_time(created),
                updated_at=_parse_time(updated),
                runs=runs.get(project_id, []),
            )
            for project_id, name, created, updated in projects
        ],
    )
