"""Images uploaded for vision models: streamed to disk under a size limit, checked by content
with Pillow, stored as UPLOAD_DIR/images/<id>, served to their owner only.

The upload is streamed by `uploads.receive_upload` (python-multipart over the raw request
stream) and refused as soon as the bytes received pass IMAGE_MAX_BYTES. A file and its row live
and die together: a failed upload leaves neither, a rolled-back upload removes the file, a
delete removes the file once the deletion is committed.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.config import settings
from app.database import run_then_commit
from app.exceptions import AppError, NotFound, PayloadTooLarge
from app.models import UploadedImage, User
from app.models.media import IMAGE_TYPES
from app.schemas.model_test import ImagePublic
from app.services.uploads import StagedUpload, receive_upload, unlink, when_settled

logger = logging.getLogger(__name__)

# Decoded size guard (a small PNG can expand to gigabytes): ~32 megapixels, e.g. 8192 x 4096,
# well above what vision models accept, and at most ~128 MB while decoding.
MAX_PIXELS = 32 * 1024 * 1024
# Pillow calls a multi-picture JPEG (what many phone cameras write) "MPO".
_FORMAT_ALIASES = {"MPO": "JPEG"}
_PILLOW_FORMATS = (*IMAGE_TYPES, "MPO")
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


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


# ---------------------------------------------------------------------- receive upload

# The tests build one by hand.
_StagedUpload = StagedUpload


def _too_large(limit: int) -> ImageTooLarge:
    return ImageTooLarge(f"The image is larger than {limit} bytes")


async def _receive_upload(
    content_type: str | None, content_length: str | None, chunks: AsyncIterator[bytes]
) -> StagedUpload:
    """Stream the `file` part to a temp file, refusing as soon as it passes the limit."""
    return await receive_upload(
        content_type=content_type,
        content_length=content_length,
        chunks=chunks,
        folder=images_dir(),
        limit=settings.IMAGE_MAX_BYTES,
        too_large=_too_large,
        noun="image",
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


def _store(db: Session, actor: User, staged: StagedUpload) -> ImagePublic:
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
        unlink(staged.path)
        if final is not None:
            unlink(final)
        raise
    # The request commits later; if that fails the row is gone, so must the file be.
    stored = final
    when_settled(db, on_rollback=lambda: unlink(stored))
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
    when_settled(db, on_commit=lambda: unlink(path))


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


def remove_files_of_owner(db: Session, owner_id: int) -> None:
    """Call before deleting a user (their rows go by ON DELETE CASCADE, which knows nothing of
    files): their image files are removed once that deletion is committed."""
    ids = db.scalars(select(UploadedImage.id).where(UploadedImage.owner_id == owner_id)).all()
    paths = [_path_of(image_id) for image_id in ids]

    def remove() -> None:
        for path in paths:
            unlink(path)

    if paths:
        when_settled(db, on_commit=remove)
