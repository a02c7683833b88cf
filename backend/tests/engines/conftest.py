"""Fixtures for the engine tests (no database). `engine_bin` and `tiny_model` come from
tests/engine_fixtures.py (shared with the API tests that train for real)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from app.engines import write_dataset_info
from tests.engine_fixtures import configured_engine_bin, engine_bin, tiny_model

__all__ = ["configured_engine_bin", "engine_bin", "tiny_model"]

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
