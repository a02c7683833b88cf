"""API keys at rest: Fernet with ENCRYPTION_KEY or an HKDF-derived key, rotation, masks."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import ValidationError

from app.config import Settings, settings
from app.utils import crypto

PLAIN = "sk-live-0123456789abcdefghijA1B2"


def test_round_trip_without_plaintext_in_token() -> None:
    token = crypto.encrypt_secret(PLAIN)
    assert PLAIN not in token and "A1B2" not in token
    assert crypto.encrypt_secret(PLAIN) != token  # random IV: equal keys do not look equal
    assert crypto.decrypt_secret(token) == PLAIN


def test_derived_key_is_hkdf_sha256_of_the_secret_key() -> None:
    # The documented derivation, recomputed here: changing it would orphan every stored key.
    expected = base64.urlsafe_b64encode(
        HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"modeltrain/provider-api-keys",
            info=b"fernet-v1",
        ).derive(settings.secret_key.encode())
    )
    assert crypto.derive_fernet_key(settings.secret_key) == expected
    assert crypto.derive_fernet_key("another-secret-key-of-enough-length!") != expected
    token = crypto.encrypt_secret(PLAIN)
    assert Fernet(expected).decrypt(token.encode()).decode() == PLAIN


def test_encryption_key_setting_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key()
    monkeypatch.setattr(settings, "ENCRYPTION_KEY", key.decode())
    token = crypto.encrypt_secret(PLAIN)
    assert Fernet(key).decrypt(token.encode()).decode() == PLAIN


def test_rotation_reads_old_keys_and_writes_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    monkeypatch.setattr(settings, "ENCRYPTION_KEY", old.decode())
    old_token = crypto.encrypt_secret(PLAIN)
    monkeypatch.setattr(settings, "ENCRYPTION_KEY", f"{new.decode()},{old.decode()}")
    assert crypto.decrypt_secret(old_token) == PLAIN
    new_token = crypto.encrypt_secret(PLAIN)
    assert Fernet(new).decrypt(new_token.encode()).decode() == PLAIN


def test_derived_key_still_reads_after_setting_encryption_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = crypto.encrypt_secret(PLAIN)  # no ENCRYPTION_KEY: the derived key
    monkeypatch.setattr(settings, "ENCRYPTION_KEY", Fernet.generate_key().decode())
    assert crypto.decrypt_secret(token) == PLAIN


def test_wrong_key_is_unreadable_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "ENCRYPTION_KEY", Fernet.generate_key().decode())
    token = crypto.encrypt_secret(PLAIN)
    monkeypatch.setattr(settings, "ENCRYPTION_KEY", Fernet.generate_key().decode())
    with pytest.raises(crypto.SecretUnreadable):
        crypto.decrypt_secret(token)
    for garbage in ("", "not-a-token", "gAAAAA" + "x" * 80, "ключ"):
        with pytest.raises(crypto.SecretUnreadable):
            crypto.decrypt_secret(garbage)


@pytest.mark.parametrize(
    ("plain", "masked"),
    [
        ("sk-0123456789abcdefa1b2", "sk-…a1b2"),
        ("sk-proj-0123456789abcdefZ9y8", "sk-…Z9y8"),
        ("0123456789abcdefWXYZ", "…WXYZ"),
        ("sk-0123456789", "sk-…"),  # the tail would be too large a share of a short key
        ("short", "…"),
        ("", "…"),
    ],
)
def test_mask(plain: str, masked: str) -> None:
    assert crypto.mask_secret(plain) == masked


def test_encryption_key_setting_is_validated() -> None:
    key = Fernet.generate_key().decode()
    single = Settings(ENCRYPTION_KEY=key).ENCRYPTION_KEY
    assert single == key
    rotation = Settings(ENCRYPTION_KEY=f" {key} , {key} ").ENCRYPTION_KEY
    assert rotation == f"{key},{key}"
    assert Settings(ENCRYPTION_KEY="  ").ENCRYPTION_KEY is None
    for bad in ("not-a-key", base64.urlsafe_b64encode(b"x" * 16).decode(), f"{key},nope"):
        with pytest.raises(ValidationError, match="Fernet"):
            Settings(ENCRYPTION_KEY=bad)


def test_llm_timeouts_have_documented_defaults() -> None:
    fresh = Settings()
    assert fresh.LLM_CONNECT_TIMEOUT_SECONDS == 10.0
    assert fresh.LLM_IDLE_TIMEOUT_SECONDS == 120.0
    with pytest.raises(ValidationError):
        Settings(LLM_IDLE_TIMEOUT_SECONDS=0)
