"""Chat sessions, messages and streamed answers against the mock upstream (real HTTP)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.database import engine
from app.models import ChatMessageRow, ChatSession, User
from tests.factories import DEFAULT_PASSWORD, auth_headers, free_port
from tests.upstream import PLAIN_TEXT, THINK_ANSWER, THINK_REASONING, MockUpstream

BASE = "/api/chat"


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as server:
        yield server


def make_config(
    client: TestClient,
    headers: dict[str, str],
    upstream: MockUpstream,
    model: str = "plain",
    *,
    vision: bool = False,
    status: int = 1,
) -> int:
    response = client.post(
        "/api/model-config/",
        json={
            "name": f"mock {model}",
            "provider": "custom",
            "endpoint": upstream.openai_url,
            "model": model,
            "status": status,
            "capabilities": {"vision": vision},
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def new_session(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(f"{BASE}/sessions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def read_sse(text: str) -> tuple[list[dict[str, Any]], str | None]:
    """The JSON events of an SSE body and its terminator ([DONE] / [ERROR] / None)."""
    events: list[dict[str, Any]] = []
    end = None
    for block in text.split("\n\n"):
        if not block.startswith("data: "):
            continue
        data = block[len("data: ") :]
        if data in ("[DONE]", "[ERROR]"):
            end = data
        else:
            events.append(json.loads(data))
    return events, end


def stream(
    client: TestClient, headers: dict[str, str], session_id: int, **body: Any
) -> tuple[list[dict[str, Any]], str | None]:
    response = client.post(f"{BASE}/sessions/{session_id}/stream", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return read_sse(response.text)


def messages_of(db: Session, session_id: int) -> list[ChatMessageRow]:
    db.expire_all()
    return list(
        db.scalars(
            select(ChatMessageRow)
            .where(ChatMessageRow.session_id == session_id)
            .order_by(ChatMessageRow.id)
        )
    )


def session_row(db: Session, session_id: int) -> ChatSession:
    db.expire_all()
    row = db.get(ChatSession, session_id)
    assert row is not None
    return row


# ------------------------------------------------------------------ access


ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("get", "/sessions", None),
    ("post", "/sessions", {}),
    ("get", "/sessions/{id}", None),
    ("get", "/sessions/{id}/messages", None),
    ("patch", "/sessions/{id}", {"title": "x"}),
    ("delete", "/sessions/{id}", None),
    ("post", "/sessions/{id}/stream", {"content": "hi"}),
    ("post", "/messages", {"session_id": 1, "role": "user", "content": "hi"}),
    ("post", "/", {"session_id": 1, "content": "hi"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_anonymous_is_refused(
    anon_client: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = anon_client.request(method, BASE + path.format(id=1), json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("method", "path", "body"), [r for r in ROUTES if "{id}" in r[1] or r[1] in ("/messages", "/")]
)
def test_another_users_session_is_not_found(
    client: TestClient,
    user_headers: dict[str, str],
    other_user: User,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    other = auth_headers(client, "carol", DEFAULT_PASSWORD)
    theirs = new_session(client, other, title="private")
    payload = dict(body) if body is not None else None
    if payload is not None and "session_id" in payload:
        payload["session_id"] = theirs["id"]
    response = client.request(
        method, BASE + path.format(id=theirs["id"]), json=payload, headers=user_headers
    )
    if path == "/sessions/{id}/messages" or method in ("get", "patch", "delete") or payload:
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "chat_session_not_found"
    # and the session is untouched
    assert client.get(f"{BASE}/sessions/{theirs['id']}", headers=other).json()["session"][
        "title"
    ] == ("private")


def test_missing_session_and_invalid_input(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    assert client.get(f"{BASE}/sessions/999999", headers=user_headers).status_code == 404
    too_long = client.post(f"{BASE}/sessions", json={"title": "x" * 201}, headers=user_headers)
    assert too_long.status_code == 422
    assert too_long.json()["code"] == "validation_error"
    session = new_session(client, user_headers)
    for body in ({}, {"content": ""}, {"regenerate": True, "content": "x"}):
        response = client.post(
            f"{BASE}/sessions/{session['id']}/stream", json=body, headers=user_headers
        )
        assert response.status_code == 422, body
    bad_role = client.post(
        f"{BASE}/messages",
        json={"session_id": session["id"], "role": "tool", "content": "x"},
        headers=user_headers,
    )
    assert bad_role.status_code == 422
    both = client.post(
        f"{BASE}/",
        json={"session_id": session["id"], "content": "x", "messages": []},
        headers=user_headers,
    )
    assert both.status_code == 422
    unknown_config = client.post(
        f"{BASE}/sessions", json={"model_config_id": 999999}, headers=user_headers
    )
    assert unknown_config.status_code == 404
    assert unknown_config.json()["code"] == "model_config_not_found"


# ------------------------------------------------------------------ sessions


def test_sessions_list_search_rename_delete(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    first = new_session(client, user_headers, title="Alpha project")
    second = new_session(client, user_headers)
    client.post(
        f"{BASE}/messages",
        json={"session_id": second["id"], "role": "user", "content": "How do I bake bread?"},
        headers=user_headers,
    )
    page = client.get(f"{BASE}/sessions", headers=user_headers).json()
    assert page["total"] == 2
    # newest activity first; the title came from the first user message
    assert [s["id"] for s in page["items"]] == [second["id"], first["id"]]
    assert page["items"][0]["title"] == "How do I bake bread?"
    assert page["items"][0]["last_message_preview"] == "How do I bake bread?"
    assert page["items"][0]["message_count"] == 1

    found = client.get(f"{BASE}/sessions", params={"q": "BREAD"}, headers=user_headers).json()
    assert [s["id"] for s in found["items"]] == [second["id"]]
    found = client.get(f"{BASE}/sessions", params={"q": "alpha"}, headers=user_headers).json()
    assert [s["id"] for s in found["items"]] == [first["id"]]
    assert (
        client.get(f"{BASE}/sessions", params={"q": "%"}, headers=user_headers).json()["total"] == 0
    )

    renamed = client.patch(
        f"{BASE}/sessions/{first['id']}", json={"title": "Beta"}, headers=user_headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["title"] == "Beta"

    assert client.delete(f"{BASE}/sessions/{second['id']}", headers=user_headers).status_code == 204
    assert messages_of(db, second["id"]) == []
    assert client.get(f"{BASE}/sessions/{second['id']}", headers=user_headers).status_code == 404


def test_message_pages_by_cursor(client: TestClient, user_headers: dict[str, str]) -> None:
    session = new_session(client, user_headers, title="long")
    ids = []
    for i in range(7):
        response = client.post(
            f"{BASE}/messages",
            json={"session_id": session["id"], "role": "user", "content": f"m{i}"},
            headers=user_headers,
        )
        assert response.status_code == 201
        ids.append(response.json()["id"])
    detail = client.get(
        f"{BASE}/sessions/{session['id']}", params={"limit": 3}, headers=user_headers
    ).json()
    assert detail["session"]["message_count"] == 7
    assert [m["content"] for m in detail["messages"]["items"]] == ["m4", "m5", "m6"]
    assert detail["messages"]["has_more"] is True
    older = client.get(
        f"{BASE}/sessions/{session['id']}/messages",
        params={"before": ids[4], "limit": 3},
        headers=user_headers,
    ).json()
    assert [m["content"] for m in older["items"]] == ["m1", "m2", "m3"]
    assert older["has_more"] is True
    oldest = client.get(
        f"{BASE}/sessions/{session['id']}/messages",
        params={"before": ids[1], "limit": 3},
        headers=user_headers,
    ).json()
    assert [m["content"] for m in oldest["items"]] == ["m0"]
    assert oldest["has_more"] is False


# ------------------------------------------------------------------ streaming


def test_stream_saves_both_turns_with_reasoning_and_usage(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream, db: Session
) -> None:
    config = make_config(client, user_headers, upstream, "reasoning-content")
    session = new_session(client, user_headers, model_config_id=config)
    events, end = stream(client, user_headers, session["id"], content="Hello, who are you?")
    assert end == "[DONE]"
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message" and events[0]["message"]["role"] == "user"
    assert "reasoning" in kinds and "content" in kinds
    assert kinds.index("reasoning") < kinds.index("content")
    assert kinds[-2:] == ["message", "metrics"]
    reasoning = "".join(e["text"] for e in events if e["type"] == "reasoning")
    content = "".join(e["text"] for e in events if e["type"] == "content")
    assert reasoning == THINK_REASONING
    assert content == THINK_ANSWER
    metrics = events[-1]
    assert metrics["ttft_ms"] is not None and metrics["total_ms"] >= metrics["ttft_ms"]
    assert metrics["output_tokens"] > 0

    saved = events[-2]["message"]
    rows = messages_of(db, session["id"])
    assert [(r.role, r.status) for r in rows] == [("user", "complete"), ("assistant", "complete")]
    answer = rows[1]
    assert saved["id"] == answer.id
    assert answer.content == THINK_ANSWER
    assert answer.reasoning == THINK_REASONING
    assert answer.model == "reasoning-content"
    assert answer.model_config_id == config
    assert answer.completion_tokens and answer.prompt_tokens
    assert answer.latency_ms is not None and answer.ttft_ms is not None
    state = session_row(db, session["id"])
    assert state.message_count == 2
    assert state.title == "Hello, who are you?"
    assert state.last_message_preview == THINK_ANSWER


def test_inline_think_tags_become_reasoning(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream, db: Session
) -> None:
    config = make_config(client, user_headers, upstream, "think-inline")
    session = new_session(client, user_headers, model_config_id=config)
    events, end = stream(client, user_headers, session["id"], content="hi")
    assert end == "[DONE]"
    assert "<think>" not in "".join(e.get("text", "") for e in events)
    answer = messages_of(db, session["id"])[-1]
    assert answer.content.strip() == THINK_ANSWER
    assert answer.reasoning is not None and THINK_REASONING in answer.reasoning


def test_history_and_system_prompt_are_sent(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream
) -> None:
    config = make_config(client, user_headers, upstream, "plain")
    prompt = client.post(
        "/api/chat/system-prompts/",
        json={"name": "Pirate", "content": "Talk like a pirate.", "format": "text"},
        headers=user_headers,
    ).json()
    session = new_session(
        client, user_headers, model_config_id=config, system_prompt_id=prompt["id"]
    )
    stream(client, user_headers, session["id"], content="first")
    stream(client, user_headers, session["id"], content="second")
    sent = upstream.chat_requests()[-1].body["messages"]
    assert sent[0] == {"role": "system", "content": "Talk like a pirate."}
    assert [m["role"] for m in sent[1:]] == ["user", "assistant", "user"]
    assert sent[1]["content"] == "first" and sent[-1]["content"] == "second"
    assert sent[2]["content"] == PLAIN_TEXT


def test_one_write_per_completion(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream
) -> None:
    """The answer is written once at the end: no statement per chunk."""
    config = make_config(client, user_headers, upstream, "chunks-40-0")
    session = new_session(client, user_headers, model_config_id=config)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", record)
    try:
        events, end = stream(client, user_headers, session["id"], content="count")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert end == "[DONE]"
    assert sum(1 for e in events if e["type"] == "content") == 40
    writes = [s for s in statements if s in ("INSERT", "UPDATE", "DELETE")]
    # user turn: INSERT message + UPDATE session; answer: the same once more. Nothing per chunk.
    assert writes.count("INSERT") == 2, statements
    assert writes.count("UPDATE") == 2, statements
    assert "DELETE" not in writes
    assert len(statements) < 20, statements


def test_provider_failure_mid_stream_keeps_the_partial_answer(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream, db: Session
) -> None:
    config = make_config(client, user_headers, upstream, "stream-error")
    session = new_session(client, user_headers, model_config_id=config)
    events, end = stream(client, user_headers, session["id"], content="go")
    assert end == "[ERROR]"
    error = events[-1]
    assert error["type"] == "error" and error["code"] and error["message"]
    partial = "".join(e["text"] for e in events if e["type"] == "content")
    assert partial  # two chunks came before the failure
    answer = messages_of(db, session["id"])[-1]
    assert answer.role == "assistant"
    assert answer.status == "error"
    assert answer.content == partial
    assert answer.error


def test_provider_refusal_before_any_chunk(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream, db: Session
) -> None:
    config = make_config(client, user_headers, upstream, "context-too-long")
    session = new_session(client, user_headers, model_config_id=config)
    events, end = stream(client, user_headers, session["id"], content="go")
    assert end == "[ERROR]"
    assert events[-1]["code"] == "context_too_long"
    rows = messages_of(db, session["id"])
    assert [(r.role, r.status) for r in rows] == [("user", "complete"), ("assistant", "error")]


def test_unknown_key_is_never_echoed(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream
) -> None:
    response = client.post(
        "/api/model-config/",
        json={
            "name": "wrong key",
            "provider": "custom",
            "endpoint": upstream.openai_url,
            "model": "plain",
            "api_key": "sk-wrong-key",
            "status": 1,
        },
        headers=user_headers,
    )
    session = new_session(client, user_headers, model_config_id=response.json()["id"])
    raw = client.post(
        f"{BASE}/sessions/{session['id']}/stream", json={"content": "x"}, headers=user_headers
    ).text
    assert "sk-wrong-key" not in raw
    events, end = read_sse(raw)
    assert end == "[ERROR]" and events[-1]["code"] == "provider_auth_failed"


def test_regenerate_replaces_the_last_answer(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream, db: Session
) -> None:
    config = make_config(client, user_headers, upstream, "plain")
    session = new_session(client, user_headers, model_config_id=config)
    stream(client, user_headers, session["id"], content="question")
    first_answer = messages_of(db, session["id"])[-1].id
    events, end = stream(client, user_headers, session["id"], regenerate=True)
    assert end == "[DONE]"
    assert events[0]["type"] != "message" or events[0]["message"]["role"] == "assistant"
    rows = messages_of(db, session["id"])
    assert [r.role for r in rows] == ["user", "assistant"]
    assert rows[1].id != first_answer
    assert session_row(db, session["id"]).message_count == 2
    # the model saw the question once, not the old answer
    sent = upstream.chat_requests()[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user"]


def test_regenerate_needs_a_question(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream
) -> None:
    config = make_config(client, user_headers, upstream, "plain")
    session = new_session(client, user_headers, model_config_id=config)
    response = client.post(
        f"{BASE}/sessions/{session['id']}/stream", json={"regenerate": True}, headers=user_headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "nothing_to_regenerate"


def test_model_required_and_unavailable(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream, db: Session
) -> None:
    session = new_session(client, user_headers)
    response = client.post(
        f"{BASE}/sessions/{session['id']}/stream", json={"content": "x"}, headers=user_headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "model_required"
    disabled = make_config(client, user_headers, upstream, "plain", status=0)
    response = client.post(
        f"{BASE}/sessions/{session['id']}/stream",
        json={"content": "x", "model_config_id": disabled},
        headers=user_headers,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "model_unavailable"
    # nothing half-written: no message stored for refused requests
    assert messages_of(db, session["id"]) == []


def test_images_need_a_vision_config(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream, db: Session
) -> None:
    config = make_config(client, user_headers, upstream, "echo", vision=False)
    session = new_session(client, user_headers, model_config_id=config)
    response = client.post(
        f"{BASE}/sessions/{session['id']}/stream",
        json={"content": "look", "image_ids": ["0" * 32]},
        headers=user_headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "vision_unsupported"
    assert messages_of(db, session["id"]) == []


# ------------------------------------------------------------------ non-streaming


def test_non_streaming_chat_in_a_session(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream, db: Session
) -> None:
    config = make_config(client, user_headers, upstream, "think-inline")
    session = new_session(client, user_headers, model_config_id=config)
    response = client.post(
        f"{BASE}/", json={"session_id": session["id"], "content": "hi"}, headers=user_headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["content"].strip() == THINK_ANSWER
    assert THINK_REASONING in body["reasoning"]
    assert body["latency_ms"] >= 0 and body["model"] == "think-inline"
    rows = messages_of(db, session["id"])
    assert [r.role for r in rows] == ["user", "assistant"]
    assert body["assistant_message"]["id"] == rows[1].id


def test_non_streaming_stateless_and_failure(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream, db: Session
) -> None:
    config = make_config(client, user_headers, upstream, "echo")
    response = client.post(
        f"{BASE}/",
        json={
            "model_config_id": config,
            "messages": [{"role": "user", "content": "ping"}],
            "params": {"temperature": 0.3},
        },
        headers=user_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["content"] == "You said: ping"
    assert response.json()["user_message"] is None
    assert upstream.chat_requests()[-1].body["temperature"] == 0.3
    assert db.scalar(select(ChatMessageRow).limit(1)) is None

    failing = make_config(client, user_headers, upstream, "server-error")
    session = new_session(client, user_headers, model_config_id=failing)
    response = client.post(
        f"{BASE}/", json={"session_id": session["id"], "content": "hi"}, headers=user_headers
    )
    assert response.status_code == 502
    assert response.json()["code"] == "provider_error"
    rows = messages_of(db, session["id"])
    assert [(r.role, r.status) for r in rows] == [("user", "complete"), ("assistant", "error")]


# ------------------------------------------------------------------ real server: disconnects


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    """The same app served by uvicorn on 127.0.0.1, so that a client can really hang up."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _wait_for_answer(db: Session, session_id: int, timeout: float = 10.0) -> ChatMessageRow:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = messages_of(db, session_id)
        if rows and rows[-1].role == "assistant":
            return rows[-1]
        time.sleep(0.05)
    raise AssertionError("the answer was not saved")


