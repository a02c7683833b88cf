"""Supervised subprocesses for long engine work (training, export, serving): each one runs in its
own session and process group, niced, with stdout and stderr appended to a log file, behind a
small stdlib runner (`_runner.py`) that records the exit code in a file. A process is identified
by its pid *and* its start time (field 22 of /proc/<pid>/stat), so a server that restarts can
tell its own run from an unrelated process that reused the pid, re-attach to it, and still learn
how it ended.

Plain arguments in, plain dataclasses out: no FastAPI, no ORM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

RUNNER = Path(__file__).with_name("_runner.py")
DEFAULT_NICE = 19
STOP_TOTAL_S = 10.0  # the promise: a cancelled run is gone within 10 s
POLL_S = 0.1

StopOutcome = Literal["not_running", "first_signal", "sigterm", "sigkill", "survived"]


@dataclass(frozen=True)
class ProcessHandle:
    """A started (or re-attached) process group. Persist `pid`, `start_time`, `pgid`, `log_path`
    and `exit_path`; rebuild the handle from them after a restart (`_proc` is then None)."""

    pid: int
    start_time: int  # clock ticks since boot, /proc/<pid>/stat field 22
    pgid: int
    log_path: Path
    exit_path: Path
    _proc: asyncio.subprocess.Process | None = field(
        default=None, compare=False, repr=False, hash=False
    )


@dataclass(frozen=True)
class StopResult:
    """How `terminate_group` ended: which signal it took, and how long it waited."""

    outcome: StopOutcome
    elapsed_s: float


def process_start_time(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot, or None when there is no such
    process (or it is a zombie: it has ended and only waits to be reaped)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    rest = raw[raw.rfind(b")") + 2 :].split()
    state, start = rest[0], rest[19]  # fields 3 and 22
    if state in (b"Z", b"X"):
        return None
    return int(start)


def is_alive(pid: int, start_time: int) -> bool:
    """True while `pid` runs and is the same process that started at `start_time`
    (not a later process that got the same pid)."""
    return pid > 0 and process_start_time(pid) == start_time


def group_exists(pgid: int) -> bool:
    """True while any process (zombies included) is in process group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    return True


def _group_has_live_members(pgid: int) -> bool:
    """Like group_exists, but a group whose only members are zombies counts as gone."""
    if not group_exists(pgid):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        rest = raw[raw.rfind(b")") + 2 :].split()
        if int(rest[2]) == pgid and rest[0] not in (b"Z", b"X"):  # field 5: pgrp
            return True
    return False


