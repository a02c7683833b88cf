"""Chat exports: a readable Markdown transcript, a lossless JSON record, and two training
formats (OpenAI chat JSONL and ShareGPT) that LLaMA-Factory reads as they are.

Only the actor's own sessions are exported; one foreign or unknown id fails the whole request
with 404. Markdown and the training formats leave out assistant turns that failed or are empty;
JSON keeps every message with every field. The training formats also keep strictly alternating
user/assistant pairs: a user turn without a usable answer (the conversation's dangling last turn,
or one whose answer failed and was asked again) is dropped, and a session left with no pair is
left out of the file.

LLaMA-Factory dataset_info for the files:
- openai-jsonl: `{"formatting": "sharegpt", "columns": {"messages": "messages"}, "tags":
  {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag":
  "assistant", "system_tag": "system"}}`
- sharegpt: `{"formatting": "sharegpt", "columns": {"messages": "conversations", "system":
  "system"}}` (`"system"` is in every entry when any session has a system prompt, else in none).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.database import utcnow
from app.exceptions import NotFound
from app.models import User
from app.models.chat import ChatMessageRow, ChatSession
from app.schemas.chat import ChatMessagePublic, ChatSessionPublic, ExportFormat
from app.services import prompt_service

FILENAME_MAX = 80
_UNSAFE_FILENAME_RE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')

EXTENSIONS: dict[str, str] = {
    "markdown": "md",
    "json": "json",
    "openai-jsonl": "jsonl",
    "sharegpt": "json",
}
MEDIA_TYPES: dict[str, str] = {
    "markdown": "text/markdown; charset=utf-8",
    "json": "application/json",
    "openai-jsonl": "application/x-ndjson",
    "sharegpt": "application/json",
}


@dataclass(frozen=True)
class ExportFile:
    """A file to send as an attachment."""

    filename: str
    media_type: str
    content: str


@dataclass
class _Conversation:
    session: ChatSession
    system: str | None
    messages: list[ChatMessageRow] = field(default_factory=list)


# ---------------------------------------------------------------------------- loading


def _not_found() -> NotFound:
    return NotFound("Chat session not found", code="chat_session_not_found")


def own_sessions(db: Session, actor: User, session_ids: Sequence[int]) -> list[ChatSession]:
    """The actor's sessions in the order asked (duplicates once); 404 if any is not theirs."""
    wanted = list(dict.fromkeys(session_ids))
    rows = db.scalars(
        select(ChatSession).where(ChatSession.id.in_(wanted), ChatSession.user_id == actor.id)
    ).all()
    by_id = {row.id: row for row in rows}
    if len(by_id) != len(wanted):
        raise _not_found()
    return [by_id[session_id] for session_id in wanted]


def _system_texts(db: Session, actor: User, prompt_ids: Iterable[int]) -> dict[int, str]:
    """Content of the prompts the actor may still see (deleted or unshared ones are skipped)."""
    texts: dict[int, str] = {}
    for prompt_id in set(prompt_ids):
        try:
            texts[prompt_id] = prompt_service.get_prompt(db, actor, prompt_id).content
        except NotFound:
            continue
    return texts


def _load(db: Session, actor: User, session_ids: Sequence[int]) -> list[_Conversation]:
    sessions = own_sessions(db, actor, session_ids)
    prompts = _system_texts(
        db, actor, (s.system_prompt_id for s in sessions if s.system_prompt_id is not None)
    )
    conversations = {
        s.id: _Conversation(
            session=s,
            system=prompts.get(s.system_prompt_id) if s.system_prompt_id is not None else None,
        )
        for s in sessions
    }
    rows = db.scalars(
        select(ChatMessageRow)
        .where(ChatMessageRow.session_id.in_(list(conversations)))
        .order_by(ChatMessageRow.session_id, ChatMessageRow.id)
    ).all()
    for row in rows:
        conversations[row.session_id].messages.append(row)
    return [conversations[s.id] for s in sessions]


# ----------------------------------------------------------------------------- turns


def _shown(row: ChatMessageRow) -> bool:
    """Turns a transcript or a training file keeps: no failed or empty answers."""
    if row.role == "assistant":
        return row.status != "error" and bool(row.content.strip())
    return True


def _system_of(conv: _Conversation) -> str:
    """The session's prompt followed by any system turns stored in the conversation."""
    parts = [conv.system] if conv.system else []
    parts += [row.content for row in conv.messages if row.role == "system" and row.content.strip()]
    return "\n\n".join(parts)


def training_pairs(messages: Sequence[ChatMessageRow]) -> list[tuple[str, str]]:
    """(user, assistant) contents in order, each user turn answered by the next usable answer.
    A user turn followed by another user turn, or by nothing, has no answer and is dropped; an
    answer without a question before it is dropped too."""
    pairs: list[tuple[str, str]] = []
    question: str | None = None
    for row in messages:
        if not _shown(row) or row.role == "system":
            continue
        if row.role == "user":
            question = row.content
        elif question is not None:
            pairs.append((question, row.content))
            question = None
    return pairs


# --------------------------------------------------------------------------- formats


