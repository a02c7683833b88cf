"""Chat sessions and messages: persisted turns, non-streaming and streamed (SSE) answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.concurrency import run_in_threadpool

from app.api.deps import CurrentUser, SessionDep, get_current_user
from app.api.routing import CommittingRoute
from app.api.sse import SSEResponse
from app.schemas.chat import (
    PAGE_LIMIT_MAX,
    ChatMessagePublic,
    ChatRequest,
    ChatResponse,
    ChatSessionCreate,
    ChatSessionDetail,
    ChatSessionPublic,
    ChatSessionUpdate,
    MessageCreate,
    MessagePage,
    StreamRequest,
)
from app.schemas.common import Page
from app.services import chat_service as service
from app.services import chat_stream
from app.services.chat_service import PreparedCall

router = APIRouter(
    route_class=CommittingRoute,
    prefix="/chat",
    tags=["chat"],
    dependencies=[Depends(get_current_user)],
)

Limit = Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)]


@router.get("/sessions", response_model=Page[ChatSessionPublic])
def list_sessions(
    user: CurrentUser,
    db: SessionDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[ChatSessionPublic]:
    """The caller's sessions, most recently active first; q searches titles and messages."""
    return service.list_sessions(db, user, page=page, size=size, q=q)


@router.post("/sessions", response_model=ChatSessionPublic, status_code=status.HTTP_201_CREATED)
def create_session(data: ChatSessionCreate, user: CurrentUser, db: SessionDep) -> ChatSessionPublic:
    """Start a session (title from the first message when not given)."""
    return service.create_session(db, user, data)


@router.get("/sessions/{session_id}", response_model=ChatSessionDetail)
def get_session(
    session_id: int, user: CurrentUser, db: SessionDep, limit: Limit = 50
) -> ChatSessionDetail:
    """A session with its newest messages (older ones: /messages?before=)."""
    return service.get_session(db, user, session_id, limit=limit)


@router.get("/sessions/{session_id}/messages", response_model=MessagePage)
def list_messages(
    session_id: int,
    user: CurrentUser,
    db: SessionDep,
    before: Annotated[int | None, Query(ge=1)] = None,
    limit: Limit = 50,
) -> MessagePage:
    """Messages older than `before` (a message id), oldest first."""
    return service.list_messages(db, user, session_id, before=before, limit=limit)


@router.patch("/sessions/{session_id}", response_model=ChatSessionPublic)
def update_session(
    session_id: int, data: ChatSessionUpdate, user: CurrentUser, db: SessionDep
) -> ChatSessionPublic:
    """Rename a session or change its model config / system prompt."""
    return service.update_session(db, user, session_id, data)


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_session(session_id: int, user: CurrentUser, db: SessionDep) -> Response:
    """Delete a session and all its messages."""
    service.delete_session(db, user, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/sessions/{session_id}/stream", response_class=SSEResponse)
async def stream(
    session_id: int, data: StreamRequest, user: CurrentUser, db: SessionDep
) -> SSEResponse:
    """Send a turn (or regenerate the last answer) and stream the answer as SSE; the user turn
    is saved first, the answer once at the end (also when cut short: interrupted / error)."""
    user_id = user.id
    # The user was read in the request's session; end that transaction (the stream may run for
    # minutes) in the same thread hop that writes the turn in its own short session.
    turn = await run_in_threadpool(service.prepare_turn, user_id, session_id, data, db)
    return SSEResponse(chat_stream.session_stream(turn))


@router.post("/messages", response_model=ChatMessagePublic, status_code=status.HTTP_201_CREATED)
def add_message(data: MessageCreate, user: CurrentUser, db: SessionDep) -> ChatMessagePublic:
    """Store a turn produced elsewhere (write-back for clients that streamed it themselves)."""
    return service.add_message(db, user, data)


@router.post("/", response_model=ChatResponse)
async def chat(data: ChatRequest, user: CurrentUser, db: SessionDep) -> ChatResponse:
    """A whole answer at once: for messages with a config, or a new turn in a session (both
    turns saved). Provider failures answer 502 / 504 with the provider's reason."""
    if data.session_id is not None:
        user_id = user.id
        request = StreamRequest(
            content=data.content,
            image_ids=data.image_ids,
            model_config_id=data.model_config_id,
            system_prompt_id=data.system_prompt_id,
            params=data.params,
        )
        turn = await run_in_threadpool(service.prepare_turn, user_id, data.session_id, request, db)
        return await chat_stream.complete_turn(turn)
    assert data.messages is not None and data.model_config_id is not None  # the validator's
    messages, config_id = data.messages, data.model_config_id

    def prepare() -> PreparedCall:
        call = service.prepare_call(
            db,
            user,
            config_id,
            messages,
            system_prompt=data.system_prompt,
            system_prompt_id=data.system_prompt_id,
            extra_image_ids=data.image_ids,
            overrides=data.params,
        )
        db.rollback()  # the read is over; the answer may take minutes
        return call

    return await chat_stream.complete_call(await run_in_threadpool(prepare))
