"""SwanLab: the server-wide configuration (admin writes, key encrypted on disk and masked), the
configuration test (local log folder, unreachable cloud), and the real local dashboard from the
training venv (`swanlab watch`): start, status, projects, re-attach after a restart, stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import settings
from app.engines import engine_status, is_alive, process_start_time, resolve_bin_dir
from app.services import swanlab_service

BASE = "/api/training/swanlab"
KEY = "swl-0123456789abcdefWXYZ"


@pytest.fixture(autouse=True)
def swanlab_files() -> Iterator[None]:
    """Each test starts without a stored configuration or dashboard record."""
    yield
    state = swanlab_service._read_state()
    if state is not None and is_alive(state.pid, state.start_time):
        os.killpg(state.pid, signal.SIGKILL)  # a failed test must not leave a dashboard behind
    for name in (
        swanlab_service.CONFIG_FILE,
        swanlab_service.DASHBOARD_STATE_FILE,
        swanlab_service.DASHBOARD_LOG_FILE,
    ):
        (settings.DATA_DIR / name).unlink(missing_ok=True)
    swanlab_service.forget_handle()


@pytest.fixture
def engine_bin(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The training venv's bin/ folder; skips without it (fails with TRAIN_ENGINE_REQUIRED=1),
    as tests/engines/conftest.py does."""
    configured = os.environ.get("MT_TEST_TRAIN_ENGINE_BIN")
    if configured:
        monkeypatch.setattr(settings, "TRAIN_ENGINE_BIN", resolve_bin_dir(configured))
    status = engine_status()
    if not status.available or not (status.bin_dir / "swanlab").is_file():
        message = (
            f"TRAINING ENGINE MISSING, SwanLab dashboard tests not run: {status.missing}. "
            f"Run `{status.install_hint}` (TRAIN_ENGINE_REQUIRED=1 turns this into a failure)."
        )
        if os.environ.get("TRAIN_ENGINE_REQUIRED") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return status.bin_dir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _put(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.put(f"{BASE}/config", json=body, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# ---------------------------------------------------------------------------- configuration


def test_requires_sign_in(client: TestClient) -> None:
    for method, path in [
        ("get", "/config"),
        ("put", "/config"),
        ("post", "/test"),
        ("get", "/status"),
        ("post", "/start"),
        ("post", "/stop"),
        ("get", "/projects"),
    ]:
        response = client.request(method, f"{BASE}{path}", json={})
        assert response.status_code == 401, (method, path)


def test_writes_are_for_admins(client: TestClient, user_headers: dict[str, str]) -> None:
    response = client.put(f"{BASE}/config", json={"mode": "local"}, headers=user_headers)
    assert response.status_code == 403
    assert response.json()["code"] == "admin_required"
    for path in ("/start", "/stop"):
        response = client.post(f"{BASE}{path}", headers=user_headers)
        assert response.status_code == 403, path
    assert not (settings.DATA_DIR / swanlab_service.CONFIG_FILE).exists()
    # Reading is for everyone signed in.
    assert client.get(f"{BASE}/config", headers=user_headers).status_code == 200
    assert client.get(f"{BASE}/status", headers=user_headers).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "online"},
        {"project": "has space"},
        {"project": ""},
        {"workspace": "a/b"},
        {"logdir": "relative/dir"},
        {"logdir": "/tmp/../etc"},
        {"host": "ftp://example.com"},
        {"host": "https://user:pw@example.com"},
        {"port": 80},
        {"port": 70000},
        {"api_key": "has space"},
        {"unknown": 1},
    ],
)
def test_invalid_config_is_422(
    client: TestClient, admin_headers: dict[str, str], body: dict[str, Any]
) -> None:
    response = client.put(f"{BASE}/config", json=body, headers=admin_headers)
    assert response.status_code == 422, response.text


def test_config_round_trip_key_encrypted_and_masked(
    client: TestClient, admin_headers: dict[str, str], user_headers: dict[str, str]
) -> None:
    default = client.get(f"{BASE}/config", headers=user_headers).json()
    assert default["mode"] == "disabled"
    assert default["logdir_is_default"] is True
    assert default["has_api_key"] is False

    saved = _put(
        client,
        admin_headers,
        mode="cloud",
        project="proj-1",
        workspace="team_a",
        logdir="/tmp/some-swanlog",
        host="https://swanlab.example.com/",
        port=6001,
        api_key=KEY,
    )
    assert saved["mode"] == "cloud"
    assert saved["host"] == "https://swanlab.example.com"  # trailing slash dropped
    assert saved["logdir"] == "/tmp/some-swanlog"
    assert saved["logdir_is_default"] is False
    assert saved["has_api_key"] is True
    assert saved["api_key_masked"] == "swl-…WXYZ"
    assert "api_key" not in saved

    path = settings.DATA_DIR / swanlab_service.CONFIG_FILE
    raw = path.read_text(encoding="utf-8")
    assert KEY not in raw
    assert json.loads(raw)["api_key_encrypted"]
    assert path.stat().st_mode & 0o777 == 0o600

    read = client.get(f"{BASE}/config", headers=user_headers).json()
    assert read == saved
    assert KEY not in json.dumps(read)

    # Omitted fields (the key included) are kept; null/"" reset optional ones.
    changed = _put(client, admin_headers, port=6002, workspace="", logdir=None)
    assert changed["port"] == 6002
    assert changed["workspace"] is None
    assert changed["logdir_is_default"] is True
    assert changed["project"] == "proj-1"
    assert changed["has_api_key"] is True

    options = swanlab_service.job_options()
    assert options["use_swanlab"] is True
    assert options["swanlab_mode"] == "cloud"
    assert options["swanlab_project"] == "proj-1"
    assert options["api_key"] == KEY
    assert options["env"] == {"SWANLAB_API_HOST": "https://swanlab.example.com"}
    assert Path(options["swanlab_logdir"]).is_absolute()

    # A different host drops the stored key: it only goes where it was entered for.
    moved = _put(client, admin_headers, host="https://other.example.com")
    assert moved["has_api_key"] is False
    _put(client, admin_headers, api_key=KEY)
    cleared = _put(client, admin_headers, api_key="")
    assert cleared["has_api_key"] is False

    _put(client, admin_headers, mode="disabled")
    assert swanlab_service.job_options() == {"use_swanlab": False}


