"""One error hierarchy for every provider. Messages never carry secrets."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

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
    """401/403: the key is wrong, missing or not allowed this model."""

    code = "provider_auth_failed"


class LLMRateLimited(LLMError):
    """429: `retry_after` holds the provider's Retry-After in seconds, if sent."""

    code = "provider_rate_limited"


class LLMBadRequest(LLMError):
    """Another 4xx: the request itself is wrong (unknown model, bad parameter)."""

    code = "provider_bad_request"


class LLMContextTooLong(LLMBadRequest):
    """The prompt (plus max_tokens) does not fit the model's context."""

    code = "context_too_long"


class LLMUpstreamError(LLMError):
    """5xx, an error reported inside a stream, or an unreadable answer."""

    code = "provider_error"


class LLMTimeout(LLMError):
    """No connection within the connect timeout, or no data within the idle timeout."""

    code = "provider_timeout"


class LLMConnectionError(LLMError):
    """The provider could not be reached, or the connection broke."""

    code = "provider_unreachable"


# Wordings of "the prompt does not fit" seen from OpenAI, DeepSeek, vLLM, SiliconFlow, llama.cpp
# and LLaMA-Factory; OpenAI also sends the code "context_length_exceeded".
_CONTEXT_TOO_LONG = re.compile(
    r"context[ _-]?(length|window|size)|maximum context|max_model_len|too many tokens"
    r"|(prompt|input) is too long|reduce the length of the (messages|prompt|input)"
    r"|(exceeds?|longer than) the (model'?s? )?(maximum|max) (context|sequence|input|prompt)",
    re.IGNORECASE,
)
MAX_MESSAGE_CHARS = 500  # an HTML error page from a proxy is not a message


def parse_retry_after(value: str | None, value_ms: str | None = None) -> float | None:
    """Seconds from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or an HTTP date)."""
    for raw, scale in ((value_ms, 0.001), (value, 1.0)):
        if not raw:
            continue
        try:
            seconds = float(raw.strip()) * scale
        except ValueError:
            if scale != 1.0:
                continue
            try:
                when = parsedate_to_datetime(raw)
            except (TypeError, ValueError, IndexError):
                continue
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def is_context_too_long(message: str, code: str | None = None) -> bool:
    return code == "context_length_exceeded" or bool(_CONTEXT_TOO_LONG.search(message))


def error_from_status(
    provider: str,
    status: int,
    message: str,
    *,
    api_key: str | None = None,
    retry_after: float | None = None,
    code: str | None = None,
) -> LLMError:
    """The LLMError for an HTTP error answer: 401/403 auth, 429 rate limit, 400/413/422 about
    the context length -> context too long, other 4xx bad request, 5xx upstream error."""
    text = scrub(" ".join(message.split())[:MAX_MESSAGE_CHARS], api_key)
    if not text:
        text = f"HTTP {status}"
    cls: type[LLMError]
    if status in (401, 403):
        cls = LLMAuthError
    elif status == 429:
        return LLMRateLimited(text, provider=provider, status=status, retry_after=retry_after)
    elif status in (400, 413, 422) and is_context_too_long(text, code):
        cls = LLMContextTooLong
    elif 400 <= status < 500:
        cls = LLMBadRequest
    else:
        cls = LLMUpstreamError
    return cls(text, provider=provider, status=status)
