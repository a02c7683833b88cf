"""Requests and responses of the model config center (`/api/model-config`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, field_validator

from app.llm_core.providers import MODEL_PROVIDERS
from app.models.model_config import ENDPOINT_MAX, MODEL_MAX, NAME_MAX

# Upper bounds beyond the documented ranges only keep values inside a 32-bit INTEGER column.
MAX_TOKENS_LIMIT = 10_000_000
TOP_K_LIMIT = 1_000_000
API_KEY_MAX = 1000
DESCRIPTION_MAX = 2000

# Header-safe: a key travels in an Authorization header, which allows no spaces or non-ASCII.
_API_KEY_RE = re.compile(r"^[\x21-\x7e]*$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _check_provider(value: str) -> str:
    if value not in MODEL_PROVIDERS:
        raise ValueError(
            f"Unknown provider {value!r}; expected one of: {', '.join(MODEL_PROVIDERS)}"
        )
    return value


ProviderKey = Annotated[str, AfterValidator(_check_provider)]
ConfigStatus = Literal[0, 1]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX)]


def _clean_endpoint(value: str | None) -> str | None:
    """Shape check only (http/https with a host); normalising needs the provider (service)."""
    if value is None:
        return None
    value = value.strip()
    if value == "":
        return None
    if len(value) > ENDPOINT_MAX:
        raise ValueError(f"Endpoint must be at most {ENDPOINT_MAX} characters")
    parts = urlsplit(value if "://" in value else "http://" + value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("Endpoint must be an http(s) URL such as https://api.openai.com/v1")
    if any(ch.isspace() for ch in value) or parts.query or parts.fragment:
        raise ValueError("Endpoint must be a plain base URL without spaces, query or fragment")
    if parts.username is not None or parts.password is not None:
        # Every user sees the endpoint: a credential belongs in the (encrypted) API key.
        raise ValueError("Endpoint must not contain credentials; use the API key field")
    return value


Endpoint = Annotated[str | None, AfterValidator(_clean_endpoint)]


def _clean_api_key(value: str | None) -> str | None:
    # None: keep the stored key; "": remove it (the service tells the two apart).
    if value is None:
        return None
    value = value.strip()
    if not _API_KEY_RE.match(value):
        raise ValueError("API key must be printable ASCII without spaces")
    return value


def _clean_model(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if _CONTROL_RE.search(value):
        raise ValueError("Model must not contain control characters")
    return value


def _clean_description(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip()


class ModelParams(BaseModel):
    """Sampling defaults; null leaves the provider's own default (and is not sent)."""

    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    top_p: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    top_k: int | None = Field(default=None, ge=0, le=TOP_K_LIMIT)


class Capabilities(BaseModel):
    vision: bool = False
    reasoning: bool = False


class ModelConfigCreate(BaseModel):
    """POST and PUT body. `api_key` is write-only: absent or null keeps the stored key (PUT),
    "" removes it. `endpoint` absent, null or "" means the provider's default endpoint."""

    name: Name
    provider: ProviderKey
    endpoint: str | None = Field(default=None, max_length=ENDPOINT_MAX * 2)
    api_key: str | None = Field(default=None, max_length=API_KEY_MAX)
    model: str = Field(max_length=MODEL_MAX)
    params: ModelParams = Field(default_factory=ModelParams)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    status: ConfigStatus = 0
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)

    _endpoint = field_validator("endpoint")(_clean_endpoint)
    _api_key = field_validator("api_key")(_clean_api_key)
    _model = field_validator("model")(_clean_model)
    _description = field_validator("description")(_clean_description)


def _not_null(value: object) -> object:
    # Runs only for values the client sent (defaults are not validated): an explicit null.
    if value is None:
        raise ValueError("This field may not be null")
    return value


class ModelConfigUpdate(BaseModel):
    """PATCH body: only the fields sent change. `params` and `capabilities` merge key by key
    (a key sent as null in `params` resets that parameter). `api_key` as in ModelConfigCreate;
    `model` or `description` null or "" clears them; `endpoint` null or "" resets it."""

    name: Name | None = None
    provider: ProviderKey | None = None
    endpoint: str | None = Field(default=None, max_length=ENDPOINT_MAX * 2)
    api_key: str | None = Field(default=None, max_length=API_KEY_MAX)
    model: str | None = Field(default=None, max_length=MODEL_MAX)
    params: ModelParams | None = None
    capabilities: Capabilities | None = None
    status: ConfigStatus | None = None
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)

    _endpoint = field_validator("endpoint")(_clean_endpoint)
    _api_key = field_validator("api_key")(_clean_api_key)
    _model = field_validator("model")(_clean_model)
    _description = field_validator("description")(_clean_description)
    _required = field_validator(
        "name", "provider", "params", "capabilities", "status", mode="before"
    )(_not_null)


class OwnerRef(BaseModel):
    id: int
    nickname: str


class ModelConfigPublic(BaseModel):
    """A config as every signed-in user sees it; the API key only as a mask."""

    id: int
    name: str
    provider: str
    endpoint: str
    model: str | None
    params: ModelParams
    capabilities: Capabilities
    status: ConfigStatus
    description: str | None
    owner: OwnerRef
    has_api_key: bool
    api_key_masked: str | None = Field(
        description='e.g. "sk-…a1b2"; null without a key, or when the stored key cannot be '
        "decrypted with the current ENCRYPTION_KEY (has_api_key is then still true)"
    )
    template_key: str | None
    can_edit: bool = Field(description="The acting user owns the config or is an admin")
    created_at: datetime
    updated_at: datetime


class ProviderInfo(BaseModel):
    key: str
    display_name: str
    protocol: Literal["openai", "ollama"]
    default_endpoint: str
    requires_api_key: bool
    supports_top_k: bool
    icon: str


class RefreshModelsRequest(BaseModel):
    """Fetch a model list with settings typed into a form (not saved yet)."""

    provider: ProviderKey
    endpoint: str | None = Field(default=None, max_length=ENDPOINT_MAX * 2)
    api_key: str | None = Field(default=None, max_length=API_KEY_MAX)

    _endpoint = field_validator("endpoint")(_clean_endpoint)
    _api_key = field_validator("api_key")(_clean_api_key)


class RemoteModel(BaseModel):
    model_id: str
    owned_by: str | None
    fetched_at: datetime


class ProviderModels(BaseModel):
    provider: str
    endpoint: str
    models: list[RemoteModel]


class ConnectionTest(BaseModel):
    """The outcome of a one-token completion; a failing provider is a result, not an error."""

    ok: bool
    latency_ms: int | None
    model: str | None
    error: str | None
