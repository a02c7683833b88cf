"""Chat exports: own sessions only, every format parses back, training formats keep strictly
alternating usable turns, file names come from titles."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.database import utcnow
from app.models import ChatMessageRow, ChatSession, SystemPrompt, User
from tests.factories import auth_headers

FORMATS = ["markdown", "json", "openai-jsonl", "sharegpt"]


def make_session(
    db: Session,
    owner: User,
    turns: list[tuple[str, str] | tuple[str, str, dict[str, Any]]],
    *,
    title: str = "Capitals",
    system_prompt: SystemPrompt | None = None,
) -> ChatSession:
    """A session with its messages, written through the ORM (the chat API is not needed)."""
    now = utcnow()
    session = ChatSession(
        user_id=owner.id,
        title=title,
        system_prompt_id=system_prompt.id if system_prompt else None,
        message_count=len(turns),
        last_message_preview=turns[-1][1][:200] if turns else "",
        created_at=now,
        updated_at=now,
    )
    db.add(session)
    db.flush()
    for index, turn in enumerate(turns):
        role, content = turn[0], turn[1]
        extra: dict[str, Any] = turn[2] if len(turn) > 2 else {}  # type: ignore[misc]
        defaults: dict[str, Any] = {"model": "gpt-test"} if role == "assistant" else {}
        db.add(
            ChatMessageRow(
                session_id=session.id,
                role=role,
                content=content,
                created_at=now + timedelta(seconds=index),
                **{**defaults, **extra},
            )
        )
    db.commit()
    return session


def make_prompt(db: Session, owner: User, content: str = "You are terse.") -> SystemPrompt:
    now = utcnow()
    prompt = SystemPrompt(
        owner_id=owner.id,
        name="terse",
        content=content,
        category="general",
        tags=[],
        format="text",
        variables=[],
        is_shared=False,
        created_at=now,
        updated_at=now,
    )
    db.add(prompt)
    db.commit()
    return prompt


TURNS: list[tuple[str, str] | tuple[str, str, dict[str, Any]]] = [
    ("user", "What is the capital of France?"),
    ("assistant", "Paris.", {"reasoning": "France -> Paris", "prompt_tokens": 12}),
    ("user", "And of Italy?"),
    ("assistant", "", {"status": "error", "error": "upstream failed"}),
    ("user", "And of Italy, please?"),
    ("assistant", "Rome."),
    ("user", "And of Spain?"),  # dangling: never answered
]


def get_export(client: TestClient, headers: dict[str, str], session_id: int, fmt: str) -> Any:
    response = client.get(
        f"/api/chat/sessions/{session_id}/export", params={"format": fmt}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response


def filename(response: Any) -> str:
    header = response.headers["content-disposition"]
    assert header.startswith("attachment;")
    return unquote(header.split("filename*=UTF-8''")[1])


# ------------------------------------------------------------------------ 401 / 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/chat/sessions/{id}/export?format=json", None),
        ("post", "/api/chat/export", {"session_ids": ["{id}"], "format": "json"}),
    ],
)
def test_anonymous_is_401(
    client: TestClient, db: Session, user: User, method: str, path: str, body: Any
) -> None:
    session = make_session(db, user, TURNS)
    if body:
        body = {**body, "session_ids": [session.id]}
    response = client.request(method, path.format(id=session.id), json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("fmt", FORMATS)
def test_other_users_session_is_404(
    client: TestClient, db: Session, user: User, other_user: User, fmt: str
) -> None:
    mine = make_session(db, user, TURNS)
    theirs = make_session(db, other_user, TURNS, title="Carol's")
    alice = auth_headers(client, "alice")
    response = client.get(
        f"/api/chat/sessions/{theirs.id}/export", params={"format": fmt}, headers=alice
    )
    assert response.status_code == 404
    assert response.json()["code"] == "chat_session_not_found"
    # One foreign id fails the whole request.
    many = client.post(
        "/api/chat/export", json={"session_ids": [mine.id, theirs.id], "format": fmt}, headers=alice
    )
    assert many.status_code == 404
    assert many.json()["code"] == "chat_session_not_found"


def test_unknown_session_is_404(client: TestClient, user_headers: dict[str, str]) -> None:
    response = client.get("/api/chat/sessions/424242/export", headers=user_headers)
    assert response.status_code == 404
    many = client.post("/api/chat/export", json={"session_ids": [424242]}, headers=user_headers)
    assert many.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"session_ids": [], "format": "json"},
        {"session_ids": list(range(1, 102)), "format": "json"},
        {"session_ids": [1], "format": "csv"},
        {"session_ids": ["x"], "format": "json"},
        {"format": "json"},
    ],
)
def test_invalid_bulk_request_is_422(
    client: TestClient, user_headers: dict[str, str], body: dict[str, Any]
) -> None:
    assert client.post("/api/chat/export", json=body, headers=user_headers).status_code == 422


def test_invalid_format_is_422(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User
) -> None:
    session = make_session(db, user, TURNS)
    response = client.get(
        f"/api/chat/sessions/{session.id}/export", params={"format": "pdf"}, headers=user_headers
    )
    assert response.status_code == 422
    assert client.get("/api/chat/sessions/x/export", headers=user_headers).status_code == 422


# --------------------------------------------------------------------------- formats


def test_markdown_transcript(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User
) -> None:
    session = make_session(db, user, TURNS, system_prompt=make_prompt(db, user))
    response = get_export(client, user_headers, session.id, "markdown")
    assert response.headers["content-type"].startswith("text/markdown")
    assert filename(response) == "Capitals.md"
    text = response.text
    assert text.startswith("# Capitals\n")
    assert "- Model: gpt-test" in text
    assert "## System prompt\n\nYou are terse." in text
    for content in ("What is the capital of France?", "Paris.", "Rome.", "And of Spain?"):
        assert content in text
    assert "<details>\n<summary>Reasoning</summary>\n\nFrance -> Paris\n\n</details>" in text
    assert "upstream failed" not in text  # the failed answer is left out
    assert text.index("France?") < text.index("Paris.") < text.index("Rome.")


def test_json_keeps_everything(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User
) -> None:
    session = make_session(db, user, TURNS, system_prompt=make_prompt(db, user))
    response = get_export(client, user_headers, session.id, "json")
    assert response.headers["content-type"].startswith("application/json")
    assert filename(response) == "Capitals.json"
    record = response.json()
    assert record["session"]["id"] == session.id
    assert record["session"]["title"] == "Capitals"
    assert record["system_prompt"] == "You are terse."
    assert [m["content"] for m in record["messages"]] == [t[1] for t in TURNS]
    failed = record["messages"][3]
    assert failed["status"] == "error" and failed["error"] == "upstream failed"
    first = record["messages"][1]
    assert first["reasoning"] == "France -> Paris" and first["prompt_tokens"] == 12
    assert set(first) >= {"id", "role", "status", "image_ids", "model", "created_at"}


def test_openai_jsonl_is_training_data(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User
) -> None:
    session = make_session(db, user, TURNS, system_prompt=make_prompt(db, user))
    response = get_export(client, user_headers, session.id, "openai-jsonl")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert filename(response) == "Capitals.jsonl"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines == [
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "Paris."},
                # "And of Italy?" got no usable answer: asked again, answered.
                {"role": "user", "content": "And of Italy, please?"},
                {"role": "assistant", "content": "Rome."},
                # The dangling "And of Spain?" is dropped.
            ]
        }
    ]


def test_sharegpt_is_training_data(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User
) -> None:
    session = make_session(db, user, TURNS, system_prompt=make_prompt(db, user))
    response = get_export(client, user_headers, session.id, "sharegpt")
    assert filename(response) == "Capitals.json"
    entries = response.json()
    assert entries == [
        {
            "conversations": [
                {"from": "human", "value": "What is the capital of France?"},
                {"from": "gpt", "value": "Paris."},
                {"from": "human", "value": "And of Italy, please?"},
                {"from": "gpt", "value": "Rome."},
            ],
            "system": "You are terse.",
        }
    ]
    # LLaMA-Factory's sharegpt rule: human on odd positions, gpt on even ones, even count.
    turns = entries[0]["conversations"]
    assert len(turns) % 2 == 0
    assert all(t["from"] == ("human" if i % 2 == 0 else "gpt") for i, t in enumerate(turns))


def test_training_formats_skip_sessions_without_a_pair(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User
) -> None:
    lonely = make_session(db, user, [("user", "Hello?")], title="Lonely")
    failed = make_session(
        db, user, [("user", "Hi"), ("assistant", "partial", {"status": "error"})], title="Failed"
    )
    good = make_session(db, user, [("user", "Hi"), ("assistant", "Hello!")], title="Good")
    ids = [lonely.id, failed.id, good.id]
    jsonl = client.post(
        "/api/chat/export",
        json={"session_ids": ids, "format": "openai-jsonl"},
        headers=user_headers,
    )
    assert [json.loads(line) for line in jsonl.text.splitlines()] == [
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
            ]
        }
    ]
    sharegpt = client.post(
        "/api/chat/export", json={"session_ids": ids, "format": "sharegpt"}, headers=user_headers
    ).json()
    # No session has a system prompt: no "system" key at all.
    assert sharegpt == [
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}
    ]
    single = get_export(client, user_headers, lonely.id, "openai-jsonl")
    assert single.text == ""


def test_many_sessions_in_one_file(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User
) -> None:
    first = make_session(db, user, TURNS, system_prompt=make_prompt(db, user))
    second = make_session(
        db, user, [("user", "2+2?"), ("assistant", "4", {"model": "calc"})], title="Maths"
    )
    ids = [second.id, first.id, second.id]  # order kept, duplicates once

    def post(fmt: str) -> Any:
        response = client.post(
            "/api/chat/export", json={"session_ids": ids, "format": fmt}, headers=user_headers
        )
        assert response.status_code == 200, response.text
        assert filename(response).startswith("chats-2-")
        return response

    records = post("json").json()
    assert [r["session"]["id"] for r in records] == [second.id, first.id]
    markdown = post("markdown").text
    assert markdown.index("# Maths") < markdown.index("# Capitals")
    assert "- Model: calc" in markdown
    lines = [json.loads(line) for line in post("openai-jsonl").text.splitlines()]
    assert len(lines) == 2
    assert lines[0]["messages"][0] == {"role": "user", "content": "2+2?"}
    entries = post("sharegpt").json()
    # "system" in every entry once any has one ("" where a session has none).
    assert [e.get("system") for e in entries] == ["", "You are terse."]

    one = client.post(
        "/api/chat/export", json={"session_ids": [first.id], "format": "json"}, headers=user_headers
    )
    assert isinstance(one.json(), list) and filename(one) == "Capitals.json"


def test_default_format_is_json(
    client: TestClient, user_headers: dict[str, str], db: Session, user: User
) -> None:
    session = make_session(db, user, TURNS)
    response = client.get(f"/api/chat/sessions/{session.id}/export", headers=user_headers)
    assert response.status_code == 200
    assert response.json()["session"]["id"] == session.id
    assert response.json()["system_prompt"] is None


def test_prompt_no_longer_visible_is_left_out(
    client: TestClient, db: Session, user: User, other_user: User
) -> None:
    """A private prompt of someone else (e.g. unshared since) does not leak into the export."""
    foreign_prompt = make_prompt(db, other_user, "Carol's secret instructions")
    session = make_session(db, user, TURNS, system_prompt=foreign_prompt)
    alice = auth_headers(client, "alice")
    for fmt in FORMATS:
        text = get_export(client, alice, session.id, fmt).text
        assert "secret instructions" not in text


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("中文 会话", "中文 会话.md"),
        ('../../etc/passwd: "x"?', "etc passwd x.md"),
        ("...hidden. ", "hidden.md"),
        ("   ", "chat-{id}.md"),
        ("a" * 200, "a" * 80 + ".md"),
    ],
)
def test_file_name_from_title(
    client: TestClient,
    user_headers: dict[str, str],
    db: Session,
    user: User,
    title: str,
    expected: str,
) -> None:
    session = make_session(db, user, TURNS, title=title)
    response = get_export(client, user_headers, session.id, "markdown")
    name = filename(response)
    assert name == expected.format(id=session.id)
    assert "/" not in name and "\\" not in name
    # The plain fallback is ASCII for old clients.
    response.headers["content-disposition"].encode("ascii")
