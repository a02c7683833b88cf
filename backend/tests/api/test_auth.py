"""The accounts contract: register, login, refresh, logout, me, change-password, reset."""

from __future__ import annotations

import email
import email.policy
import logging
import statistics
import time
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

import jwt
import pytest
from fastapi.testclient import TestClient
from pwdlib.hashers.bcrypt import BcryptHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import settings
from app.models import PasswordResetToken, RefreshToken, User
from app.services import auth_service
from app.utils import security
from tests.factories import DEFAULT_PASSWORD, auth_headers, free_port, login, make_user

NEW_PASSWORD = "Another-Strong-Pass-9"


def _refresh_cookie(response: object) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    for value in response.headers.get_list("set-cookie"):  # type: ignore[attr-defined]
        cookie.load(value)
    return cookie


# --- register -----------------------------------------------------------------------------


def test_register_creates_user(client: TestClient, db: Session) -> None:
    response = client.post(
        "/api/auth/register",
        json={"email": "New.Person@Example.com", "nickname": " newbie ", "password": NEW_PASSWORD},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "email", "nickname", "role", "is_active", "created_at"}
    assert body["email"] == "new.person@example.com"
    assert body["nickname"] == "newbie"
    assert body["role"] == "user" and body["is_active"] is True
    stored = db.get(User, body["id"])
    assert stored is not None
    assert stored.password_hash.startswith("$argon2id$")
    assert NEW_PASSWORD not in stored.password_hash


@pytest.mark.parametrize(
    ("email", "nickname", "code"),
    [
        ("ALICE@example.com", "someone", "email_taken"),
        ("fresh@example.com", "ALICE", "nickname_taken"),
    ],
)
def test_register_duplicates_conflict(
    client: TestClient, user: User, db: Session, email: str, nickname: str, code: str
) -> None:
    response = client.post(
        "/api/auth/register", json={"email": email, "nickname": nickname, "password": NEW_PASSWORD}
    )
    assert response.status_code == 409
    assert response.json()["code"] == code
    assert db.scalar(select(User).where(User.email == "fresh@example.com")) is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "nickname": "okname", "password": NEW_PASSWORD}, "email"),
        ({"email": "x@example.com", "nickname": "a", "password": NEW_PASSWORD}, "nickname"),
        ({"email": "x@example.com", "nickname": "n" * 33, "password": NEW_PASSWORD}, "nickname"),
        ({"email": "x@example.com", "nickname": "has@sign", "password": NEW_PASSWORD}, "nickname"),
        ({"email": "x@example.com", "nickname": "okname", "password": "short1!"}, "password"),
        ({"email": "x@example.com", "nickname": "okname", "password": "Password123"}, "password"),
        ({"email": "x@example.com", "nickname": "okname", "password": "aaaaaaaaaa"}, "password"),
        ({"email": "x@example.com", "nickname": "okname"}, "password"),
    ],
)
def test_register_invalid_input(
    client: TestClient, db: Session, payload: dict[str, str], field: str
) -> None:
    response = client.post("/api/auth/register", json=payload)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert any(err["loc"][-1] == field for err in body["detail"])
    # The submitted password is never echoed back.
    assert "short1!" not in response.text and "Password123" not in response.text
    assert db.scalar(select(User).where(User.email == "x@example.com")) is None


