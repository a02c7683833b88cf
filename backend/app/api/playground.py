"""The playground: stateless streamed chat and side-by-side comparison of up to three configs."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.api.deps import CurrentUser, SessionDep, get_current_user
from app.api.routing import CommittingRoute
from app.api.sse import SSEResponse
from app.models import User
from app.schemas.chat import (
    CompareMetrics,
    CompareRequest,
    CompareResponse,
    CompareResult,
    PlaygroundRequest,
)
from app.services import chat_service, chat_stream
from app.services.chat_service import PreparedCall

router = APIRouter(
    route_class=CommittingRoute,
    prefix="/playground",
    tags=["playground"],
    dependencies=[Depends(get_current_user)],
)


def _prepare_compare(db: Session, user: User, data: CompareRequest) -> list[PreparedCall]:
    calls = [
        chat_service.prepare_call(
            db,
            user,
            config_id,
            data.messages,
            system_prompt=data.system_prompt,
            extra_image_ids=list(data.image_ids),
            overrides=data.params,
        )
        for config_id in data.model_config_ids
    ]
    db.rollback()  # the read is over; the models may take minutes
    return calls


@router.post("/chat/stream", response_class=SSEResponse)
async def chat_stream_route(
    data: PlaygroundRequest, user: CurrentUser, db: SessionDep
) -> SSEResponse:
    """Stream one answer as SSE without saving anything."""

    def prepare() -> PreparedCall:
        call = chat_service.prepare_call(
            db,
            user,
            data.model_config_id,
            data.messages,
            system_prompt=data.system_prompt,
            overrides=data.params,
        )
        db.rollback()
        return call

    call = await run_in_threadpool(prepare)
    return SSEResponse(chat_stream.playground_stream(call))


@router.post("/compare/stream", response_class=SSEResponse)
async def compare_stream(data: CompareRequest, user: CurrentUser, db: SessionDep) -> SSEResponse:
    """Send one conversation to 1-3 configs at once; one SSE stream, events tagged model_index,
    each model ending with its metrics (or its error); the others go on when one fails."""
    calls = await run_in_threadpool(_prepare_compare, db, user, data)
    return SSEResponse(chat_stream.compare_stream(calls))


@router.post("/compare", response_model=CompareResponse)
async def compare(data: CompareRequest, user: CurrentUser, db: SessionDep) -> CompareResponse:
    """The comparison answered whole: every model's result (or error) with metrics."""
    calls = await run_in_threadpool(_prepare_compare, db, user, data)
    results = await chat_stream.compare_all(calls)
    return CompareResponse(
        results=[
            CompareResult(
                model_index=index,
                model_config_id=call.target.config_id,
                config_name=call.target.name,
                model=call.target.model,
                content=result.answer.content,
                reasoning=result.answer.reasoning,
                error=(
                    {
                        "code": result.answer.error_code or "provider_error",
                        "message": result.answer.error or "",
                    }
                    if result.answer.status == "error"
                    else None
                ),
                metrics=(
                    CompareMetrics(**{k: v for k, v in result.metrics.items() if k != "type"})
                    if result.metrics
                    else None
                ),
            )
            for index, (call, result) in enumerate(zip(calls, results, strict=True))
        ]
    )
