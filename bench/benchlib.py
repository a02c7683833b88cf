"""Helpers shared by the benchmark scripts (percentiles, core pinning, child processes)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile by linear interpolation between closest ranks.

    This is Hyndman & Fan type 7 (numpy's default, "linear"): with the samples sorted as
    x[0] <= ... <= x[n-1], the position is h = (n - 1) * pct / 100 and the result is
    x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]). p0 is the minimum and
    p100 the maximum. An empty list gives NaN.
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    h = (len(ordered) - 1) * pct / 100.0
    low = int(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def summarise(ms: list[float]) -> dict[str, float | int]:
    """Sample count and p50/p90/p99/max of millisecond values."""
    return {
        "samples": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
    }


@dataclass(frozen=True)
class Pinning:
    used: bool
    server_cores: list[int] | None
    driver_cores: list[int] | None
    reason: str


def choose_pinning() -> Pinning:
    """On two or more cores: the server under test on the first core, the driver on the second."""
    cpu_count = os.cpu_count() or 1
    if cpu_count < 2:
        return Pinning(False, None, None, f"only {cpu_count} CPU")
    if shutil.which("taskset") is None or not hasattr(os, "sched_setaffinity"):
        return Pinning(False, None, None, "taskset or sched_setaffinity not available")
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return Pinning(False, None, None, f"this process may use only CPU {allowed}")
    return Pinning(True, [allowed[0]], [allowed[1]], "taskset + sched_setaffinity")


def parse_cpus(text: str) -> list[int]:
    """ "0,2-3" -> [0, 2, 3]."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    if not cpus:
        raise ValueError(f"no CPUs in {text!r}")
    return sorted(cpus)


def add_placement_args(
    parser: argparse.ArgumentParser, default_out: Path, server: str = "the server"
) -> None:
    """--server-cpus, --load-cpus and --out, as every server benchmark takes them."""
    parser.add_argument(
        "--server-cpus", help=f"CPUs for {server}, e.g. 0 (default: the first allowed CPU)"
    )
    parser.add_argument(
        "--load-cpus", help="CPUs for the mock and the driver, e.g. 1-3 (default: the second)"
    )
    parser.add_argument("--out", type=Path, default=default_out, help="JSON results file")


def pinning_from(server_cpus: str | None, load_cpus: str | None) -> Pinning:
    """The default pinning, or the CPUs given on the command line (both or neither), for
    machines with more than two cores: e.g. the server on one core, the load on four."""
    if server_cpus is None and load_cpus is None:
        return choose_pinning()
    if server_cpus is None or load_cpus is None or shutil.which("taskset") is None:
        raise SystemExit("give both --server-cpus and --load-cpus (and have taskset)")
    server, load = parse_cpus(server_cpus), parse_cpus(load_cpus)
    return Pinning(True, server, load, "given on the command line")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- chat benchmarks
# Shared by chat_relay.py, chat_capacity.py and chat_history.py: the real server and the mock
# upstream as child processes, an API user with a model config, a lean SSE reader, and CPU
# accounting from /proc.

REPO = Path(__file__).resolve().parent.parent
BACKEND = REPO / "backend"
VENV_BIN = REPO / ".venv" / "bin"
STARTUP_TIMEOUT_S = 60.0
API_TIMEOUT_S = 60.0

BENCH_EMAIL = "bench-chat@example.com"
BENCH_NICKNAME = "bench-chat"
BENCH_PASSWORD = "bench-chat-Pass-1"


def pinned(command: list[str], cores: list[int] | None) -> list[str]:
    """The command under `taskset -c` when cores are given."""
    if not cores:
        return command
    return ["taskset", "-c", ",".join(map(str, cores)), *command]


def launch(
    command: list[str],
    log_path: Path,
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    cores: list[int] | None = None,
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            pinned(command, cores),
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches only the driver
        )


def wait_until_ok(
    url: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    name: str,
    timeout: float = STARTUP_TIMEOUT_S,
) -> float:
    """Poll `url` until it answers 200; the seconds that took. Raises when the process dies."""
    import httpx  # the callers' venv has it; benchlib itself stays importable without

    start = time.monotonic()
    deadline = start + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail(log_path)}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return time.monotonic() - start
            time.sleep(0.1)
    raise RuntimeError(f"{name} not up after {timeout:.0f} s:\n{tail(log_path)}")


def start_mock(port: int, log_path: Path, cores: list[int] | None) -> subprocess.Popen[bytes]:
    """The tests' mock upstream (backend/tests/upstream.py) on 127.0.0.1:port."""
    command = [str(VENV_BIN / "python"), "-m", "tests.upstream", "--port", str(port)]
    return launch(command, log_path, cwd=BACKEND, cores=cores)


