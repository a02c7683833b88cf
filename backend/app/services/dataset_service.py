"""Training datasets: uploads streamed to disk and validated as a stream, datasets made from
chats and model-test votes, and list / read / preview / download / change / delete.

Visibility is part of every query: a user sees their own datasets and shared ones; an admin sees
all. Another user's private dataset answers 404; a shared one that is not theirs may be read but
not changed (403). The file lives at UPLOAD_DIR/datasets/<id>/<sanitised client name> and follows
its row: a failed or refused upload leaves neither, a rolled-back one removes the folder, a
delete removes the folder once the deletion is committed.

Validation runs while the upload request waits, in a worker thread (never on the event loop) and
without holding a database connection: it streams the file once, with flat memory, at about
150 000 JSONL rows per second (bench/dataset_validation.py), so even a file at the 2 GiB limit
answers within a couple of minutes, which its upload takes anyway. A row therefore only ever
exists validated (`ready` or `invalid`), and nothing needs resuming after a restart. The format
rules are in `dataset_formats` (no database).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import ColumnElement, func, or_, select, true
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.config import settings
from app.database import run_then_commit
from app.exceptions import (
    AppError,
    Conflict,
    FieldError,
    InvalidFields,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from app.models import Dataset, User
from app.models.dataset import DATASET_NAME_MAX
from app.schemas.common import Page
from app.schemas.dataset import (
    DatasetDetail,
    DatasetError,
    DatasetFields,
    DatasetPreview,
    DatasetPublic,
    DatasetScope,
    DatasetStats,
    DatasetUpdate,
    FromChatRequest,
    FromTestsRequest,
    PreviewRow,
)
from app.schemas.model_config import OwnerRef
from app.services import chat_export, dataset_formats, model_test_service
from app.services.dataset_formats import ValidationResult
from app.services.uploads import (
    TEMP_PREFIX,
    receive_upload,
    remove_tree,
    safe_file_name,
    unlink,
    when_settled,
)

logger = logging.getLogger(__name__)

MEDIA_TYPES = {
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}
_LIKE_ESCAPE = "\\"


class DatasetTooLarge(PayloadTooLarge):
    code = "dataset_too_large"
    detail = "The dataset file is too large"


class UnsupportedDataset(AppError):
    status_code = 415
    code = "unsupported_dataset"
    detail = "Only .json, .jsonl, .csv and .txt text files are accepted"


class EmptyDataset(AppError):
    status_code = 422
    code = "empty_dataset"
    detail = "The file holds no records"


def _not_found() -> NotFound:
    return NotFound("Dataset not found", code="dataset_not_found")


def datasets_dir() -> Path:
    """Where datasets live; read at call time so a changed setting (tests) takes effect."""
    return settings.UPLOAD_DIR / "datasets"


def dataset_dir(dataset_id: int) -> Path:
    """The folder of one dataset (its id is the only part of the path the server chose)."""
    return datasets_dir() / str(dataset_id)


def dataset_path(row: Dataset) -> Path:
    """The dataset's file (the training-jobs step copies or links it into a job's folder)."""
    return dataset_dir(row.id) / row.file_name


# ----------------------------------------------------------------------- visibility


def _visible(actor: User) -> ColumnElement[bool]:
    if actor.is_admin:
        return true()
    return or_(Dataset.owner_id == actor.id, Dataset.is_shared.is_(True))


def _may_edit(actor: User, row: Dataset) -> bool:
    return actor.is_admin or row.owner_id == actor.id


def to_public(row: Dataset, actor: User) -> DatasetPublic:
    """The list shape of one dataset, as `actor` sees it."""
    return DatasetPublic(
        id=row.id,
        name=row.name,
        description=row.description,
        is_shared=row.is_shared,
        owner=OwnerRef(id=row.owner.id, nickname=row.owner.nickname),
        can_edit=_may_edit(actor, row),
        file_name=row.file_name,
        file_format=row.file_format,
        detected_format=row.detected_format,
        status=row.status,
        rows=row.rows,
        valid_rows=row.valid_rows,
        invalid_rows=row.invalid_rows,
        error_count=row.error_count,
        size_bytes=row.size_bytes,
        source=row.source,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def to_detail(row: Dataset, actor: User) -> DatasetDetail:
    """One dataset with its validation report, as `actor` sees it."""
    return DatasetDetail(
        **to_public(row, actor).model_dump(),
        errors=[DatasetError.model_validate(item) for item in row.errors or []],
        stats=DatasetStats.model_validate(row.stats or {}),
        llamafactory=row.llamafactory,
    )


def _get_visible(db: Session, actor: User, dataset_id: int) -> Dataset:
    row = db.scalar(select(Dataset).where(Dataset.id == dataset_id, _visible(actor)))
    if row is None:
        raise _not_found()
    return row


def _get_editable(db: Session, actor: User, dataset_id: int) -> Dataset:
    row = _get_visible(db, actor, dataset_id)
    if not _may_edit(actor, row):
        raise PermissionDenied("Only the owner or an admin may change this dataset")
    return row


def _release(db: Session) -> None:
    """End the request's read transaction before slow work that needs no database (receiving
    an upload, reading a file): it must not hold a pooled connection. Nothing was written."""
    db.rollback()


# ---------------------------------------------------------------------------- creating


def _too_large(limit: int) -> DatasetTooLarge:
    return DatasetTooLarge(f"The dataset file is larger than {limit} bytes")


def _check_file_name(name: str) -> None:
    if dataset_formats.file_format_of(name) is None:
        raise UnsupportedDataset(
            "Only .json, .jsonl, .csv and .txt files are accepted"
            + (f" (got {name[-60:]!r})" if name else " (the file has no name)")
        )


def _stored_name(client_name: str, file_format: str) -> str:
    """The file's name on disk: the client's name made safe, its extension in lower case."""
    name = safe_file_name(client_name, "dataset")
    stem = name.rpartition(".")[0] or "dataset"
    return f"{stem}.{file_format}"


def _form_fields(raw: dict[str, str]) -> DatasetFields:
    try:
        return DatasetFields.model_validate(
            {key: raw[key] for key in ("name", "description", "is_shared") if key in raw}
        )
    except ValidationError as exc:
        raise InvalidFields(
            [
                FieldError(("body", *error["loc"]), error["msg"], error["type"])
                for error in exc.errors()
            ]
        ) from None


def _validated(path: Path, file_format: str, empty_message: str | None = None) -> ValidationResult:
    """Validate a staged file (blocking: run it in a worker thread). Binary files and files
    without records are refused rather than stored."""
    if dataset_formats.looks_binary(path):
        raise UnsupportedDataset("The file is binary, not UTF-8 text")
    result = dataset_formats.validate_file(path, file_format)
    if result.rows == 0:
        detail = empty_message or "The file holds no records"
        if result.errors:
            first = result.errors[0]
            detail += f" (line {first['line']}: {first['message']})"
        raise EmptyDataset(detail)
    return result


def _default_name(file_name: str) -> str:
    stem = file_name.rpartition(".")[0] or file_name
    return stem[:DATASET_NAME_MAX].strip() or "dataset"


def _store(
    db: Session,
    actor: User,
    *,
    staged: Path,
    file_name: str,
    fields: DatasetFields,
    result: ValidationResult,
    source: str,
) -> DatasetDetail:
    """Insert the row and move the staged file into the dataset's folder; on any failure, or
    when the request's transaction rolls back later, no file stays behind."""
    folder: Path | None = None
    try:
        size = staged.stat().st_size
        row = Dataset(
            owner_id=actor.id,
            name=fields.name or _default_name(file_name),
            description=fields.description,
            is_shared=fields.is_shared,
            file_name=file_name,
            file_format=result.file_format,
            detected_format=result.detected_format,
            status=result.status,
            rows=result.rows,
            valid_rows=result.valid_rows,
            invalid_rows=result.invalid_rows,
            errors=result.errors,
            error_count=result.error_count,
            stats=result.stats,
            llamafactory=result.llamafactory,
            size_bytes=size,
            source=source,
        )
        db.add(row)
        db.flush()
        folder = dataset_dir(row.id)
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(staged, folder / file_name)
    except BaseException:
        unlink(staged)
        if folder is not None:
            remove_tree(folder)
        raise
    stored = folder
    when_settled(db, on_rollback=lambda: remove_tree(stored))
    return to_detail(row, actor)


