"""Password hashing, JWT access tokens and opaque token helpers."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"  # noqa: S105  (a claim value)
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128

# Argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): strong enough,
# and cheap enough that a burst of logins leaves CPU for everything else on a small host.
_password_hash = PasswordHash(
    (Argon2Hasher(time_cost=2, memory_cost=19456, parallelism=1), BcryptHasher())
)


# Hashing is CPU-bound (~20 ms each). It runs on two threads of its own at the lowest CPU
# priority: a burst of logins then waits for CPU itself instead of delaying every other request
# (bench/login_load.py: /health p99 went from ~2x to ~1.1x its idle value at 20 logins/s; at
# nice 10 it stayed ~1.8x). Two threads also bound the memory hashing can take (2 x 19 MiB).
# Other CPU-heavy work the server starts (training) must run niced too, or logins starve.
HASH_THREADS = 2
HASH_THREAD_NICENESS = 19


def _lower_thread_priority() -> None:
    try:  # Linux: PRIO_PROCESS with a thread id sets that thread's nice value
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_THREAD_NICENESS)
    except (AttributeError, OSError) as exc:  # other platforms: same priority, still off-loop
        logger.debug("Could not lower the hashing thread's priority: %s", exc)


_hash_pool = ThreadPoolExecutor(
    max_workers=HASH_THREADS, thread_name_prefix="pwhash", initializer=_lower_thread_priority
)


def _on_hash_thread(work: Callable[[], _T]) -> _T:
    return _hash_pool.submit(work).result()


def hash_password(password: str) -> str:
    """Argon2id hash. Blocks the calling thread: never call it on the event loop."""
    return _on_hash_thread(lambda: _password_hash.hash(password))


def _verify(password: str, password_hash: str) -> tuple[bool, str | None]:
    try:
        return _password_hash.verify_and_update(password, password_hash)
    except Exception:  # an unknown or corrupt hash format is a failed check, not a crash
        return False, None


def verify_password(password: str, password_hash: str) -> tuple[bool, str | None]:
    """Check a password; the second value is a fresh hash when the stored one is outdated."""
    return _on_hash_thread(lambda: _verify(password, password_hash))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def burn_password_check(password: str) -> None:
    """Spend the time of a real verification, so unknown users cannot be told apart."""
    verify_password(password, _dummy_hash())


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    path = Path(__file__).with_name("common_passwords.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )


def password_problem(password: str) -> str | None:
    """A human-readable reason the password is unacceptable, or None."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"Password must be at least {PASSWORD_MIN_LENGTH} characters"
    if len(password) > PASSWORD_MAX_LENGTH:
        return f"Password must be at most {PASSWORD_MAX_LENGTH} characters"
    if password.lower() in common_passwords() or len(set(password)) < 3:
        return "This password is too common; choose a less guessable one"
    return None


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    role: str
    jti: str
    issued_at: datetime
    expires_at: datetime


def create_access_token(
    *, user_id: int, role: str, secret: str, ttl: timedelta, now: datetime | None = None
) -> tuple[str, AccessClaims]:
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    claims = AccessClaims(
        user_id=user_id,
        role=role,
        jti=uuid.uuid4().hex,
        issued_at=issued,
        expires_at=issued + ttl,
    )
    payload = {
        "sub": str(user_id),
        "role": role,
        "type": ACCESS_TOKEN_TYPE,
        "jti": claims.jti,
        "iat": int(issued.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
    }
    return jwt.encode(payload, secret, algorithm=JWT_ALGORITHM), claims


class InvalidToken(Exception):
    """The token is malformed, tampered with, expired or of the wrong type."""


def decode_access_token(token: str, secret: str) -> AccessClaims:
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],  # pinned: `alg: none` and algorithm swaps are refused
            options={"require": ["sub", "type", "jti", "iat", "exp"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if payload.get("type") != ACCESS_TOKEN_TYPE:
        raise InvalidToken("not an access token")
    try:
        user_id = int(payload["sub"])
    except (TypeError, ValueError) as exc:
        raise InvalidToken("bad subject") from exc
    return AccessClaims(
        user_id=user_id,
        role=str(payload.get("role", "")),
        jti=str(payload["jti"]),
        issued_at=datetime.fromtimestamp(payload["iat"], UTC),
        expires_at=datetime.fromtimestamp(payload["exp"], UTC),
    )


def new_opaque_token() -> str:
    """A random URL-safe token (256 bits) for refresh cookies and reset links."""
    return secrets.token_urlsafe(32)


def hash_opaque_token(token: str) -> str:
    # High-entropy tokens need no slow hash: SHA-256 keeps lookups indexable.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