def backend_env(tmp: Path) -> dict[str, str]:
    """The real server's environment: SQLite and data in `tmp`, no .env, quiet logs."""
    return {
        **os.environ,
        "MODELTRAIN_ENV_FILE": "",
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "DATA_DIR": str(tmp / "data"),
        "LOGIN_RATE_LIMIT": "100000/1m",
        "ACCESS_TOKEN_EXPIRE_MINUTES": "240",
        "LOG_LEVEL": "WARNING",
    }


def start_backend(
    tmp: Path, port: int, log_path: Path, cores: list[int] | None
) -> subprocess.Popen[bytes]:
    """`uvicorn main:app`, one worker, access log off (as deployed behind nginx)."""
    command = [
        str(VENV_BIN / "uvicorn"),
        "main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    return launch(command, log_path, cwd=BACKEND, env=backend_env(tmp), cores=cores)


def sign_in(base_url: str, *, register: bool = True) -> str:
    """Register the bench user (first run) and log in; the access token."""
    import httpx

    with httpx.Client(base_url=base_url, timeout=API_TIMEOUT_S) as client:
        if register:
            response = client.post(
                "/api/auth/register",
                json={"email": BENCH_EMAIL, "nickname": BENCH_NICKNAME, "password": BENCH_PASSWORD},
            )
            if response.status_code != 201:
                raise RuntimeError(f"register failed: {response.status_code} {response.text}")
        response = client.post(
            "/api/auth/login", json={"username": BENCH_EMAIL, "password": BENCH_PASSWORD}
        )
        if response.status_code != 200:
            raise RuntimeError(f"login failed: {response.status_code} {response.text}")
        token: str = response.json()["access_token"]
        return token


def create_model_config(base_url: str, token: str, upstream_url: str, model: str) -> int:
    """A usable "custom" config that points at the mock's /v1 and asks for scenario `model`."""
    import httpx

    with httpx.Client(
        base_url=base_url, timeout=API_TIMEOUT_S, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        response = client.post(
            "/api/model-config/",
            json={
                "name": f"bench {model}",
                "provider": "custom",
                "endpoint": upstream_url + "/v1",
                "model": model,
                "status": 1,
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"model config failed: {response.status_code} {response.text}")
        config_id: int = response.json()["id"]
        return config_id


def create_sessions(base_url: str, token: str, config_id: int, count: int) -> list[int]:
    """`count` empty chat sessions on `config_id` (one keep-alive connection)."""
    import httpx

    ids: list[int] = []
    with httpx.Client(
        base_url=base_url, timeout=API_TIMEOUT_S, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for index in range(count):
            response = client.post(
                "/api/chat/sessions",
                json={"title": f"bench {index}", "model_config_id": config_id},
            )
            if response.status_code != 201:
                raise RuntimeError(f"session failed: {response.status_code} {response.text}")
            ids.append(response.json()["id"])
    return ids


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file soft limit towards `wanted` (children inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


def platform_info() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
    }


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {path}")


def verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("PASS" if passed else "FAIL")


# ----------------------------------------------------------------- a lean SSE client


@dataclass
class StreamRecord:
    """One HTTP request read as SSE: when it was sent, the status, every `data:` frame with
    the time its last byte arrived (frames that came in one read share a time), and the end."""

    start: float
    status: int = 0
    headers_at: float | None = None
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    end: float | None = None
    complete: bool = False  # the body ended properly (last chunk / length reached)
    error: str | None = None
    body: bytes = b""  # the raw body of a non-SSE (error) answer

    def payloads(self) -> list[tuple[float, bytes]]:
        """(time, payload) of each `data:` frame (multi-line data joined with "\\n")."""
        out: list[tuple[float, bytes]] = []
        for at, frame in self.frames:
            lines = [
                line[5:].lstrip(b" ") if line.startswith(b"data:") else None
                for line in frame.split(b"\n")
            ]
            data = [x for x in lines if x is not None]
            if data:
                out.append((at, b"\n".join(data)))
        return out


class _SSEProtocol(asyncio.Protocol):
    """HTTP/1.1 response parser (status line, headers, chunked or sized or close-delimited
    body) that splits the body into SSE frames as bytes arrive. Timestamps are taken once per
    read; no JSON is parsed here, so a driver reading hundreds of streams stays cheap."""

    def __init__(self, request: bytes, record: StreamRecord, done: asyncio.Future[None]) -> None:
        self._request = request
        self._record = record
        self._done = done
        self._buf = bytearray()
        self._sse = bytearray()
        self._in_head = True
        self._chunked = False
        self._length: int | None = None
        self._chunk_left = 0
        self._need_crlf = False
        self._is_sse = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self._buf += data
        if self._in_head:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
            del self._buf[: end + 4]
            self._in_head = False
            self._record.headers_at = now
            self._record.status = int(head[0].split(" ", 2)[1])
            for line in head[1:]:
                name, _, value = line.partition(":")
                name, value = name.strip().lower(), value.strip()
                if name == "transfer-encoding" and "chunked" in value.lower():
                    self._chunked = True
                elif name == "content-length":
                    self._length = int(value)
                elif name == "content-type":
                    self._is_sse = value.lower().startswith("text/event-stream")
        if self._chunked:
            self._dechunk(now)
        elif self._length is not None:
            take = bytes(self._buf[: self._length])
            del self._buf[: len(take)]
            self._length -= len(take)
            self._feed(take, now)
            if self._length == 0:
                self._finish(now, complete=True)
        else:
            self._feed(bytes(self._buf), now)
            self._buf.clear()

    def _dechunk(self, now: float) -> None:
        buf = self._buf
        while True:
            if self._chunk_left:
                take = min(self._chunk_left, len(buf))
                if not take:
                    return
                self._feed(bytes(buf[:take]), now)
                del buf[:take]
                self._chunk_left -= take
                if self._chunk_left:
                    return
                self._need_crlf = True
            if self._need_crlf:
                if len(buf) < 2:
                    return
                del buf[:2]
                self._need_crlf = False
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(buf[:line_end]).split(b";")[0], 16)
            del buf[: line_end + 2]
            if size == 0:
                self._finish(now, complete=True)
                return
            self._chunk_left = size

    def _feed(self, piece: bytes, now: float) -> None:
        if not self._is_sse:
            self._record.body += piece
            return
        sse = self._sse
        sse += piece
        while True:
            cut = sse.find(b"\n\n")
            if cut < 0:
                return
            self._record.frames.append((now, bytes(sse[:cut])))
            del sse[: cut + 2]

    def _finish(self, now: float, *, complete: bool, error: str | None = None) -> None:
        if self._done.done():
            return
        self._record.end = now
        self._record.complete = complete
        self._record.error = error
        self._done.set_result(None)
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        now = time.perf_counter()
        if self._in_head:
            self._finish(now, complete=False, error=f"connection closed before the answer: {exc}")
        elif not self._chunked and self._length is None:
            self._finish(now, complete=True)  # a close-delimited body ends here
        else:
            self._finish(now, complete=False, error=f"connection lost mid-body: {exc}")


def http_request(
    method: str, path: str, host: str, port: int, body: bytes, headers: dict[str, str]
) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_sse(
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    limit_s: float = 120.0,
) -> StreamRecord:
    """POST `body` on a new connection and read the answer to its end. `record.start` is taken
    before the connection is opened: TTFT includes the connect, as for a new browser stream."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    request = http_request("POST", path, host, port, body, headers or {})
    record = StreamRecord(start=time.perf_counter())
    transport: asyncio.BaseTransport | None = None
    try:
        transport, _ = await loop.create_connection(
            lambda: _SSEProtocol(request, record, done), host, port
        )
        await asyncio.wait_for(done, limit_s)
    except TimeoutError:
        record.error = f"no end after {limit_s:g} s"
        record.end = time.perf_counter()
    except OSError as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        record.end = time.perf_counter()
    finally:
        if transport is not None:
            transport.close()
    return record


# ----------------------------------------------------------------- CPU accounting

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return None


def _process_tree(pid: int) -> list[int]:
    """pid and its descendants (LiteLLM's CLI runs uvicorn in a child, taskset execs)."""
    found = [pid]
    index = 0
    while index < len(found):
        parent = found[index]
        index += 1
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                children = (task / "children").read_text().split()
                found.extend(int(c) for c in children if int(c) not in found)
    return found


@dataclass(frozen=True)
class CpuSnapshot:
    wall: float
    machine_busy: float
    processes: dict[str, float]
    driver: float


class CpuMeter:
    """CPU seconds of named processes (with their children), this driver and the whole
    machine between two snapshots; `other` is what none of them used: other programs."""

    def __init__(self, processes: dict[str, int]) -> None:
        self._pids = processes

    def snapshot(self) -> CpuSnapshot | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
            user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
        except (OSError, ValueError):
            return None
        processes: dict[str, float] = {}
        for name, pid in self._pids.items():
            total = 0.0
            for member in _process_tree(pid):
                total += _proc_cpu_s(member) or 0.0
            processes[name] = total
        own = os.times()
        return CpuSnapshot(
            wall=time.perf_counter(),
            machine_busy=(user + nice + system + irq + softirq) / _CLOCK_TICKS,
            processes=processes,
            driver=own.user + own.system,
        )

    @staticmethod
    def percent(before: CpuSnapshot | None, after: CpuSnapshot | None) -> dict[str, float] | None:
        """Use in % of one core (100 = one core busy) per process, driver and other."""
        if before is None or after is None or after.wall <= before.wall:
            return None
        wall = after.wall - before.wall
        out: dict[str, float] = {}
        mine = 0.0
        for name, value in after.processes.items():
            used = max(0.0, value - before.processes.get(name, value))
            out[name] = 100 * used / wall
            mine += used
        driver = after.driver - before.driver
        mine += driver
        out["driver"] = 100 * driver / wall
        out["other"] = 100 * max(0.0, after.machine_busy - before.machine_busy - mine) / wall
        out["wall_s"] = wall
        return out
