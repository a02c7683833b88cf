"""The provider registry and endpoint normalisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

Protocol = Literal["openai", "ollama"]


@dataclass(frozen=True)
class ProviderSpec:
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


def normalize_endpoint(provider: str, endpoint: str) -> str:
    """A canonical base URL: no trailing slash; OpenAI-style APIs end in /v1 (added when the path
    is empty); Ollama's base is the server root (a trailing /api is dropped)."""
    url = endpoint.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    spec = MODEL_PROVIDERS.get(provider)
    if spec is not None and spec.protocol == "ollama":
        if path.endswith("/api"):
            path = path[: -len("/api")]
    elif path == "":
        path = "/v1"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))
