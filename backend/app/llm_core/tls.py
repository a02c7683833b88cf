"""One TLS context shared by every client."""

from __future__ import annotations

import functools
import ssl

import httpx2


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """Building a context loads the CA bundle (≈ 18 ms here); clients are created per request,
    so each would pay it again. SSLContext is safe to share between clients and threads."""
    return httpx2.create_ssl_context()
