"""The model config center: team-shared configs, owner/admin writes, encrypted write-only keys,
the status-1 rules, seeded templates, and provider calls against a test upstream."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from app.config import settings
from app.database import engine, utcnow
from app.models import AppState, ModelConfig, ProviderModel, User
from app.services import model_config_service
from tests.factories import auth_headers, free_port, make_user
from tests.upstream import OLLAMA_MODELS, OPENAI_MODELS, WRONG_KEY, MockUpstream

BASE = "/api/model-config"
KEY = "sk-test-0123456789abcdefA1B2"
VALID: dict[str, Any] = {
    "name": "My GPT",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "api_key": KEY,
}
TEMPLATE_KEYS = {
    "openai-gpt-4o",
    "openai-gpt-4o-mini",
    "deepseek-chat",
    "deepseek-reasoner",
    "siliconcloud-qwen2.5-7b-instruct",
    "siliconcloud-deepseek-v3",
    "ollama-qwen2.5",
    "ollama-llama3.1",
    "vllm-local",
}


def _create(client: TestClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = client.post(f"{BASE}/", json={**VALID, **changes}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _row(db: Session, config_id: int) -> ModelConfig:
    db.expire_all()
    row = db.get(ModelConfig, config_id)
    assert row is not None
    return row


def _own_configs(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The list without the seeded templates."""
    response = client.get(f"{BASE}/", headers=headers)
    assert response.status_code == 200
    return [c for c in response.json() if c["template_key"] is None]


# ----------------------------------------------------------------- 401 / 403 / 404

