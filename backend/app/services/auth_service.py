"""Accounts: registration, login, refresh-token rotation, password change and reset."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import settings
from app.database import session_scope, utcnow
from app.exceptions import (
    BadRequest,
    Conflict,
    PermissionDenied,
    TooManyRequests,
    Unauthorized,
)
from app.models import PasswordResetToken, RefreshToken, User, UserRole
from app.schemas.user import RegisterRequest
from app.services.rate_limit import SlidingWindowLimiter
from app.utils import security

logger = logging.getLogger(__name__)

# Failed logins (and failed current-password checks) per username, account and address.
login_failures = SlidingWindowLimiter(*settings.login_rate)
# Password-reset requests per address and per email, counted whether or not the email exists.
reset_requests = SlidingWindowLimiter(*settings.login_rate)


@dataclass(frozen=True)
class IssuedSession:
    """What a successful login or refresh hands back: the access token and a new refresh token."""

    user: User
    access_token: str
    expires_in: int
    refresh_token: str


@dataclass(frozen=True)
class ResetDelivery:
    email: str
    reset_url: str
    expires_at: datetime


def _normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user_by_login(db: Session, username: str) -> User | None:
    """Look a user up by email or by nickname, ignoring case."""
    key = username.strip().lower()
    column = User.email if "@" in key else User.nickname_key
    return db.scalar(select(User).where(column == key))


def register(db: Session, data: RegisterRequest) -> User:
    """Create an ordinary account; refuses duplicates and closed registration."""
    if not settings.ALLOW_REGISTRATION:
        raise PermissionDenied(
            "Registration is disabled on this server", code="registration_disabled"
        )
    email = _normalise_email(str(data.email))
    nickname_key = data.nickname.lower()
    _raise_if_taken(db, email, nickname_key)
    if data.password.lower() in (email, nickname_key, email.split("@")[0]):
        raise BadRequest("Password must not be your email or nickname", code="weak_password")
    user = User(
        email=email,
        nickname=data.nickname,
        nickname_key=nickname_key,
        password_hash=security.hash_password(data.password),
        role=UserRole.USER.value,
    )
    db.add(user)
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError:
        # Lost a race with a concurrent registration of the same email or nickname.
        _raise_if_taken(db, email, nickname_key)
        raise
    return user


def _raise_if_taken(db: Session, email: str, nickname_key: str) -> None:
    taken = db.execute(
        select(User.email, User.nickname_key).where(
            or_(User.email == email, User.nickname_key == nickname_key)
        )
    ).all()
    if any(row.email == email for row in taken):
        raise Conflict("This email is already registered", code="email_taken")
    if taken:
        raise Conflict("This nickname is already taken", code="nickname_taken")


def login(db: Session, username: str, password: str, client_ip: str) -> IssuedSession:
    """Check credentials under brute-force limits and open a new refresh-token family."""
    user = find_user_by_login(db, username)
    keys = [f"name:{username.strip().lower()}", f"ip:{client_ip}"]
    if user is not None:
        keys.append(f"uid:{user.id}")
    retry_after = login_failures.retry_after(*keys)
    if retry_after:
        raise TooManyRequests(
            "Too many failed attempts; try again later",
            code="too_many_attempts",
            retry_after=retry_after,
        )
    if user is None:
        security.burn_password_check(password)
        login_failures.hit(*keys)
        raise Unauthorized("Incorrect username or password", code="invalid_credentials")
    ok, new_hash = security.verify_password(password, user.password_hash)
    if not ok:
        login_failures.hit(*keys)
        raise Unauthorized("Incorrect username or password", code="invalid_credentials")
    if not user.is_active:
        raise PermissionDenied("This account has been disabled", code="account_disabled")
    login_failures.reset(keys[0], keys[2])
    if new_hash:  # e.g. a bcrypt hash from an older install: upgrade to Argon2id
        user.password_hash = new_hash
    user.last_login_at = utcnow()
    return _issue(db, user, family_id=None)


def _issue(db: Session, user: User, family_id: str | None) -> IssuedSession:
    ttl = timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES)
    access, _claims = security.create_access_token(
        user_id=user.id, role=user.role, secret=settings.secret_key, ttl=ttl
    )
    raw = security.new_opaque_token()
    db.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id or security.new_opaque_token()[:32],
            token_hash=security.hash_opaque_token(raw),
            expires_at=utcnow() + timedelta(days=settings.REFRESH_TOKEN_EXPIRE_DAYS),
        )
    )
    db.flush()
    return IssuedSession(
        user=user, access_token=access, expires_in=int(ttl.total_seconds()), refresh_token=raw
    )


def _find_refresh(db: Session, raw: str | None) -> RefreshToken | None:
    if not raw:
        return None
    return db.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == security.hash_opaque_token(raw))
    )


def revoke_refresh_tokens(db: Session, *conditions: object) -> None:
    """Revoke every live refresh token matching `conditions` (a family, a user, ...)."""
    db.execute(
        update(RefreshToken)
        .where(RefreshToken.revoked_at.is_(None), *conditions)  # type: ignore[arg-type]
        .values(revoked_at=utcnow())
    )


def refresh(db: Session, raw: str | None) -> IssuedSession:
    """Rotate a refresh token; a token presented twice revokes its whole family."""
    if not raw:
        raise Unauthorized("No refresh token", code="not_authenticated")
    token = _find_refresh(db, raw)
    if token is None or token.revoked_at is not None:
        raise Unauthorized("Session expired; please sign in again", code="invalid_token")
    if token.rotated_at is not None:
        _revoke_after_failure(db, token.family_id)
        logger.warning("Refresh token reuse detected for user %s; family revoked", token.user_id)
        raise Unauthorized("Session revoked; please sign in again", code="token_reused")
    if token.expires_at <= utcnow():
        raise Unauthorized("Session expired; please sign in again", code="invalid_token")
    user = db.get(User, token.user_id)
    if user is None or not user.is_active:
        _revoke_after_failure(db, token.family_id)
        raise Unauthorized("Session expired; please sign in again", code="invalid_token")
    # Conditional update: of two concurrent rotations of one token only one can win.
    claimed = db.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == token.id,
            RefreshToken.rotated_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(rotated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        _revoke_after_failure(db, token.family_id)
        raise Unauthorized("Session revoked; please sign in again", code="token_reused")
    return _issue(db, user, family_id=token.family_id)


def _revoke_after_failure(db: Session, family_id: str) -> None:
    # The request fails with 401 and its session rolls back, so the revocation is
    # written in a session of its own (after giving up this one's locks).
    db.rollback()
    with session_scope() as own:
        revoke_refresh_tokens(own, RefreshToken.family_id == family_id)


def logout(db: Session, raw: str | None) -> None:
    """Revoke the family of the presented refresh token, if any."""
    token = _find_refresh(db, raw)
    if token is not None:
        revoke_refresh_tokens(db, RefreshToken.family_id == token.family_id)


def user_from_access_token(db: Session, token: str) -> User:
    """The active user an access token belongs to, or 401."""
    try:
        claims = security.decode_access_token(token, settings.secret_key)
    except security.InvalidToken:
        raise Unauthorized("Invalid or expired token", code="invalid_token") from None
    user = db.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("Invalid or expired token", code="invalid_token")
    return user


def change_password(
    db: Session, user: User, current: str, new: str, raw_refresh: str | None
) -> None:
    """Set a new password and sign out every other session of the user."""
    key = f"uid:{user.id}"
    retry_after = login_failures.retry_after(key)
    if retry_after:
        raise TooManyRequests(
            "Too many failed attempts; try again later",
            code="too_many_attempts",
            retry_after=retry_after,
        )
    ok, _ = security.verify_password(current, user.password_hash)
    if not ok:
        login_failures.hit(key)
        raise BadRequest("The current password is incorrect", code="wrong_password")
    if new == current:
        raise BadRequest(
            "The new password must differ from the current one", code="password_unchanged"
        )
    _set_password(user, new)
    token = _find_refresh(db, raw_refresh)
    keep = token.family_id if token is not None and token.user_id == user.id else None
    conditions: list[object] = [RefreshToken.user_id == user.id]
    if keep:
        conditions.append(RefreshToken.family_id != keep)
    revoke_refresh_tokens(db, *conditions)


def _set_password(user: User, new: str) -> None:
    if new.lower() in (user.email, user.nickname_key, user.email.split("@")[0]):
        raise BadRequest("Password must not be your email or nickname", code="weak_password")
    user.password_hash = security.hash_password(new)
    user.must_change_password = False
    user.password_changed_at = utcnow()


def create_reset_link(db: Session, user: User) -> ResetDelivery:
    """A new single-use reset link for `user`; earlier unused links stop working."""
    now = utcnow()
    db.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
    )
    raw = security.new_opaque_token()
    expires_at = now + timedelta(minutes=settings.PASSWORD_RESET_EXPIRE_MINUTES)
    db.add(
        PasswordResetToken(
            user_id=user.id,
            token_hash=security.hash_opaque_token(raw),
            created_at=now,
            expires_at=expires_at,
        )
    )
    db.flush()
    url = f"{settings.PUBLIC_URL.rstrip('/')}/reset-password?token={quote(raw)}"
    return ResetDelivery(email=user.email, reset_url=url, expires_at=expires_at)


def request_password_reset(db: Session, email: str, client_ip: str) -> ResetDelivery | None:
    """A reset link to mail when the address belongs to an active account; None otherwise."""
    email = _normalise_email(email)
    keys = (f"ip:{client_ip}", f"email:{email}")
    retry_after = reset_requests.retry_after(*keys)
    if retry_after:
        raise TooManyRequests(
            "Too many reset requests; try again later",
            code="too_many_attempts",
            retry_after=retry_after,
        )
    reset_requests.hit(*keys)
    user = db.scalar(select(User).where(User.email == email))
    if user is None or not user.is_active:
        return None
    return create_reset_link(db, user)


def confirm_password_reset(db: Session, raw: str, new_password: str) -> None:
    """Use a reset token once: set the password and sign the user out everywhere."""
    token = db.scalar(
        select(PasswordResetToken).where(
            PasswordResetToken.token_hash == security.hash_opaque_token(raw)
        )
    )
    invalid = BadRequest("This reset link is invalid or has expired", code="invalid_token")
    if token is None or token.used_at is not None or token.expires_at <= utcnow():
        raise invalid
    user = db.get(User, token.user_id)
    if user is None or not user.is_active:
        raise invalid
    claimed = db.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.id == token.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise invalid
    _set_password(user, new_password)
    revoke_refresh_tokens(db, RefreshToken.user_id == user.id)


_default_password_checks: dict[str, bool] = {}


def default_admin_hint(db: Session) -> bool:
    """True while the protected admin still signs in with the configured default password."""
    admin = db.scalar(select(User).where(User.is_protected.is_(True)))
    if admin is None or not admin.is_active or not admin.must_change_password:
        return False
    # One hash check per stored hash, not per request: this endpoint is public.
    cached = _default_password_checks.get(admin.password_hash)
    if cached is None:
        cached, _ = security.verify_password(settings.ADMIN_PASSWORD, admin.password_hash)
        _default_password_checks.clear()
        _default_password_checks[admin.password_hash] = cached
    return cached


def ensure_default_admin(db: Session) -> User | None:
    """Create the protected default admin when the database has no admin at all."""
    if db.scalar(select(User.id).where(User.role == UserRole.ADMIN.value).limit(1)) is not None:
        return None
    nickname = settings.ADMIN_USERNAME.strip()
    email = _normalise_email(settings.ADMIN_EMAIL)
    clash = db.scalar(
        select(User).where(or_(User.email == email, User.nickname_key == nickname.lower()))
    )
    if clash is not None:
        logger.error(
            "No admin exists and ADMIN_USERNAME/ADMIN_EMAIL (%s / %s) belong to an ordinary "
            "account; set other values to have the default admin created",
            nickname,
            email,
        )
        return None
    admin = User(
        email=email,
        nickname=nickname,
        nickname_key=nickname.lower(),
        password_hash=security.hash_password(settings.ADMIN_PASSWORD),
        role=UserRole.ADMIN.value,
        is_protected=True,
        must_change_password=True,
    )
    db.add(admin)
    db.flush()
    logger.warning(
        "Created the default admin account '%s' with the password from ADMIN_PASSWORD; "
        "it must be changed at first sign-in",
        nickname,
    )
    return admin