def _iso(conv: _Conversation) -> str:
    return conv.session.created_at.strftime("%Y-%m-%d %H:%M UTC")


def _title(conv: _Conversation) -> str:
    return conv.session.title.strip() or f"Chat {conv.session.id}"


def _markdown(conv: _Conversation) -> str:
    models = list(
        dict.fromkeys(row.model for row in conv.messages if row.role == "assistant" and row.model)
    )
    lines = [f"# {_title(conv)}", ""]
    lines.append(f"- Model: {', '.join(models) if models else '-'}")
    lines.append(f"- Created: {_iso(conv)}")
    lines.append(f"- Messages: {conv.session.message_count}")
    lines.append("")
    system = _system_of(conv)
    if system:
        lines += ["## System prompt", "", system, ""]
    for row in conv.messages:
        if row.role == "system" or not _shown(row):
            continue
        if row.role == "user":
            lines += ["## User", ""]
        else:
            heading = f"## Assistant ({row.model})" if row.model else "## Assistant"
            lines += [heading, ""]
            if row.reasoning and row.reasoning.strip():
                lines += [
                    "<details>",
                    "<summary>Reasoning</summary>",
                    "",
                    row.reasoning.strip(),
                    "",
                    "</details>",
                    "",
                ]
        lines.append(row.content)
        if row.image_ids:
            lines.append("")
            lines.append(f"*({len(row.image_ids)} image(s) attached)*")
        if row.status == "interrupted":
            lines.append("")
            lines.append("*(stopped before the end)*")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _json_record(conv: _Conversation) -> dict[str, Any]:
    return {
        "session": ChatSessionPublic.model_validate(conv.session, from_attributes=True).model_dump(
            mode="json"
        ),
        "system_prompt": conv.system,
        "messages": [
            ChatMessagePublic.model_validate(row, from_attributes=True).model_dump(mode="json")
            for row in conv.messages
        ],
    }


def _openai_line(conv: _Conversation) -> dict[str, Any] | None:
    pairs = training_pairs(conv.messages)
    if not pairs:
        return None
    messages: list[dict[str, str]] = []
    system = _system_of(conv)
    if system:
        messages.append({"role": "system", "content": system})
    for question, answer in pairs:
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer})
    return {"messages": messages}


def _sharegpt_entry(conv: _Conversation) -> dict[str, Any] | None:
    pairs = training_pairs(conv.messages)
    if not pairs:
        return None
    turns: list[dict[str, str]] = []
    for question, answer in pairs:
        turns.append({"from": "human", "value": question})
        turns.append({"from": "gpt", "value": answer})
    return {"conversations": turns, "system": _system_of(conv)}


def render(conversations: Sequence[_Conversation], fmt: ExportFormat, *, single: bool) -> str:
    """The file content of `conversations` in `fmt`."""
    if fmt == "markdown":
        return "\n---\n\n".join(_markdown(conv) for conv in conversations)
    if fmt == "json":
        records = [_json_record(conv) for conv in conversations]
        return json.dumps(records[0] if single else records, ensure_ascii=False, indent=2) + "\n"
    if fmt == "openai-jsonl":
        lines = [line for conv in conversations if (line := _openai_line(conv)) is not None]
        return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    entries = [entry for conv in conversations if (entry := _sharegpt_entry(conv)) is not None]
    # One schema per file: "system" in every entry when any has one, else in none.
    if not any(entry["system"] for entry in entries):
        for entry in entries:
            del entry["system"]
    return json.dumps(entries, ensure_ascii=False, indent=2) + "\n"


# ----------------------------------------------------------------------------- files


def safe_filename(title: str, fallback: str) -> str:
    """A file name stem from a title: no path or reserved characters, at most 80 characters."""
    stem = _UNSAFE_FILENAME_RE.sub(" ", title)
    # No leading dots (hidden files) or trailing dots and spaces (refused by Windows).
    stem = re.sub(r"\s+", " ", stem).strip(" .")
    return stem[:FILENAME_MAX].strip(" .") or fallback


def export_session(db: Session, actor: User, session_id: int, fmt: ExportFormat) -> ExportFile:
    """One own session as a file named after its title."""
    conversations = _load(db, actor, [session_id])
    stem = safe_filename(conversations[0].session.title, f"chat-{session_id}")
    return ExportFile(
        filename=f"{stem}.{EXTENSIONS[fmt]}",
        media_type=MEDIA_TYPES[fmt],
        content=render(conversations, fmt, single=True),
    )


def export_sessions(
    db: Session, actor: User, session_ids: Sequence[int], fmt: ExportFormat
) -> ExportFile:
    """Several own sessions in one file (a JSON array even for one, concatenated Markdown,
    one JSONL line per session), in the order given."""
    conversations = _load(db, actor, session_ids)
    if len(conversations) == 1:
        first = conversations[0].session
        stem = safe_filename(first.title, f"chat-{first.id}")
    else:
        stem = f"chats-{len(conversations)}-{utcnow().strftime('%Y%m%d-%H%M%S')}"
    return ExportFile(
        filename=f"{stem}.{EXTENSIONS[fmt]}",
        media_type=MEDIA_TYPES[fmt],
        content=render(conversations, fmt, single=False),
    )
