"""Process supervision with plain Python programs standing in for the engine: a new session and
process group, niced, logs appended, exit codes recorded for a server that was restarted, pid +
start time identity, and stopping a group that ignores the polite signals within 10 s."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.engines import (
    ProcessHandle,
    failure_reason,
    is_alive,
    process_start_time,
    read_exit_code,
    start_process,
    tail,
    terminate_group,
    wait,
)
from app.engines.process import _group_has_live_members, group_exists

PY = sys.executable


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rfind(")") + 2 :].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat_fields(int(entry))[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError):
                continue
    return found


async def _wait_for(predicate: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.anyio
async def test_a_run_is_niced_in_its_own_group_and_logs_everything(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    script = (
        "import os, sys, time\n"
        "print('out', os.environ['JOB_VAR'], flush=True)\n"
        "print('err', file=sys.stderr, flush=True)\n"
        "open('ready', 'w').close()\n"
        "time.sleep(30)\n"
    )
    handle = await start_process(
        [PY, "-c", script], cwd=tmp_path, env={"JOB_VAR": "hello", "PATH": "/usr/bin:/bin"},
        log_path=log,
    )  # fmt: skip
    try:
        await _wait_for(lambda: (tmp_path / "ready").exists())
        assert handle.pgid == handle.pid == os.getpgid(handle.pid) == os.getsid(handle.pid)
        assert os.getpgid(handle.pid) != os.getpgid(0)
        assert is_alive(handle.pid, handle.start_time)
        (child,) = _children(handle.pid)  # the command, under the runner
        assert os.getpgid(child) == handle.pgid
        my_nice = os.getpriority(os.PRIO_PROCESS, 0)
        assert int(_stat_fields(child)[16]) == min(19, my_nice + 19)  # field 19: nice
        await _wait_for(lambda: "err" in log.read_text())
        text = log.read_text()
        assert "[modeltrain]" in text.splitlines()[0] and "start:" in text
        assert "out hello" in text
    finally:
        result = await terminate_group(handle.pgid, 2.0, leader_start_time=handle.start_time)
    assert result.outcome == "first_signal"  # SIGABRT forwarded to a plain Python: it dies
    assert await wait(handle) == -signal.SIGABRT
    assert not group_exists(handle.pgid)


@pytest.mark.anyio
async def test_exit_codes_are_recorded_and_logs_appended(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    ok = await start_process([PY, "-c", "print('one')"], cwd=tmp_path, env={}, log_path=log)
    assert await wait(ok) == 0
    assert read_exit_code(ok.exit_path) == 0
    assert ok.exit_path == tmp_path / "job.exit.json"
    failing = await start_process(
        [PY, "-c", "import sys; print('boom: bad config'); sys.exit(3)"],
        cwd=tmp_path,
        env={},
        log_path=log,
    )
    assert read_exit_code(failing.exit_path) is None  # the old one was removed at start
    assert await wait(failing) == 3
    text = log.read_text()
    assert text.count("start:") == 2 and "one" in text and "[modeltrain] exit code 3" in text
    reason = failure_reason(3, log)
    assert reason.startswith("exit code 3\n") and "boom: bad config" in reason
    assert failure_reason(None, tmp_path / "none.log").endswith("(killed)")
    assert failure_reason(-9, log).startswith("killed by signal 9")


@pytest.mark.anyio
async def test_a_missing_program_fails_cleanly(tmp_path: Path) -> None:
    handle = await start_process(
        [str(tmp_path / "no-such-program")], cwd=tmp_path, env={}, log_path=tmp_path / "x.log"
    )
    assert await wait(handle) == 127
    assert "cannot start" in (tmp_path / "x.log").read_text()


@pytest.mark.anyio
async def test_a_re_attached_run_is_waited_for_by_pid_and_start_time(tmp_path: Path) -> None:
    started = await start_process(
        [PY, "-c", "import time; time.sleep(1.0); raise SystemExit(4)"],
        cwd=tmp_path,
        env={},
        log_path=tmp_path / "job.log",
    )
    # What a restarted server rebuilds from its database row: no asyncio process object.
    reattached = ProcessHandle(
        started.pid, started.start_time, started.pgid, started.log_path, started.exit_path
    )
    assert reattached == started
    assert is_alive(reattached.pid, reattached.start_time)
    assert await wait(reattached, poll_s=0.05) == 4
    assert not is_alive(reattached.pid, reattached.start_time)
    await wait(started)  # reap


def test_is_alive_tells_a_reused_pid_from_the_original() -> None:
    me = os.getpid()
    start = process_start_time(me)
    assert start is not None
    assert is_alive(me, start)
    assert not is_alive(me, start + 1)  # same pid, another process (a later start)
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert process_start_time(dead.pid) is None
    assert not is_alive(dead.pid, start)
    assert not is_alive(0, 0) and not is_alive(-1, 0)


def test_a_zombie_is_not_alive() -> None:
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(0.2)"])
    start = process_start_time(proc.pid)
    assert start is not None and is_alive(proc.pid, start)
    deadline = time.monotonic() + 20
    while _stat_fields(proc.pid)[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_alive(proc.pid, start)  # ended, not yet reaped
    proc.wait()


@pytest.mark.anyio
async def test_a_stubborn_group_is_killed_within_10_s(tmp_path: Path) -> None:
    # Ignores SIGABRT, SIGINT and SIGTERM, and has a child (a worker) in the same group.
    script = (
        "import signal, subprocess, sys, time\n"
        "for s in (signal.SIGABRT, signal.SIGINT, signal.SIGTERM):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "open('ready', 'w').close()\n"
        "time.sleep(120)\n"
    )
    handle = await start_process(
        [PY, "-c", script], cwd=tmp_path, env={}, log_path=tmp_path / "job.log"
    )
    await _wait_for(lambda: (tmp_path / "ready").exists())
    began = time.monotonic()
    result = await terminate_group(handle.pgid, leader_start_time=handle.start_time)
    elapsed = time.monotonic() - began
    assert result.outcome == "sigkill"
    assert elapsed < 10.0
    assert not _group_has_live_members(handle.pgid)  # the worker too
    assert await wait(handle) in (None, -signal.SIGKILL)  # killed before recording a code
    # The orphaned worker's zombie is reaped by init a moment later.
    await _wait_for(lambda: not group_exists(handle.pgid), within=5)


@pytest.mark.anyio
async def test_sigterm_ends_a_group_that_ignores_only_the_first_signal(tmp_path: Path) -> None:
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGABRT, signal.SIG_IGN)\n"
        "open('ready', 'w').close()\n"
        "time.sleep(120)\n"
    )
    handle = await start_process(
        [PY, "-c", script], cwd=tmp_path, env={}, log_path=tmp_path / "job.log"
    )
    await _wait_for(lambda: (tmp_path / "ready").exists())
    result = await terminate_group(handle.pgid, 0.5, leader_start_time=handle.start_time)
    assert result.outcome == "sigterm" and result.elapsed_s < 5
    assert await wait(handle) in (None, -signal.SIGTERM)


@pytest.mark.anyio
async def test_a_stopped_or_foreign_process_is_left_alone(tmp_path: Path) -> None:
    handle = await start_process([PY, "-c", "pass"], cwd=tmp_path, env={}, log_path=tmp_path / "l")
    await wait(handle)
    assert (await terminate_group(handle.pgid, leader_start_time=handle.start_time)).outcome == (
        "not_running"
    )
    # A live process whose start time does not match (a reused pid) is not signalled.
    other = await asyncio.create_subprocess_exec(
        PY, "-c", "import time; time.sleep(30)", start_new_session=True
    )
    try:
        start = process_start_time(other.pid)
        assert start is not None
        result = await terminate_group(other.pid, leader_start_time=start + 1)
        assert result.outcome == "not_running"
        assert other.returncode is None and is_alive(other.pid, start)
    finally:
        other.kill()
        await other.wait()


def test_tail(tmp_path: Path) -> None:
    log = tmp_path / "log"
    assert tail(log) == []
    log.write_bytes(b"a\r\nb\nprogress 10%\rprogress 50%\rprogress 100%\n\n\n")
    assert tail(log, 2) == ["b", "progress 100%"]
    assert tail(log, 10) == ["a", "b", "progress 100%"]
    log.write_bytes(b"".join(b"line %d\n" % i for i in range(20000)))
    assert tail(log, 3) == ["line 19997", "line 19998", "line 19999"]
    assert tail(log, 100_000, max_bytes=100)[0].startswith("line ")  # no cut first line
