"""Images uploaded for vision models: streamed to disk under a size limit, checked by content
with Pillow, stored as UPLOAD_DIR/images/<id>, served to their owner only.

The upload is read from the raw request stream with python-multipart's streaming parser rather
than through FastAPI's `UploadFile`: Starlette spools a file part of any size before the route
runs, while here the request is refused as soon as the bytes received (not the Content-Length,
which may lie) pass IMAGE_MAX_BYTES. A file and its row live and die together: a failed upload
leaves neither, a rolled-back upload removes the file, a delete removes the file once the
deletion is committed.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy import event, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.config import settings
from app.database import run_then_commit
from app.exceptions import AppError, FieldError, InvalidFields, NotFound, PayloadTooLarge
from app.models import UploadedImage, User
from app.models.media import IMAGE_TYPES
from app.schemas.model_test import ImagePublic

logger = logging.getLogger(__name__)

FILE_FIELD = "file"
# Room for the multipart framing and a few small form fields around the file.
FORM_OVERHEAD_BYTES = 64 * 1024
MAX_PARTS = 8
# Decoded size guard (a small PNG can expand to gigabytes): ~32 megapixels, e.g. 8192 x 4096,
# well above what vision models accept, and at most ~128 MB while decoding.
MAX_PIXELS = 32 * 1024 * 1024
# Pillow calls a multi-picture JPEG (what many phone cameras write) "MPO".
_FORMAT_ALIASES = {"MPO": "JPEG"}
_PILLOW_FORMATS = (*IMAGE_TYPES, "MPO")
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_NAME_MAX = 255
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class ImageTooLarge(PayloadTooLarge):
    code = "image_too_large"
    detail = "The image is too large"


class UnsupportedImage(AppError):
    status_code = 415
    code = "unsupported_image"
    detail = "The file is not a PNG, JPEG, WebP or GIF image"


def _not_found() -> NotFound:
    return NotFound("Image not found", code="image_not_found")


def images_dir() -> Path:
    """Where images live; read at call time so a changed setting (tests) takes effect."""
    return settings.UPLOAD_DIR / "images"


def _path_of(image_id: str) -> Path:
    # Ids are generated here (32 hex); the check keeps any other string from becoming a path.
    if not _ID_RE.match(image_id):
        raise _not_found()
    return images_dir() / image_id


def to_public(row: UploadedImage) -> ImagePublic:
    """The response shape of one image."""
    return ImagePublic(
        id=row.id,
        mime_type=row.mime_type,
        size_bytes=row.size_bytes,
        width=row.width,
        height=row.height,
        url=f"/api/model/images/{row.id}",
    )


# ------------------------------------------------------------------ files follow the DB


def _when_settled(
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


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        logger.warning("Could not remove %s", path, exc_info=True)


# ---------------------------------------------------------------------- receive upload


@dataclass
class _StagedUpload:
    """The file part of an upload, written to a temporary file in the images folder."""

    path: Path
    size: int = 0
    filename: str = ""


@dataclass
class _FormReader:
    """python-multipart callbacks collecting the `file` part into a temp file; other small
    fields are read and dropped. Callbacks are synchronous: file data is queued here and
    written by `receive_upload` after each chunk."""

    limit: int
    staged: _StagedUpload
    parts: int = 0
    field_bytes: int = 0
    seen_file: bool = False
    file_complete: bool = False
    _header_name: bytes = b""
    _header_value: bytes = b""
    _disposition: bytes = b""
    _in_file: bool = False
    pending: list[bytes] = field(default_factory=list)

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidFields([FieldError(("body",), f"At most {MAX_PARTS} form parts")])
        self._disposition = b""
        self._in_file = False

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
            return
        if self.seen_file:
            raise InvalidFields([FieldError(("body", FILE_FIELD), "Send one image per request")])
        self.seen_file = True
        self._in_file = True
        raw_name = options.get(b"filename", b"")
        self.staged.filename = _clean_filename(raw_name)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        if self._in_file:
            self.staged.size += size
            if self.staged.size > self.limit:
                raise _too_large(self.limit)
            self.pending.append(data[start:end])
        else:
            self.field_bytes += size
            if self.field_bytes > FORM_OVERHEAD_BYTES:
                raise InvalidFields([FieldError(("body",), "Form fields are too large")])

    def on_part_end(self) -> None:
        if self._in_file:
            self.file_complete = True
        self._in_file = False


def _clean_filename(raw: bytes) -> str:
    """The client's file name, kept for display only (never part of a path)."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        name = raw.decode("latin-1")
    name = re.split(r"[\\/]", name)[-1]
    return _CONTROL_RE.sub("", name).strip()[:_NAME_MAX]


def _too_large(limit: int) -> ImageTooLarge:
    return ImageTooLarge(f"The image is larger than {limit} bytes")


def _multipart_boundary(content_type: str | None) -> bytes:
    media_type, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise InvalidFields(
            [
                FieldError(
                    ("body", FILE_FIELD),
                    f"Send the image as multipart/form-data in the field '{FILE_FIELD}'",
                    type="missing",
                )
            ]
        )
    return boundary


async def _receive_upload(
    content_type: str | None, content_length: str | None, chunks: AsyncIterator[bytes]
) -> _StagedUpload:
    """Stream the `file` part to a temp file, refusing as soon as it passes the limit."""
    limit = settings.IMAGE_MAX_BYTES
    body_limit = limit + FORM_OVERHEAD_BYTES
    boundary = _multipart_boundary(content_type)
    if content_length and content_length.strip().isdigit() and int(content_length) > body_limit:
        raise _too_large(limit)

    staged = _StagedUpload(path=Path())
    reader = _FormReader(limit=limit, staged=staged)
    try:
        parser = _parser(boundary, reader)
    except FormParserError as exc:
        raise InvalidFields([FieldError(("body",), "Malformed multipart boundary")]) from exc
    folder = images_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=".upload-")
    staged.path = Path(temp_name)
    received = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                received += len(chunk)
                if received > body_limit:
                    raise _too_large(limit)
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
        _unlink(staged.path)
        raise InvalidFields([FieldError(("body",), "Malformed multipart body")]) from exc
    except BaseException:
        _unlink(staged.path)
        raise
    return staged


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


