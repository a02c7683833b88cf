"""One error hierarchy for every provider. Messages never carry secrets."""

from __future__ import annotations

import re

_SECRET_PATTERNS = [
    re.compile(r"(sk-[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]{8,}"),  # OpenAI-style keys
    re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]{8,}", re.IGNORECASE),
    re.compile(
        r"((?:api[_-]?key|token|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}", re.IGNORECASE
    ),
]


def scrub(text: str, *secrets: str | None) -> str:
    """Remove API keys (the given ones and anything that looks like one) from a message."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text


class LLMError(Exception):
    """Base of every llm_core error: provider name, HTTP status (if any) and a safe message."""

    code = "llm_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{self.provider}{status}: {self.message}"


class LLMAuthError(LLMError):
    code = "provider_auth_failed"


class LLMRateLimited(LLMError):
    code = "provider_rate_limited"


class LLMBadRequest(LLMError):
    code = "provider_bad_request"


class LLMContextTooLong(LLMBadRequest):
    code = "context_too_long"


class LLMUpstreamError(LLMError):
    code = "provider_error"


class LLMTimeout(LLMError):
    code = "provider_timeout"


class LLMConnectionError(LLMError):
    code = "provider_unreachable"
