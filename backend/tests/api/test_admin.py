"""The admin API: only admins; the protected admin and yourself cannot be changed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import RefreshToken, User
from tests.factories import DEFAULT_PASSWORD, auth_headers, login, make_user


def _protected_id(db: Session) -> int:
    admin_id = db.scalar(select(User.id).where(User.is_protected.is_(True)))
    assert admin_id is not None
    return admin_id


ENDPOINTS = [
    ("get", "/api/admin/users", None),
    ("get", "/api/admin/stats", None),
    ("patch", "/api/admin/users/{id}", {"role": "admin"}),
    ("delete", "/api/admin/users/{id}", None),
    ("post", "/api/admin/users/{id}/password-reset", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_anonymous_is_401(
    client: TestClient, user: User, method: str, path: str, body: object
) -> None:
    response = client.request(method, path.format(id=user.id), json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_non_admin_is_403(
    client: TestClient,
    user_headers: dict[str, str],
    other_user: User,
    db: Session,
    method: str,
    path: str,
    body: object,
) -> None:
    response = client.request(
        method, path.format(id=other_user.id), json=body, headers=user_headers
    )
    assert response.status_code == 403
    assert response.json()["code"] == "admin_required"
    db.expire_all()
    assert db.get(User, other_user.id) is not None
    assert db.get(User, other_user.id).role == "user"  # type: ignore[union-attr]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS[2:])
def test_unknown_user_is_404(
    client: TestClient, admin_headers: dict[str, str], method: str, path: str, body: object
) -> None:
    response = client.request(method, path.format(id=999_999), json=body, headers=admin_headers)
    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"


def test_list_users_paginates_and_searches(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    for index in range(25):
        make_user(db, f"member{index:02d}@example.com", f"member{index:02d}", password_hash="x")
    page1 = client.get("/api/admin/users", params={"size": 10}, headers=admin_headers).json()
    assert page1["total"] == 27 and page1["page"] == 1 and page1["size"] == 10
    assert len(page1["items"]) == 10
    page3 = client.get("/api/admin/users", params={"size": 10, "page": 3}, headers=admin_headers)
    assert len(page3.json()["items"]) == 7
    ids = {u["id"] for u in page1["items"]} | {u["id"] for u in page3.json()["items"]}
    assert len(ids) == 17  # pages do not overlap
    item = page1["items"][0]
    assert {"id", "email", "nickname", "role", "is_active", "created_at", "is_protected"} <= set(
        item
    )
    assert "password_hash" not in item

    found = client.get("/api/admin/users", params={"q": "MEMBER1"}, headers=admin_headers).json()
    assert found["total"] == 10
    assert all("member1" in u["nickname"] for u in found["items"])
    by_mail = client.get("/api/admin/users", params={"q": "member03@"}, headers=admin_headers)
    assert [u["nickname"] for u in by_mail.json()["items"]] == ["member03"]
    wildcard = client.get("/api/admin/users", params={"q": "%"}, headers=admin_headers)
    assert wildcard.json()["total"] == 0  # LIKE wildcards are literal
    admins = client.get("/api/admin/users", params={"role": "admin"}, headers=admin_headers).json()
    assert {u["nickname"] for u in admins["items"]} == {"admin", "boss"}


@pytest.mark.parametrize(
    "params", [{"page": 0}, {"size": 0}, {"size": 101}, {"role": "root"}, {"page": "x"}]
)
def test_list_users_invalid_params(
    client: TestClient, admin_headers: dict[str, str], params: dict[str, object]
) -> None:
    response = client.get("/api/admin/users", params=params, headers=admin_headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_promote_and_demote(
    client: TestClient, admin_headers: dict[str, str], user: User, db: Session
) -> None:
    response = client.patch(
        f"/api/admin/users/{user.id}", json={"role": "admin"}, headers=admin_headers
    )
    assert response.status_code == 200 and response.json()["role"] == "admin"
    alice = auth_headers(client, "alice")
    assert client.get("/api/admin/stats", headers=alice).status_code == 200
    demote = client.patch(
        f"/api/admin/users/{user.id}", json={"role": "user"}, headers=admin_headers
    )
    assert demote.status_code == 200
    # The role is re-read on every request, so the old token loses admin rights at once.
    assert client.get("/api/admin/stats", headers=alice).status_code == 403


def test_disable_signs_user_out(
    client: TestClient,
    anon_client: TestClient,
    admin_headers: dict[str, str],
    user: User,
    db: Session,
) -> None:
    alice = auth_headers(anon_client, "alice")
    response = client.patch(
        f"/api/admin/users/{user.id}", json={"is_active": False}, headers=admin_headers
    )
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert anon_client.get("/api/auth/me", headers=alice).status_code == 401
    assert anon_client.post("/api/auth/refresh").status_code == 401
    assert (
        db.scalars(
            select(RefreshToken).where(
                RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None)
            )
        ).all()
        == []
    )
    enable = client.patch(
        f"/api/admin/users/{user.id}", json={"is_active": True}, headers=admin_headers
    )
    assert enable.status_code == 200
    login(anon_client, "alice")


@pytest.mark.parametrize("body", [{"role": "superuser"}, {"is_active": "maybe"}, []])
def test_patch_invalid_body(
    client: TestClient, admin_headers: dict[str, str], user: User, body: object
) -> None:
    response = client.patch(f"/api/admin/users/{user.id}", json=body, headers=admin_headers)
    assert response.status_code == 422


@pytest.mark.parametrize("body", [{"role": "user"}, {"is_active": False}])
def test_protected_admin_cannot_be_changed(
    client: TestClient, admin_headers: dict[str, str], db: Session, body: dict[str, object]
) -> None:
    target = _protected_id(db)
    response = client.patch(f"/api/admin/users/{target}", json=body, headers=admin_headers)
    assert response.status_code == 400
    assert response.json()["code"] == "protected_user"
    deleted = client.delete(f"/api/admin/users/{target}", headers=admin_headers)
    assert deleted.status_code == 400 and deleted.json()["code"] == "protected_user"
    reset = client.post(f"/api/admin/users/{target}/password-reset", headers=admin_headers)
    assert reset.status_code == 400
    db.expire_all()
    row = db.get(User, target)
    assert row is not None and row.role == "admin" and row.is_active


@pytest.mark.parametrize("body", [{"role": "user"}, {"is_active": False}])
def test_cannot_change_yourself(
    client: TestClient, admin_headers: dict[str, str], admin: User, body: dict[str, object]
) -> None:
    response = client.patch(f"/api/admin/users/{admin.id}", json=body, headers=admin_headers)
    assert response.status_code == 400 and response.json()["code"] == "protected_user"
    deleted = client.delete(f"/api/admin/users/{admin.id}", headers=admin_headers)
    assert deleted.status_code == 400


def test_harmless_patch_of_protected_admin_allowed(
    client: TestClient, admin_headers: dict[str, str], db: Session
) -> None:
    target = _protected_id(db)
    response = client.patch(
        f"/api/admin/users/{target}",
        json={"role": "admin", "is_active": True},
        headers=admin_headers,
    )
    assert response.status_code == 200


def test_delete_user(
    client: TestClient, admin_headers: dict[str, str], user: User, db: Session
) -> None:
    uid = user.id
    login(client, "alice")  # leaves refresh tokens that must go with the user
    response = client.delete(f"/api/admin/users/{uid}", headers=admin_headers)
    assert response.status_code == 204
    db.expire_all()
    assert db.get(User, uid) is None
    assert db.scalars(select(RefreshToken).where(RefreshToken.user_id == uid)).all() == []
    gone = client.post("/api/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD})
    assert gone.status_code == 401
    again = client.delete(f"/api/admin/users/{uid}", headers=admin_headers)
    assert again.status_code == 404


def test_admin_password_reset_link(
    client: TestClient, admin_headers: dict[str, str], user: User, admin: User
) -> None:
    response = client.post(f"/api/admin/users/{user.id}/password-reset", headers=admin_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["reset_url"].startswith("http://127.0.0.1:8000/reset-password?token=")
    token = body["reset_url"].split("token=")[1]
    confirm = client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": "Fresh-Start-42x"}
    )
    assert confirm.status_code == 204
    login(client, "alice", "Fresh-Start-42x")
    own = client.post(f"/api/admin/users/{admin.id}/password-reset", headers=admin_headers)
    assert own.status_code == 400


def test_stats(client: TestClient, admin_headers: dict[str, str], user: User, db: Session) -> None:
    make_user(db, "off@example.com", "offline", is_active=False, password_hash="x")
    response = client.get("/api/admin/stats", headers=admin_headers)
    assert response.status_code == 200
    # default admin + boss + alice + offline
    assert response.json() == {"users": {"total": 4, "active": 3, "admins": 2}}


def test_deleting_a_user_removes_their_uploaded_files(
    client: TestClient, admin_headers: dict[str, str], user: User, user_headers: dict[str, str]
) -> None:
    from app.config import settings
    from tests.api.test_datasets import upload as upload_dataset
    from tests.api.test_images import make_image
    from tests.api.test_images import upload as upload_image

    image = upload_image(client, user_headers, make_image("PNG"))
    assert image.status_code == 201, image.text
    dataset = upload_dataset(client, user_headers)
    assert dataset.status_code == 201, dataset.text
    image_file = settings.UPLOAD_DIR / "images" / image.json()["id"]
    dataset_dir = settings.UPLOAD_DIR / "datasets" / str(dataset.json()["id"])
    assert image_file.is_file() and dataset_dir.is_dir()

    assert client.delete(f"/api/admin/users/{user.id}", headers=admin_headers).status_code == 204
    assert not image_file.exists()
    assert not dataset_dir.exists()
