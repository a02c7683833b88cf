"""Chat sessions and messages: what is stored, who may see it, and what a new turn sends.

Sessions are private to their user (admins included: a chat is personal), so every query
filters on the acting user and another user's session answers 404.

Writes around a model call never hold a transaction open while the provider answers: the user
turn is written and committed in its own short session before the call (`prepare_turn`), the
answer in one more after it (`save_answer`, called by chat_stream) — one write per completion,
none per chunk. Counters and the preview live on the session row, so an append costs the same
in a session of ten messages as in one of ten thousand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from app.database import session_scope, utcnow
from app.exceptions import Conflict, FieldError, InvalidFields, NotFound
from app.llm_core import ChatMessage, GenerationParams, ImagePart, TextPart
from app.models import User
from app.models.chat import PREVIEW_MAX, TITLE_MAX, ChatMessageRow, ChatSession
from app.schemas.chat import (
    ChatMessagePublic,
    ChatSessionCreate,
    ChatSessionDetail,
    ChatSessionPublic,
    ChatSessionUpdate,
    GenerationOverrides,
    InputMessage,
    MessageCreate,
    MessagePage,
    StreamRequest,
)
from app.schemas.common import Page
from app.services import image_service, model_config_service, prompt_service
from app.services.model_config_service import ChatTarget

# Turns sent to the model as context with each new one (the newest; older ones stay stored).
CONTEXT_MESSAGES = 50
TITLE_FROM_MESSAGE = 50
_LIKE_ESCAPE = "\\"


# ------------------------------------------------------------------------ shapes


def session_public(row: ChatSession) -> ChatSessionPublic:
    return ChatSessionPublic(
        id=row.id,
        title=row.title,
        model_config_id=row.model_config_id,
        system_prompt_id=row.system_prompt_id,
        message_count=row.message_count,
        last_message_preview=row.last_message_preview,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def message_public(row: ChatMessageRow) -> ChatMessagePublic:
    return ChatMessagePublic(
        id=row.id,
        session_id=row.session_id,
        role=row.role,
        content=row.content,
        reasoning=row.reasoning,
        status=row.status,
        error=row.error,
        image_ids=list(row.image_ids or []),
        model_config_id=row.model_config_id,
        model=row.model,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        latency_ms=row.latency_ms,
        ttft_ms=row.ttft_ms,
        finish_reason=row.finish_reason,
        created_at=row.created_at,
    )


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_MAX else flat[: PREVIEW_MAX - 1] + "…"


def _title_from(text: str) -> str:
    flat = " ".join(text.split())
    if not flat:
        return ""
    limit = min(TITLE_FROM_MESSAGE, TITLE_MAX)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# ------------------------------------------------------------------------ lookups


def _own_session(db: Session, actor_id: int, session_id: int) -> ChatSession:
    row = db.scalar(
        select(ChatSession).where(ChatSession.id == session_id, ChatSession.user_id == actor_id)
    )
    if row is None:
        raise NotFound("Chat session not found", code="chat_session_not_found")
    return row


def _check_refs(db: Session, actor: User, config_id: int | None, prompt_id: int | None) -> None:
    """The config must exist (configs are shared by the team); the prompt must be visible."""
    if config_id is not None:
        model_config_service.get_config(db, actor, config_id)
    if prompt_id is not None:
        prompt_service.get_prompt(db, actor, prompt_id)


def _like(text: str) -> str:
    escaped = text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


# ------------------------------------------------------------------------ sessions


def list_sessions(
    db: Session, actor: User, *, page: int, size: int, q: str | None = None
) -> Page[ChatSessionPublic]:
    """The actor's sessions, most recently active first; `q` searches titles and messages."""
    conditions: list[ColumnElement[bool]] = [ChatSession.user_id == actor.id]
    if q and q.strip():
        pattern = _like(q.strip())
        in_messages = exists().where(
            ChatMessageRow.session_id == ChatSession.id,
            func.lower(ChatMessageRow.content).like(pattern, escape=_LIKE_ESCAPE),
        )
        conditions.append(
            or_(func.lower(ChatSession.title).like(pattern, escape=_LIKE_ESCAPE), in_messages)
        )
    total = db.scalar(select(func.count()).select_from(ChatSession).where(*conditions)) or 0
    rows = db.scalars(
        select(ChatSession)
        .where(*conditions)
        .order_by(ChatSession.updated_at.desc(), ChatSession.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    ).all()
    return Page[ChatSessionPublic](
        items=[session_public(row) for row in rows], total=total, page=page, size=size
    )


def create_session(db: Session, actor: User, data: ChatSessionCreate) -> ChatSessionPublic:
    """A new, empty session; the title comes from the first user message when not given."""
    _check_refs(db, actor, data.model_config_id, data.system_prompt_id)
    now = utcnow()
    row = ChatSession(
        user_id=actor.id,
        title=data.title or "",
        model_config_id=data.model_config_id,
        system_prompt_id=data.system_prompt_id,
        message_count=0,
        last_message_preview="",
        created_at=now,
        updated_at=now,
    )
    db.add(row)
    db.flush()
    return session_public(row)


def _page_of_messages(db: Session, session_id: int, before: int | None, limit: int) -> MessagePage:
    query = select(ChatMessageRow).where(ChatMessageRow.session_id == session_id)
    if before is not None:
        query = query.where(ChatMessageRow.id < before)
    # One row more than asked tells whether older ones exist, without a count.
    rows = list(db.scalars(query.order_by(ChatMessageRow.id.desc()).limit(limit + 1)).all())
    has_more = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    return MessagePage(items=[message_public(row) for row in rows], has_more=has_more)


def get_session(db: Session, actor: User, session_id: int, *, limit: int) -> ChatSessionDetail:
    """A session with its newest `limit` messages."""
    row = _own_session(db, actor.id, session_id)
    return ChatSessionDetail(
        session=session_public(row), messages=_page_of_messages(db, row.id, None, limit)
    )


def list_messages(
    db: Session, actor: User, session_id: int, *, before: int | None, limit: int
) -> MessagePage:
    """Messages older than `before` (a message id), oldest first."""
    row = _own_session(db, actor.id, session_id)
    return _page_of_messages(db, row.id, before, limit)


def update_session(
    db: Session, actor: User, session_id: int, data: ChatSessionUpdate
) -> ChatSessionPublic:
    """Rename, or change the session's default config / system prompt (null clears)."""
    row = _own_session(db, actor.id, session_id)
    changes = data.model_dump(exclude_unset=True)
    _check_refs(db, actor, changes.get("model_config_id"), changes.get("system_prompt_id"))
    if "title" in changes:
        row.title = changes["title"] or ""
    if "model_config_id" in changes:
        row.model_config_id = changes["model_config_id"]
    if "system_prompt_id" in changes:
        row.system_prompt_id = changes["system_prompt_id"]
    row.updated_at = utcnow()
    db.flush()
    return session_public(row)


def delete_session(db: Session, actor: User, session_id: int) -> None:
    """Delete a session and its messages."""
    row = _own_session(db, actor.id, session_id)
    # A bulk delete, not the ORM cascade: one statement whatever the session's length.
    db.execute(delete(ChatMessageRow).where(ChatMessageRow.session_id == row.id))
    db.delete(row)
    db.flush()


# ------------------------------------------------------------------------ messages


def _append(
    db: Session, session: ChatSession, *, removed: int = 0, **fields: Any
) -> ChatMessageRow:
    """Insert a message and move the session's counters, preview and title along (`removed`:
    messages deleted in the same write, for regenerate)."""
    now = utcnow()
    row = ChatMessageRow(session_id=session.id, created_at=now, **fields)
    db.add(row)
    values: dict[str, Any] = {
        # In SQL, not read-modify-write: two writers in one session cannot lose a count.
        "message_count": ChatSession.message_count + (1 - removed),
        "updated_at": now,
    }
    if row.content:
        values["last_message_preview"] = _preview(row.content)
    if not session.title and row.role == "user":
        values["title"] = _title_from(row.content)
    db.execute(update(ChatSession).where(ChatSession.id == session.id).values(**values))
    db.flush()
    return row


def add_message(db: Session, actor: User, data: MessageCreate) -> ChatMessagePublic:
    """Persist a turn produced elsewhere (a client that streamed through the playground)."""
    session = _own_session(db, actor.id, data.session_id)
    model = None
    if data.model_config_id is not None:  # 404 when it does not exist
        config = model_config_service.get_config(db, actor, data.model_config_id)
        model = config.model if data.role == "assistant" else None
    if data.image_ids:
        image_service.require_owned(db, actor, data.image_ids)  # 404 unless the actor's
    row = _append(
        db,
        session,
        role=data.role,
        content=data.content,
        reasoning=data.reasoning or None,
        status="complete",
        image_ids=list(data.image_ids),
        model_config_id=data.model_config_id,
        model=model,
    )
    return message_public(row)


# ------------------------------------------------------------------------ model calls


def merge_params(base: GenerationParams, overrides: GenerationOverrides | None) -> GenerationParams:
    """The config's sampling parameters with the request's overrides on top."""
    if overrides is None:
        return base
    values = overrides.model_dump(exclude_none=True)
    return GenerationParams(
        temperature=values.get("temperature", base.temperature),
        max_tokens=values.get("max_tokens", base.max_tokens),
        top_p=values.get("top_p", base.top_p),
        top_k=values.get("top_k", base.top_k),
    )


def _vision_unsupported(target: ChatTarget, field: str) -> InvalidFields:
    return InvalidFields(
        [
            FieldError(
                loc=("body", field),
                msg=f"The model config {target.name!r} does not accept images",
                type="vision_unsupported",
            )
        ],
        code="vision_unsupported",
    )


def _with_images(role: str, text: str, urls: list[str]) -> ChatMessage:
    if not urls:
        return ChatMessage(role=role, content=text)  # type: ignore[arg-type]
    parts: list[TextPart | ImagePart] = [TextPart(text)] if text else []
    parts += [ImagePart(url) for url in urls]
    return ChatMessage(role=role, content=parts)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PreparedTurn:
    """Everything a model call for a session needs, read (and the user turn written) before it."""

    user_id: int
    session_id: int
    target: ChatTarget
    messages: list[ChatMessage]
    params: GenerationParams
    user_message: ChatMessagePublic | None
    # Regenerate: the answer the new one replaces (deleted in the same write that saves it).
    replaces_id: int | None


def _system_text(db: Session, actor: User, prompt_id: int | None) -> str | None:
    if prompt_id is None:
        return None
    try:
        return prompt_service.get_prompt(db, actor, prompt_id).content
    except NotFound:
        return None  # unshared or deleted since: the session goes on without it


def prepare_turn(
    user_id: int,
    session_id: int,
    data: StreamRequest,
    request_db: Session | None = None,
) -> PreparedTurn:
    """Check the request, write the user turn (or find the turn to re-answer) and build the
    conversation to send. Commits in its own session, so the user turn is stored before the
    model is called and no transaction stays open during the call. `request_db` (the request's
    session, which only read the user) is rolled back first: it must not hold a connection for
    the length of the answer."""
    if request_db is not None:
        request_db.rollback()
    with session_scope() as db:
        actor = db.get(User, user_id)
        if actor is None:
            raise NotFound("User not found", code="user_not_found")
        session = _own_session(db, actor.id, session_id)
        if data.model_config_id is not None:
            # chat_target below answers 404 for an unknown id (and the transaction rolls back).
            session.model_config_id = data.model_config_id
        if data.system_prompt_id is not None and data.system_prompt_id != session.system_prompt_id:
            _check_refs(db, actor, None, data.system_prompt_id)
            session.system_prompt_id = data.system_prompt_id
        if session.model_config_id is None:
            raise Conflict("Choose a model config for this chat first", code="model_required")
        target = model_config_service.chat_target(db, session.model_config_id)
        if data.image_ids and not target.vision:
            raise _vision_unsupported(target, "image_ids")

        replaces_id: int | None = None
        user_message: ChatMessagePublic | None = None
        if data.regenerate:
            last_user = db.scalar(
                select(ChatMessageRow)
                .where(ChatMessageRow.session_id == session.id, ChatMessageRow.role == "user")
                .order_by(ChatMessageRow.id.desc())
                .limit(1)
            )
            if last_user is None:
                raise Conflict("There is no question to answer again", code="nothing_to_regenerate")
            replaces_id = db.scalar(
                select(ChatMessageRow.id)
                .where(
                    ChatMessageRow.session_id == session.id,
                    ChatMessageRow.id > last_user.id,
                    ChatMessageRow.role == "assistant",
                )
                .order_by(ChatMessageRow.id.desc())
                .limit(1)
            )
        else:
            image_service.require_owned(db, actor, list(data.image_ids))  # 404 unless own
            row = _append(
                db,
                session,
                role="user",
                content=data.content or "",
                status="complete",
                image_ids=list(data.image_ids),
            )
            user_message = message_public(row)

        history = list(
            db.scalars(
                select(ChatMessageRow)
                .where(ChatMessageRow.session_id == session.id)
                .order_by(ChatMessageRow.id.desc())
                .limit(CONTEXT_MESSAGES + (1 if replaces_id else 0))
            ).all()
        )
        history.reverse()
        messages: list[ChatMessage] = []
        system = _system_text(db, actor, session.system_prompt_id)
        if system:
            messages.append(ChatMessage(role="system", content=system))
        for turn in history:
            if turn.id == replaces_id:
                continue
            if turn.role == "assistant" and not turn.content:
                continue  # a failed answer with nothing in it would only confuse the model
            urls: list[str] = []
            if turn.image_ids and target.vision and turn.role == "user":
                urls = image_service.load_data_urls(db, actor, list(turn.image_ids))
            messages.append(_with_images(turn.role, turn.content, urls))
        db.flush()
        return PreparedTurn(
            user_id=actor.id,
            session_id=session.id,
            target=target,
            messages=messages,
            params=merge_params(target.params, data.params),
            user_message=user_message,
            replaces_id=replaces_id,
        )


@dataclass
class Answer:
    """What a finished (or cut) model call produced, as the relay collected it."""

    content: str = ""
    reasoning: str = ""
    status: str = "complete"
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: int | None = None
    ttft_ms: int | None = None
    finish_reason: str | None = None
    model: str | None = None
    # Not stored: the llm_core error code for the error event, and the delta count (the output
    # size when the provider reports no usage).
    error_code: str | None = None
    chunks: int = 0


def save_answer(turn: PreparedTurn, answer: Answer) -> ChatMessagePublic | None:
    """The one write of a completion: the assistant turn (replacing the regenerated one) and the
    session's counters. None when the session was deleted meanwhile."""
    with session_scope() as db:
        session = db.scalar(
            select(ChatSession).where(
                ChatSession.id == turn.session_id, ChatSession.user_id == turn.user_id
            )
        )
        if session is None:
            return None
        removed = 0
        if turn.replaces_id is not None:
            result = db.execute(
                delete(ChatMessageRow).where(
                    ChatMessageRow.id == turn.replaces_id,
                    ChatMessageRow.session_id == session.id,
                )
            )
            removed = int(getattr(result, "rowcount", 0) or 0)
        row = _append(
            db,
            session,
            removed=removed,
            role="assistant",
            content=answer.content,
            reasoning=answer.reasoning or None,
            status=answer.status,
            error=answer.error,
            image_ids=[],
            model_config_id=turn.target.config_id,
            model=answer.model or turn.target.model,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            latency_ms=answer.latency_ms,
            ttft_ms=answer.ttft_ms,
            finish_reason=answer.finish_reason,
        )
        return message_public(row)


@dataclass(frozen=True)
class PreparedCall:
    """A stateless call (playground, compare, non-session chat)."""

    target: ChatTarget
    messages: list[ChatMessage]
    params: GenerationParams


def prepare_call(
    db: Session,
    actor: User,
    config_id: int,
    messages: list[InputMessage],
    *,
    system_prompt: str | None = None,
    system_prompt_id: int | None = None,
    extra_image_ids: list[str] | None = None,
    overrides: GenerationOverrides | None = None,
) -> PreparedCall:
    """Resolve a config and turn request messages into llm_core messages (images inlined as
    data URLs; `extra_image_ids` go with the last user message)."""
    target = model_config_service.chat_target(db, config_id)
    image_count = sum(len(m.image_ids) for m in messages) + len(extra_image_ids or [])
    if image_count and not target.vision:
        raise _vision_unsupported(target, "image_ids")
    result: list[ChatMessage] = []
    system = system_prompt or _system_text(db, actor, system_prompt_id)
    if system:
        result.append(ChatMessage(role="system", content=system))
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    for index, message in enumerate(messages):
        ids = list(message.image_ids)
        if index == last_user and extra_image_ids:
            ids += extra_image_ids
        urls = image_service.load_data_urls(db, actor, ids) if ids else []
        result.append(_with_images(message.role, message.content, urls))
    return PreparedCall(
        target=target, messages=result, params=merge_params(target.params, overrides)
    )
