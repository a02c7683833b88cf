"""Chat exports: Markdown, JSON, OpenAI JSONL and ShareGPT files."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Response

from app.api.deps import CurrentUser, SessionDep, get_current_user
from app.api.routing import CommittingRoute
from app.schemas.chat import ExportFormat, ExportRequest
from app.services import chat_export as service
from app.services.chat_export import ExportFile

router = APIRouter(
    route_class=CommittingRoute,
    prefix="/chat",
    tags=["chat"],
    dependencies=[Depends(get_current_user)],
)


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / 5987)."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def attachment(file: ExportFile) -> Response:
    """Send an export as a download."""
    return Response(
        content=file.content.encode("utf-8"),
        media_type=file.media_type,
        headers={
            "Content-Disposition": content_disposition(file.filename),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}}
}


@router.get("/sessions/{session_id}/export", response_class=Response, responses=_FILE_RESPONSES)
def export_session(
    session_id: int,
    user: CurrentUser,
    db: SessionDep,
    format_: Annotated[ExportFormat, Query(alias="format")] = "json",
) -> Response:
    """Download an own session as markdown, json, openai-jsonl or sharegpt."""
    return attachment(service.export_session(db, user, session_id, format_))


@router.post("/export", response_class=Response, responses=_FILE_RESPONSES)
def export_sessions(data: ExportRequest, user: CurrentUser, db: SessionDep) -> Response:
    """Download several own sessions as one file (404 if any is not the caller's)."""
    return attachment(service.export_sessions(db, user, data.session_ids, data.format))
