"""Supervisor that sits between the server and a long engine command (stdlib only).

Started by `app.engines.process.start_process` as the leader of a new session and process group:

    python -I _runner.py --exit-file PATH --nice N -- ARGV...

It lowers its priority (the command inherits it), disables core dumps (an engine killed by
SIGABRT before it installs its own handler must not leave a multi-GB core file in the job folder),
runs ARGV in the same process group, forwards SIGABRT/SIGTERM/SIGINT to it, and when it ends
writes `{"returncode": ..., "ended_at": ...}` to the exit file (atomically). That file is how a
server that restarted meanwhile, and so is no longer the parent, learns how the run ended.
Run as a file with -I, so it imports nothing from the app or the caller's environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time

FORWARDED = (signal.SIGABRT, signal.SIGTERM, signal.SIGINT)


def _write_exit(path: str, returncode: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"returncode": returncode, "ended_at": time.time()}, fh)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    exit_file = ""
    nice = 0
    while argv and argv[0] != "--":
        flag, value, argv = argv[0], argv[1], argv[2:]
        if flag == "--exit-file":
            exit_file = value
        elif flag == "--nice":
            nice = int(value)
        else:
            print(f"[modeltrain] runner: unknown option {flag}", file=sys.stderr, flush=True)
            return 2
    command = argv[1:]
    if not exit_file or not command:
        print("[modeltrain] runner: usage: --exit-file PATH [--nice N] -- ARGV", file=sys.stderr)
        return 2

    if nice > 0:
        os.nice(nice)  # capped at 19 by the kernel
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    children: list[subprocess.Popen[bytes]] = []
    stop_before_start: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not children:
            stop_before_start.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            children[0].send_signal(signum)

    # Handlers first: a stop request in the gap before Popen returns is not lost. A caught
    # handler is reset to the default in the child at exec, so the command sees plain signals.
    for signum in FORWARDED:
        signal.signal(signum, forward)
    try:
        child = subprocess.Popen(command)  # noqa: S603  inherits stdout/stderr (the log) and the env
    except OSError as exc:
        print(f"[modeltrain] cannot start {command[0]}: {exc}", flush=True)
        _write_exit(exit_file, 127)
        return 127
    children.append(child)
    for early in stop_before_start:
        child.send_signal(early)

    returncode = child.wait()  # retried after each forwarded signal (PEP 475)
    print(f"[modeltrain] exit code {returncode}", flush=True)
    _write_exit(exit_file, returncode)
    return returncode if returncode >= 0 else 128 - returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
