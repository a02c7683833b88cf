"""The training engine for tests. The real-engine tests need the training venv
(`make train-env`): `engine_bin` skips them with the reason when it is missing, or fails them when
TRAIN_ENGINE_REQUIRED=1 (CI). MT_TEST_TRAIN_ENGINE_BIN points at another venv's bin/ folder (the
session set-up in tests/conftest.py clears TRAIN_ENGINE_BIN like every other setting).
`tiny_model` builds the tiny Qwen2 model once per session with scripts/make_tiny_model.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from app.config import REPO_ROOT, settings
from app.engines import engine_status, resolve_bin_dir


def proc_file(pid: int, name: str) -> bytes:
    """/proc/<pid>/<name> as bytes."""
    return Path(f"/proc/{pid}/{name}").read_bytes()


def group_members(pgid: int) -> list[int]:
    """The pids of the processes in process group `pgid` (an engine run: its runner and the
    engine)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = proc_file(int(entry), "stat")
            except OSError:
                continue
            if int(raw[raw.rfind(b")") + 2 :].split()[2]) == pgid:
                members.append(int(entry))
    return members


def configured_engine_bin() -> Path:
    return resolve_bin_dir(os.environ.get("MT_TEST_TRAIN_ENGINE_BIN") or settings.TRAIN_ENGINE_BIN)


@pytest.fixture(scope="session")
def engine_bin() -> Path:
    """The training venv's bin/ folder; skips without it (fails with TRAIN_ENGINE_REQUIRED=1)."""
    status = engine_status(configured_engine_bin())
    if not status.available:
        message = (
            f"TRAINING ENGINE MISSING, real-engine tests not run: {status.missing}. "
            f"Run `{status.install_hint}` (TRAIN_ENGINE_REQUIRED=1 turns this into a failure)."
        )
        if os.environ.get("TRAIN_ENGINE_REQUIRED") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return status.bin_dir


@pytest.fixture(scope="session")
def tiny_model(engine_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2 chat model (random weights, ~0.5 MB), built offline once per session."""
    out = tmp_path_factory.mktemp("tiny-model") / "model"
    subprocess.run(
        ["nice", "-n", "19", str(engine_bin / "python"), "scripts/make_tiny_model.py", str(out)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out
