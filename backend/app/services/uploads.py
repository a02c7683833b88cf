"""Streamed multipart uploads and files that follow the database.

Uploads are read from the raw request stream with python-multipart's streaming parser rather than
through FastAPI's `UploadFile`: Starlette spools a file part of any size before the route runs,
while here the request is refused as soon as the bytes received (not the Content-Length, which
may lie) pass the caller's limit. The file part goes to a temporary file in the destination
folder (so that the final move is a rename); small text fields are collected. Whatever goes
wrong, including the client hanging up half-way, the temporary file is removed; what a server
killed mid-upload leaves behind is swept at the next start (`sweep_stale_temps`).

A stored file and its row live and die together: `when_settled` runs a callback once the
session's transaction commits or rolls back (remove the new file on rollback, the old one on a
committed delete).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.exceptions import AppError, FieldError, InvalidFields

logger = logging.getLogger(__name__)

FILE_FIELD = "file"
# Room for the multipart framing and a few small form fields around the file.
FORM_OVERHEAD_BYTES = 64 * 1024
MAX_PARTS = 8
TEMP_PREFIX = ".upload-"
# A temporary file not written to for this long belongs to no live upload: one in progress (in
# another worker, say) writes as its bytes arrive, and validating even 2 GiB takes minutes.
STALE_TEMP_S = 3600.0
NAME_MAX = 255
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Characters that are path syntax or reserved on common file systems.
_UNSAFE_NAME_RE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')


# ------------------------------------------------------------------ files follow the DB


def when_settled(
    db: Session,
    *,
    on_commit: Callable[[], None] | None = None,
    on_rollback: Callable[[], None] | None = None,
) -> None:
    """Run one callback when the session's current transaction commits or rolls back."""
    settled = False

    def committed(_session: Session) -> None:
        nonlocal settled
        if not settled:
            settled = True
            if on_commit:
                on_commit()

    def rolled_back(_session: Session) -> None:
        nonlocal settled
        if not settled:
            settled = True
            if on_rollback:
                on_rollback()

    event.listen(db, "after_commit", committed)
    event.listen(db, "after_rollback", rolled_back)


def unlink(path: Path) -> None:
    """Remove a file; a failure is logged, never raised (clean-up must not hide the cause)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        logger.warning("Could not remove %s", path, exc_info=True)


def remove_tree(path: Path) -> None:
    """Remove a folder and everything in it; failures are logged, never raised."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError:
        logger.warning("Could not remove %s", path, exc_info=True)


def sweep_stale_temps(folders: Iterable[Path], older_than_s: float = STALE_TEMP_S) -> int:
    """Remove the upload temporary files (`.upload-*`, directly in `folders`) that have not been
    written to for `older_than_s` seconds: what a server killed mid-upload left behind. Folders
    that do not exist are skipped; failures are logged. Returns how many files were removed."""
    cutoff = time.time() - older_than_s
    removed = 0
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        except OSError:
            logger.warning("Could not list %s", folder, exc_info=True)
            continue
        for entry in entries:
            if not entry.name.startswith(TEMP_PREFIX):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                if entry.stat(follow_symlinks=False).st_mtime > cutoff:
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:
                continue  # its upload finished or failed meanwhile
            except OSError:
                logger.warning("Could not remove %s", entry.path, exc_info=True)
                continue
            removed += 1
    return removed


# ---------------------------------------------------------------------------- file names


