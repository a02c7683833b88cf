"""Chat sessions and messages: persisted turns, non-streaming and streamed (SSE) answers."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.api.deps import get_current_user

router = APIRouter(prefix="/chat", tags=["chat"], dependencies=[Depends(get_current_user)])