@pytest.mark.parametrize("model", ["long", "stall"])
def test_client_disconnect_saves_the_partial_answer(
    client: TestClient,
    user_headers: dict[str, str],
    upstream: MockUpstream,
    db: Session,
    live_server: str,
    model: str,
) -> None:
    config = make_config(client, user_headers, upstream, model)
    session = new_session(client, user_headers, model_config_id=config)
    upstream.reset()
    received = []
    with (
        httpx.Client(base_url=live_server, timeout=10) as http,
        http.stream(
            "POST",
            f"{BASE}/sessions/{session['id']}/stream",
            json={"content": "tell me a long story"},
            headers=user_headers,
        ) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            data = json.loads(line[6:])
            if data["type"] == "content":
                received.append(data["text"])
                if len(received) == 2:
                    break
    # the browser is gone: the server saved what it had and hung up on the provider
    answer = _wait_for_answer(db, session["id"])
    assert answer.status == "interrupted"
    assert answer.content.startswith("".join(received))
    assert upstream.wait_for_disconnect(5.0) is not None
    assert session_row(db, session["id"]).message_count == 2


def test_images_go_to_vision_models_as_data_urls(
    client: TestClient,
    user_headers: dict[str, str],
    other_user: User,
    upstream: MockUpstream,
    db: Session,
) -> None:
    from tests.api.test_images import make_image, upload

    uploaded = upload(client, user_headers, make_image("PNG"), "photo.png")
    assert uploaded.status_code == 201, uploaded.text
    image_id = uploaded.json()["id"]
    config = make_config(client, user_headers, upstream, "echo", vision=True)
    session = new_session(client, user_headers, model_config_id=config)
    events, end = stream(
        client, user_headers, session["id"], content="what is this?", image_ids=[image_id]
    )
    assert end == "[DONE]"
    assert "".join(e["text"] for e in events if e["type"] == "content").endswith("[1 image(s)]")
    sent = upstream.chat_requests()[-1].body["messages"][-1]["content"]
    assert sent[0] == {"type": "text", "text": "what is this?"}
    assert sent[1]["type"] == "image_url"
    assert sent[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert messages_of(db, session["id"])[0].image_ids == [image_id]

    # another user's image id is not theirs to send
    mallory = auth_headers(client, "carol", DEFAULT_PASSWORD)
    theirs = new_session(client, mallory, model_config_id=config)
    response = client.post(
        f"{BASE}/sessions/{theirs['id']}/stream",
        json={"content": "steal", "image_ids": [image_id]},
        headers=mallory,
    )
    assert response.status_code == 404
    assert messages_of(db, theirs["id"]) == []


def test_streams_are_documented_as_event_streams(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/chat/sessions/{session_id}/stream",
        "/api/playground/chat/stream",
        "/api/playground/compare/stream",
    ):
        assert "text/event-stream" in paths[path]["post"]["responses"]["200"]["content"]
