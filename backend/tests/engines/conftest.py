"""Fixtures for the engine tests (no database). The real-engine tests need the training venv
(`make train-env`): `engine_bin` skips them with the reason when it is missing, or fails them when
TRAIN_ENGINE_REQUIRED=1 (CI). MT_TEST_TRAIN_ENGINE_BIN points at another venv's bin/ folder (the
session set-up in tests/conftest.py clears TRAIN_ENGINE_BIN like every other setting).
`tiny_model` builds the tiny Qwen2 model once per session with scripts/make_tiny_model.py."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from app.config import REPO_ROOT, settings
from app.engines import engine_status, resolve_bin_dir, write_dataset_info

TINY_ALPACA = [
    {
        "instruction": f"Tell me about topic {i}.",
        "input": "",
        "output": f"Here is what I know about topic {i}.",
    }
    for i in range(16)
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Overrides the database clean-up of tests/conftest.py: these tests touch no database."""


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


WriteDataset = Callable[[Path], Path]


@pytest.fixture(scope="session")
def write_tiny_alpaca() -> WriteDataset:
    """write(dataset_dir): 16 alpaca rows as `tiny_alpaca`, with dataset_info.json."""

    def write(dataset_dir: Path) -> Path:
        dataset_dir.mkdir(parents=True, exist_ok=True)
        (dataset_dir / "tiny_alpaca.json").write_text(json.dumps(TINY_ALPACA), encoding="utf-8")
        write_dataset_info(dataset_dir, {"tiny_alpaca": {"file_name": "tiny_alpaca.json"}})
        return dataset_dir

    return write
