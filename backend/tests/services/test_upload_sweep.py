"""Upload temporary files left by a server killed mid-upload are removed at the next start; a
file an upload in progress is still writing, and every stored file, are kept."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.services import uploads
from app.services.dataset_service import datasets_dir
from app.services.image_service import images_dir


def _file(path: Path, age_s: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'{"instruction": "hi", "output": "hello"}\n')
    if age_s:
        stamp = time.time() - age_s
        os.utime(path, (stamp, stamp))
    return path


def test_only_stale_temp_files_are_removed(tmp_path: Path) -> None:
    hour = uploads.STALE_TEMP_S
    stale = [
        _file(tmp_path / "a" / ".upload-k1", hour + 60),
        _file(tmp_path / "b" / ".upload-k2", 5 * hour),
    ]
    kept = [
        _file(tmp_path / "a" / ".upload-live", 30),  # an upload in progress elsewhere
        _file(tmp_path / "a" / "notes.jsonl", 5 * hour),  # not a temp file
        _file(tmp_path / "a" / "7" / ".upload-deep", 5 * hour),  # not directly in the folder
    ]
    (tmp_path / "b" / ".upload-dir").mkdir()  # a folder with the prefix is left alone
    os.utime(tmp_path / "b" / ".upload-dir", (0, 0))

    removed = uploads.sweep_stale_temps([tmp_path / "a", tmp_path / "b", tmp_path / "missing"])

    assert removed == 2
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)
    assert (tmp_path / "b" / ".upload-dir").is_dir()
    assert uploads.sweep_stale_temps([tmp_path / "a", tmp_path / "b"]) == 0


def test_a_file_that_cannot_be_removed_is_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = _file(tmp_path / ".upload-stuck", 2 * uploads.STALE_TEMP_S)
    other = _file(tmp_path / ".upload-gone", 2 * uploads.STALE_TEMP_S)
    real_unlink = os.unlink

    def unlink(path: str) -> None:  # as for a file in a folder the server may not write
        if path == str(stuck):
            raise PermissionError(13, "Permission denied", path)
        real_unlink(path)

    monkeypatch.setattr(uploads.os, "unlink", unlink)
    with caplog.at_level(logging.WARNING, logger="app.services.uploads"):
        removed = uploads.sweep_stale_temps([tmp_path])
    assert removed == 1 and stuck.exists() and not other.exists()
    assert f"Could not remove {stuck}" in caplog.text


def test_the_server_start_sweeps_both_upload_folders(app: FastAPI) -> None:
    age = uploads.STALE_TEMP_S + 60
    datasets_dir().mkdir(parents=True, exist_ok=True)
    # A folder of its own, like a stored dataset's (never one a real dataset of the run may own).
    folder = Path(tempfile.mkdtemp(dir=datasets_dir(), prefix="sweep-"))
    stale = [_file(datasets_dir() / ".upload-crash1", age), _file(images_dir() / ".upload-c2", age)]
    live = _file(datasets_dir() / ".upload-live")
    stored = _file(folder / "train.jsonl", age)
    try:
        with TestClient(app) as client:
            assert client.get("/health").status_code == 200
        assert not any(path.exists() for path in stale)
        assert live.exists() and stored.exists()
    finally:
        live.unlink(missing_ok=True)
        shutil.rmtree(folder)
