"""OllamaClient against the mock upstream's native Ollama API (/api/chat, /api/tags)."""

from __future__ import annotations

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
    LLMTimeout,
    LLMUpstreamError,
    TextPart,
    Usage,
)
from tests.llm_core.conftest import MakeClient
from tests.upstream import PLAIN_TEXT, THINK_ANSWER, THINK_REASONING, MockUpstream

pytestmark = pytest.mark.anyio

HELLO = [ChatMessage(role="user", content="hi")]
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def collect(
    client: BaseClient, model: str, params: GenerationParams | None = None
) -> list[ChatChunk]:
    return [chunk async for chunk in client.stream(model, HELLO, params)]


def texts(chunks: list[ChatChunk]) -> tuple[str, str]:
    reasoning = "".join(c.text for c in chunks if c.kind == "reasoning")
    content = "".join(c.text for c in chunks if c.kind == "content")
    return reasoning, content


async def test_stream_with_thinking(make_client: MakeClient, upstream: MockUpstream) -> None:
    chunks = await collect(make_client("ollama"), "think:latest")
    assert texts(chunks) == (THINK_REASONING, THINK_ANSWER)
    assert chunks[0].kind == "reasoning"
    assert chunks[-2] == ChatChunk(kind="usage", usage=Usage(prompt_tokens=4, completion_tokens=17))
    assert chunks[-1] == ChatChunk(kind="finish", finish_reason="stop")
    (request,) = upstream.requests
    assert request.path == "/api/chat"
    assert request.body == {
        "model": "think:latest",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }


async def test_stream_plain_and_inline_think(make_client: MakeClient) -> None:
    client = make_client("ollama")
    assert texts(await collect(client, "plain")) == ("", PLAIN_TEXT)
    assert texts(await collect(client, "think-inline")) == (THINK_REASONING, THINK_ANSWER)


async def test_chat_not_streamed(make_client: MakeClient, upstream: MockUpstream) -> None:
    result = await make_client("ollama").chat("think", HELLO)
    assert (result.reasoning, result.content) == (THINK_REASONING, THINK_ANSWER)
    assert result.usage == Usage(prompt_tokens=4, completion_tokens=17)
    assert result.finish_reason == "stop"
    assert result.model == "think"
    assert upstream.requests[0].body["stream"] is False
    inline = await make_client("ollama").chat("think-inline", HELLO)
    assert (inline.reasoning, inline.content) == (THINK_REASONING, THINK_ANSWER)


async def test_options_mapping(make_client: MakeClient, upstream: MockUpstream) -> None:
    params = GenerationParams(
        temperature=0.2, max_tokens=3, top_p=0.8, top_k=20, stop=["\n\n"], seed=11
    )
    result = await make_client("ollama").chat("plain", HELLO, params)
    assert upstream.requests[0].body["options"] == {
        "temperature": 0.2,
        "top_p": 0.8,
        "top_k": 20,
        "num_predict": 3,
        "stop": ["\n\n"],
        "seed": 11,
    }
    assert result.finish_reason == "length"  # num_predict reached
    await make_client("ollama").chat("plain", HELLO, GenerationParams(temperature=0.5))
    assert upstream.requests[1].body["options"] == {"temperature": 0.5}
    await make_client("ollama").chat("plain", HELLO)
    assert "options" not in upstream.requests[2].body


async def test_images_base64_without_data_url_prefix(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    message = ChatMessage(
        role="user",
        content=[
            TextPart("describe "),
            ImagePart(f"data:image/png;base64,{PNG_B64}"),
            TextPart("it"),
        ],
    )
    result = await make_client("ollama").chat("echo", [message])
    assert result.content == "You said: describe it [1 image(s)]"
    sent = upstream.requests[0].body["messages"][0]
    assert sent == {"role": "user", "content": "describe it", "images": [PNG_B64]}


async def test_image_links_are_refused_before_any_request(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    message = ChatMessage(role="user", content=[ImagePart("http://169.254.169.254/cat.png")])
    with pytest.raises(LLMBadRequest, match="data URL"):
        await make_client("ollama").chat("echo", [message])
    assert upstream.requests == []


async def test_list_models(make_client: MakeClient, upstream: MockUpstream) -> None:
    models = await make_client("ollama").list_models()
    assert [m.id for m in models][:2] == ["plain:latest", "echo:latest"]
    details = models[0].extra["details"]
    assert isinstance(details, dict) and details["family"] == "qwen2"
    assert upstream.requests[0].path == "/api/tags"


async def test_endpoint_with_api_suffix(make_client: MakeClient, upstream: MockUpstream) -> None:
    client = make_client("ollama", endpoint=upstream.base_url + "/api/")
    assert (await client.chat("plain", HELLO)).content == PLAIN_TEXT
    assert upstream.requests[0].path == "/api/chat"


async def test_api_key_is_sent_as_bearer(make_client: MakeClient, upstream: MockUpstream) -> None:
    await make_client("ollama").chat("plain", HELLO)
    await make_client("ollama", api_key="proxy-token-1").chat("plain", HELLO)
    assert [r.has_auth for r in upstream.requests] == [False, True]


async def test_model_not_found(make_client: MakeClient, upstream: MockUpstream) -> None:
    with pytest.raises(LLMBadRequest) as caught:
        await collect(make_client("ollama"), "missing:7b")
    assert caught.value.status == 404
    assert "not found" in caught.value.message
    assert len(upstream.requests) == 1


async def test_auth_error(make_client: MakeClient) -> None:
    with pytest.raises(LLMAuthError):
        await make_client("ollama").chat("auth-fail", HELLO)


async def test_500_retried(make_client: MakeClient, upstream: MockUpstream) -> None:
    assert texts(await collect(make_client("ollama"), "flaky-500-once"))[1] == PLAIN_TEXT
    assert len(upstream.requests) == 2
    with pytest.raises(LLMUpstreamError) as caught:
        await make_client("ollama", max_retries=1).chat("server-error", HELLO)
    assert caught.value.status == 500
    assert "llama runner" in caught.value.message
    assert len(upstream.requests) == 4


async def test_drop_before_output_retried_after_output_raised(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    assert texts(await collect(make_client("ollama"), "drop-early-once"))[1] == PLAIN_TEXT
    assert len(upstream.requests) == 2
    upstream.reset()
    received: list[ChatChunk] = []
    with pytest.raises(LLMConnectionError):
        async for chunk in make_client("ollama").stream("drop", HELLO):
            received.append(chunk)
    assert texts(received)[1] == "Hello! I am "
    assert len(upstream.requests) == 1


async def test_error_line_inside_the_stream(
    make_client: MakeClient, upstream: MockUpstream
) -> None:
    with pytest.raises(LLMUpstreamError, match="llama runner"):
        await collect(make_client("ollama"), "stream-error")
    assert len(upstream.requests) == 1


async def test_stall_is_idle_timeout(make_client: MakeClient, upstream: MockUpstream) -> None:
    started = time.monotonic()
    with pytest.raises(LLMTimeout):
        await collect(make_client("ollama", idle_timeout=0.3), "stall")
    assert 0.3 <= time.monotonic() - started < 2.0
    with pytest.raises(LLMTimeout):
        await make_client("ollama", idle_timeout=0.3).chat("stall", HELLO)
    assert len(upstream.requests) == 2


async def test_connection_refused(make_client: MakeClient) -> None:
    with pytest.raises(LLMConnectionError, match="cannot connect"):
        await make_client("ollama", endpoint="http://127.0.0.1:9", max_retries=0).list_models()
