"""Secrets at rest: provider API keys are stored Fernet-encrypted and shown only as a mask.

Keys, in the order they are tried when reading (the first one encrypts):
  1. ENCRYPTION_KEY — one or more comma-separated Fernet keys (rotation: new key first);
  2. a key derived from the secret key (SECRET_KEY or the generated DATA_DIR/secret_key) with
     HKDF-SHA256, salt HKDF_SALT and info HKDF_INFO. These two constants are part of the storage
     format: changing them makes every stored API key unreadable.
Keeping (2) as the last reading key means that setting ENCRYPTION_KEY on an install that has
used the derived key so far loses nothing.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.config import settings

HKDF_SALT = b"modeltrain/provider-api-keys"
HKDF_INFO = b"fernet-v1"

_MASK_PREFIX = re.compile(r"^[A-Za-z]{1,8}-")
# Below this length a key's last characters are too large a share of it to show.
_MASK_MIN_LENGTH = 12


class SecretUnreadable(Exception):
    """The stored ciphertext cannot be decrypted with any configured key (key changed)."""


def derive_fernet_key(secret: str) -> bytes:
    """The Fernet key HKDF-SHA256 derives from the server's secret key."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=HKDF_INFO).derive(
        secret.encode("utf-8")
    )
    return base64.urlsafe_b64encode(raw)


@lru_cache(maxsize=8)
def _fernet(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


@lru_cache(maxsize=8)
def _derived(secret: str) -> bytes:
    return derive_fernet_key(secret)


def _configured_keys() -> tuple[bytes, ...]:
    # Read on every call (cheap, the Fernet objects are cached) so that a changed setting counts.
    derived = _derived(settings.secret_key)
    if not settings.ENCRYPTION_KEY:
        return (derived,)
    explicit = tuple(part.encode("ascii") for part in settings.ENCRYPTION_KEY.split(","))
    return explicit if derived in explicit else (*explicit, derived)


def encrypt_secret(plain: str) -> str:
    """Encrypt `plain` with the first configured key; the token is url-safe ASCII."""
    return _fernet(_configured_keys()).encrypt(plain.encode("utf-8")).decode("ascii")


def decrypt_secret(token: str) -> str:
    """Decrypt a token from `encrypt_secret`; raises SecretUnreadable when no key fits."""
    try:
        return _fernet(_configured_keys()).decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError) as exc:
        raise SecretUnreadable(
            "The stored secret cannot be decrypted with the current keys"
        ) from exc


def mask_secret(plain: str) -> str:
    """A hint that identifies a key without revealing it: "sk-…a1b2" (prefix, last 4)."""
    prefix_match = _MASK_PREFIX.match(plain)
    prefix = prefix_match.group(0) if prefix_match else ""
    rest = plain[len(prefix) :]
    if len(rest) < _MASK_MIN_LENGTH:
        return f"{prefix}…" if len(plain) >= _MASK_MIN_LENGTH else "…"
    return f"{prefix}…{rest[-4:]}"