def test_register_password_equal_to_nickname_refused(client: TestClient) -> None:
    response = client.post(
        "/api/auth/register",
        json={"email": "x@example.com", "nickname": "Zebra-Stripes", "password": "zebra-stripes"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "weak_password"


def test_register_disabled(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "ALLOW_REGISTRATION", False)
    response = client.post(
        "/api/auth/register",
        json={"email": "x@example.com", "nickname": "okname", "password": NEW_PASSWORD},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "registration_disabled"


# --- login --------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["alice", "ALICE", "alice@example.com", "Alice@Example.COM"])
def test_login_json_by_email_or_nickname(client: TestClient, user: User, username: str) -> None:
    response = client.post(
        "/api/auth/login", json={"username": username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60
    assert body["user"]["email"] == "alice@example.com"
    assert body["must_change_password"] is False
    assert response.headers["cache-control"] == "no-store"
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["nickname"] == "alice"


def test_login_oauth2_form(client: TestClient, user: User) -> None:
    response = client.post(
        "/api/auth/login", data={"username": "alice", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]


def test_login_invalid_body(client: TestClient) -> None:
    assert client.post("/api/auth/login", json={"username": "x"}).status_code == 422
    bad_json = client.post(
        "/api/auth/login", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 422
    assert bad_json.json()["code"] == "validation_error"
    form = client.post("/api/auth/login", data={"username": "alice"})
    assert form.status_code == 422
    assert any(err["loc"] == ["body", "password"] for err in form.json()["detail"])


def test_refresh_cookie_attributes(client: TestClient, user: User) -> None:
    response = client.post(
        "/api/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD}
    )
    header = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith("refresh_token=")
    )
    parts = {p.strip().split("=")[0].lower(): p.strip() for p in header.split(";")}
    assert "httponly" in parts
    assert parts["samesite"].lower() == "samesite=lax"
    assert parts["path"] == "Path=/api/auth"
    assert "secure" not in parts
    assert int(parts["max-age"].split("=")[1]) == settings.REFRESH_TOKEN_EXPIRE_DAYS * 86400


def test_refresh_cookie_secure_flag(
    client: TestClient, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "COOKIE_SECURE", True)
    response = client.post(
        "/api/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD}
    )
    assert "secure" in response.headers["set-cookie"].lower()


def test_refresh_token_stored_hashed(client: TestClient, user: User, db: Session) -> None:
    response = client.post(
        "/api/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD}
    )
    raw = _refresh_cookie(response)["refresh_token"].value
    hashes = db.scalars(select(RefreshToken.token_hash)).all()
    assert hashes == [security.hash_opaque_token(raw)]


def test_wrong_password_and_unknown_user_look_alike(client: TestClient, user: User) -> None:
    wrong = client.post("/api/auth/login", json={"username": "alice", "password": "nope-nope"})
    unknown = client.post("/api/auth/login", json={"username": "ghost", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "detail": "Incorrect username or password",
            "code": "invalid_credentials",
        }
    )
    assert "set-cookie" not in wrong.headers


def test_unknown_user_takes_as_long_as_wrong_password(
    client: TestClient, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_service.login_failures, "limit", 10_000)

    def median_ms(username: str) -> float:
        samples = []
        for _ in range(7):
            started = time.perf_counter()
            response = client.post(
                "/api/auth/login", json={"username": username, "password": "wrong-pass"}
            )
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 401
        return statistics.median(samples)

    median_ms("ghost")  # warm-up: the dummy hash is made on first use
    known, unknown = median_ms("alice"), median_ms("ghost")
    # Without the dummy verification an unknown user answers ~50x faster.
    assert 0.5 < unknown / known < 2.0, (known, unknown)


def test_disabled_account(client: TestClient, db: Session) -> None:
    make_user(db, "dora@example.com", "dora", is_active=False)
    response = client.post(
        "/api/auth/login", json={"username": "dora", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "account_disabled"
    # Without the right password a disabled account looks like any failed login.
    wrong = client.post("/api/auth/login", json={"username": "dora", "password": "wrong-pass"})
    assert wrong.status_code == 401


def test_brute_force_lockout_per_username(client: TestClient, user: User) -> None:
    limit, window = settings.login_rate
    for _ in range(limit):
        response = client.post("/api/auth/login", json={"username": "alice", "password": "bad-pw"})
        assert response.status_code == 401
    locked = client.post(
        "/api/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD}
    )
    assert locked.status_code == 429
    assert locked.json()["code"] == "too_many_attempts"
    assert 0 < int(locked.headers["retry-after"]) <= window
    # The same account by its email is locked too.
    by_email = client.post(
        "/api/auth/login", json={"username": "alice@example.com", "password": DEFAULT_PASSWORD}
    )
    assert by_email.status_code == 429


def test_brute_force_lockout_per_address(client: TestClient, user: User) -> None:
    limit, _ = settings.login_rate
    for index in range(limit):
        response = client.post(
            "/api/auth/login", json={"username": f"ghost{index}", "password": "bad-pw"}
        )
        assert response.status_code == 401
    locked = client.post(
        "/api/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD}
    )
    assert locked.status_code == 429
    assert "retry-after" in locked.headers


def test_lockout_expires_after_window(
    client: TestClient, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(auth_service.login_failures, "_clock", lambda: now[0])
    limit, window = settings.login_rate
    for _ in range(limit):
        client.post("/api/auth/login", json={"username": "alice", "password": "bad-pw"})
    assert (
        client.post(
            "/api/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD}
        ).status_code
        == 429
    )
    now[0] += window + 1
    ok = client.post("/api/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD})
    assert ok.status_code == 200


def test_successful_login_clears_username_failures(client: TestClient, user: User) -> None:
    limit, _ = settings.login_rate
    for _ in range(limit - 1):
        client.post("/api/auth/login", json={"username": "alice", "password": "bad-pw"})
    login(client, "alice")
    for _ in range(limit - 1):
        client.post("/api/auth/login", json={"username": "alice", "password": "bad-pw"})
    # The address has seen 2*(limit-1) failures by now: that limit still holds.
    response = client.post(
        "/api/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 429


def test_bcrypt_hash_verifies_and_is_upgraded(client: TestClient, db: Session) -> None:
    legacy = BcryptHasher().hash(DEFAULT_PASSWORD)
    old = make_user(db, "old@example.com", "oldtimer", password_hash=legacy)
    login(client, "oldtimer")
    db.expire_all()
    upgraded = db.get(User, old.id)
    assert upgraded is not None and upgraded.password_hash.startswith("$argon2id$")
    login(client, "oldtimer")


# --- access tokens ------------------------------------------------------------------------


def _token(user_id: int, **overrides: object) -> str:
    now = datetime.now(UTC)
    payload: dict[str, object] = {
        "sub": str(user_id),
        "role": "user",
        "type": "access",
        "jti": "x",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    payload.update(overrides)
    return jwt.encode(payload, settings.secret_key, algorithm="HS256")


def test_valid_handmade_token_accepted(client: TestClient, user: User) -> None:
    response = client.get("/api/auth/me", headers={"Authorization": f"Bearer {_token(user.id)}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "make_bad",
    [
        pytest.param(lambda uid: _token(uid, exp=int(time.time()) - 10), id="expired"),
        pytest.param(lambda uid: _token(uid, type="refresh"), id="wrong-type"),
        pytest.param(lambda uid: _token(uid)[:-3] + "AAA", id="tampered"),
        pytest.param(
            lambda uid: jwt.encode(
                {"sub": str(uid), "type": "access", "jti": "x", "iat": 1, "exp": 4102444800},
                "another-secret-that-is-long-enough-xx",
                algorithm="HS256",
            ),
            id="other-secret",
        ),
        pytest.param(
            lambda uid: jwt.encode(
                {"sub": str(uid), "type": "access", "jti": "x", "iat": 1, "exp": 4102444800},
                None,
                algorithm="none",
            ),
            id="alg-none",
        ),
        pytest.param(lambda uid: "not-a-jwt", id="garbage"),
        pytest.param(lambda uid: _token(uid, sub="abc"), id="bad-subject"),
    ],
)
def test_bad_access_tokens_rejected(client: TestClient, user: User, make_bad: object) -> None:
    token = make_bad(user.id)  # type: ignore[operator]
    response = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert response.headers["www-authenticate"] == "Bearer"


def test_refresh_token_is_not_an_access_token(client: TestClient, user: User) -> None:
    response = client.post(
        "/api/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD}
    )
    raw = _refresh_cookie(response)["refresh_token"].value
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {raw}"})
    assert me.status_code == 401


def test_tokens_of_disabled_or_deleted_users_rejected(
    client: TestClient, user: User, db: Session
) -> None:
    headers = auth_headers(client, "alice")
    user.is_active = False
    db.commit()
    assert client.get("/api/auth/me", headers=headers).status_code == 401
    db.delete(user)
    db.commit()
    assert client.get("/api/auth/me", headers=headers).status_code == 401


def test_me_requires_authentication(client: TestClient) -> None:
    response = client.get("/api/auth/me")
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated", "code": "not_authenticated"}


def test_me_returns_user_with_password_flag(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    body = client.get("/api/auth/me", headers=user_headers).json()
    assert body["email"] == "alice@example.com"
    assert body["must_change_password"] is False
    assert "password_hash" not in body


# --- refresh and logout -------------------------------------------------------------------


def test_refresh_rotates_cookie(client: TestClient, user: User) -> None:
    first = client.post("/api/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD})
    old_raw = _refresh_cookie(first)["refresh_token"].value
    refreshed = client.post("/api/auth/refresh")
    assert refreshed.status_code == 200, refreshed.text
    new_raw = _refresh_cookie(refreshed)["refresh_token"].value
    assert new_raw and new_raw != old_raw
    token = refreshed.json()["access_token"]
    assert (
        client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    # And again with the rotated cookie (the client's jar now holds it).
    assert client.post("/api/auth/refresh").status_code == 200


def test_refresh_reuse_revokes_family(
    client: TestClient, anon_client: TestClient, user: User, db: Session
) -> None:
    first = client.post("/api/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD})
    stolen = _refresh_cookie(first)["refresh_token"].value
    assert client.post("/api/auth/refresh").status_code == 200  # legitimate rotation
    # The attacker replays the rotated token from another browser.
    anon_client.cookies.set("refresh_token", stolen, path="/api/auth")
    replay = anon_client.post("/api/auth/refresh")
    assert replay.status_code == 401
    assert replay.json()["code"] == "token_reused"
    # The legitimate holder's newer token died with the family.
    after = client.post("/api/auth/refresh")
    assert after.status_code == 401
    live = db.scalars(select(RefreshToken).where(RefreshToken.revoked_at.is_(None))).all()
    assert live == []


def test_refresh_without_or_with_bad_cookie(client: TestClient) -> None:
    missing = client.post("/api/auth/refresh")
    assert missing.status_code == 401 and missing.json()["code"] == "not_authenticated"
    client.cookies.set("refresh_token", "forged", path="/api/auth")
    bad = client.post("/api/auth/refresh")
    assert bad.status_code == 401 and bad.json()["code"] == "invalid_token"


def test_refresh_expired(client: TestClient, user: User, db: Session) -> None:
    login(client, "alice")
    for token in db.scalars(select(RefreshToken)):
        token.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    db.commit()
    response = client.post("/api/auth/refresh")
    assert response.status_code == 401 and response.json()["code"] == "invalid_token"


def test_refresh_refused_for_disabled_user(client: TestClient, user: User, db: Session) -> None:
    login(client, "alice")
    user.is_active = False
    db.commit()
    assert client.post("/api/auth/refresh").status_code == 401


def test_logout_revokes_and_clears(client: TestClient, user: User, db: Session) -> None:
    login(client, "alice")
    response = client.post("/api/auth/logout")
    assert response.status_code == 204
    cleared = response.headers["set-cookie"]
    assert cleared.startswith("refresh_token=") and "Path=/api/auth" in cleared
    assert "max-age=0" in cleared.lower() or "expires=" in cleared.lower()
    assert db.scalars(select(RefreshToken).where(RefreshToken.revoked_at.is_(None))).all() == []
    assert client.post("/api/auth/refresh").status_code == 401


def test_logout_without_cookie_is_harmless(client: TestClient) -> None:
    assert client.post("/api/auth/logout").status_code == 204


# --- change password ----------------------------------------------------------------------


def test_change_password(
    client: TestClient, anon_client: TestClient, user: User, db: Session
) -> None:
    login(anon_client, "alice")  # another device
    headers = auth_headers(client, "alice")
    response = client.post(
        "/api/auth/change-password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 204, response.text
    assert anon_client.post("/api/auth/refresh").status_code == 401  # other session signed out
    assert client.post("/api/auth/refresh").status_code == 200  # this one kept
    wrong = client.post("/api/auth/login", json={"username": "alice", "password": DEFAULT_PASSWORD})
    assert wrong.status_code == 401
    login(client, "alice", NEW_PASSWORD)


def test_change_password_errors(client: TestClient, user_headers: dict[str, str]) -> None:
    url = "/api/auth/change-password"
    wrong = client.post(
        url,
        json={"current_password": "nope-nope", "new_password": NEW_PASSWORD},
        headers=user_headers,
    )
    assert wrong.status_code == 400 and wrong.json()["code"] == "wrong_password"
    weak = client.post(
        url,
        json={"current_password": DEFAULT_PASSWORD, "new_password": "12345678"},
        headers=user_headers,
    )
    assert weak.status_code == 422
    same = client.post(
        url,
        json={"current_password": DEFAULT_PASSWORD, "new_password": DEFAULT_PASSWORD},
        headers=user_headers,
    )
    assert same.status_code == 400 and same.json()["code"] == "password_unchanged"
    anonymous = client.post(url, json={"current_password": "a", "new_password": NEW_PASSWORD})
    assert anonymous.status_code == 401


def test_change_password_guessing_is_limited(
    client: TestClient, user_headers: dict[str, str]
) -> None:
    limit, _ = settings.login_rate
    for _ in range(limit):
        client.post(
            "/api/auth/change-password",
            json={"current_password": "guess-guess", "new_password": NEW_PASSWORD},
            headers=user_headers,
        )
    response = client.post(
        "/api/auth/change-password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=user_headers,
    )
    assert response.status_code == 429


# --- default admin and forced password change --------------------------------------------


def test_default_admin_flow(client: TestClient, db: Session) -> None:
    admin = db.scalar(select(User).where(User.is_protected.is_(True)))
    assert admin is not None and admin.role == "admin" and admin.must_change_password
    assert client.get("/api/auth/login-hints").json() == {"default_admin": True}

    body = login(client, "admin", "admin")
    assert body["must_change_password"] is True
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    me = client.get("/api/auth/me", headers=headers)
    assert me.status_code == 200 and me.json()["must_change_password"] is True
    blocked = client.get("/api/admin/users", headers=headers)
    assert blocked.status_code == 403 and blocked.json()["code"] == "password_change_required"

    changed = client.post(
        "/api/auth/change-password",
        json={"current_password": "admin", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert changed.status_code == 204
    assert client.get("/api/auth/login-hints").json() == {"default_admin": False}
    assert client.get("/api/auth/me", headers=headers).json()["must_change_password"] is False
    assert client.get("/api/admin/users", headers=headers).status_code == 200


def test_login_hint_false_with_custom_admin_password(
    client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "ADMIN_PASSWORD", "some-other-default")
    auth_service._default_password_checks.clear()
    assert client.get("/api/auth/login-hints").json() == {"default_admin": False}


def test_default_admin_logged_at_warning(db: Session, caplog: pytest.LogCaptureFixture) -> None:
    db.query(User).delete()
    db.commit()
    handler_logger = logging.getLogger("app.services.auth_service")
    handler_logger.addHandler(caplog.handler)
    try:
        created = auth_service.ensure_default_admin(db)
        db.commit()
    finally:
        handler_logger.removeHandler(caplog.handler)
    assert created is not None and created.is_protected
    assert any(
        r.levelno == logging.WARNING and "default admin" in r.getMessage() for r in caplog.records
    )
    assert "admin" not in [r.getMessage() for r in caplog.records if "password" in r.getMessage()]
    assert auth_service.ensure_default_admin(db) is None  # only when no admin exists


# --- password reset -----------------------------------------------------------------------


def _reset_link(caplog: pytest.LogCaptureFixture, client: TestClient, email: str) -> str:
    mail_logger = logging.getLogger("app.services.mail")
    mail_logger.addHandler(caplog.handler)
    try:
        response = client.post("/api/auth/password-reset/request", json={"email": email})
    finally:
        mail_logger.removeHandler(caplog.handler)
    assert response.status_code == 202
    lines = [r.getMessage() for r in caplog.records if "reset-password?token=" in r.getMessage()]
    assert lines, "the reset link must be logged when SMTP is not configured"
    return lines[-1].split("reset-password?token=")[1].split()[0]


def test_password_reset_round_trip(
    client: TestClient,
    anon_client: TestClient,
    user: User,
    db: Session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    login(anon_client, "alice")
    token = _reset_link(caplog, client, "Alice@Example.com")
    stored = db.scalars(select(PasswordResetToken.token_hash)).all()
    assert stored == [security.hash_opaque_token(token)]
    confirm = client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirm.status_code == 204, confirm.text
    login(client, "alice", NEW_PASSWORD)
    assert anon_client.post("/api/auth/refresh").status_code == 401  # signed out everywhere
    again = client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": "Yet-Another-1x"}
    )
    assert again.status_code == 400 and again.json()["code"] == "invalid_token"


def test_password_reset_unknown_email_same_answer(
    client: TestClient, user: User, db: Session, caplog: pytest.LogCaptureFixture
) -> None:
    known = client.post("/api/auth/password-reset/request", json={"email": "alice@example.com"})
    unknown = client.post("/api/auth/password-reset/request", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert len(db.scalars(select(PasswordResetToken)).all()) == 1


def test_password_reset_token_expires(
    client: TestClient, user: User, db: Session, caplog: pytest.LogCaptureFixture
) -> None:
    token = _reset_link(caplog, client, "alice@example.com")
    row = db.scalar(select(PasswordResetToken))
    assert row is not None
    assert row.expires_at - row.created_at == timedelta(minutes=30)
    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    db.commit()
    response = client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_token"


def test_password_reset_new_link_voids_old(
    client: TestClient, user: User, caplog: pytest.LogCaptureFixture
) -> None:
    first = _reset_link(caplog, client, "alice@example.com")
    _reset_link(caplog, client, "alice@example.com")
    response = client.post(
        "/api/auth/password-reset/confirm", json={"token": first, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 400


def test_password_reset_invalid_input(client: TestClient) -> None:
    bad = client.post(
        "/api/auth/password-reset/confirm", json={"token": "forged", "new_password": NEW_PASSWORD}
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_token"
    weak = client.post(
        "/api/auth/password-reset/confirm", json={"token": "forged", "new_password": "short"}
    )
    assert weak.status_code == 422
    assert (
        client.post("/api/auth/password-reset/request", json={"email": "nope"}).status_code == 422
    )


def test_password_reset_requests_limited(client: TestClient) -> None:
    limit, _ = settings.login_rate
    for _ in range(limit):
        response = client.post("/api/auth/password-reset/request", json={"email": "a@example.com"})
        assert response.status_code == 202
    limited = client.post("/api/auth/password-reset/request", json={"email": "b@example.com"})
    assert limited.status_code == 429 and "retry-after" in limited.headers


def test_password_reset_mail_over_smtp(
    client: TestClient, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiosmtpd.controller import Controller

    received: list[str] = []

    class Collect:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            received.append(envelope.content.decode("utf-8", "replace"))  # type: ignore[attr-defined]
            return "250 OK"

    port = free_port()
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setattr(settings, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setattr(settings, "SMTP_PORT", port)
        monkeypatch.setattr(settings, "SMTP_STARTTLS", False)
        monkeypatch.setattr(settings, "PUBLIC_URL", "https://mt.example.com/")
        response = client.post(
            "/api/auth/password-reset/request", json={"email": "alice@example.com"}
        )
        assert response.status_code == 202
    finally:
        controller.stop()
    assert len(received) == 1
    parsed = email.message_from_string(received[0], policy=email.policy.default)
    assert parsed["To"] == "alice@example.com"
    message = parsed.get_content()  # type: ignore[attr-defined]
    assert "https://mt.example.com/reset-password?token=" in message
    token = message.split("reset-password?token=")[1].split()[0]
    confirm = client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirm.status_code == 204
