"""Playground: stateless streamed chat and the 1-3 model comparison (real HTTP to the mock)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import ChatMessageRow, ChatSession
from tests.api.test_chat import make_config, read_sse
from tests.upstream import PLAIN_TEXT, THINK_ANSWER, MockUpstream

BASE = "/api/playground"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as server:
        yield server


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/chat/stream", {"model_config_id": 1, "messages": HELLO}),
        ("/compare/stream", {"model_config_ids": [1], "messages": HELLO}),
        ("/compare", {"model_config_ids": [1], "messages": HELLO}),
    ],
)
def test_anonymous_is_refused(anon_client: TestClient, path: str, body: dict[str, Any]) -> None:
    response = anon_client.post(BASE + path, json=body)
    assert response.status_code == 401


def test_playground_stream_saves_nothing(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream, db: Session
) -> None:
    config = make_config(client, user_headers, upstream, "reasoning-content")
    response = client.post(
        f"{BASE}/chat/stream",
        json={"model_config_id": config, "messages": HELLO, "system_prompt": "Be brief."},
        headers=user_headers,
    )
    assert response.status_code == 200
    events, end = read_sse(response.text)
    assert end == "[DONE]"
    assert {"reasoning", "content", "metrics"} <= {e["type"] for e in events}
    assert "message" not in {e["type"] for e in events}
    assert "".join(e["text"] for e in events if e["type"] == "content") == THINK_ANSWER
    assert upstream.chat_requests()[-1].body["messages"][0] == {
        "role": "system",
        "content": "Be brief.",
    }
    assert db.scalar(select(func.count()).select_from(ChatMessageRow)) == 0
    assert db.scalar(select(func.count()).select_from(ChatSession)) == 0


def test_playground_unknown_config(client: TestClient, user_headers: dict[str, str]) -> None:
    response = client.post(
        f"{BASE}/chat/stream",
        json={"model_config_id": 999999, "messages": HELLO},
        headers=user_headers,
    )
    assert response.status_code == 404
    assert response.json()["code"] == "model_config_not_found"


def test_compare_three_with_one_failing(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream
) -> None:
    plain = make_config(client, user_headers, upstream, "plain")
    broken = make_config(client, user_headers, upstream, "server-error")
    thinker = make_config(client, user_headers, upstream, "think-inline")
    response = client.post(
        f"{BASE}/compare/stream",
        json={"model_config_ids": [plain, broken, thinker], "messages": HELLO},
        headers=user_headers,
    )
    assert response.status_code == 200
    events, end = read_sse(response.text)
    assert end == "[DONE]"
    assert all(e["model_index"] in (0, 1, 2) for e in events)
    by_model = {i: [e for e in events if e["model_index"] == i] for i in range(3)}
    assert "".join(e["text"] for e in by_model[0] if e["type"] == "content") == PLAIN_TEXT
    assert by_model[0][-1]["type"] == "metrics"
    assert by_model[1][-1]["type"] == "error"
    assert by_model[1][-1]["code"] == "provider_error"
    assert not [e for e in by_model[1] if e["type"] == "metrics"]
    thinker_text = "".join(e["text"] for e in by_model[2] if e["type"] == "content")
    assert thinker_text.strip() == THINK_ANSWER
    assert [e for e in by_model[2] if e["type"] == "reasoning"]
    metrics = by_model[2][-1]
    assert metrics["type"] == "metrics"
    assert metrics["ttft_ms"] is not None and metrics["total_ms"] >= metrics["ttft_ms"]
    assert metrics["output_tokens"] > 0
    assert metrics["tokens_per_s"] is None or metrics["tokens_per_s"] > 0


def test_compare_runs_the_models_concurrently(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream
) -> None:
    slow = [make_config(client, user_headers, upstream, "chunks-10-50") for _ in range(3)]
    response = client.post(
        f"{BASE}/compare/stream",
        json={"model_config_ids": slow, "messages": HELLO},
        headers=user_headers,
    )
    events, end = read_sse(response.text)
    assert end == "[DONE]"
    # interleaved: model 1 speaks before model 0 has finished
    order = [e["model_index"] for e in events if e["type"] == "content"]
    assert order.index(1) < len(order) - 1 - order[::-1].index(0)
    totals = [e["total_ms"] for e in events if e["type"] == "metrics"]
    assert len(totals) == 3
    # three 0.5 s answers in parallel, not 1.5 s in a row
    assert max(totals) < 1400


def test_compare_non_streaming(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream
) -> None:
    plain = make_config(client, user_headers, upstream, "plain")
    broken = make_config(client, user_headers, upstream, "rate-limit-long")
    response = client.post(
        f"{BASE}/compare",
        json={"model_config_ids": [plain, broken], "messages": HELLO, "params": {"max_tokens": 3}},
        headers=user_headers,
    )
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first["model_index"] == 0 and first["model_config_id"] == plain
    assert first["config_name"] == "mock plain" and first["model"] == "plain"
    assert first["content"] and first["error"] is None
    assert first["metrics"]["finish_reason"] == "length"
    assert second["error"]["code"] == "provider_rate_limited"
    assert second["metrics"] is None


def test_compare_limits(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream
) -> None:
    config = make_config(client, user_headers, upstream, "plain")
    for ids in ([], [config] * 4):
        response = client.post(
            f"{BASE}/compare/stream",
            json={"model_config_ids": ids, "messages": HELLO},
            headers=user_headers,
        )
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
    disabled = make_config(client, user_headers, upstream, "plain", status=0)
    response = client.post(
        f"{BASE}/compare/stream",
        json={"model_config_ids": [config, disabled], "messages": HELLO},
        headers=user_headers,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "model_unavailable"
    response = client.post(
        f"{BASE}/compare/stream",
        json={"model_config_ids": [config], "messages": HELLO, "image_ids": ["a" * 32]},
        headers=user_headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "vision_unsupported"
