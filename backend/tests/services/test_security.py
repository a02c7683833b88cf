from __future__ import annotations

import os
import sys
import threading

import pytest

from app.utils import security


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux-only")
def test_hashing_runs_on_low_priority_threads() -> None:
    def where() -> tuple[str, int]:
        tid = threading.get_native_id()
        return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, tid)

    name, niceness = security._on_hash_thread(where)
    assert name.startswith("pwhash")
    assert niceness == max(security.HASH_THREAD_NICENESS, os.nice(0))
    # The caller's own priority is untouched.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == os.nice(0)


def test_hash_round_trip_and_corrupt_hash() -> None:
    hashed = security.hash_password("Round-Trip-Pass-1")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert security.verify_password("Round-Trip-Pass-1", hashed) == (True, None)
    assert security.verify_password("wrong-password", hashed) == (False, None)
    assert security.verify_password("anything", "not-a-hash") == (False, None)


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("Sturdy-Passw0rd!", True),
        ("short", False),
        ("x" * 129, False),
        ("password123", False),
        ("PASSWORD123", False),  # the common list is case-insensitive
        ("abababababab", False),  # fewer than 3 distinct characters
    ],
)
def test_password_policy(password: str, ok: bool) -> None:
    assert (security.password_problem(password) is None) is ok
