"""OpenAICompatibleClient against the mock upstream (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import socket
import time

import pytest

from app.llm_core import (
    BaseClient,
    ChatChunk,
    ChatMessage,
    GenerationParams,
    ImagePart,
    LLMAuthError,
    LLMBadRequest,
    LLMConnectionError,
    LLMContextTooLong,
    LLMRateLimited,
    LLMTimeout,
    LLMUpstreamError,
    TextPart,
    Usage,
)
from app.llm_core.openai_client import OpenAICompatibleClient
from tests.llm_core.conftest import MakeClient
from tests.upstream import PLAIN_TEXT, THINK_ANSWER, THINK_REASONING, MockUpstream

pytestmark = pytest.mark.anyio

HELLO = [ChatMessage(role="user", content="hi")]


async def collect(
    client: BaseClient, model: str, params: GenerationParams | None = None
) -> list[ChatChunk]:
    return [chunk async for chunk in client.stream(model, HELLO, params)]


def texts(chunks: list[ChatChunk]) -> tuple[str, str]:
    reasoning = "".join(c.text for c in chunks if c.kind == "reasoning")
    content = "".join(c.text for c in chunks if c.kind == "content")
    return reasoning, content


# --------------------------------------------------------------------------- answers


async def test_chat_plain(make_client: MakeClient, upstream: MockUpstream) -> None:
    result = await make_client().chat("plain", HELLO)
    assert result.content == PLAIN_TEXT
    assert result.reasoning == ""
    assert result.finish_reason == "stop"
    assert result.model == "plain"
    assert result.usage is not None and result.usage.completion_tokens == 12
    assert result.latency_ms > 0
    (request,) = upstream.requests
    assert request.body["stream"] is False
    assert request.body["messages"] == [{"role": "user", "content": "hi"}]


async def test_stream_plain_with_usage_and_finish_last(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    chunks = await collect(make_client(), "plain")
    assert texts(chunks) == ("", PLAIN_TEXT)
    assert len([c for c in chunks if c.kind == "content"]) > 5  # really streamed
    assert chunks[-2] == ChatChunk(kind="usage", usage=Usage(prompt_tokens=4, completion_tokens=12))
    assert chunks[-1] == ChatChunk(kind="finish", finish_reason="stop")
    body = upstream.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_stream_sse_quirks(make_client: MakeClient) -> None:
    # Comments, CRLF, an event: field, "data:" without a space, JSON split over data lines.
    chunks = await collect(make_client(), "sse-quirks")
    assert texts(chunks) == ("", PLAIN_TEXT)
    assert chunks[-2].kind == "usage"
    assert chunks[-1] == ChatChunk(kind="finish", finish_reason="stop")


@pytest.mark.parametrize("model", ["reasoning-content", "reasoning-field", "think-inline"])
async def test_stream_reasoning_three_ways(make_client: MakeClient, model: str) -> None:
    chunks = await collect(make_client(), model)
    assert texts(chunks) == (THINK_REASONING, THINK_ANSWER)
    kinds = [c.kind for c in chunks if c.kind in ("reasoning", "content")]
    assert kinds.index("content") > max(i for i, k in enumerate(kinds) if k == "reasoning")


@pytest.mark.parametrize(
    "model", ["reasoning-content", "reasoning-field", "think-inline", "think-no-open"]
)
async def test_chat_reasoning(make_client: MakeClient, model: str) -> None:
    result = await make_client().chat(model, HELLO)
    assert (result.reasoning, result.content) == (THINK_REASONING, THINK_ANSWER)


async def test_stream_missing_open_tag_with_think_open(make_client: MakeClient) -> None:
    chunks = await collect(make_client(think_open=True), "think-no-open")
    assert texts(chunks) == (THINK_REASONING, THINK_ANSWER)


async def test_think_open_does_not_swallow_content_of_reasoning_field_providers(
    make_client: MakeClient,
) -> None:
    chunks = await collect(make_client(think_open=True), "reasoning-content")
    assert texts(chunks) == (THINK_REASONING, THINK_ANSWER)


async def test_max_tokens_cut_reports_length(make_client: MakeClient) -> None:
    result = await make_client().chat("plain", HELLO, GenerationParams(max_tokens=1))
    assert result.finish_reason == "length"
    chunks = await collect(make_client(), "plain", GenerationParams(max_tokens=2))
    assert chunks[-1].finish_reason == "length"


async def test_images_are_sent_as_image_url_parts(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    data_url = "data:image/png;base64,iVBORw0KGgo="
    message = ChatMessage(role="user", content=[TextPart("what is this?"), ImagePart(data_url)])
    result = await make_client().chat("echo", [message])
    assert result.content == "You said: what is this? [1 image(s)]"
    assert upstream.requests[0].body["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": data_url}},
    ]


# --------------------------------------------------------------------------- parameters

FULL = GenerationParams(temperature=0.3, max_tokens=64, top_p=0.9, top_k=5, stop=["##"], seed=7)


@pytest.mark.parametrize("provider", ["openai", "deepseek"])
async def test_top_k_never_sent_where_unsupported(
    make_client: MakeClient, upstream: MockUpstream, provider: str
) -> None:
    await make_client(provider, api_key="sk-test-key").chat("plain", HELLO, FULL)
    await collect(make_client(provider, api_key="sk-test-key"), "plain", FULL)
    for request in upstream.requests:
        assert "top_k" not in request.body
        assert request.body["temperature"] == 0.3
        assert request.body["top_p"] == 0.9
        assert request.body["stop"] == ["##"]
        assert request.body["seed"] == 7


@pytest.mark.parametrize("provider", ["vllm", "siliconcloud", "custom"])
async def test_top_k_sent_through_extra_body(
    make_client: MakeClient, upstream: MockUpstream, provider: str
) -> None:
    await make_client(provider, api_key="sk-test-key").chat("plain", HELLO, FULL)
    await collect(make_client(provider, api_key="sk-test-key"), "plain", FULL)
    assert [r.body["top_k"] for r in upstream.requests] == [5, 5]


async def test_max_tokens_field_per_provider(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    await make_client("openai", api_key="sk-test-key").chat("plain", HELLO, FULL)
    await make_client("deepseek", api_key="sk-test-key").chat("plain", HELLO, FULL)
    openai_body, deepseek_body = (r.body for r in upstream.requests)
    assert openai_body["max_completion_tokens"] == 64 and "max_tokens" not in openai_body
    assert deepseek_body["max_tokens"] == 64 and "max_completion_tokens" not in deepseek_body


async def test_unset_params_are_not_sent(make_client: MakeClient, upstream: MockUpstream) -> None:
    await make_client().chat("plain", HELLO, GenerationParams(temperature=0.0))
    body = upstream.requests[0].body
    assert body["temperature"] == 0.0
    for name in ("top_p", "top_k", "stop", "seed", "max_tokens", "max_completion_tokens"):
        assert name not in body


async def test_keyless_provider_sends_placeholder_and_key_is_used_when_given(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    await make_client("vllm").chat("plain", HELLO)
    assert upstream.requests[-1].has_auth  # the SDK's placeholder; the server ignores it
    assert "authorization" not in upstream.requests[-1].headers  # recorded without secrets


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("key", "model"), [("sk-wrong-key", "plain"), ("my-secret-value-42", "auth-fail")]
)
async def test_401_is_auth_error_without_the_key(
    make_client: MakeClient, upstream: MockUpstream, key: str, model: str
) -> None:
    with pytest.raises(LLMAuthError) as caught:
        await make_client("custom", api_key=key).chat(model, HELLO)
    error = caught.value
    assert error.status == 401
    assert error.code == "provider_auth_failed"
    assert error.provider == "custom"
    assert "Incorrect API key" in error.message
    for text in (error.message, str(error), repr(error)):
        assert key not in text
    assert len(upstream.requests) == 1  # not retried


async def test_401_on_stream_and_list_models(make_client: MakeClient) -> None:
    client = make_client("custom", api_key="sk-wrong-key")
    with pytest.raises(LLMAuthError):
        await collect(client, "plain")
    with pytest.raises(LLMAuthError):
        await client.list_models()


async def test_403_is_auth_error(make_client: MakeClient) -> None:
    with pytest.raises(LLMAuthError) as caught:
        await make_client().chat("forbidden", HELLO)
    assert caught.value.status == 403


async def test_context_too_long(make_client: MakeClient) -> None:
    with pytest.raises(LLMContextTooLong) as caught:
        await collect(make_client(), "context-too-long")
    assert caught.value.code == "context_too_long"
    assert caught.value.status == 400


async def test_other_4xx_is_bad_request(make_client: MakeClient, upstream: MockUpstream) -> None:
    with pytest.raises(LLMBadRequest) as caught:
        await make_client().chat("bad-request", HELLO)
    assert type(caught.value) is LLMBadRequest
    assert "temperature" in caught.value.message
    with pytest.raises(LLMBadRequest) as missing:
        await collect(make_client(), "no-such-model")
    assert missing.value.status == 404
    assert len(upstream.requests) == 2  # 4xx is never retried


async def test_429_retried_after_retry_after_then_succeeds(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    started = time.monotonic()
    chunks = await collect(make_client(), "rate-limit-once")
    assert texts(chunks) == ("", PLAIN_TEXT)
    first, second = upstream.requests
    assert second.at - first.at >= 0.95  # waited for Retry-After: 1
    assert time.monotonic() - started < 5


async def test_429_exhausted_raises_rate_limited(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    with pytest.raises(LLMRateLimited) as caught:
        await make_client(max_retries=1).chat("rate-limit", HELLO)
    assert caught.value.retry_after == 1.0
    assert caught.value.status == 429
    assert len(upstream.requests) == 2


async def test_429_with_long_retry_after_is_not_waited_for(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    started = time.monotonic()
    with pytest.raises(LLMRateLimited) as caught:
        await collect(make_client(), "rate-limit-long")
    assert caught.value.retry_after == 120.0
    assert len(upstream.requests) == 1
    assert time.monotonic() - started < 1


async def test_500_retried_then_succeeds(make_client: MakeClient, upstream: MockUpstream) -> None:
    assert (await make_client().chat("flaky-500-once", HELLO)).content == PLAIN_TEXT
    assert texts(await collect(make_client(), "flaky-500-once"))[1] == PLAIN_TEXT
    assert len(upstream.requests) == 3  # the once-counter is per server: 500, ok, ok


async def test_500_exhausted(make_client: MakeClient, upstream: MockUpstream) -> None:
    with pytest.raises(LLMUpstreamError) as caught:
        await collect(make_client(max_retries=2), "server-error")
    assert caught.value.status == 500
    assert caught.value.code == "provider_error"
    assert len(upstream.requests) == 3


async def test_sdk_does_not_retry_on_its_own(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    with pytest.raises(LLMUpstreamError):
        await make_client(max_retries=0).chat("server-error", HELLO)
    assert len(upstream.requests) == 1


async def test_drop_before_output_is_retried(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    assert texts(await collect(make_client(), "drop-early-once")) == ("", PLAIN_TEXT)
    assert len(upstream.requests) == 2


async def test_drop_after_output_raises_without_retry(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    received: list[ChatChunk] = []
    with pytest.raises(LLMConnectionError) as caught:
        async for chunk in make_client().stream("drop", HELLO):
            received.append(chunk)
    assert texts(received)[1] == "Hello! I am "  # the output that had started
    assert caught.value.code == "provider_unreachable"
    assert len(upstream.requests) == 1


async def test_error_event_inside_the_stream(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    with pytest.raises(LLMUpstreamError, match="crashed"):
        await collect(make_client(), "stream-error")
    assert len(upstream.requests) == 1


async def test_stall_between_chunks_is_idle_timeout(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    received: list[ChatChunk] = []
    started = time.monotonic()
    with pytest.raises(LLMTimeout) as caught:
        async for chunk in make_client(idle_timeout=0.3).stream("stall", HELLO):
            received.append(chunk)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0
    assert texts(received)[1] == "Hello! I "  # the 2 chunks before the stall
    assert caught.value.code == "provider_timeout"
    assert len(upstream.requests) == 1  # timeouts are not retried


async def test_stall_without_stream_is_timeout(make_client: MakeClient) -> None:
    started = time.monotonic()
    with pytest.raises(LLMTimeout):
        await make_client(idle_timeout=0.3).chat("stall", HELLO)
    assert time.monotonic() - started < 2.0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused(make_client: MakeClient) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}/v1"
    started = time.monotonic()
    with pytest.raises(LLMConnectionError) as caught:
        await make_client(endpoint=endpoint, max_retries=0).chat("plain", HELLO)
    assert time.monotonic() - started < 1.0
    assert caught.value.code == "provider_unreachable"
    assert "cannot connect to 127.0.0.1" in caught.value.message
    # With retries the same failure is tried again after a backoff (0.25 s, then 0.5 s, -25 %).
    started = time.monotonic()
    with pytest.raises(LLMConnectionError):
        await collect(make_client(endpoint=endpoint, max_retries=2), "plain")
    assert time.monotonic() - started >= 0.55


# --------------------------------------------------------------------------- fallback


async def test_stream_refused_falls_back_to_one_answer(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    client = make_client()
    chunks = await collect(client, "no-stream")
    assert [c.kind for c in chunks] == ["reasoning", "content", "usage", "finish"]
    assert texts(chunks) == (THINK_REASONING, THINK_ANSWER)
    assert chunks[-1].finish_reason == "stop"
    assert [r.body["stream"] for r in upstream.requests] == [True, False]
    # The refusal is remembered: the next stream asks without streaming straight away.
    await collect(client, "no-stream")
    assert [r.body["stream"] for r in upstream.requests] == [True, False, False]


# --------------------------------------------------------------------------- models


async def test_malformed_stream_data_is_upstream_error(make_client: MakeClient) -> None:
    # Not JSON where a chunk should be: an upstream error, not a crash.
    client = make_client()
    assert isinstance(client, OpenAICompatibleClient)
    with pytest.raises(LLMUpstreamError, match="malformed"):
        client._event("{not json")


async def test_list_models(make_client: MakeClient, upstream: MockUpstream) -> None:
    models = await make_client().list_models()
    ids = [m.id for m in models]
    assert "plain" in ids and "think-inline" in ids
    assert all(m.owned_by == "mock" for m in models)
    assert upstream.requests[0].path == "/v1/models"