def display_filename(raw: bytes) -> str:
    """The client's file name without any folder part or control characters, at most 255
    characters (the extension kept), for display only (never part of a path)."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        name = raw.decode("latin-1")
    name = _CONTROL_RE.sub("", re.split(r"[\\/]", name)[-1]).strip()
    if len(name) <= NAME_MAX:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and len(ext) <= 16:  # keep the extension: it may decide the file type
        return stem[: NAME_MAX - len(ext) - 1] + "." + ext
    return name[:NAME_MAX]


def safe_file_name(name: str, fallback_stem: str, max_length: int = 120) -> str:
    """A name that is safe as the last part of a path: no folder part, no path or reserved
    characters, no leading dots (hidden files, `..`), no trailing dots or spaces, at most
    `max_length` characters with the extension kept. An empty stem becomes `fallback_stem`."""
    name = re.split(r"[\\/]", name)[-1]
    name = _UNSAFE_NAME_RE.sub(" ", name)
    name = re.sub(r"\s+", " ", name).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem = stem.strip(" .")
    ext = ext.strip(" .")[:16]
    suffix = f".{ext}" if ext else ""
    stem = stem[: max(1, max_length - len(suffix))].strip(" .") or fallback_stem
    return stem + suffix


# ---------------------------------------------------------------------- receive upload


@dataclass
class StagedUpload:
    """The file part of an upload, written to a temporary file, plus the small text fields."""

    path: Path
    size: int = 0
    filename: str = ""
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class _FormReader:
    """python-multipart callbacks collecting the file part into a temp file and the other small
    fields into `staged.fields`. Callbacks are synchronous: file data is queued here and
    written by `receive_upload` after each chunk."""

    limit: int
    staged: StagedUpload
    too_large: Callable[[int], AppError]
    noun: str
    on_filename: Callable[[str], None] | None = None
    parts: int = 0
    field_bytes: int = 0
    seen_file: bool = False
    file_complete: bool = False
    _header_name: bytes = b""
    _header_value: bytes = b""
    _disposition: bytes = b""
    _in_file: bool = False
    _field_name: str | None = None
    _field_value: bytearray = field(default_factory=bytearray)
    pending: list[bytes] = field(default_factory=list)

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidFields([FieldError(("body",), f"At most {MAX_PARTS} form parts")])
        self._disposition = b""
        self._in_file = False
        self._field_name = None
        self._field_value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("latin-1")
        if name != FILE_FIELD:
            self._field_name = name
            return
        if self.seen_file:
            raise InvalidFields(
                [FieldError(("body", FILE_FIELD), f"Send one {self.noun} per request")]
            )
        self.seen_file = True
        self._in_file = True
        self.staged.filename = display_filename(options.get(b"filename", b""))
        if self.on_filename is not None:
            # Refuse a wrong file type before its bytes are read.
            self.on_filename(self.staged.filename)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        if self._in_file:
            self.staged.size += size
            if self.staged.size > self.limit:
                raise self.too_large(self.limit)
            self.pending.append(data[start:end])
        else:
            self.field_bytes += size
            if self.field_bytes > FORM_OVERHEAD_BYTES:
                raise InvalidFields([FieldError(("body",), "Form fields are too large")])
            self._field_value += data[start:end]

    def on_part_end(self) -> None:
        if self._in_file:
            self.file_complete = True
        elif self._field_name and self._field_name not in self.staged.fields:
            self.staged.fields[self._field_name] = self._field_value.decode("utf-8", "replace")
        self._in_file = False
        self._field_name = None


def _multipart_boundary(content_type: str | None, noun: str) -> bytes:
    media_type, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise InvalidFields(
            [
                FieldError(
                    ("body", FILE_FIELD),
                    f"Send the {noun} as multipart/form-data in the field '{FILE_FIELD}'",
                    type="missing",
                )
            ]
        )
    return boundary


def _parser(boundary: bytes, reader: _FormReader) -> MultipartParser:
    return MultipartParser(
        boundary,
        {
            "on_part_begin": reader.on_part_begin,
            "on_part_data": reader.on_part_data,
            "on_part_end": reader.on_part_end,
            "on_header_field": reader.on_header_field,
            "on_header_value": reader.on_header_value,
            "on_header_end": reader.on_header_end,
            "on_headers_finished": reader.on_headers_finished,
        },
    )


async def receive_upload(
    *,
    content_type: str | None,
    content_length: str | None,
    chunks: AsyncIterator[bytes],
    folder: Path,
    limit: int,
    too_large: Callable[[int], AppError],
    noun: str = "file",
    on_filename: Callable[[str], None] | None = None,
) -> StagedUpload:
    """Stream the `file` part of a multipart body to a temp file in `folder`, refusing with
    `too_large(limit)` as soon as it passes `limit` bytes; other fields are collected (64 KiB in
    all). `on_filename` may refuse the client's file name (it raises) before the data is read.
    On any failure, the client hanging up included, no file is left behind."""
    body_limit = limit + FORM_OVERHEAD_BYTES
    boundary = _multipart_boundary(content_type, noun)
    if content_length and content_length.strip().isdigit() and int(content_length) > body_limit:
        raise too_large(limit)

    staged = StagedUpload(path=Path())
    reader = _FormReader(
        limit=limit, staged=staged, too_large=too_large, noun=noun, on_filename=on_filename
    )
    try:
        parser = _parser(boundary, reader)
    except FormParserError as exc:
        raise InvalidFields([FieldError(("body",), "Malformed multipart boundary")]) from exc
    os.makedirs(folder, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX)
    staged.path = Path(temp_name)
    received = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                received += len(chunk)
                if received > body_limit:
                    raise too_large(limit)
                parser.write(chunk)
                if reader.pending:
                    # Small writes to local disk; not worth a thread hop per chunk.
                    out.write(b"".join(reader.pending))
                    reader.pending.clear()
            parser.finalize()
        if not reader.seen_file:
            raise InvalidFields([FieldError(("body", FILE_FIELD), "Field required", "missing")])
        if not reader.file_complete:
            raise InvalidFields([FieldError(("body", FILE_FIELD), "The upload was cut short")])
    except FormParserError as exc:
        unlink(staged.path)
        raise InvalidFields([FieldError(("body",), "Malformed multipart body")]) from exc
    except BaseException:
        unlink(staged.path)
        raise
    return staged