async def upload_dataset(
    db: Session,
    actor: User,
    *,
    content_type: str | None,
    content_length: str | None,
    chunks: AsyncIterator[bytes],
) -> DatasetDetail:
    """Receive a multipart upload (field `file`; optional `name`, `description`, `is_shared`),
    validate it and store it for `actor`."""
    await run_in_threadpool(_release, db)
    staged = await receive_upload(
        content_type=content_type,
        content_length=content_length,
        chunks=chunks,
        folder=datasets_dir(),
        limit=settings.DATASET_MAX_BYTES,
        too_large=_too_large,
        noun="dataset file",
        on_filename=_check_file_name,
    )
    try:
        fields = _form_fields(staged.fields)
        file_format = dataset_formats.file_format_of(staged.filename)
        assert file_format is not None  # _check_file_name let it through
        file_name = _stored_name(staged.filename, file_format)
        result = await run_in_threadpool(_validated, staged.path, file_format)
    except BaseException:
        unlink(staged.path)
        raise
    return await run_then_commit(
        db,
        lambda: _store(
            db,
            actor,
            staged=staged.path,
            file_name=file_name,
            fields=fields,
            result=result,
            source="upload",
        ),
    )


def _create_from_text(
    db: Session,
    actor: User,
    *,
    content: str,
    file_name: str,
    fields: DatasetFields,
    source: str,
    empty_message: str,
) -> DatasetDetail:
    file_format = dataset_formats.file_format_of(file_name)
    assert file_format is not None
    folder = datasets_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX)
    staged = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content.encode("utf-8"))
        # The same rules as an upload: what a job reads has always been through them.
        result = _validated(staged, file_format, empty_message)
    except BaseException:
        unlink(staged)
        raise
    return _store(
        db, actor, staged=staged, file_name=file_name, fields=fields, result=result, source=source
    )


