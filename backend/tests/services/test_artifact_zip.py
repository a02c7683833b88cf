"""Artifact downloads: every file is opened before the zip starts, so a checkpoint that a running
job rotates away mid-download still arrives whole, and one already gone is a 404, never a
partial zip."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from app.exceptions import NotFound
from app.schemas.training import Artifact
from app.services.training_service import ArtifactFiles, open_artifact, zip_stream


def _checkpoint(folder: Path) -> ArtifactFiles:
    folder.mkdir(parents=True)
    contents = {
        "trainer_state.json": b'{"global_step": 6}',
        "optimizer.pt": bytes(range(256)) * 4096,  # 1 MiB: several read chunks
        "nested/rng_state.pth": b"rng",
    }
    files = []
    for name, data in contents.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append((f"checkpoint-6/{name}", path))
    artifact = Artifact(
        name="checkpoint-6", kind="checkpoint", size_bytes=0, file_count=len(files), step=6
    )
    return ArtifactFiles(artifact, files)


def test_a_checkpoint_removed_mid_download_still_zips_whole(tmp_path: Path) -> None:
    item = _checkpoint(tmp_path / "checkpoint-6")
    expected = {arcname: path.read_bytes() for arcname, path in item.files}
    opened = open_artifact(item)
    chunks = zip_stream(opened, chunk=64 * 1024)
    first = next(chunks)
    shutil.rmtree(tmp_path / "checkpoint-6")  # the trainer rotates it away
    body = first + b"".join(chunks)
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    assert {name: archive.read(name) for name in archive.namelist()} == expected
    assert all(entry.handle.closed for entry in opened)


def test_a_checkpoint_already_gone_is_not_found(tmp_path: Path) -> None:
    item = _checkpoint(tmp_path / "checkpoint-6")
    (tmp_path / "checkpoint-6" / "optimizer.pt").unlink()
    with pytest.raises(NotFound) as caught:
        open_artifact(item)
    assert caught.value.code == "artifact_not_found"