ENDPOINTS = [
    ("get", "/", None),
    ("post", "/", VALID),
    ("get", "/{id}", None),
    ("put", "/{id}", VALID),
    ("patch", "/{id}", {"name": "x"}),
    ("delete", "/{id}", None),
    ("get", "/providers", None),
    ("get", "/provider-models?provider=openai", None),
    ("post", "/refresh-models", {"provider": "openai"}),
    ("post", "/{id}/refresh-models", None),
    ("post", "/{id}/test", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_anonymous_is_401(
    client: TestClient, user_headers: dict[str, str], method: str, path: str, body: object
) -> None:
    config_id = _create(client, user_headers)["id"]
    response = client.request(method, BASE + path.format(id=config_id), json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_pending_password_change_is_403(client: TestClient, db: Session) -> None:
    make_user(db, "new@example.com", "newbie", must_change_password=True)
    headers = auth_headers(client, "newbie")
    response = client.get(f"{BASE}/", headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "password_change_required"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("put", "/{id}", {**VALID, "name": "stolen"}),
        ("patch", "/{id}", {"name": "stolen"}),
        ("patch", "/{id}", {"api_key": ""}),
        ("delete", "/{id}", None),
    ],
)
def test_other_user_cannot_change(
    client: TestClient,
    user_headers: dict[str, str],
    other_user: User,
    db: Session,
    method: str,
    path: str,
    body: object,
) -> None:
    config = _create(client, user_headers)
    carol = auth_headers(client, "carol")
    response = client.request(method, BASE + path.format(id=config["id"]), json=body, headers=carol)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    row = _row(db, config["id"])
    assert row.name == "My GPT" and row.api_key_encrypted is not None


def test_other_users_see_shared_configs_read_only(
    client: TestClient, user_headers: dict[str, str], other_user: User
) -> None:
    config = _create(client, user_headers)
    assert config["can_edit"] is True
    carol = auth_headers(client, "carol")
    seen = client.get(f"{BASE}/{config['id']}", headers=carol)
    assert seen.status_code == 200
    assert seen.json()["can_edit"] is False
    assert seen.json()["owner"]["nickname"] == "alice"
    assert [c["id"] for c in _own_configs(client, carol)] == [config["id"]]


def test_admin_may_change_and_delete_any_config(
    client: TestClient, user_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    config = _create(client, user_headers)
    seen = client.get(f"{BASE}/{config['id']}", headers=admin_headers).json()
    assert seen["can_edit"] is True
    changed = client.patch(
        f"{BASE}/{config['id']}", json={"name": "Renamed"}, headers=admin_headers
    )
    assert changed.status_code == 200 and changed.json()["name"] == "Renamed"
    assert changed.json()["owner"]["nickname"] == "alice"  # ownership does not move
    deleted = client.delete(f"{BASE}/{config['id']}", headers=admin_headers)
    assert deleted.status_code == 204


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/{id}", None),
        ("put", "/{id}", VALID),
        ("patch", "/{id}", {"name": "x"}),
        ("delete", "/{id}", None),
        ("post", "/{id}/refresh-models", None),
        ("post", "/{id}/test", None),
    ],
)
def test_unknown_config_is_404(
    client: TestClient, user_headers: dict[str, str], method: str, path: str, body: object
) -> None:
    response = client.request(
        method, BASE + path.format(id=999_999), json=body, headers=user_headers
    )
    assert response.status_code == 404
    assert response.json()["code"] == "model_config_not_found"


# -------------------------------------------------------------------------------- 422


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"params": {"temperature": 2.01}}, "temperature"),
        ({"params": {"temperature": -0.1}}, "temperature"),
        ({"params": {"max_tokens": 0}}, "max_tokens"),
        ({"params": {"max_tokens": 2**40}}, "max_tokens"),
        ({"params": {"top_p": 0}}, "top_p"),
        ({"params": {"top_p": 1.01}}, "top_p"),
        ({"params": {"top_k": -1}}, "top_k"),
        ({"provider": "skynet"}, "provider"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"status": 2}, "status"),
        ({"endpoint": "ftp://example.com/v1"}, "endpoint"),
        ({"endpoint": "http://"}, "endpoint"),
        ({"endpoint": "https://x.example/v1?key=1"}, "endpoint"),
        ({"endpoint": "https://user:secret@x.example/v1"}, "endpoint"),
        ({"api_key": "sk-with space"}, "api_key"),
        ({"api_key": "sk-ключ"}, "api_key"),
        ({"model": "gpt\n4"}, "model"),
        ({"capabilities": {"vision": "sometimes"}}, "vision"),
        ({"description": "d" * 2001}, "description"),
    ],
)
def test_create_invalid(
    client: TestClient,
    user_headers: dict[str, str],
    db: Session,
    changes: dict[str, Any],
    field: str,
) -> None:
    response = client.post(f"{BASE}/", json={**VALID, **changes}, headers=user_headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert field in {issue["loc"][-1] for issue in body["detail"]}
    assert "input" not in body["detail"][0]
    assert (
        db.scalar(
            select(func.count()).select_from(ModelConfig).where(ModelConfig.template_key.is_(None))
        )
        == 0
    )


def test_create_without_required_fields(client: TestClient, user_headers: dict[str, str]) -> None:
    response = client.post(f"{BASE}/", json={}, headers=user_headers)
    assert response.status_code == 422
    missing = {tuple(issue["loc"]) for issue in response.json()["detail"]}
    assert {("body", "name"), ("body", "provider"), ("body", "model")} <= missing


def test_enabling_openai_without_key_gives_field_errors(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    body = {**VALID, "status": 1, "model": ""}
    del body["api_key"]
    response = client.post(f"{BASE}/", json=body, headers=user_headers)
    assert response.status_code == 422
    payload = response.json()
    assert payload["code"] == "validation_error"
    assert [(i["type"], i["loc"], i["msg"]) for i in payload["detail"]] == [
        ("missing", ["body", "model"], "Field required"),
        ("missing", ["body", "api_key"], "Field required"),
    ]
    assert (
        db.scalar(select(func.count()).select_from(ModelConfig).where(ModelConfig.name == "My GPT"))
        == 0
    )


def test_enabling_keyless_provider_needs_no_key(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    config = _create(
        client, user_headers, provider="ollama", api_key=None, model="qwen2.5", status=1
    )
    assert config["status"] == 1 and config["has_api_key"] is False


def test_status_rules_check_the_resulting_row(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    draft = _create(client, user_headers, api_key=None)
    path = f"{BASE}/{draft['id']}"
    refused = client.patch(path, json={"status": 1}, headers=user_headers)
    assert refused.status_code == 422
    assert [i["loc"] for i in refused.json()["detail"]] == [["body", "api_key"]]
    assert _row(db, draft["id"]).status == 0

    enabled = client.patch(path, json={"status": 1, "api_key": KEY}, headers=user_headers)
    assert enabled.status_code == 200 and enabled.json()["status"] == 1
    # Removing the key or the model of an enabled config would make it unusable: refused.
    for change in ({"api_key": ""}, {"model": None}):
        response = client.patch(path, json=change, headers=user_headers)
        assert response.status_code == 422, change
    full = {**VALID, "status": 1, "api_key": ""}
    assert client.put(path, json=full, headers=user_headers).status_code == 422
    row = _row(db, draft["id"])
    assert row.status == 1 and row.api_key_encrypted is not None and row.model == "gpt-4o-mini"
    # Disabling and removing in one request is fine.
    both = client.patch(path, json={"status": 0, "api_key": ""}, headers=user_headers)
    assert both.status_code == 200 and both.json()["has_api_key"] is False


@pytest.mark.parametrize(
    "body",
    [{"name": None}, {"provider": None}, {"status": None}, {"params": None}, {"status": 3}, []],
)
def test_patch_invalid(client: TestClient, user_headers: dict[str, str], body: object) -> None:
    config = _create(client, user_headers)
    response = client.patch(f"{BASE}/{config['id']}", json=body, headers=user_headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize("params", [{"status": 2}, {"provider": "nope"}, {"status": "x"}])
def test_list_invalid_filters(
    client: TestClient, user_headers: dict[str, str], params: dict[str, object]
) -> None:
    response = client.get(f"{BASE}/", params=params, headers=user_headers)
    assert response.status_code == 422


# ------------------------------------------------------------------------------ CRUD


def test_create_returns_the_public_shape(
    client: TestClient, user_headers: dict[str, str], user: User
) -> None:
    body = _create(
        client,
        user_headers,
        endpoint="HTTPS://API.OpenAI.com/",
        params={"temperature": 0.7, "max_tokens": 512},
        capabilities={"vision": True},
        description="  team default  ",
    )
    assert set(body) == {
        "id",
        "name",
        "provider",
        "endpoint",
        "model",
        "params",
        "capabilities",
        "status",
        "description",
        "owner",
        "has_api_key",
        "api_key_masked",
        "template_key",
        "can_edit",
        "created_at",
        "updated_at",
    }
    assert body["endpoint"] == "https://api.openai.com/v1"  # normalised on write
    assert body["params"] == {"temperature": 0.7, "max_tokens": 512, "top_p": None, "top_k": None}
    assert body["capabilities"] == {"vision": True, "reasoning": False}
    assert body["status"] == 0
    assert body["description"] == "team default"
    assert body["owner"] == {"id": user.id, "nickname": "alice"}
    assert body["has_api_key"] is True and body["api_key_masked"] == "sk-…A1B2"
    assert body["template_key"] is None and body["can_edit"] is True
    assert body["created_at"] == body["updated_at"]
    assert "api_key" not in body


@pytest.mark.parametrize(
    ("provider", "endpoint", "stored"),
    [
        ("deepseek", None, "https://api.deepseek.com/v1"),
        ("deepseek", "", "https://api.deepseek.com/v1"),
        ("ollama", "http://127.0.0.1:11434/api/", "http://127.0.0.1:11434"),
        ("vllm", "127.0.0.1:8001", "http://127.0.0.1:8001/v1"),
        ("custom", "http://gpu-box:9000/openai/v1/", "http://gpu-box:9000/openai/v1"),
    ],
)
def test_endpoint_default_and_normalisation(
    client: TestClient,
    user_headers: dict[str, str],
    provider: str,
    endpoint: str | None,
    stored: str,
) -> None:
    body = _create(client, user_headers, provider=provider, endpoint=endpoint)
    assert body["endpoint"] == stored


def test_list_is_shared_sorted_and_filtered(
    client: TestClient, user_headers: dict[str, str], other_user: User
) -> None:
    carol = auth_headers(client, "carol")
    _create(client, user_headers, name="zeta", provider="openai")
    _create(client, carol, name="alpha", provider="openai", status=1)
    _create(client, user_headers, name="beta", provider="deepseek")
    _create(client, carol, name="Omega", provider="vllm", api_key=None, model="m", status=1)
    everything = client.get(f"{BASE}/", headers=user_headers).json()
    order = [(c["provider"], c["name"].lower()) for c in everything]
    assert order == sorted(order)  # provider, then name (ignoring case)
    assert [c["name"] for c in _own_configs(client, user_headers)] == [
        "beta",
        "alpha",
        "zeta",
        "Omega",
    ]
    enabled = client.get(f"{BASE}/", params={"status": 1}, headers=user_headers).json()
    assert [c["name"] for c in enabled] == ["alpha", "Omega"]
    openai = client.get(f"{BASE}/", params={"provider": "openai"}, headers=user_headers).json()
    assert {c["name"] for c in openai} == {"zeta", "alpha", "OpenAI GPT-4o", "OpenAI GPT-4o mini"}
    both = client.get(
        f"{BASE}/", params={"provider": "openai", "status": 0}, headers=user_headers
    ).json()
    assert "alpha" not in {c["name"] for c in both}


def test_put_replaces_every_field(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    config = _create(
        client,
        user_headers,
        params={"temperature": 1.0, "top_k": 40},
        capabilities={"vision": True, "reasoning": True},
        description="old",
    )
    body = {"name": "Replaced", "provider": "deepseek", "model": "deepseek-chat"}
    response = client.put(f"{BASE}/{config['id']}", json=body, headers=user_headers)
    assert response.status_code == 200
    out = response.json()
    assert out["name"] == "Replaced" and out["provider"] == "deepseek"
    assert out["endpoint"] == "https://api.deepseek.com/v1"
    assert out["params"] == {"temperature": None, "max_tokens": None, "top_p": None, "top_k": None}
    assert out["capabilities"] == {"vision": False, "reasoning": False}
    assert out["description"] is None
    # api_key left out keeps a key only on the same host: the OpenAI key is not sent to DeepSeek.
    assert out["has_api_key"] is False
    assert out["created_at"] == config["created_at"]
    assert out["updated_at"] >= config["updated_at"]


def test_patch_changes_only_what_is_sent(client: TestClient, user_headers: dict[str, str]) -> None:
    config = _create(
        client,
        user_headers,
        params={"temperature": 1.0, "top_k": 40},
        capabilities={"vision": True},
        description="keep me",
    )
    path = f"{BASE}/{config['id']}"
    out = client.patch(
        path, json={"params": {"temperature": 0.2, "top_k": None}}, headers=user_headers
    ).json()
    assert out["params"] == {"temperature": 0.2, "max_tokens": None, "top_p": None, "top_k": None}
    assert out["capabilities"] == {"vision": True, "reasoning": False}
    assert out["description"] == "keep me" and out["name"] == "My GPT"
    out = client.patch(path, json={"capabilities": {"reasoning": True}}, headers=user_headers)
    assert out.json()["capabilities"] == {"vision": True, "reasoning": True}
    assert client.patch(path, json={}, headers=user_headers).json()["name"] == "My GPT"


def test_switching_provider_moves_a_default_endpoint_only(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    default = _create(client, user_headers, provider="openai")
    custom = _create(client, user_headers, provider="custom", endpoint="http://box:9000")
    moved = client.patch(
        f"{BASE}/{default['id']}", json={"provider": "deepseek"}, headers=user_headers
    )
    assert moved.json()["endpoint"] == "https://api.deepseek.com/v1"
    kept = client.patch(f"{BASE}/{custom['id']}", json={"provider": "vllm"}, headers=user_headers)
    assert kept.json()["endpoint"] == "http://box:9000/v1"
    reset = client.patch(f"{BASE}/{custom['id']}", json={"endpoint": None}, headers=user_headers)
    assert reset.json()["endpoint"] == "http://127.0.0.1:8001/v1"


def test_delete(client: TestClient, user_headers: dict[str, str], db: Session) -> None:
    config = _create(client, user_headers)
    response = client.delete(f"{BASE}/{config['id']}", headers=user_headers)
    assert response.status_code == 204 and response.content == b""
    assert client.get(f"{BASE}/{config['id']}", headers=user_headers).status_code == 404
    db.expire_all()
    assert db.get(ModelConfig, config["id"]) is None


def test_deleting_the_owner_deletes_their_configs(
    client: TestClient,
    user_headers: dict[str, str],
    admin_headers: dict[str, str],
    user: User,
    db: Session,
) -> None:
    config = _create(client, user_headers)
    assert client.delete(f"/api/admin/users/{user.id}", headers=admin_headers).status_code == 204
    db.expire_all()
    assert db.get(ModelConfig, config["id"]) is None


def test_providers(client: TestClient, user_headers: dict[str, str]) -> None:
    response = client.get(f"{BASE}/providers", headers=user_headers)
    assert response.status_code == 200
    providers = {p["key"]: p for p in response.json()}
    assert list(providers) == ["openai", "deepseek", "siliconcloud", "ollama", "vllm", "custom"]
    assert providers["openai"] == {
        "key": "openai",
        "display_name": "OpenAI",
        "protocol": "openai",
        "default_endpoint": "https://api.openai.com/v1",
        "requires_api_key": True,
        "supports_top_k": False,
        "icon": "openai",
    }
    assert providers["ollama"]["protocol"] == "ollama"
    assert providers["ollama"]["requires_api_key"] is False


# -------------------------------------------------------------------------- API keys


def test_api_key_is_write_only_and_encrypted_at_rest(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    config = _create(client, user_headers)
    for response in (
        client.get(f"{BASE}/", headers=user_headers),
        client.get(f"{BASE}/{config['id']}", headers=user_headers),
        client.patch(f"{BASE}/{config['id']}", json={"name": "n"}, headers=user_headers),
    ):
        assert KEY not in response.text and "0123456789abcdef" not in response.text
    raw = (
        db.execute(text("SELECT * FROM model_configs WHERE id = :id"), {"id": config["id"]})
        .mappings()
        .one()
    )
    assert raw["api_key_encrypted"]
    for value in raw.values():
        assert "0123456789abcdef" not in str(value)


def test_put_and_patch_key_semantics(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    config = _create(client, user_headers)
    path = f"{BASE}/{config['id']}"
    stored = _row(db, config["id"]).api_key_encrypted

    put_absent = client.put(
        path, json={k: v for k, v in VALID.items() if k != "api_key"}, headers=user_headers
    )
    assert put_absent.json()["api_key_masked"] == "sk-…A1B2"
    put_null = client.put(path, json={**VALID, "api_key": None}, headers=user_headers)
    assert put_null.json()["has_api_key"] is True
    assert _row(db, config["id"]).api_key_encrypted == stored  # not even re-encrypted

    patch_null = client.patch(path, json={"api_key": None, "name": "x"}, headers=user_headers)
    assert patch_null.json()["api_key_masked"] == "sk-…A1B2"
    replaced = client.patch(
        path, json={"api_key": " sk-other-key-0000000000Z9Z9 "}, headers=user_headers
    )
    assert replaced.json()["api_key_masked"] == "sk-…Z9Z9"  # stripped, then stored

    removed = client.patch(path, json={"api_key": ""}, headers=user_headers)
    assert removed.json()["has_api_key"] is False and removed.json()["api_key_masked"] is None
    assert _row(db, config["id"]).api_key_encrypted is None
    again = client.put(path, json={**VALID, "api_key": KEY}, headers=user_headers)
    assert again.json()["api_key_masked"] == "sk-…A1B2"
    removed_by_put = client.put(path, json={**VALID, "api_key": ""}, headers=user_headers)
    assert removed_by_put.json()["has_api_key"] is False


def test_stored_key_never_follows_the_config_to_another_host(
    client: TestClient, user_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    config = _create(client, user_headers)
    path = f"{BASE}/{config['id']}"
    same_host = client.patch(
        path, json={"endpoint": "https://api.openai.com/v1beta"}, headers=user_headers
    )
    assert same_host.json()["has_api_key"] is True  # another path on the same host keeps it
    # An admin (or the owner) pointing the config elsewhere would hand the key to that host.
    moved = client.patch(
        path, json={"endpoint": "https://collector.example.net/v1"}, headers=admin_headers
    )
    assert moved.status_code == 200
    assert moved.json()["has_api_key"] is False and moved.json()["api_key_masked"] is None
    enabled = client.patch(
        path, json={"endpoint": "https://api.openai.com/v1", "status": 1}, headers=user_headers
    )
    assert enabled.status_code == 422
    assert enabled.json()["detail"][0]["loc"] == ["body", "api_key"]
    with_key = client.patch(
        path,
        json={"endpoint": "https://proxy.example.org/v1", "api_key": KEY, "status": 1},
        headers=user_headers,
    )
    assert with_key.status_code == 200 and with_key.json()["api_key_masked"] == "sk-…A1B2"


def test_unreadable_key_after_encryption_key_change(
    client: TestClient,
    user_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "ENCRYPTION_KEY", Fernet.generate_key().decode())
    config = _create(client, user_headers)
    monkeypatch.setattr(settings, "ENCRYPTION_KEY", Fernet.generate_key().decode())  # rotated
    path = f"{BASE}/{config['id']}"
    seen = client.get(path, headers=user_headers)
    assert seen.status_code == 200
    assert seen.json()["has_api_key"] is True and seen.json()["api_key_masked"] is None
    assert client.get(f"{BASE}/", headers=user_headers).status_code == 200
    for action in ("test", "refresh-models"):
        response = client.post(f"{path}/{action}", headers=user_headers)
        assert response.status_code == 409
        assert response.json()["code"] == "api_key_unreadable"
    # Entering the key again repairs it.
    fixed = client.patch(path, json={"api_key": KEY}, headers=user_headers)
    assert fixed.json()["api_key_masked"] == "sk-…A1B2"


# ---------------------------------------------------------------------------- seeding


def _templates(db: Session) -> list[ModelConfig]:
    db.expire_all()
    return list(db.scalars(select(ModelConfig).where(ModelConfig.template_key.is_not(None))).all())


def test_templates_seeded_disabled_and_owned_by_the_default_admin(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    protected = db.scalar(select(User).where(User.is_protected.is_(True)))
    assert protected is not None
    templates = {t["template_key"]: t for t in client.get(f"{BASE}/", headers=user_headers).json()}
    assert set(templates) == TEMPLATE_KEYS
    assert all(t["status"] == 0 and not t["has_api_key"] for t in templates.values())
    assert all(t["owner"]["id"] == protected.id for t in templates.values())
    assert all(t["can_edit"] is False for t in templates.values())
    assert templates["deepseek-reasoner"]["capabilities"]["reasoning"] is True
    assert templates["deepseek-reasoner"]["model"] == "deepseek-reasoner"
    assert templates["siliconcloud-qwen2.5-7b-instruct"]["model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert templates["siliconcloud-deepseek-v3"]["model"] == "deepseek-ai/DeepSeek-V3"
    assert {templates[k]["model"] for k in ("ollama-qwen2.5", "ollama-llama3.1")} == {
        "qwen2.5",
        "llama3.1",
    }
    assert templates["ollama-llama3.1"]["endpoint"] == "http://127.0.0.1:11434"
    assert templates["vllm-local"]["endpoint"] == "http://127.0.0.1:8001/v1"
    assert {templates[k]["model"] for k in ("openai-gpt-4o", "openai-gpt-4o-mini")} == {
        "gpt-4o",
        "gpt-4o-mini",
    }


def test_seeding_runs_once_and_deleted_templates_stay_deleted(
    client: TestClient, admin_headers: dict[str, str], user_headers: dict[str, str], db: Session
) -> None:
    assert model_config_service.seed_default_templates(db) == 0  # already seeded at start-up
    victim = next(t for t in _templates(db) if t.template_key == "openai-gpt-4o")
    refused = client.delete(f"{BASE}/{victim.id}", headers=user_headers)
    assert refused.status_code == 403
    assert client.delete(f"{BASE}/{victim.id}", headers=admin_headers).status_code == 204
    for _ in range(2):
        assert model_config_service.seed_default_templates(db) == 0
        db.commit()
    assert {t.template_key for t in _templates(db)} == TEMPLATE_KEYS - {"openai-gpt-4o"}


def test_seeding_on_a_fresh_database(db: Session) -> None:
    db.execute(delete(ModelConfig))
    db.execute(delete(AppState))
    db.commit()
    assert model_config_service.seed_default_templates(db) == len(TEMPLATE_KEYS)
    db.commit()
    assert model_config_service.seed_default_templates(db) == 0
    db.commit()
    assert len(_templates(db)) == len(TEMPLATE_KEYS)
    assert db.get(AppState, model_config_service.SEED_MARKER) is not None


def test_seeding_waits_for_an_admin_and_falls_back_to_the_first_admin(db: Session) -> None:
    db.execute(delete(ModelConfig))
    db.execute(delete(AppState))
    db.execute(delete(User))
    db.commit()
    assert model_config_service.seed_default_templates(db) == 0  # nobody to own them yet
    db.commit()
    assert db.get(AppState, model_config_service.SEED_MARKER) is None
    make_user(db, "u@example.com", "plain-user")
    first = make_user(db, "a1@example.com", "first-admin", role="admin")
    make_user(db, "a2@example.com", "second-admin", role="admin")
    assert model_config_service.seed_default_templates(db) == len(TEMPLATE_KEYS)
    db.commit()
    assert {t.owner_id for t in _templates(db)} == {first.id}


def test_seeding_completes_a_partial_set(db: Session) -> None:
    # Templates present but no marker (e.g. app_state lost): only the missing ones are added.
    db.execute(delete(AppState))
    db.execute(delete(ModelConfig).where(ModelConfig.template_key == "vllm-local"))
    db.commit()
    assert model_config_service.seed_default_templates(db) == 1
    db.commit()
    assert {t.template_key for t in _templates(db)} == TEMPLATE_KEYS


# --------------------------------------------------------------- stored model lists


def test_provider_models_from_the_table(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    now = utcnow()
    db.add_all(
        [
            ProviderModel(
                provider="vllm",
                endpoint="http://box:8001/v1",
                model_id="b-model",
                owned_by="me",
                fetched_at=now,
            ),
            ProviderModel(
                provider="vllm",
                endpoint="http://box:8001/v1",
                model_id="a-model",
                owned_by=None,
                fetched_at=now,
            ),
            ProviderModel(
                provider="vllm",
                endpoint="http://other:8001/v1",
                model_id="x",
                owned_by=None,
                fetched_at=now,
            ),
        ]
    )
    db.commit()
    response = client.get(
        f"{BASE}/provider-models",
        params={"provider": "vllm", "endpoint": "http://BOX:8001/"},
        headers=user_headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["provider"] == "vllm" and body["endpoint"] == "http://box:8001/v1"
    assert [(m["model_id"], m["owned_by"]) for m in body["models"]] == [
        ("a-model", None),
        ("b-model", "me"),
    ]
    assert body["models"][0]["fetched_at"]
    empty = client.get(
        f"{BASE}/provider-models", params={"provider": "openai"}, headers=user_headers
    )
    assert empty.json() == {
        "provider": "openai",
        "endpoint": "https://api.openai.com/v1",
        "models": [],
    }


@pytest.mark.parametrize(
    "params", [{}, {"provider": "nope"}, {"provider": "vllm", "endpoint": "ftp://x"}]
)
def test_provider_models_invalid(
    client: TestClient, user_headers: dict[str, str], params: dict[str, str]
) -> None:
    response = client.get(f"{BASE}/provider-models", params=params, headers=user_headers)
    assert response.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"provider": "nope"},
        {"provider": "vllm", "endpoint": "ftp://x"},
        {"provider": "vllm", "api_key": "a b"},
    ],
)
def test_refresh_models_invalid(
    client: TestClient, user_headers: dict[str, str], body: dict[str, str]
) -> None:
    response = client.post(f"{BASE}/refresh-models", json=body, headers=user_headers)
    assert response.status_code == 422


def test_test_needs_a_model(client: TestClient, user_headers: dict[str, str]) -> None:
    config = _create(client, user_headers, model="")
    assert config["model"] is None
    response = client.post(f"{BASE}/{config['id']}/test", headers=user_headers)
    assert response.status_code == 409
    assert response.json()["code"] == "model_required"


# ------------------------------------------------------- provider calls (real HTTP)


@dataclass
class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""

    url: str
    connected: threading.Event  # set once a client has connected


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn)
            connected.set()

    connected = threading.Event()
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield SilentServer(f"http://127.0.0.1:{server.getsockname()[1]}/v1", connected)
    stop.set()
    thread.join(timeout=2)
    for conn in accepted:
        conn.close()
    server.close()


def test_unreachable_provider_is_502(
    client: TestClient, user_headers: dict[str, str], db: Session
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/v1"
    response = client.post(
        f"{BASE}/refresh-models",
        json={"provider": "vllm", "endpoint": endpoint, "api_key": KEY},
        headers=user_headers,
    )
    assert response.status_code == 502
    assert response.json()["code"] == "provider_unreachable"
    assert KEY not in response.text
    assert db.scalar(select(func.count()).select_from(ProviderModel)) == 0

    config = _create(client, user_headers, provider="vllm", endpoint=endpoint)
    by_id = client.post(f"{BASE}/{config['id']}/refresh-models", headers=user_headers)
    assert by_id.status_code == 502 and by_id.json()["code"] == "provider_unreachable"
    tested = client.post(f"{BASE}/{config['id']}/test", headers=user_headers)
    assert tested.status_code == 200
    result = tested.json()
    assert result["ok"] is False and result["latency_ms"] is None
    assert result["model"] == "gpt-4o-mini" and result["error"]
    assert KEY not in tested.text


def test_silent_provider_times_out_with_504(
    client: TestClient,
    user_headers: dict[str, str],
    silent_server: SilentServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "LLM_IDLE_TIMEOUT_SECONDS", 0.5)
    response = client.post(
        f"{BASE}/refresh-models",
        json={"provider": "custom", "endpoint": silent_server.url},
        headers=user_headers,
    )
    assert response.status_code == 504
    assert response.json()["code"] == "provider_timeout"
    config = _create(client, user_headers, provider="custom", endpoint=silent_server.url)
    tested = client.post(f"{BASE}/{config['id']}/test", headers=user_headers).json()
    assert tested["ok"] is False and tested["error"]


def test_provider_call_holds_no_db_connection(
    client: TestClient,
    user_headers: dict[str, str],
    silent_server: SilentServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # While the provider keeps us waiting, the request has given its pooled connection back.
    monkeypatch.setattr(settings, "LLM_IDLE_TIMEOUT_SECONDS", 3)
    config = _create(client, user_headers, provider="custom", endpoint=silent_server.url)
    results: list[int] = []
    worker = threading.Thread(
        target=lambda: results.append(
            client.post(f"{BASE}/{config['id']}/test", headers=user_headers).status_code
        )
    )
    worker.start()
    # Sample only once the request is waiting on the provider, several times: the training
    # supervisor's poll may hold a connection for a moment, a request holding one would be
    # counted in every sample.
    reached = silent_server.connected.wait(timeout=10)
    held: list[int] = []
    for _ in range(10):
        held.append(engine.pool.checkedout())  # type: ignore[attr-defined]
        time.sleep(0.05)
    waiting = worker.is_alive()  # still waiting on the silent provider after the samples
    worker.join(timeout=15)  # before asserting: a failing test must not leave it running
    assert reached and waiting
    assert min(held) == 0, held
    assert results == [200]


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as server:
        yield server


def test_refresh_models_upserts_and_forgets(
    client: TestClient, user_headers: dict[str, str], db: Session, upstream: MockUpstream
) -> None:
    endpoint = upstream.openai_url
    stale = ProviderModel(
        provider="vllm", endpoint=endpoint.rstrip("/"), model_id="gone", fetched_at=utcnow()
    )
    db.add(stale)
    db.commit()
    response = client.post(
        f"{BASE}/refresh-models",
        json={"provider": "vllm", "endpoint": endpoint, "api_key": "sk-good-key-000000000000"},
        headers=user_headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["provider"] == "vllm" and body["endpoint"] == endpoint.rstrip("/")
    ids = [m["model_id"] for m in body["models"]]
    assert ids == sorted(OPENAI_MODELS)  # "gone" is no longer listed: forgotten
    assert {m["owned_by"] for m in body["models"]} == {"mock"}
    assert all(m["fetched_at"] for m in body["models"])
    stored = client.get(
        f"{BASE}/provider-models",
        params={"provider": "vllm", "endpoint": endpoint},
        headers=user_headers,
    )
    assert stored.json() == body
    # Twice: the upsert does not trip over the unique (provider, endpoint, model_id).
    again = client.post(
        f"{BASE}/refresh-models",
        json={"provider": "vllm", "endpoint": endpoint},
        headers=user_headers,
    )
    assert again.status_code == 200
    assert [m["model_id"] for m in again.json()["models"]] == ids
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(ProviderModel)) == len(ids)


def test_refresh_models_of_a_saved_config_uses_its_key(
    client: TestClient, user_headers: dict[str, str], other_user: User, upstream: MockUpstream
) -> None:
    good = _create(
        client,
        user_headers,
        provider="custom",
        endpoint=upstream.openai_url,
        api_key="sk-good-key-000000000000",
    )
    # Any signed-in user may refresh a shared config's list; the key never leaves the server.
    carol = auth_headers(client, "carol")
    response = client.post(f"{BASE}/{good['id']}/refresh-models", headers=carol)
    assert response.status_code == 200, response.text
    assert response.json()["models"]

    wrong = _create(
        client,
        user_headers,
        provider="openai",
        endpoint=upstream.openai_url,
        api_key=WRONG_KEY,
    )
    refused = client.post(f"{BASE}/{wrong['id']}/refresh-models", headers=user_headers)
    assert refused.status_code == 502
    assert refused.json()["code"] == "provider_auth_failed"
    assert refused.json()["detail"]
    assert WRONG_KEY not in refused.text


def test_refresh_ollama_models(
    client: TestClient, user_headers: dict[str, str], upstream: MockUpstream
) -> None:
    response = client.post(
        f"{BASE}/refresh-models",
        json={"provider": "ollama", "endpoint": upstream.base_url + "/api"},
        headers=user_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["endpoint"] == upstream.ollama_url
    ids = [m["model_id"] for m in response.json()["models"]]
    assert ids == sorted(f"{name}:latest" for name in OLLAMA_MODELS)
    assert upstream.requests[-1].path == "/api/tags"


def test_connection_test(
    client: TestClient, user_headers: dict[str, str], other_user: User, upstream: MockUpstream
) -> None:
    config = _create(
        client,
        user_headers,
        provider="custom",
        endpoint=upstream.openai_url,
        model="plain",
        params={"temperature": 0.3},
    )
    response = client.post(f"{BASE}/{config['id']}/test", headers=auth_headers(client, "carol"))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True and result["error"] is None
    assert isinstance(result["latency_ms"], int) and result["latency_ms"] >= 0
    assert result["model"]
    sent = upstream.chat_requests()[-1].body
    assert sent["messages"] == [{"role": "user", "content": "ping"}]
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 1
    assert sent["temperature"] == 0.3  # the config's own parameters go along

    for model in ("server-error", "no-such-model"):
        failing = _create(
            client, user_headers, provider="custom", endpoint=upstream.openai_url, model=model
        )
        outcome = client.post(f"{BASE}/{failing['id']}/test", headers=user_headers).json()
        assert outcome["ok"] is False and outcome["error"], model

    wrong = _create(
        client,
        user_headers,
        provider="openai",
        endpoint=upstream.openai_url,
        model="plain",
        api_key=WRONG_KEY,
    )
    failed = client.post(f"{BASE}/{wrong['id']}/test", headers=user_headers)
    assert failed.status_code == 200
    outcome = failed.json()
    assert outcome["ok"] is False and outcome["latency_ms"] is None
    assert outcome["model"] == "plain" and outcome["error"]
    assert WRONG_KEY not in failed.text