def create_from_chat(db: Session, actor: User, data: FromChatRequest) -> DatasetDetail:
    """A ShareGPT dataset from own chat sessions (404 if any is not the actor's)."""
    export = chat_export.export_sessions(db, actor, data.session_ids, "sharegpt")
    return _create_from_text(
        db,
        actor,
        content=export.content,
        file_name=_stored_name(export.filename, "json"),
        fields=data,
        source="chat",
        empty_message="The chats hold no complete question and answer",
    )


def create_from_tests(db: Session, actor: User, data: FromTestsRequest) -> DatasetDetail:
    """A preference (dpo) or alpaca (sft) dataset from own saved comparisons."""
    filename, content = model_test_service.export_tests(db, actor, data.kind, data.test_ids)
    what = (
        "preference pairs (pick a winner or rate the answers differently)"
        if data.kind == "dpo"
        else "winning answers (pick a winner or rate the answers)"
    )
    return _create_from_text(
        db,
        actor,
        content=content,
        file_name=_stored_name(filename, "jsonl"),
        fields=data,
        source="tests",
        empty_message=f"The comparisons give no {what}",
    )


# ------------------------------------------------------------------------------ reading


def _like_pattern(text: str) -> str:
    escaped = text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def list_datasets(
    db: Session,
    actor: User,
    *,
    page: int,
    size: int,
    scope: DatasetScope = "all",
    q: str | None = None,
    status: str | None = None,
    detected_format: str | None = None,
) -> Page[DatasetPublic]:
    """Own and shared datasets (admins: all), last changed first; filterable."""
    conditions: list[ColumnElement[bool]] = [_visible(actor)]
    if scope == "mine":
        conditions.append(Dataset.owner_id == actor.id)
    elif scope == "shared":
        conditions.append(Dataset.is_shared.is_(True))
    if q and q.strip():
        conditions.append(
            func.lower(Dataset.name).like(_like_pattern(q.strip()), escape=_LIKE_ESCAPE)
        )
    if status:
        conditions.append(Dataset.status == status)
    if detected_format:
        conditions.append(Dataset.detected_format == detected_format)
    total = db.scalar(select(func.count()).select_from(Dataset).where(*conditions)) or 0
    rows = db.scalars(
        select(Dataset)
        .where(*conditions)
        .order_by(Dataset.updated_at.desc(), Dataset.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    ).all()
    return Page(items=[to_public(row, actor) for row in rows], total=total, page=page, size=size)


def get_dataset(db: Session, actor: User, dataset_id: int) -> DatasetDetail:
    """One dataset the actor may see, with its validation report."""
    return to_detail(_get_visible(db, actor, dataset_id), actor)


def _existing_file(row: Dataset) -> Path:
    path = dataset_path(row)
    if not path.is_file():
        logger.warning("Dataset %s has a row but no file", row.id)
        raise _not_found()
    return path


def preview_dataset(
    db: Session, actor: User, dataset_id: int, *, offset: int, limit: int
) -> DatasetPreview:
    """Records offset .. offset+limit-1 of a visible dataset, in file order."""
    row = _get_visible(db, actor, dataset_id)
    path, file_format, rows = _existing_file(row), row.file_format, row.rows
    _release(db)
    items, has_more = dataset_formats.preview(path, file_format, offset, limit)
    return DatasetPreview(
        items=[PreviewRow(line=i.line, record=i.record, error=i.error) for i in items],
        offset=offset,
        limit=limit,
        has_more=has_more,
        rows=rows,
    )


@dataclass(frozen=True)
class DatasetFile:
    path: Path
    media_type: str
    download_name: str


def dataset_file(db: Session, actor: User, dataset_id: int) -> DatasetFile:
    """The stored file of a visible dataset."""
    row = _get_visible(db, actor, dataset_id)
    return DatasetFile(_existing_file(row), MEDIA_TYPES[row.file_format], row.file_name)


# ----------------------------------------------------------------------- change / delete


def update_dataset(db: Session, actor: User, dataset_id: int, data: DatasetUpdate) -> DatasetDetail:
    """Rename, describe, share or unshare (owner or admin)."""
    row = _get_editable(db, actor, dataset_id)
    for key, value in data.model_dump(exclude_unset=True).items():
        setattr(row, key, value)
    db.flush()
    return to_detail(row, actor)


def _running_jobs_using(db: Session, dataset_id: int) -> int:
    """How many queued or running training jobs will read this dataset."""
    from app.services.training_service import jobs_using_dataset

    return jobs_using_dataset(db, dataset_id)


def delete_dataset(db: Session, actor: User, dataset_id: int) -> None:
    """Delete a dataset (owner or admin) unless a running job uses it (409 dataset_in_use);
    the folder goes once the deletion is committed."""
    row = _get_editable(db, actor, dataset_id)
    running = _running_jobs_using(db, row.id)
    if running:
        raise Conflict(
            f"{running} queued or running training job(s) use this dataset; cancel them first",
            code="dataset_in_use",
        )
    folder = dataset_dir(row.id)
    db.delete(row)
    db.flush()
    when_settled(db, on_commit=lambda: remove_tree(folder))


def remove_files_of_owner(db: Session, owner_id: int) -> None:
    """Call before deleting a user (their rows go by ON DELETE CASCADE, which knows nothing of
    files): their dataset folders are removed once that deletion is committed."""
    ids = db.scalars(select(Dataset.id).where(Dataset.owner_id == owner_id)).all()
    folders = [dataset_dir(dataset_id) for dataset_id in ids]

    def remove() -> None:
        for folder in folders:
            remove_tree(folder)

    if folders:
        when_settled(db, on_commit=remove)
