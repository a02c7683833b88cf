"""Saved model comparisons: own rows only, validation of results / winner / images, ratings
after saving, and the DPO / SFT exports as LLaMA-Factory datasets."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import ModelTest, User
from tests.factories import auth_headers

BASE = "/api/model/tests"


def result(
    content: str, *, rating: int | None = None, error: bool = False, name: str = "cfg"
) -> dict[str, Any]:
    return {
        "model_config_id": None,
        "config_name": name,
        "model": f"{name}-model",
        "content": content,
        "reasoning": "thinking..." if content else "",
        "metrics": {
            "ttft_ms": 120,
            "total_ms": 900,
            "output_tokens": 42,
            "tokens_per_s": 46.7,
            "finish_reason": "stop",
        },
        "error": {"code": "bad_gateway", "message": "upstream failed"} if error else None,
        "rating": rating,
    }


VALID: dict[str, Any] = {
    "title": "Capital question",
    "prompt": "What is the capital of France?",
    "system_prompt": "Answer briefly.",
    "params": {"temperature": 0.2, "max_tokens": 256},
    "results": [result("Paris.", name="a"), result("Lyon.", name="b")],
    "winner_index": 0,
}


def create(client: TestClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = client.post(BASE, json={**VALID, **changes}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def export(client: TestClient, headers: dict[str, str], fmt: str, **params: Any) -> list[Any]:
    response = client.get(f"{BASE}/export", params={"format": fmt, **params}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f"model-tests-{fmt}-" in disposition
    return [json.loads(line) for line in response.text.splitlines()]


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


def upload(client: TestClient, headers: dict[str, str]) -> str:
    response = client.post(
        "/api/model/upload-image", files={"file": ("a.png", png(), "image/png")}, headers=headers
    )
    assert response.status_code == 201, response.text
    image_id: str = response.json()["id"]
    return image_id


def count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(ModelTest)) or 0


# ------------------------------------------------------------------------- 401 / 404

ENDPOINTS = [
    ("post", "", VALID),
    ("get", "", None),
    ("get", "/export?format=dpo", None),
    ("get", "/{id}", None),
    ("patch", "/{id}", {"title": "x"}),
    ("delete", "/{id}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_anonymous_is_401(
    client: TestClient, user_headers: dict[str, str], method: str, path: str, body: object
) -> None:
    test_id = create(client, user_headers)["id"]
    response = client.request(method, BASE + path.format(id=test_id), json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("method", "body"), [("get", None), ("patch", {"title": "stolen"}), ("delete", None)]
)
def test_other_users_test_is_404(
    client: TestClient,
    user_headers: dict[str, str],
    other_user: User,
    db: Session,
    method: str,
    body: object,
) -> None:
    test_id = create(client, user_headers)["id"]
    carol = auth_headers(client, "carol")
    response = client.request(method, f"{BASE}/{test_id}", json=body, headers=carol)
    assert response.status_code == 404
    assert response.json()["code"] == "model_test_not_found"
    assert client.get(f"{BASE}/{test_id}", headers=user_headers).json()["title"] == VALID["title"]
    assert client.get(BASE, headers=carol).json()["total"] == 0
    assert export(client, carol, "dpo") == []
    foreign = client.get(
        f"{BASE}/export", params={"format": "sft", "ids": [test_id]}, headers=carol
    )
    assert foreign.status_code == 404


@pytest.mark.parametrize(
    ("method", "body"), [("get", None), ("patch", {"title": "x"}), ("delete", None)]
)
def test_unknown_test_is_404(
    client: TestClient, user_headers: dict[str, str], method: str, body: object
) -> None:
    response = client.request(method, f"{BASE}/999999", json=body, headers=user_headers)
    assert response.status_code == 404
    assert response.json()["code"] == "model_test_not_found"


# ------------------------------------------------------------------------------ CRUD


def test_create_get_list_delete(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    image_id = upload(client, user_headers)
    created = create(client, user_headers, image_ids=[image_id], notes="first try")
    assert created["title"] == "Capital question"
    assert created["image_ids"] == [image_id]
    assert created["params"] == {"temperature": 0.2, "max_tokens": 256}
    assert created["results"][0]["metrics"]["ttft_ms"] == 120
    assert created["results"][1]["error"] is None
    assert created["winner_index"] == 0 and created["notes"] == "first try"
    assert client.get(f"{BASE}/{created['id']}", headers=user_headers).json() == created

    second = create(client, user_headers, title=None, prompt="  \nTell me a joke\nplease")
    assert second["title"] == "Tell me a joke"  # from the prompt's first line
    page = client.get(BASE, params={"page": 1, "size": 1}, headers=user_headers).json()
    assert page["total"] == 2 and page["page"] == 1 and page["size"] == 1
    assert [item["id"] for item in page["items"]] == [second["id"]]  # newest first
    page2 = client.get(BASE, params={"page": 2, "size": 1}, headers=user_headers).json()
    assert [item["id"] for item in page2["items"]] == [created["id"]]

    assert client.delete(f"{BASE}/{created['id']}", headers=user_headers).status_code == 204
    assert client.get(f"{BASE}/{created['id']}", headers=user_headers).status_code == 404
    assert count(db) == 1
    # The images stay: they belong to the uploads.
    assert client.get(f"/api/model/images/{image_id}", headers=user_headers).status_code == 200


def test_failed_result_is_kept(client: TestClient, user_headers: dict[str, str]) -> None:
    created = create(
        client,
        user_headers,
        results=[result("Paris."), result("", error=True)],
        winner_index=None,
    )
    assert created["results"][1]["error"] == {
        "code": "bad_gateway",
        "message": "upstream failed",
    }


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"results": []}, ["body", "results"]),
        ({"results": [result("x")] * 4}, ["body", "results"]),
        ({"prompt": ""}, ["body", "prompt"]),
        ({"winner_index": 2}, ["body"]),
        ({"winner_index": -1}, ["body", "winner_index"]),
        ({"results": [result("x"), result("", error=True)], "winner_index": 1}, ["body"]),
        ({"results": [result("x", rating=6)]}, ["body", "results", 0, "rating"]),
        ({"results": [result("x", rating=0)]}, ["body", "results", 0, "rating"]),
        ({"image_ids": ["not-an-id"]}, ["body", "image_ids", 0]),
        ({"image_ids": ["a" * 32] * 5}, ["body", "image_ids"]),
        ({"params": {"temperature": 5}}, ["body", "params", "temperature"]),
        ({"title": "t" * 201}, ["body", "title"]),
    ],
)
def test_invalid_create_is_422(
    client: TestClient,
    user_headers: dict[str, str],
    db: Session,
    changes: dict[str, Any],
    loc: list[Any],
) -> None:
    response = client.post(BASE, json={**VALID, **changes}, headers=user_headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert count(db) == 0


def test_images_must_be_own(
    client: TestClient, user_headers: dict[str, str], other_user: User, db: Session
) -> None:
    carol = auth_headers(client, "carol")
    foreign = upload(client, carol)
    for ids in ([foreign], ["0" * 32]):
        response = client.post(BASE, json={**VALID, "image_ids": ids}, headers=user_headers)
        assert response.status_code == 404
        assert response.json()["code"] == "image_not_found"
    assert count(db) == 0


def test_rate_and_pick_winner_after_saving(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    test_id = create(
        client,
        user_headers,
        results=[result("A"), result("B"), result("", error=True)],
        winner_index=None,
    )["id"]
    url = f"{BASE}/{test_id}"
    changed = client.patch(url, json={"ratings": [4, 2, None]}, headers=user_headers)
    assert changed.status_code == 200, changed.text
    assert [r["rating"] for r in changed.json()["results"]] == [4, 2, None]
    assert changed.json()["results"][0]["content"] == "A"  # the rest of the result stays

    changed = client.patch(
        url, json={"winner_index": 1, "notes": "B is terser"}, headers=user_headers
    )
    body = changed.json()
    assert body["winner_index"] == 1 and body["notes"] == "B is terser"
    assert [r["rating"] for r in body["results"]] == [4, 2, None]  # untouched
    cleared = client.patch(url, json={"winner_index": None, "notes": None}, headers=user_headers)
    assert cleared.json()["winner_index"] is None and cleared.json()["notes"] is None
    retitled = client.patch(url, json={"title": "  Renamed  "}, headers=user_headers).json()
    assert retitled["title"] == "Renamed"
    assert client.get(url, headers=user_headers).json() == retitled


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"ratings": [5]}, ["body", "ratings"]),  # one per result (there are 3)
        ({"ratings": [5, 6, None]}, ["body", "ratings", 1]),
        ({"ratings": None}, ["body", "ratings"]),
        ({"winner_index": 3}, ["body", "winner_index"]),
        ({"winner_index": 2}, ["body", "winner_index"]),  # the failed one
        ({"title": None}, ["body", "title"]),
        ({"notes": "n" * 10_001}, ["body", "notes"]),
    ],
)
def test_invalid_update_is_422(
    client: TestClient, user_headers: dict[str, str], body: dict[str, Any], loc: list[Any]
) -> None:
    test_id = create(
        client,
        user_headers,
        results=[result("A", rating=3), result("B"), result("", error=True)],
        winner_index=None,
    )["id"]
    response = client.patch(f"{BASE}/{test_id}", json=body, headers=user_headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    stored = client.get(f"{BASE}/{test_id}", headers=user_headers).json()
    assert [r["rating"] for r in stored["results"]] == [3, None, None]
    assert stored["winner_index"] is None


@pytest.mark.parametrize("params", [{"page": 0}, {"size": 0}, {"size": 101}, {"page": "x"}])
def test_invalid_list_query_is_422(
    client: TestClient, user_headers: dict[str, str], params: dict[str, Any]
) -> None:
    assert client.get(BASE, params=params, headers=user_headers).status_code == 422


# ---------------------------------------------------------------------------- export


@pytest.mark.parametrize("params", [{}, {"format": "csv"}, {"format": "dpo", "ids": "x"}])
def test_invalid_export_query_is_422(
    client: TestClient, user_headers: dict[str, str], params: dict[str, Any]
) -> None:
    response = client.get(f"{BASE}/export", params=params, headers=user_headers)
    assert response.status_code == 422


def test_export_route_is_not_taken_for_an_id(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    create(client, user_headers)
    assert export(client, user_headers, "sft")[0]["output"] == "Paris."


def test_dpo_with_a_winner_gives_one_pair_per_other_answer(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    create(
        client,
        user_headers,
        results=[result("Lyon."), result("Paris."), result("Marseille.")],
        winner_index=1,
    )
    rows = export(client, user_headers, "dpo")
    assert rows == [
        {
            "prompt": VALID["prompt"],
            "chosen": "Paris.",
            "rejected": "Lyon.",
            "system": "Answer briefly.",
        },
        {
            "prompt": VALID["prompt"],
            "chosen": "Paris.",
            "rejected": "Marseille.",
            "system": "Answer briefly.",
        },
    ]


def test_dpo_skips_failed_empty_and_identical_answers(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    create(
        client,
        user_headers,
        system_prompt=None,
        results=[result("Paris."), result("", error=True), result("Paris.")],
        winner_index=0,
    )
    create(
        client,
        user_headers,
        system_prompt=None,
        results=[result("Paris."), result("   ")],
        winner_index=0,
    )
    assert export(client, user_headers, "dpo") == []


def test_dpo_without_winner_uses_ratings_and_skips_ties(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    create(
        client,
        user_headers,
        system_prompt=None,
        results=[result("ok", rating=3), result("best", rating=5), result("also ok", rating=3)],
        winner_index=None,
    )
    create(  # all tied or unrated: nothing
        client,
        user_headers,
        system_prompt=None,
        prompt="second",
        results=[result("x", rating=4), result("y", rating=4), result("z")],
        winner_index=None,
    )
    rows = export(client, user_headers, "dpo")
    assert rows == [
        {"prompt": VALID["prompt"], "chosen": "best", "rejected": "ok"},
        {"prompt": VALID["prompt"], "chosen": "best", "rejected": "also ok"},
    ]


def test_sft_uses_the_winner_or_the_top_rated(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    create(client, user_headers, prompt="one", system_prompt=None)  # winner 0: Paris.
    create(
        client,
        user_headers,
        prompt="two",
        system_prompt="Be kind.",
        results=[result("meh", rating=2), result("great", rating=5)],
        winner_index=None,
    )
    create(  # no winner, no rating: nothing to learn
        client, user_headers, prompt="three", results=[result("a"), result("b")], winner_index=None
    )
    rows = export(client, user_headers, "sft")
    # Oldest first; "system" in every row because one row has it.
    assert rows == [
        {"instruction": "one", "input": "", "output": "Paris.", "system": ""},
        {"instruction": "two", "input": "", "output": "great", "system": "Be kind."},
    ]


def test_export_selected_ids_and_images(client: TestClient, user_headers: dict[str, str]) -> None:
    image_id = upload(client, user_headers)
    with_image = create(client, user_headers, prompt="What is this?", image_ids=[image_id])
    create(client, user_headers, prompt="no image")
    rows = export(client, user_headers, "sft", ids=[with_image["id"]])
    assert rows == [
        {
            "instruction": "<image>What is this?",
            "input": "",
            "output": "Paris.",
            "system": "Answer briefly.",
            "images": [image_id],
        }
    ]
    both = export(client, user_headers, "dpo")
    assert [row["images"] for row in both] == [[image_id], []]
    assert [row["prompt"] for row in both] == ["<image>What is this?", "no image"]


def test_exports_are_valid_llamafactory_rows(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    """Every row has exactly the alpaca keys LLaMA-Factory's converter reads, as strings."""
    create(client, user_headers, prompt="中文问题", results=[result("回答"), result("另一个")])
    for fmt, keys in (
        ("dpo", {"prompt", "chosen", "rejected", "system"}),
        ("sft", {"instruction", "input", "output", "system"}),
    ):
        response = client.get(f"{BASE}/export", params={"format": fmt}, headers=user_headers)
        assert "中文问题" in response.content.decode("utf-8")  # UTF-8, not \\u escapes
        for line in response.text.splitlines():
            row = json.loads(line)
            assert set(row) == keys
            assert all(isinstance(value, str) for value in row.values())
