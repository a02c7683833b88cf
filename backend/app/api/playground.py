"""The playground: stateless streamed chat and side-by-side comparison of up to three configs."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.api.deps import get_current_user

router = APIRouter(
    prefix="/playground", tags=["playground"], dependencies=[Depends(get_current_user)]
)
