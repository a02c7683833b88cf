"""Error mapping, Retry-After parsing, the retry policy, the registry, endpoint normalisation
and LLMClient's choice of class: the parts that need no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from app.llm_core import (
    MODEL_PROVIDERS,
    LLMAuthError,
    LLMBadRequest,
    LLMClient,
    LLMConnectionError,
    LLMContextTooLong,
    LLMError,
    LLMRateLimited,
    LLMTimeout,
    LLMUpstreamError,
    RetryPolicy,
    normalize_endpoint,
)
from app.llm_core.errors import error_from_status, parse_retry_after, scrub
from app.llm_core.ollama_client import OllamaClient
from app.llm_core.openai_client import OpenAICompatibleClient, is_stream_refusal


@pytest.mark.parametrize(
    ("status", "message", "code", "expected"),
    [
        (401, "Incorrect API key", None, LLMAuthError),
        (403, "Forbidden", None, LLMAuthError),
        (429, "Slow down", None, LLMRateLimited),
        (400, "This model's maximum context length is 4096 tokens", None, LLMContextTooLong),
        (400, "whatever", "context_length_exceeded", LLMContextTooLong),
        (400, "Input is too long for requested model", None, LLMContextTooLong),
        (413, "prompt is too long", None, LLMContextTooLong),
        (400, "Invalid value for 'temperature'", None, LLMBadRequest),
        (400, "temperature exceeds the maximum of 2", None, LLMBadRequest),
        (404, "model not found", None, LLMBadRequest),
        (422, "validation error", None, LLMBadRequest),
        (500, "boom", None, LLMUpstreamError),
        (502, "bad gateway", None, LLMUpstreamError),
        (503, "overloaded", None, LLMUpstreamError),
    ],
)
def test_status_mapping(
    status: int, message: str, code: str | None, expected: type[LLMError]
) -> None:
    error = error_from_status("openai", status, message, code=code)
    assert type(error) is expected
    assert error.status == status
    assert error.provider == "openai"
    assert error.message == message


def test_error_codes_and_context_is_a_bad_request() -> None:
    assert LLMAuthError.code == "provider_auth_failed"
    assert LLMRateLimited.code == "provider_rate_limited"
    assert LLMBadRequest.code == "provider_bad_request"
    assert LLMContextTooLong.code == "context_too_long"
    assert issubclass(LLMContextTooLong, LLMBadRequest)
    assert LLMUpstreamError.code == "provider_error"
    assert LLMTimeout.code == "provider_timeout"
    assert LLMConnectionError.code == "provider_unreachable"


def test_mapped_message_is_scrubbed_and_bounded() -> None:
    key = "my-private-token-123"
    error = error_from_status(
        "custom", 401, f"bad key {key} / sk-abcdefghijklmnopqrstuvwx", api_key=key
    )
    assert key not in error.message
    assert "sk-abcdefghijklmnopqrstuvwx" not in error.message
    long = error_from_status("custom", 502, "<html>" + "x" * 5000)
    assert len(long.message) <= 500
    assert error_from_status("custom", 500, "").message == "HTTP 500"


def test_rate_limit_carries_retry_after() -> None:
    error = error_from_status("openai", 429, "slow down", retry_after=3.0)
    assert error.retry_after == 3.0


def test_scrub() -> None:
    assert scrub("key sk-proj-abcdefghijklmnop end") == "key sk-proj*** end"
    assert "abcdefghijkl" not in scrub("Authorization: Bearer abcdefghijkl")
    assert scrub("Bearer abcdefghijkl") == "Bearer ***"
    assert scrub("api_key=supersecretvalue") == "api_key=***"
    assert scrub("plain text", "secret-value") == "plain text"
    assert scrub("uses secret-value here", "secret-value") == "uses *** here"


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None, "250") == 0.25
    assert parse_retry_after("7", "250") == 0.25  # retry-after-ms is more precise
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    parsed = parse_retry_after(in_ten)
    assert parsed is not None and 8.0 <= parsed <= 10.5


@pytest.mark.parametrize(
    ("status", "message", "param", "expected"),
    [
        (400, "Streaming is not supported for this model", None, True),
        (400, "Unsupported value: 'stream' does not support true with this model.", None, True),
        (400, "anything", "stream", True),
        (422, "stream=true is not allowed", None, True),
        (501, "streaming not implemented", None, True),
        (400, "stream: only false is supported", None, True),
        (400, "Invalid value for 'temperature'", "temperature", False),
        (400, "Streaming works fine, but the prompt is too long", None, False),
        (500, "Streaming is not supported", None, False),
        (401, "stream not allowed", None, False),
    ],
)
def test_stream_refusal_detection(
    status: int, message: str, param: str | None, expected: bool
) -> None:
    assert is_stream_refusal(status, message, param) is expected


def _err(cls: type[LLMError], retry_after: float | None = None) -> LLMError:
    return cls("x", provider="p", retry_after=retry_after)


def test_retry_policy_retries_only_connection_429_5xx() -> None:
    policy = RetryPolicy(max_retries=2)
    retried: tuple[type[LLMError], ...] = (LLMConnectionError, LLMRateLimited, LLMUpstreamError)
    raised: tuple[type[LLMError], ...] = (
        LLMAuthError,
        LLMBadRequest,
        LLMContextTooLong,
        LLMTimeout,
    )
    for cls in retried:
        assert policy.delay_before_retry(0, _err(cls)) is not None, cls
    for cls in raised:
        assert policy.delay_before_retry(0, _err(cls)) is None, cls


def test_retry_policy_backoff_and_limits() -> None:
    policy = RetryPolicy(max_retries=2, base_delay=0.25, max_delay=0.4)
    first = policy.delay_before_retry(0, _err(LLMUpstreamError))
    second = policy.delay_before_retry(1, _err(LLMUpstreamError))
    assert first is not None and 0.1875 <= first <= 0.25
    assert second is not None and 0.3 <= second <= 0.4  # capped at max_delay
    assert policy.delay_before_retry(2, _err(LLMUpstreamError)) is None
    assert RetryPolicy(max_retries=0).delay_before_retry(0, _err(LLMUpstreamError)) is None


def test_retry_policy_honours_retry_after_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retry_after=10.0)
    assert policy.delay_before_retry(0, _err(LLMRateLimited, 3.0)) == 3.0
    assert policy.delay_before_retry(0, _err(LLMRateLimited, 60.0)) is None


@pytest.mark.parametrize(
    ("provider", "endpoint", "expected"),
    [
        ("vllm", "http://127.0.0.1:8001", "http://127.0.0.1:8001/v1"),
        ("vllm", "http://127.0.0.1:8001/", "http://127.0.0.1:8001/v1"),
        ("vllm", "http://127.0.0.1:8001/v1/", "http://127.0.0.1:8001/v1"),
        ("vllm", "http://127.0.0.1:8001/v1///", "http://127.0.0.1:8001/v1"),
        ("custom", "127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
        ("custom", "http://gateway/api/v1/", "http://gateway/api/v1"),
        ("openai", "https://API.OpenAI.com/v1/chat/completions", "https://api.openai.com/v1"),
        ("deepseek", "https://api.deepseek.com", "https://api.deepseek.com/v1"),
        ("siliconcloud", "https://api.siliconflow.cn/v1/models", "https://api.siliconflow.cn/v1"),
        ("ollama", "http://127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("ollama", "http://127.0.0.1:11434/", "http://127.0.0.1:11434"),
        ("ollama", "http://127.0.0.1:11434/api", "http://127.0.0.1:11434"),
        ("ollama", "http://127.0.0.1:11434/api/", "http://127.0.0.1:11434"),
        ("ollama", "http://127.0.0.1:11434/api/chat", "http://127.0.0.1:11434"),
        ("ollama", "http://127.0.0.1:11434/v1", "http://127.0.0.1:11434"),
        ("ollama", "http://proxy/ollama/api", "http://proxy/ollama"),
    ],
)
def test_normalize_endpoint(provider: str, endpoint: str, expected: str) -> None:
    assert normalize_endpoint(provider, endpoint) == expected


def test_registry() -> None:
    assert set(MODEL_PROVIDERS) == {
        "openai",
        "deepseek",
        "siliconcloud",
        "ollama",
        "vllm",
        "custom",
    }
    assert not MODEL_PROVIDERS["openai"].supports_top_k
    assert not MODEL_PROVIDERS["deepseek"].supports_top_k
    assert MODEL_PROVIDERS["vllm"].supports_top_k
    assert MODEL_PROVIDERS["openai"].requires_api_key
    assert not MODEL_PROVIDERS["ollama"].requires_api_key


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("provider", "cls"),
    [
        ("openai", OpenAICompatibleClient),
        ("deepseek", OpenAICompatibleClient),
        ("siliconcloud", OpenAICompatibleClient),
        ("vllm", OpenAICompatibleClient),
        ("custom", OpenAICompatibleClient),
        ("ollama", OllamaClient),
    ],
)
async def test_llmclient_picks_the_class(provider: str, cls: type) -> None:
    client = LLMClient.create(provider, api_key="sk-test-key")
    try:
        assert type(client) is cls
        assert client.provider == provider
        spec = MODEL_PROVIDERS[provider]
        assert client.base_url == normalize_endpoint(provider, spec.default_endpoint)
    finally:
        await client.aclose()


def test_llmclient_unknown_provider() -> None:
    with pytest.raises(ValueError, match="Unknown provider"):
        LLMClient.create("nope", "http://x")
