"""The provider registry and endpoint normalisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

Protocol = Literal["openai", "ollama"]


@dataclass(frozen=True)
class ProviderSpec:
    """A provider in the registry: how to talk to it and what it accepts."""

    key: str
    display_name: str
    protocol: Protocol
    default_endpoint: str
    requires_api_key: bool
    supports_top_k: bool
    icon: str


MODEL_PROVIDERS: dict[str, ProviderSpec] = {
    spec.key: spec
    for spec in (
        ProviderSpec(
            "openai", "OpenAI", "openai", "https://api.openai.com/v1", True, False, "openai"
        ),
        ProviderSpec(
            "deepseek", "DeepSeek", "openai", "https://api.deepseek.com/v1", True, False, "deepseek"
        ),
        ProviderSpec(
            "siliconcloud",
            "SiliconFlow 硅基流动",
            "openai",
            "https://api.siliconflow.cn/v1",
            True,
            True,
            "siliconflow",
        ),
        ProviderSpec("ollama", "Ollama", "ollama", "http://127.0.0.1:11434", False, True, "ollama"),
        ProviderSpec("vllm", "vLLM", "openai", "http://127.0.0.1:8001/v1", False, True, "vllm"),
        ProviderSpec(
            "custom",
            "OpenAI-compatible",
            "openai",
            "http://127.0.0.1:8000/v1",
            False,
            True,
            "custom",
        ),
    )
}


def get_provider(key: str) -> ProviderSpec:
    """The spec for `key`; unknown keys raise KeyError."""
    return MODEL_PROVIDERS[key]


# What users paste after the base URL: the URL of one operation rather than of the API.
_OPENAI_OPERATION_SUFFIXES = ("/chat/completions", "/completions", "/models")
_OLLAMA_SUFFIXES = ("/api/chat", "/api/generate", "/api/tags", "/api", "/v1")


def normalize_endpoint(provider: str, endpoint: str) -> str:
    """A canonical base URL: no trailing slash, no pasted operation path (/chat/completions,
    /models); OpenAI-style APIs end in /v1 (added when the path is empty); Ollama's base is the
    server root (a trailing /api, /api/chat, /api/tags or the OpenAI-compatible /v1 is dropped,
    because the client speaks Ollama's native API)."""
    url = endpoint.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    spec = MODEL_PROVIDERS.get(provider)
    if spec is not None and spec.protocol == "ollama":
        for suffix in _OLLAMA_SUFFIXES:
            if path.endswith(suffix):
                path = path[: -len(suffix)].rstrip("/")
                break
    else:
        for suffix in _OPENAI_OPERATION_SUFFIXES:
            if path.endswith(suffix):
                path = path[: -len(suffix)].rstrip("/")
                break
        if path == "":
            path = "/v1"
    userinfo, at, host = parts.netloc.rpartition("@")
    netloc = userinfo + at + host.lower()  # the host is case-insensitive, a password is not
    return urlunsplit((parts.scheme.lower(), netloc, path, "", ""))
