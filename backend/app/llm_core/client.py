"""LLMClient: the one entry point that picks the right client for a provider."""

from __future__ import annotations

from app.llm_core.base import BaseClient
from app.llm_core.providers import MODEL_PROVIDERS, normalize_endpoint

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 120.0


class LLMClient:
    """Factory: `LLMClient.create("deepseek", endpoint, api_key)` -> a ready BaseClient.

    `idle_timeout` is the longest silence tolerated between two chunks (for a non-streamed
    request: the wait for the whole answer). `max_retries` applies only before the first output
    chunk (see retry.py). `think_open=True` tells the inline `<think>` parser that the model's
    chat template already opened the think block (DeepSeek-R1 distills served without a
    reasoning parser): its output is reasoning until `</think>`.
    """

    @staticmethod
    def create(
        provider: str,
        endpoint: str | None = None,
        api_key: str | None = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_retries: int = 2,
        think_open: bool = False,
    ) -> BaseClient:
        spec = MODEL_PROVIDERS.get(provider)
        if spec is None:
            raise ValueError(f"Unknown provider {provider!r}")
        base_url = normalize_endpoint(provider, endpoint or spec.default_endpoint)
        if spec.protocol == "ollama":
            # Imported here so that a process that talks only to Ollama never loads the SDK.
            from app.llm_core.ollama_client import OllamaClient

            return OllamaClient(
                provider=provider,
                base_url=base_url,
                api_key=api_key,
                connect_timeout=connect_timeout,
                idle_timeout=idle_timeout,
                max_retries=max_retries,
                think_open=think_open,
            )
        from app.llm_core.openai_client import OpenAICompatibleClient

        return OpenAICompatibleClient(
            provider=provider,
            base_url=base_url,
            api_key=api_key,
            supports_top_k=spec.supports_top_k,
            connect_timeout=connect_timeout,
            idle_timeout=idle_timeout,
            max_retries=max_retries,
            think_open=think_open,
        )