def test_job_options_offline_runs_as_local(
    client: TestClient, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    _put(client, admin_headers, mode="offline", project="p", logdir=str(tmp_path), api_key=KEY)
    options = swanlab_service.job_options()
    assert options["swanlab_mode"] == "local"
    assert options["swanlab_logdir"] == str(tmp_path)
    assert options["api_key"] is None  # the key is for cloud mode only


# ------------------------------------------------------------------------------------ test


def test_local_test_writable_and_not(
    client: TestClient, admin_headers: dict[str, str], user_headers: dict[str, str], tmp_path: Path
) -> None:
    _put(client, admin_headers, mode="local", logdir=str(tmp_path / "new" / "swanlog"))
    result = client.post(f"{BASE}/test", headers=user_headers).json()
    logdir_check = next(c for c in result["checks"] if c["name"] == "logdir")
    assert logdir_check["ok"] is True
    assert (tmp_path / "new" / "swanlog").is_dir()
    package = next(c for c in result["checks"] if c["name"] == "package")
    assert result["ok"] is package["ok"]  # the package check depends on the venv

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that can write anywhere (root)")
        _put(client, admin_headers, logdir=str(locked / "swanlog"))
        result = client.post(f"{BASE}/test", headers=user_headers).json()
        assert result["ok"] is False
        logdir_check = next(c for c in result["checks"] if c["name"] == "logdir")
        assert logdir_check["ok"] is False
        assert "not writable" in logdir_check["message"]
        assert "not writable" in result["message"]
    finally:
        locked.chmod(0o700)


def test_local_test_logdir_that_is_a_file(
    client: TestClient, admin_headers: dict[str, str], user_headers: dict[str, str], tmp_path: Path
) -> None:
    """Not writable regardless of the user: the log folder's path is a file."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _put(client, admin_headers, mode="local", logdir=str(blocker / "swanlog"))
    result = client.post(f"{BASE}/test", headers=user_headers).json()
    assert result["ok"] is False
    logdir_check = next(c for c in result["checks"] if c["name"] == "logdir")
    assert logdir_check["ok"] is False
    assert "not writable" in logdir_check["message"]


def test_cloud_test_unreachable_is_fast_and_clear(
    client: TestClient, admin_headers: dict[str, str], user_headers: dict[str, str]
) -> None:
    _put(client, admin_headers, mode="cloud", host=f"http://127.0.0.1:{_free_port()}")
    no_key = client.post(f"{BASE}/test", headers=user_headers).json()
    assert no_key["ok"] is False
    assert "API key" in no_key["message"]

    _put(client, admin_headers, api_key=KEY)
    started = time.monotonic()
    result = client.post(f"{BASE}/test", headers=user_headers).json()
    assert time.monotonic() - started < swanlab_service.CLOUD_TIMEOUT_S + 25
    assert result["ok"] is False
    cloud = next(c for c in result["checks"] if c["name"] == "cloud")
    assert cloud["ok"] is False
    assert "cannot be reached" in cloud["message"]

    # The default cloud host: this machine may have no internet; either way it never hangs and
    # a failure says so clearly (a fake key is never accepted).
    _put(client, admin_headers, host=None, api_key=KEY)
    started = time.monotonic()
    result = client.post(f"{BASE}/test", headers=user_headers).json()
    assert time.monotonic() - started < swanlab_service.CLOUD_TIMEOUT_S + 25
    assert result["ok"] is False
    cloud = next(c for c in result["checks"] if c["name"] == "cloud")
    assert "api.swanlab.cn" in cloud["message"] or "rejected" in cloud["message"]


def test_disabled_test_and_empty_projects(
    client: TestClient, admin_headers: dict[str, str], user_headers: dict[str, str], tmp_path: Path
) -> None:
    result = client.post(f"{BASE}/test", headers=user_headers).json()
    assert result == {
        "ok": True,
        "mode": "disabled",
        "message": "SwanLab is disabled: jobs do not log",
        "checks": [],
    }
    _put(client, admin_headers, logdir=str(tmp_path))
    projects = client.get(f"{BASE}/projects", headers=user_headers).json()
    assert projects == {"logdir": str(tmp_path), "projects": []}


# ------------------------------------------------------------------------------- dashboard


def _make_run(engine_bin: Path, logdir: Path, project: str, name: str) -> None:
    """A real local-mode run, as a training job with swanlab_mode: local writes it."""
    code = (
        "import swanlab\n"
        f"swanlab.init(project={project!r}, experiment_name={name!r}, mode='local',"
        f" logdir={str(logdir)!r})\n"
        "swanlab.log({'loss': 1.0})\n"
        "swanlab.finish()\n"
    )
    home = logdir.parent / "home"
    home.mkdir(exist_ok=True)
    subprocess.run(
        [str(engine_bin / "python"), "-c", code],
        cwd=logdir.parent,
        env={**os.environ, "HOME": str(home)},
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_engine_missing_is_409(
    client: TestClient,
    admin_headers: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "TRAIN_ENGINE_BIN", tmp_path / "no-venv" / "bin")
    response = client.post(f"{BASE}/start", headers=admin_headers)
    assert response.status_code == 409
    assert response.json()["code"] == "engine_unavailable"
    assert "make train-env" in response.json()["detail"]
    status = client.get(f"{BASE}/status", headers=admin_headers).json()
    assert status["running"] is False
    assert status["engine_available"] is False
    assert status["install_hint"] == "make train-env"


def test_port_in_use_is_409(
    client: TestClient, admin_headers: dict[str, str], engine_bin: Path, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        _put(client, admin_headers, mode="local", logdir=str(tmp_path / "swanlog"), port=port)
        response = client.post(f"{BASE}/start", headers=admin_headers)
    assert response.status_code == 409
    assert response.json()["code"] == "port_in_use"
    assert not (settings.DATA_DIR / swanlab_service.DASHBOARD_STATE_FILE).exists()


def test_dashboard_start_status_projects_reattach_stop(
    client: TestClient,
    admin_headers: dict[str, str],
    user_headers: dict[str, str],
    engine_bin: Path,
    tmp_path: Path,
) -> None:
    logdir = tmp_path / "swanlog"
    port = _free_port()
    _put(client, admin_headers, mode="local", project="tiny", logdir=str(logdir), port=port)
    _make_run(engine_bin, logdir, "tiny", "exp-one")
    _make_run(engine_bin, logdir, "other", "exp-two")

    response = client.post(f"{BASE}/start", headers=admin_headers)
    assert response.status_code == 200, response.text
    started = response.json()
    assert started["running"] is True
    assert started["healthy"] is True
    assert started["url"] == f"http://127.0.0.1:{port}"
    assert started["pid"] > 0
    assert started["started_at"]
    assert started["logdir"] == str(logdir)

    # Starting again while it runs changes nothing.
    again = client.post(f"{BASE}/start", headers=admin_headers).json()
    assert again["pid"] == started["pid"]

    status = client.get(f"{BASE}/status", headers=user_headers).json()
    assert status["running"] is True and status["healthy"] is True

    projects = client.get(f"{BASE}/projects", headers=user_headers).json()
    # SwanLab 0.10 keeps one project per log folder: the first run's name; later runs join it.
    assert [p["name"] for p in projects["projects"]] == ["tiny"]
    runs = projects["projects"][0]["runs"]
    assert sorted(r["name"] for r in runs) == ["exp-one", "exp-two"]
    assert runs[0]["status"] == "finished"
    assert runs[0]["run_id"].startswith("run-")
    assert runs[0]["created_at"] and runs[0]["finished_at"]
    assert (logdir / runs[0]["run_id"]).is_dir()

    # A server restart: nothing in memory, the record file re-attaches by pid + start time.
    swanlab_service.forget_handle()
    status = client.get(f"{BASE}/status", headers=user_headers).json()
    assert status["running"] is True
    assert status["pid"] == started["pid"]
    assert status["healthy"] is True

    stopped = client.post(f"{BASE}/stop", headers=admin_headers).json()
    assert stopped["running"] is False
    assert stopped["healthy"] is False
    status = client.get(f"{BASE}/status", headers=user_headers).json()
    assert status["running"] is False
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", port))
    assert process_start_time(started["pid"]) is None  # the group is gone

    # Stopping again is fine.
    assert client.post(f"{BASE}/stop", headers=admin_headers).json()["running"] is False


def test_stale_record_reports_not_running(client: TestClient, user_headers: dict[str, str]) -> None:
    """A record whose process is gone (or whose pid now belongs to another process) is not
    a running dashboard."""
    record = {
        "pid": os.getpid(),  # alive, but not with this start time
        "start_time": 1,
        "port": 5999,
        "logdir": "/tmp/x",
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    path = settings.DATA_DIR / swanlab_service.DASHBOARD_STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    status = client.get(f"{BASE}/status", headers=user_headers).json()
    assert status["running"] is False
    assert status["pid"] is None
    assert not path.exists()