# ------------------------------------------------------------------------ check and store


@dataclass(frozen=True)
class _ImageInfo:
    mime_type: str
    width: int
    height: int


def _inspect(path: Path) -> _ImageInfo:
    """Identify the image by its content and decode it once; anything else is refused."""
    try:
        with Image.open(path, formats=_PILLOW_FORMATS) as img:
            fmt = _FORMAT_ALIASES.get(img.format or "", img.format or "")
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ImageTooLarge(
                    f"The image has {width}x{height} pixels; at most {MAX_PIXELS} are accepted"
                )
            img.verify()
        # verify() checks structure only (for JPEG, nothing): a full decode proves the data.
        with Image.open(path, formats=_PILLOW_FORMATS) as img:
            img.load()
    except AppError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge("The image has too many pixels") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImage() from exc
    except Exception as exc:  # any decoder failure means a broken file
        raise UnsupportedImage("The image is damaged or truncated") from exc
    if fmt not in IMAGE_TYPES:
        raise UnsupportedImage()
    return _ImageInfo(mime_type=IMAGE_TYPES[fmt], width=width, height=height)


def _store(db: Session, actor: User, staged: _StagedUpload) -> ImagePublic:
    final: Path | None = None
    try:
        info = _inspect(staged.path)
        image_id = secrets.token_hex(16)
        final = images_dir() / image_id
        os.replace(staged.path, final)
        row = UploadedImage(
            id=image_id,
            owner_id=actor.id,
            original_name=staged.filename,
            mime_type=info.mime_type,
            size_bytes=staged.size,
            width=info.width,
            height=info.height,
        )
        db.add(row)
        db.flush()
    except BaseException:
        _unlink(staged.path)
        if final is not None:
            _unlink(final)
        raise
    # The request commits later; if that fails the row is gone, so must the file be.
    stored = final
    _when_settled(db, on_rollback=lambda: _unlink(stored))
    return to_public(row)


def _release(db: Session) -> None:
    """End the read transaction of the auth check: a slow upload must not hold a pooled
    connection. Nothing was written, so nothing is lost; the store opens a new transaction
    that the request's session dependency commits as usual."""
    db.rollback()


async def upload_image(
    db: Session,
    actor: User,
    *,
    content_type: str | None,
    content_length: str | None,
    chunks: AsyncIterator[bytes],
) -> ImagePublic:
    """Receive a multipart upload (field `file`), check it and store it for `actor`."""
    await run_in_threadpool(_release, db)
    staged = await _receive_upload(content_type, content_length, chunks)
    return await run_then_commit(db, _store, db, actor, staged)


# ------------------------------------------------------------------------- read / delete


def _get_owned(db: Session, actor: User, image_id: str) -> UploadedImage:
    if not _ID_RE.match(image_id):
        raise _not_found()
    row = db.scalar(
        select(UploadedImage).where(
            UploadedImage.id == image_id, UploadedImage.owner_id == actor.id
        )
    )
    if row is None:
        raise _not_found()
    return row


@dataclass(frozen=True)
class ImageFile:
    path: Path
    mime_type: str
    download_name: str


def image_file(db: Session, actor: User, image_id: str) -> ImageFile:
    """The stored file of an image the actor owns."""
    row = _get_owned(db, actor, image_id)
    path = _path_of(row.id)
    if not path.is_file():
        logger.warning("Image %s has a row but no file", row.id)
        raise _not_found()
    return ImageFile(path, row.mime_type, f"{row.id}.{_EXTENSIONS.get(row.mime_type, 'bin')}")


def delete_image(db: Session, actor: User, image_id: str) -> None:
    """Delete an own image; the file goes once the deletion is committed."""
    row = _get_owned(db, actor, image_id)
    path = _path_of(row.id)
    db.delete(row)
    db.flush()
    _when_settled(db, on_commit=lambda: _unlink(path))


def require_owned(db: Session, actor: User, image_ids: Sequence[str]) -> list[UploadedImage]:
    """The rows of `image_ids` in the given order; 404 `image_not_found` if any is not the
    actor's (or does not exist)."""
    wanted = set(image_ids)
    if not wanted:
        return []
    if any(not _ID_RE.match(image_id) for image_id in wanted):
        raise _not_found()
    rows = db.scalars(
        select(UploadedImage).where(
            UploadedImage.id.in_(wanted), UploadedImage.owner_id == actor.id
        )
    ).all()
    by_id = {row.id: row for row in rows}
    if len(by_id) != len(wanted):
        raise _not_found()
    return [by_id[image_id] for image_id in image_ids]


def load_data_urls(db: Session, actor: User, image_ids: list[str]) -> list[str]:
    """`data:<mime>;base64,...` URLs of the actor's images, in the given order, for sending to
    vision models; 404 `image_not_found` if any is not the actor's or its file is gone."""
    urls: list[str] = []
    for row in require_owned(db, actor, image_ids):
        try:
            data = _path_of(row.id).read_bytes()
        except FileNotFoundError:
            logger.warning("Image %s has a row but no file", row.id)
            raise _not_found() from None
        urls.append(f"data:{row.mime_type};base64,{base64.b64encode(data).decode('ascii')}")
    return urls
