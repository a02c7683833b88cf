"""The prompt library: visibility in the query, owner/admin writes, built-ins seeded once,
content checks on save, and the validate / convert / render endpoints."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.models import AppState, SystemPrompt, User
from app.services import prompt_service
from tests.factories import auth_headers, make_user

BASE = "/api/chat/system-prompts"
VALID: dict[str, Any] = {
    "name": "My prompt",
    "content": "Translate {{ source_lang }} into {{ target_lang }}.",
    "category": "writing",
    "tags": ["translate", "中文"],
}
BUILTIN_KEYS = {t.key for t in prompt_service.TEMPLATES}


def _create(client: TestClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = client.post(f"{BASE}/", json={**VALID, **changes}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _list(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get(f"{BASE}/", params={"size": 100, **params}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _names(page: dict[str, Any]) -> set[str]:
    return {item["name"] for item in page["items"]}


def _builtin_id(db: Session) -> int:
    row_id = db.scalar(select(SystemPrompt.id).where(SystemPrompt.builtin_key == "zh-translate"))
    assert row_id is not None
    return row_id


# --------------------------------------------------------------------------- 401 / 403


ENDPOINTS = [
    ("get", "/", None),
    ("post", "/", VALID),
    ("get", "/{id}", None),
    ("put", "/{id}", VALID),
    ("patch", "/{id}", {"name": "x"}),
    ("delete", "/{id}", None),
    ("post", "/validate", {"content": "x", "format": "text"}),
    ("post", "/convert", {"content": "x", "from": "text", "to": "json"}),
    ("post", "/render", {"content": "x", "variables": {}}),
    ("get", "/facets", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_anonymous_is_401(
    client: TestClient, user_headers: dict[str, str], method: str, path: str, body: object
) -> None:
    prompt_id = _create(client, user_headers)["id"]
    response = client.request(method, BASE + path.format(id=prompt_id), json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("get", None),
        ("put", {**VALID, "name": "stolen"}),
        ("patch", {"name": "x"}),
        ("delete", None),
    ],
)
def test_other_users_private_prompt_is_404(
    client: TestClient,
    user_headers: dict[str, str],
    other_user: User,
    method: str,
    body: object,
) -> None:
    prompt_id = _create(client, user_headers)["id"]
    other = auth_headers(client, "carol")
    response = client.request(method, f"{BASE}/{prompt_id}", json=body, headers=other)
    assert response.status_code == 404
    assert response.json()["code"] == "system_prompt_not_found"
    render = client.post(f"{BASE}/render", json={"prompt_id": prompt_id}, headers=other)
    assert render.status_code == 404
    assert _create(client, user_headers)["name"] == "My prompt"  # the row is untouched


@pytest.mark.parametrize(
    ("method", "body"),
    [("put", {**VALID, "name": "x"}), ("patch", {"name": "x"}), ("delete", None)],
)
def test_non_admin_cannot_change_builtin(
    client: TestClient, user_headers: dict[str, str], db: Session, method: str, body: object
) -> None:
    prompt_id = _builtin_id(db)
    response = client.request(method, f"{BASE}/{prompt_id}", json=body, headers=user_headers)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    got = client.get(f"{BASE}/{prompt_id}", headers=user_headers).json()
    assert got["name"] == "翻译"
    assert got["can_edit"] is False


def test_shared_prompt_is_visible_but_read_only_for_others(
    client: TestClient, user_headers: dict[str, str], other_user: User
) -> None:
    prompt_id = _create(client, user_headers, is_shared=True)["id"]
    other = auth_headers(client, "carol")
    got = client.get(f"{BASE}/{prompt_id}", headers=other)
    assert got.status_code == 200
    assert got.json()["can_edit"] is False
    assert got.json()["owner"]["nickname"] == "alice"
    response = client.patch(f"{BASE}/{prompt_id}", json={"name": "x"}, headers=other)
    assert response.status_code == 403
    assert client.delete(f"{BASE}/{prompt_id}", headers=other).status_code == 403


def test_admin_may_change_anything(
    client: TestClient, user_headers: dict[str, str], admin_headers: dict[str, str], db: Session
) -> None:
    private_id = _create(client, user_headers)["id"]
    got = client.get(f"{BASE}/{private_id}", headers=admin_headers)
    assert got.status_code == 200 and got.json()["can_edit"] is True
    patched = client.patch(f"{BASE}/{private_id}", json={"name": "Fixed"}, headers=admin_headers)
    assert patched.status_code == 200 and patched.json()["name"] == "Fixed"
    builtin_id = _builtin_id(db)
    patched = client.patch(
        f"{BASE}/{builtin_id}", json={"category": "edited"}, headers=admin_headers
    )
    assert patched.status_code == 200
    assert patched.json()["is_builtin"] is True and patched.json()["category"] == "edited"
    assert client.delete(f"{BASE}/{private_id}", headers=admin_headers).status_code == 204


def test_pending_password_change_is_403(client: TestClient, db: Session) -> None:
    make_user(db, "new@example.com", "newbie", must_change_password=True)
    response = client.get(f"{BASE}/", headers=auth_headers(client, "newbie"))
    assert response.status_code == 403
    assert response.json()["code"] == "password_change_required"


# ------------------------------------------------------------------------------ 404 / 422


@pytest.mark.parametrize(
    ("method", "body"), [("get", None), ("put", VALID), ("patch", {"name": "x"}), ("delete", None)]
)
def test_missing_prompt_is_404(
    client: TestClient, user_headers: dict[str, str], method: str, body: object
) -> None:
    response = client.request(method, f"{BASE}/999999", json=body, headers=user_headers)
    assert response.status_code == 404
    assert response.json()["code"] == "system_prompt_not_found"


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"format": "xml"}, ["body", "format"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "n" * 101}, ["body", "name"]),
        ({"content": "x" * 20_001}, ["body", "content"]),
        ({"category": "c" * 51}, ["body", "category"]),
        ({"tags": [f"t{i}" for i in range(11)]}, ["body", "tags"]),
        ({"tags": ['bad"quote']}, ["body", "tags"]),
        ({"tags": ["x" * 31]}, ["body", "tags"]),
        ({"variables": ["1bad"]}, ["body", "variables"]),
        ({"content": "   "}, ["body", "content"]),
        ({"content": "Hi {{ name"}, ["body", "content"]),
        ({"content": '{"a": 1,}', "format": "json"}, ["body", "content"]),
        ({"content": "a: [1,", "format": "yaml"}, ["body", "content"]),
    ],
)
def test_invalid_input_is_422(
    client: TestClient, user_headers: dict[str, str], db: Session, changes: Any, loc: list[str]
) -> None:
    before = db.scalar(select(func.count()).select_from(SystemPrompt))
    response = client.post(f"{BASE}/", json={**VALID, **changes}, headers=user_headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["detail"][0]["loc"][:2] == loc
    assert db.scalar(select(func.count()).select_from(SystemPrompt)) == before


def test_malformed_json_content_message_has_position(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    response = client.post(
        f"{BASE}/", json={**VALID, "content": '{\n  "a": }', "format": "json"}, headers=user_headers
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["msg"].startswith("line 2, column 8: Invalid JSON")
    assert error["ctx"] == {"line": "2", "column": "8"}


def test_patch_rechecks_content_against_a_new_format(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    prompt_id = _create(client, user_headers, content="plain words, not json")["id"]
    response = client.patch(f"{BASE}/{prompt_id}", json={"format": "json"}, headers=user_headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "content"]
    assert client.get(f"{BASE}/{prompt_id}", headers=user_headers).json()["format"] == "text"


def test_patch_null_is_422(client: TestClient, user_headers: dict[str, str]) -> None:
    prompt_id = _create(client, user_headers)["id"]
    response = client.patch(f"{BASE}/{prompt_id}", json={"name": None}, headers=user_headers)
    assert response.status_code == 422


# ---------------------------------------------------------------------------------- CRUD


def test_crud_round_trip(client: TestClient, user_headers: dict[str, str]) -> None:
    created = _create(client, user_headers)
    assert created["variables"] == ["source_lang", "target_lang"]
    assert created["tags"] == ["translate", "中文"]
    assert created["format"] == "text"
    assert created["is_shared"] is False and created["is_builtin"] is False
    assert created["can_edit"] is True
    assert created["owner"]["nickname"] == "alice"
    assert created["created_at"] == created["updated_at"]
    prompt_id = created["id"]

    got = client.get(f"{BASE}/{prompt_id}", headers=user_headers).json()
    assert got == created

    replaced = client.put(
        f"{BASE}/{prompt_id}",
        json={"name": "Replaced", "content": "# Title\n{{ topic }}", "format": "markdown"},
        headers=user_headers,
    ).json()
    assert replaced["name"] == "Replaced"
    assert replaced["category"] == "general" and replaced["tags"] == []
    assert replaced["variables"] == ["topic"]

    patched = client.patch(
        f"{BASE}/{prompt_id}",
        json={"variables": ["topic", "extra"], "is_shared": True},
        headers=user_headers,
    ).json()
    assert patched["variables"] == ["topic", "extra"]
    assert patched["is_shared"] is True and patched["format"] == "markdown"

    patched = client.patch(
        f"{BASE}/{prompt_id}", json={"content": "{{ a }} {{ b }}"}, headers=user_headers
    ).json()
    assert patched["variables"] == ["a", "b"]  # content changed: found again

    assert client.delete(f"{BASE}/{prompt_id}", headers=user_headers).status_code == 204
    assert client.get(f"{BASE}/{prompt_id}", headers=user_headers).status_code == 404


def test_tags_are_trimmed_and_deduplicated(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    created = _create(client, user_headers, tags=[" a ", "a", "b"])
    assert created["tags"] == ["a", "b"]


def test_json_and_yaml_prompts_with_variables_save(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    created = _create(
        client, user_headers, content='{"lang": "{{ lang }}", "n": {{ n }}}', format="json"
    )
    assert created["variables"] == ["lang", "n"]
    created = _create(
        client, user_headers, content="role: {{ role }}\nrules: [a, b]", format="yaml"
    )
    assert created["variables"] == ["role"]


# ------------------------------------------------------------------- visibility and list


def test_list_visibility_and_scopes(
    client: TestClient, user_headers: dict[str, str], other_user: User
) -> None:
    other = auth_headers(client, "carol")
    _create(client, user_headers, name="alice private")
    _create(client, user_headers, name="alice shared", is_shared=True)
    _create(client, other, name="carol private")
    _create(client, other, name="carol shared", is_shared=True)

    everything = _list(client, user_headers)
    names = _names(everything)
    assert {"alice private", "alice shared", "carol shared"} <= names
    assert "carol private" not in names
    assert everything["total"] == 3 + len(BUILTIN_KEYS)
    assert sum(item["is_builtin"] for item in everything["items"]) == len(BUILTIN_KEYS)

    assert _names(_list(client, user_headers, scope="mine")) == {"alice private", "alice shared"}
    assert _names(_list(client, user_headers, scope="shared")) == {"alice shared", "carol shared"}
    builtins = _list(client, user_headers, scope="builtin")
    assert builtins["total"] == len(BUILTIN_KEYS)
    assert all(item["is_builtin"] and not item["can_edit"] for item in builtins["items"])


def test_admin_lists_everything(
    client: TestClient, user_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    _create(client, user_headers, name="alice private")
    assert "alice private" in _names(_list(client, admin_headers))
    assert _list(client, admin_headers, scope="mine")["total"] == 0


def test_filters(client: TestClient, user_headers: dict[str, str]) -> None:
    _create(client, user_headers, name="Alpha", category="ops", tags=["deploy", "中文"])
    _create(client, user_headers, name="Beta 100%", content="uses snake_case names", tags=["x"])
    _create(client, user_headers, name="Gamma", content="nothing special", tags=["deploy-x"])

    assert _names(_list(client, user_headers, scope="mine", category="ops")) == {"Alpha"}
    assert _names(_list(client, user_headers, scope="mine", tag="deploy")) == {"Alpha"}
    assert _names(_list(client, user_headers, scope="mine", tag="中文")) == {"Alpha"}
    assert _names(_list(client, user_headers, scope="mine", tag='de"p')) == set()
    assert _names(_list(client, user_headers, scope="mine", q="alp")) == {"Alpha"}
    assert _names(_list(client, user_headers, scope="mine", q="SNAKE_")) == {"Beta 100%"}
    # LIKE wildcards are literal: "%" and "_" match only themselves.
    assert _names(_list(client, user_headers, scope="mine", q="100%")) == {"Beta 100%"}
    assert _names(_list(client, user_headers, scope="mine", q="a_p")) == set()
    assert _names(_list(client, user_headers, scope="mine", q="%")) == {"Beta 100%"}
    # Built-ins are searchable by their Chinese names.
    assert "翻译" in _names(_list(client, user_headers, q="翻译"))


def test_pagination(client: TestClient, user_headers: dict[str, str]) -> None:
    for index in range(7):
        _create(client, user_headers, name=f"p{index}")
    seen: list[int] = []
    for page in (1, 2, 3):
        body = client.get(
            f"{BASE}/", params={"scope": "mine", "page": page, "size": 3}, headers=user_headers
        ).json()
        assert body["total"] == 7 and body["page"] == page and body["size"] == 3
        seen += [item["id"] for item in body["items"]]
    assert len(seen) == 7 == len(set(seen))
    bad = client.get(f"{BASE}/", params={"size": 101}, headers=user_headers)
    assert bad.status_code == 422
    bad = client.get(f"{BASE}/", params={"scope": "nobody"}, headers=user_headers)
    assert bad.status_code == 422


def test_facets_list_what_the_caller_can_see(
    client: TestClient,
    user_headers: dict[str, str],
    admin_headers: dict[str, str],
    other_user: User,
) -> None:
    other = auth_headers(client, "carol")
    _create(client, user_headers, category="zeta", tags=["mine-tag", "共用"])
    _create(client, other, category="secret", tags=["carol-only"])
    _create(client, other, category="team", tags=["共用", "team-tag"], is_shared=True)

    response = client.get(f"{BASE}/facets", headers=user_headers)
    assert response.status_code == 200
    body = response.json()
    assert {"zeta", "team", "writing", "coding"} <= set(body["categories"])
    assert "secret" not in body["categories"] and "carol-only" not in body["tags"]
    assert {"mine-tag", "共用", "team-tag", "中文", "english"} <= set(body["tags"])
    assert body["categories"] == sorted(body["categories"])
    assert body["tags"] == sorted(body["tags"]) and len(body["tags"]) == len(set(body["tags"]))

    mine = client.get(f"{BASE}/facets", params={"scope": "mine"}, headers=user_headers).json()
    assert mine == {"categories": ["zeta"], "tags": sorted(["mine-tag", "共用"])}
    builtin = client.get(f"{BASE}/facets", params={"scope": "builtin"}, headers=user_headers)
    assert "zeta" not in builtin.json()["categories"]
    everything = client.get(f"{BASE}/facets", headers=admin_headers).json()
    assert "secret" in everything["categories"] and "carol-only" in everything["tags"]
    bad = client.get(f"{BASE}/facets", params={"scope": "nobody"}, headers=user_headers)
    assert bad.status_code == 422


# ---------------------------------------------------------------------------------- seeding


def test_builtins_are_seeded_once_and_not_recreated(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    rows = db.scalars(select(SystemPrompt).where(SystemPrompt.builtin_key.is_not(None))).all()
    assert {row.builtin_key for row in rows} == BUILTIN_KEYS
    assert len(rows) >= 8
    names = {row.name for row in rows}
    assert {"通用助手", "代码审查", "翻译", "JSON 输出", "摘要", "General assistant"} <= names
    owner = db.get(User, rows[0].owner_id)
    assert owner is not None and owner.is_protected and owner.is_admin
    translate = next(row for row in rows if row.builtin_key == "zh-translate")
    assert translate.variables == ["source_lang", "target_lang"]
    assert {row.format for row in rows} == {"text", "markdown", "json", "yaml"}

    builtin_id = _builtin_id(db)
    assert client.delete(f"{BASE}/{builtin_id}", headers=admin_headers).status_code == 204
    db.expire_all()
    assert prompt_service.seed_builtin_prompts(db) == 0
    db.commit()
    assert db.get(SystemPrompt, builtin_id) is None


def test_seeding_without_the_marker_fills_only_missing_builtins(db: Session) -> None:
    db.execute(delete(AppState).where(AppState.key == prompt_service.SEED_MARKER))
    db.execute(delete(SystemPrompt).where(SystemPrompt.builtin_key == "en-sql-expert"))
    db.commit()
    assert prompt_service.seed_builtin_prompts(db) == 1
    db.commit()
    count = db.scalar(
        select(func.count()).select_from(SystemPrompt).where(SystemPrompt.builtin_key.is_not(None))
    )
    assert count == len(BUILTIN_KEYS)


def test_builtin_contents_are_valid(client: TestClient, user_headers: dict[str, str]) -> None:
    for item in _list(client, user_headers, scope="builtin")["items"]:
        result = client.post(
            f"{BASE}/validate",
            json={
                "content": item["content"],
                "format": item["format"],
                "variables": item["variables"],
            },
            headers=user_headers,
        ).json()
        assert result["valid"] and result["warnings"] == [], (item["name"], result)


# -------------------------------------------------------------------------------- validate


def test_validate_reports_errors_warnings_and_variables(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    response = client.post(
        f"{BASE}/validate",
        json={
            "content": "Hello {{ name }}\nfrom {{ sender }} {{ broken",
            "format": "text",
            "variables": ["name", "unused"],
        },
        headers=user_headers,
    )
    assert response.status_code == 200
    assert response.json() == {
        "valid": False,
        "errors": [
            {
                "line": 2,
                "column": 19,
                "message": "Unclosed '{{': a variable marker must end with '}}' on the same line "
                "(write '{{{{' for a literal '{{')",
            }
        ],
        "warnings": [
            {"line": 2, "column": 6, "message": "Variable 'sender' is used but not declared"},
            {"line": None, "column": None, "message": "Variable 'unused' is declared but not used"},
        ],
        "variables": ["name", "sender"],
    }


@pytest.mark.parametrize(
    ("content", "fmt", "position", "start"),
    [
        ("", "text", (1, 1), "Content is empty"),
        ("x" * 20_001, "text", (1, 20_001), "Content is 20,001 characters"),
        ("a }} b", "markdown", (1, 3), "'}}' without"),
        ("{{ 9x }}", "text", (1, 1), "Invalid variable name"),
        ('{"a": [1, 2}', "json", (1, 12), "Invalid JSON"),
        ("a: 1\n- b", "yaml", (2, 1), "Invalid YAML"),
    ],
)
def test_validate_error_types(
    client: TestClient,
    user_headers: dict[str, str],
    content: str,
    fmt: str,
    position: tuple[int, int],
    start: str,
) -> None:
    response = client.post(
        f"{BASE}/validate", json={"content": content, "format": fmt}, headers=user_headers
    )
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    error = body["errors"][0]
    assert (error["line"], error["column"]) == position
    assert error["message"].startswith(start)


def test_validate_bad_format_is_422(client: TestClient, user_headers: dict[str, str]) -> None:
    response = client.post(
        f"{BASE}/validate", json={"content": "x", "format": "xml"}, headers=user_headers
    )
    assert response.status_code == 422


# --------------------------------------------------------------------------------- convert


def _convert(client: TestClient, headers: dict[str, str], content: str, src: str, dst: str) -> Any:
    return client.post(
        f"{BASE}/convert", json={"content": content, "from": src, "to": dst}, headers=headers
    )


@pytest.mark.parametrize("target", ["markdown", "json", "yaml", "openai-messages"])
def test_convert_round_trip(client: TestClient, user_headers: dict[str, str], target: str) -> None:
    content = "你是翻译助手。\n把 {{ source_lang }} 译成 {{ target_lang }}。\n  - 保留格式"
    there = _convert(client, user_headers, content, "text", target)
    assert there.status_code == 200
    assert there.json()["format"] == target
    back = _convert(client, user_headers, there.json()["content"], target, "text")
    assert back.status_code == 200
    assert back.json() == {"content": content, "format": "text"}


def test_convert_json_yaml(client: TestClient, user_headers: dict[str, str]) -> None:
    data = {"role": "助手", "rules": ["a", "b"], "n": 1.5, "ok": True, "none": None}
    as_yaml = _convert(client, user_headers, json.dumps(data), "json", "yaml").json()["content"]
    back = _convert(client, user_headers, as_yaml, "yaml", "json").json()["content"]
    assert json.loads(back) == data


@pytest.mark.parametrize(
    ("content", "src", "dst"),
    [
        ("[1, 2, 3]", "json", "openai-messages"),
        ("{broken", "json", "yaml"),
        ("when: 2024-01-01", "yaml", "json"),
        ('[{"role": "user", "content": "x"}]', "openai-messages", "text"),
    ],
)
def test_impossible_conversion_is_422(
    client: TestClient, user_headers: dict[str, str], content: str, src: str, dst: str
) -> None:
    response = _convert(client, user_headers, content, src, dst)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "conversion_failed"
    assert isinstance(body["detail"], str) and body["detail"]


def test_every_builtin_converts_and_comes_back(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    """Markers in value positions too (the YAML persona's `language: {{ language }}`)."""
    for item in _list(client, user_headers, scope="builtin")["items"]:
        src = item["format"]
        targets = ["json", "yaml"] if src in ("json", "yaml") else ["json", "yaml", "markdown"]
        for target in targets:
            there = _convert(client, user_headers, item["content"], src, target)
            assert there.status_code == 200, (item["name"], target, there.text)
            checked = client.post(
                f"{BASE}/validate",
                json={"content": there.json()["content"], "format": target},
                headers=user_headers,
            ).json()
            assert checked["valid"], (item["name"], target, checked)
            assert sorted(checked["variables"]) == sorted(item["variables"])
            back = _convert(client, user_headers, there.json()["content"], target, src)
            assert back.status_code == 200, (item["name"], target, back.text)
            if src not in ("json", "yaml"):
                assert back.json()["content"] == item["content"]


def test_convert_bad_request_is_422(client: TestClient, user_headers: dict[str, str]) -> None:
    assert _convert(client, user_headers, "x", "text", "xml").status_code == 422
    assert _convert(client, user_headers, "", "text", "json").status_code == 422
    assert _convert(client, user_headers, "x" * 20_001, "text", "json").status_code == 422


# ---------------------------------------------------------------------------------- render


def test_render_content_with_missing_variables(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    response = client.post(
        f"{BASE}/render",
        json={"content": "{{ a }} + {{ b }} = {{ c }}", "variables": {"a": "1", "b": "二"}},
        headers=user_headers,
    )
    assert response.status_code == 200
    assert response.json() == {"content": "1 + 二 = {{ c }}", "missing": ["c"]}


def test_render_builtin_by_id(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    response = client.post(
        f"{BASE}/render",
        json={"prompt_id": _builtin_id(db), "variables": {"source_lang": "英文"}},
        headers=user_headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert "英文" in body["content"] and "{{ target_lang }}" in body["content"]
    assert body["missing"] == ["target_lang"]


def test_render_escapes_values_for_json_and_yaml(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    tricky = '名字, "引号" \\ and\nline two: # not a comment'
    json_id = db.scalar(select(SystemPrompt.id).where(SystemPrompt.builtin_key == "zh-json-output"))
    response = client.post(
        f"{BASE}/render",
        json={"prompt_id": json_id, "variables": {"fields": tricky}},
        headers=user_headers,
    )
    assert response.status_code == 200
    assert json.loads(response.json()["content"])["task"] == f"从用户输入中抽取 {tricky}"

    yaml_id = db.scalar(
        select(SystemPrompt.id).where(SystemPrompt.builtin_key == "en-yaml-persona")
    )
    response = client.post(
        f"{BASE}/render",
        json={"prompt_id": yaml_id, "variables": {"product": tricky, "language": "no"}},
        headers=user_headers,
    )
    assert response.status_code == 200
    data = yaml.safe_load(response.json()["content"])
    assert data["role"] == f"support agent for {tricky}"
    assert data["language"] == "no"  # a string, not YAML 1.1's false

    text = client.post(
        f"{BASE}/render",
        json={"content": 'say "{{ v }}"', "format": "text", "variables": {"v": tricky}},
        headers=user_headers,
    )
    assert text.json() == {"content": f'say "{tricky}"', "missing": []}


@pytest.mark.parametrize(
    "body",
    [
        {"variables": {}},
        {"prompt_id": 1, "content": "x"},
        {"content": "x", "variables": {"a": 1}},
    ],
)
def test_render_bad_request_is_422(
    client: TestClient, user_headers: dict[str, str], body: dict[str, Any]
) -> None:
    assert client.post(f"{BASE}/render", json=body, headers=user_headers).status_code == 422


def test_render_missing_prompt_is_404(client: TestClient, user_headers: dict[str, str]) -> None:
    response = client.post(f"{BASE}/render", json={"prompt_id": 999999}, headers=user_headers)
    assert response.status_code == 404