def _open_log(log_path: Path, message: str) -> int:
    """Open the log for appending (created 0600: logs may show paths and parameters) and
    write a header line; returns the descriptor."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    os.write(fd, f"[modeltrain] {stamp} {message}\n".encode())
    return fd


async def start_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    exit_path: Path | None = None,
    nice: int = DEFAULT_NICE,
) -> ProcessHandle:
    """Start `argv` in a new session/process group, niced by `nice`, with `env` as its whole
    environment and stdout+stderr appended to `log_path`. The exit code lands in `exit_path`
    (default: `<log stem>.exit.json` beside the log); a stale one is removed first."""
    if not argv:
        raise ValueError("argv is empty")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    exit_path = exit_path or log_path.with_name(f"{log_path.stem}.exit.json")
    exit_path.unlink(missing_ok=True)
    log_fd = _open_log(log_path, f"start: {' '.join(argv)}")
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            str(RUNNER),
            "--exit-file",
            str(exit_path),
            "--nice",
            str(nice),
            "--",
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        os.close(log_fd)  # the child holds its own copy
    start_time = process_start_time(proc.pid)
    if start_time is None:  # ended at once (e.g. the runner could not start): still reap it
        await proc.wait()
        start_time = 0
    return ProcessHandle(
        pid=proc.pid,
        start_time=start_time,
        pgid=proc.pid,  # start_new_session: the leader's pid is the group's id
        log_path=log_path,
        exit_path=exit_path,
        _proc=proc,
    )


def read_exit_code(exit_path: Path) -> int | None:
    """The exit code the runner recorded (negative: killed by that signal), or None when the
    run has not ended or was killed before it could record one (SIGKILL of the whole group)."""
    try:
        data = json.loads(exit_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    code = data.get("returncode") if isinstance(data, dict) else None
    return code if isinstance(code, int) else None


def has_ended(handle: ProcessHandle) -> bool:
    """Without waiting: has the process ended? A child of this server is asked for its return
    code (set once it is reaped); a re-attached one is looked up by pid and start time."""
    proc = handle._proc
    if proc is not None:
        return proc.returncode is not None
    return not is_alive(handle.pid, handle.start_time)


def ended_code(handle: ProcessHandle) -> int | None:
    """The exit code of an ended process: what the runner recorded, else (the runner itself was
    killed) the signal that killed it, else None."""
    code = read_exit_code(handle.exit_path)
    proc = handle._proc
    if code is None and proc is not None and proc.returncode is not None:
        return proc.returncode if proc.returncode < 0 else None
    return code


async def wait(handle: ProcessHandle, *, poll_s: float = 0.5) -> int | None:
    """Wait until the process ends and return its exit code (see `read_exit_code`). Works both
    for a process started by this server (it is reaped) and for one re-attached after a restart
    (polled by pid and start time)."""
    proc = handle._proc
    if proc is not None:
        try:
            runner_code = await proc.wait()
        except RuntimeError:  # created under another event loop: fall back to polling
            proc = None
        else:
            recorded = read_exit_code(handle.exit_path)
            if recorded is not None:
                return recorded
            # The runner itself was killed (SIGKILL) before recording the command's code.
            return runner_code if runner_code < 0 else None
    while is_alive(handle.pid, handle.start_time):  # noqa: ASYNC110  (not our child: poll)
        await asyncio.sleep(poll_s)
    return read_exit_code(handle.exit_path)


async def terminate_group(
    pgid: int,
    grace_s: float = 6.0,
    *,
    leader_start_time: int | None = None,
    first_signal: signal.Signals = signal.SIGABRT,
    term_grace_s: float | None = None,
) -> StopResult:
    """Stop process group `pgid`: `first_signal` to its leader only (the runner forwards it to
    the engine; LLaMA-Factory stops at the next step and saves on SIGABRT), then after `grace_s`
    SIGTERM to the whole group, then SIGKILL to the group, all within STOP_TOTAL_S (10 s) by
    default. With `leader_start_time`, nothing is sent unless the leader is that same process
    (a reused pid is left alone)."""
    started = time.monotonic()
    if term_grace_s is None:
        term_grace_s = max(0.5, STOP_TOTAL_S - grace_s - 2.0)  # worst case 9.5 s in all

    def result(outcome: StopOutcome) -> StopResult:
        return StopResult(outcome, round(time.monotonic() - started, 3))

    if leader_start_time is not None and not is_alive(pgid, leader_start_time):
        # The leader is gone (or the pid is someone else's): only a leaderless group of ours
        # could remain, and that only when the pid is not in use by another process.
        if process_start_time(pgid) is not None or not _group_has_live_members(pgid):
            return result("not_running")
    elif not _group_has_live_members(pgid):
        return result("not_running")

    steps: list[tuple[StopOutcome, float]] = [
        ("first_signal", grace_s),
        ("sigterm", term_grace_s),
        ("sigkill", 1.5),
    ]
    for outcome, wait_s in steps:
        try:
            if outcome == "first_signal":
                os.kill(pgid, first_signal)
            elif outcome == "sigterm":
                os.killpg(pgid, signal.SIGTERM)
            else:
                os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            if not _group_has_live_members(pgid):
                return result(outcome)
            if outcome == "first_signal":
                continue  # the leader is gone but others remain: no one to stop gracefully
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _group_has_live_members(pgid):
                return result(outcome)
            await asyncio.sleep(POLL_S)
    return result("survived" if _group_has_live_members(pgid) else "sigkill")


def tail(log_path: Path, n: int = 40, *, max_bytes: int = 64 * 1024) -> list[str]:
    """The last `n` lines of a log (reading at most `max_bytes` from its end); [] when missing.
    Progress bars that redraw with '\\r' count as their last state."""
    try:
        with open(log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace")
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    if size > max_bytes and lines:
        lines = lines[1:]  # the first one is probably cut
    while lines and not lines[-1].strip():
        lines.pop()
    return lines[-n:] if n > 0 else []
