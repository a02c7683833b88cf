"""Model config center: team-shared provider configs, their API keys, model lists and tests.

Every signed-in user sees every config (the team shares them); only the owner or an admin may
change or delete one. The provider calls (`refresh_models*`, `check_connection`) are async and must
not keep the request's database connection while they wait on the network; see `_release`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.config import settings
from app.database import run_then_commit, utcnow
from app.exceptions import (
    BadGateway,
    Conflict,
    FieldError,
    GatewayTimeout,
    InvalidFields,
    NotFound,
    PermissionDenied,
)
from app.llm_core import (
    MODEL_PROVIDERS,
    ChatMessage,
    GenerationParams,
    LLMClient,
    LLMError,
    LLMTimeout,
    ModelInfo,
    normalize_endpoint,
)
from app.llm_core.base import BaseClient
from app.llm_core.errors import scrub
from app.models import ModelConfig, ProviderModel, User
from app.schemas.model_config import (
    Capabilities,
    ConnectionTest,
    ModelConfigCreate,
    ModelConfigPublic,
    ModelConfigUpdate,
    ModelParams,
    OwnerRef,
    ProviderInfo,
    ProviderModels,
    RefreshModelsRequest,
    RemoteModel,
)
from app.services.seeding import seed_once
from app.utils.crypto import SecretUnreadable, decrypt_secret, encrypt_secret, mask_secret

logger = logging.getLogger(__name__)

SEED_MARKER = "model_config_templates_seeded"
# A model list is small: connect (10 s) + this stays inside the SPA's 30 s request timeout.
LIST_MODELS_IDLE_TIMEOUT = 15.0
TEST_PROMPT = "ping"
_MODEL_ID_MAX = 255
_UPSERT_BATCH = 500


# --------------------------------------------------------------------------- registry


def list_providers() -> list[ProviderInfo]:
    """The provider registry, in its declared order."""
    return [
        ProviderInfo(
            key=spec.key,
            display_name=spec.display_name,
            protocol=spec.protocol,
            default_endpoint=spec.default_endpoint,
            requires_api_key=spec.requires_api_key,
            supports_top_k=spec.supports_top_k,
            icon=spec.icon,
        )
        for spec in MODEL_PROVIDERS.values()
    ]


def _default_endpoint(provider: str) -> str:
    return normalize_endpoint(provider, MODEL_PROVIDERS[provider].default_endpoint)


# ------------------------------------------------------------------------------- CRUD


def _may_edit(actor: User, row: ModelConfig) -> bool:
    return actor.is_admin or row.owner_id == actor.id


def _stored_key(row: ModelConfig) -> str | None:
    """The decrypted API key; 409 api_key_unreadable when the encryption key has changed."""
    if not row.api_key_encrypted:
        return None
    try:
        return decrypt_secret(row.api_key_encrypted)
    except SecretUnreadable:
        raise Conflict(
            "The stored API key cannot be decrypted (the encryption key has changed); "
            "enter the API key again",
            code="api_key_unreadable",
        ) from None


def to_public(row: ModelConfig, actor: User) -> ModelConfigPublic:
    """The response shape of one config, as `actor` sees it."""
    masked: str | None = None
    if row.api_key_encrypted:
        try:
            masked = mask_secret(decrypt_secret(row.api_key_encrypted))
        except SecretUnreadable:
            masked = None  # has_api_key stays true: the UI asks for the key again
    return ModelConfigPublic(
        id=row.id,
        name=row.name,
        provider=row.provider,
        endpoint=row.endpoint,
        model=row.model,
        params=ModelParams(
            temperature=row.temperature,
            max_tokens=row.max_tokens,
            top_p=row.top_p,
            top_k=row.top_k,
        ),
        capabilities=Capabilities(vision=row.capability_vision, reasoning=row.capability_reasoning),
        status=1 if row.status == 1 else 0,
        description=row.description,
        owner=OwnerRef(id=row.owner.id, nickname=row.owner.nickname),
        has_api_key=row.api_key_encrypted is not None,
        api_key_masked=masked,
        template_key=row.template_key,
        can_edit=_may_edit(actor, row),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _get(db: Session, config_id: int) -> ModelConfig:
    row = db.get(ModelConfig, config_id)
    if row is None:
        raise NotFound("Model config not found", code="model_config_not_found")
    return row


def _get_editable(db: Session, actor: User, config_id: int) -> ModelConfig:
    row = _get(db, config_id)
    if not _may_edit(actor, row):
        raise PermissionDenied("Only the owner or an admin may change this config")
    return row


def list_configs(
    db: Session, actor: User, *, status: int | None = None, provider: str | None = None
) -> list[ModelConfigPublic]:
    """Every config (they are team-shared), by provider then name."""
    query = select(ModelConfig)
    if status is not None:
        query = query.where(ModelConfig.status == status)
    if provider is not None:
        query = query.where(ModelConfig.provider == provider)
    # lower(): the same order on SQLite and PostgreSQL whatever the database collation.
    rows = db.scalars(
        query.order_by(ModelConfig.provider, func.lower(ModelConfig.name), ModelConfig.id)
    ).all()
    return [to_public(row, actor) for row in rows]


def get_config(db: Session, actor: User, config_id: int) -> ModelConfigPublic:
    """One config."""
    return to_public(_get(db, config_id), actor)


def create_config(db: Session, actor: User, data: ModelConfigCreate) -> ModelConfigPublic:
    """A new config owned by `actor`."""
    now = utcnow()  # one instant, so that "never edited" reads created_at == updated_at
    row = ModelConfig(owner=actor, owner_id=actor.id, created_at=now, updated_at=now)
    _apply(row, data.model_dump(), is_new=True)
    db.add(row)
    db.flush()
    return to_public(row, actor)


def replace_config(
    db: Session, actor: User, config_id: int, data: ModelConfigCreate
) -> ModelConfigPublic:
    """PUT: every field from the body (defaults for those left out) except a missing api_key."""
    row = _get_editable(db, actor, config_id)
    _apply(row, data.model_dump(), is_new=False)
    db.flush()
    return to_public(row, actor)


def update_config(
    db: Session, actor: User, config_id: int, data: ModelConfigUpdate
) -> ModelConfigPublic:
    """PATCH: only the fields sent (nested params/capabilities merge key by key)."""
    row = _get_editable(db, actor, config_id)
    _apply(row, data.model_dump(exclude_unset=True), is_new=False)
    db.flush()
    return to_public(row, actor)


def delete_config(db: Session, actor: User, config_id: int) -> None:
    """Delete a config (a deleted template is not re-created)."""
    row = _get_editable(db, actor, config_id)
    db.delete(row)
    db.flush()


_PARAM_COLUMNS = ("temperature", "max_tokens", "top_p", "top_k")


def _apply(row: ModelConfig, changes: dict[str, Any], *, is_new: bool) -> None:
    """Write validated input onto `row`, then check the row as a whole (status 1 rules)."""
    old_provider = None if is_new else row.provider
    old_origin = None if is_new else _origin(row.endpoint)
    if "name" in changes:
        row.name = changes["name"]
    if "provider" in changes:
        row.provider = changes["provider"]
    provider = row.provider

    if "endpoint" in changes or is_new:
        endpoint = changes.get("endpoint")
        row.endpoint = (
            normalize_endpoint(provider, endpoint) if endpoint else _default_endpoint(provider)
        )
    elif old_provider is not None and old_provider != provider and old_provider in MODEL_PROVIDERS:
        # Switching provider without naming an endpoint: the old provider's default endpoint
        # follows the switch; a custom one stays (normalised the new provider's way).
        if row.endpoint == _default_endpoint(old_provider):
            row.endpoint = _default_endpoint(provider)
        else:
            row.endpoint = normalize_endpoint(provider, row.endpoint)

    api_key = changes.get("api_key")
    if api_key == "":
        row.api_key_encrypted = None
    elif api_key is not None:
        row.api_key_encrypted = encrypt_secret(api_key)
    elif old_origin is not None and _origin(row.endpoint) != old_origin:
        # A stored key only ever goes to the host it was entered for: pointing a config at
        # another host (by anyone, owner included) would hand the key to that host.
        row.api_key_encrypted = None

    if "model" in changes:
        row.model = changes["model"] or None
    if "description" in changes:
        row.description = changes["description"] or None
    if "params" in changes:
        for column in _PARAM_COLUMNS:
            if column in changes["params"]:
                setattr(row, column, changes["params"][column])
    if "capabilities" in changes:
        caps = changes["capabilities"]
        if "vision" in caps:
            row.capability_vision = caps["vision"]
        if "reasoning" in caps:
            row.capability_reasoning = caps["reasoning"]
    if "status" in changes:
        row.status = changes["status"]

    if row.status == 1:
        _check_usable(row)


def _origin(endpoint: str) -> tuple[str, str]:
    parts = urlsplit(endpoint)
    return parts.scheme, parts.netloc


def _check_usable(row: ModelConfig) -> None:
    """Status 1 promises a config the playground can call: all of provider, endpoint, model
    and (when the provider needs one) an API key. Checked on the resulting row, so a PATCH
    that removes the key of an enabled config is refused too."""
    missing = []
    if not row.provider:
        missing.append("provider")
    if not row.endpoint:
        missing.append("endpoint")
    if not row.model:
        missing.append("model")
    spec = MODEL_PROVIDERS.get(row.provider)
    if spec is not None and spec.requires_api_key and not row.api_key_encrypted:
        missing.append("api_key")
    if missing:
        raise InvalidFields(
            [
                FieldError(
                    loc=("body", field),
                    msg="Field required",
                    type="missing",
                    ctx={"reason": "required to enable the config (status 1)"},
                )
                for field in missing
            ]
        )


# ---------------------------------------------------------------------------- seeding


@dataclass(frozen=True)
class _Template:
    key: str
    name: str
    provider: str
    model: str | None
    description: str
    endpoint: str | None = None
    vision: bool = False
    reasoning: bool = False


TEMPLATES: tuple[_Template, ...] = (
    _Template(
        "openai-gpt-4o",
        "OpenAI GPT-4o",
        "openai",
        "gpt-4o",
        "OpenAI's flagship multimodal model. Add an API key to enable it.",
        vision=True,
    ),
    _Template(
        "openai-gpt-4o-mini",
        "OpenAI GPT-4o mini",
        "openai",
        "gpt-4o-mini",
        "Small, fast and cheap GPT-4o. Add an API key to enable it.",
        vision=True,
    ),
    _Template(
        "deepseek-chat",
        "DeepSeek Chat",
        "deepseek",
        "deepseek-chat",
        "DeepSeek-V3 chat model. Add an API key to enable it.",
    ),
    _Template(
        "deepseek-reasoner",
        "DeepSeek Reasoner",
        "deepseek",
        "deepseek-reasoner",
        "DeepSeek-R1 reasoning model (streams its thinking). Add an API key to enable it.",
        reasoning=True,
    ),
    _Template(
        "siliconcloud-qwen2.5-7b-instruct",
        "SiliconFlow Qwen2.5-7B-Instruct",
        "siliconcloud",
        "Qwen/Qwen2.5-7B-Instruct",
        "Qwen2.5 7B on SiliconFlow. Add an API key to enable it.",
    ),
    _Template(
        "siliconcloud-deepseek-v3",
        "SiliconFlow DeepSeek-V3",
        "siliconcloud",
        "deepseek-ai/DeepSeek-V3",
        "DeepSeek-V3 on SiliconFlow. Add an API key to enable it.",
    ),
    _Template(
        "ollama-qwen2.5",
        "Ollama qwen2.5",
        "ollama",
        "qwen2.5",
        "A local Ollama server (ollama pull qwen2.5). Enable it once the model is pulled.",
        endpoint="http://127.0.0.1:11434",
    ),
    _Template(
        "ollama-llama3.1",
        "Ollama llama3.1",
        "ollama",
        "llama3.1",
        "A local Ollama server (ollama pull llama3.1). Enable it once the model is pulled.",
        endpoint="http://127.0.0.1:11434",
    ),
    _Template(
        "vllm-local",
        "vLLM local",
        "vllm",
        None,
        "A local vLLM server (vllm serve ... --port 8001). Refresh the model list, pick the "
        "served model, then enable it.",
        endpoint="http://127.0.0.1:8001/v1",
    ),
)


def seed_default_templates(db: Session) -> int:
    """Create the default templates once per database (all status 0); returns how many.
    A template a user deleted is not re-created (see services/seeding.py)."""

    def build(owner: User, now: datetime) -> Iterator[ModelConfig]:
        present = set(
            db.scalars(
                select(ModelConfig.template_key).where(ModelConfig.template_key.is_not(None))
            )
        )
        for template in TEMPLATES:
            if template.key in present:
                continue
            yield ModelConfig(
                owner_id=owner.id,
                name=template.name,
                provider=template.provider,
                endpoint=normalize_endpoint(
                    template.provider,
                    template.endpoint or MODEL_PROVIDERS[template.provider].default_endpoint,
                ),
                model=template.model,
                capability_vision=template.vision,
                capability_reasoning=template.reasoning,
                status=0,
                description=template.description,
                template_key=template.key,
                created_at=now,
                updated_at=now,
            )

    return seed_once(db, SEED_MARKER, "default model config templates (disabled)", build)


# ------------------------------------------------------------------ provider calls


@dataclass(frozen=True)
class _Target:
    """What a provider call needs, read out of the database before the call."""

    provider: str
    endpoint: str
    api_key: str | None
    model: str | None
    params: GenerationParams


def _release(db: Session) -> None:
    """End the request session's read transaction before a provider call.

    The call may take a minute; holding a pooled connection (and on PostgreSQL an open
    transaction) that long would starve the pool under load. Nothing was written yet, so
    rolling back loses nothing; a later write opens a new transaction that the request's
    session dependency commits as usual (still one commit per request)."""
    db.rollback()


def _read_target(db: Session, config_id: int) -> _Target:
    row = _get(db, config_id)
    target = _Target(
        provider=row.provider,
        endpoint=row.endpoint,
        api_key=_stored_key(row),
        model=row.model,
        params=GenerationParams(temperature=row.temperature, top_p=row.top_p, top_k=row.top_k),
    )
    _release(db)
    return target


@dataclass(frozen=True)
class ChatTarget:
    """A usable config as chat and the playground need it, read before the provider call."""

    config_id: int
    name: str
    provider: str
    endpoint: str
    api_key: str | None
    model: str
    params: GenerationParams
    vision: bool


def chat_target(db: Session, config_id: int) -> ChatTarget:
    """The config to chat with; 404 when it does not exist, 409 model_unavailable when it is
    not enabled (status 1 guarantees a model, an endpoint and a key where one is needed)."""
    row = _get(db, config_id)
    if row.status != 1 or not row.model:
        raise Conflict(
            f"The model config {row.name!r} is not enabled; complete and enable it first",
            code="model_unavailable",
        )
    return ChatTarget(
        config_id=row.id,
        name=row.name,
        provider=row.provider,
        endpoint=row.endpoint,
        api_key=_stored_key(row),
        model=row.model,
        params=GenerationParams(
            temperature=row.temperature,
            max_tokens=row.max_tokens,
            top_p=row.top_p,
            top_k=row.top_k,
        ),
        vision=row.capability_vision,
    )


def _client(provider: str, endpoint: str, api_key: str | None, idle_timeout: float) -> BaseClient:
    # No retries: these are interactive checks; the user sees the outcome and may try again.
    return LLMClient.create(
        provider,
        endpoint,
        api_key,
        connect_timeout=settings.LLM_CONNECT_TIMEOUT_SECONDS,
        idle_timeout=idle_timeout,
        max_retries=0,
    )


def _gateway_error(exc: LLMError, api_key: str | None) -> BadGateway | GatewayTimeout:
    message = scrub(exc.message, api_key)
    if isinstance(exc, LLMTimeout):
        return GatewayTimeout(message, code=exc.code)
    return BadGateway(message, code=exc.code)


async def _list_models(provider: str, endpoint: str, api_key: str | None) -> list[ModelInfo]:
    idle = min(settings.LLM_IDLE_TIMEOUT_SECONDS, LIST_MODELS_IDLE_TIMEOUT)
    client = _client(provider, endpoint, api_key, idle)
    try:
        # A hard ceiling as well: a server that dribbles bytes never trips the idle timeout.
        async with asyncio.timeout(settings.LLM_CONNECT_TIMEOUT_SECONDS + idle):
            return await client.list_models()
    except LLMError as exc:
        logger.warning(
            "Model list from %s %s failed: %s (HTTP %s)", provider, endpoint, exc.code, exc.status
        )
        raise _gateway_error(exc, api_key) from None
    except TimeoutError:
        raise GatewayTimeout(
            f"{provider} did not send its model list in time", code="provider_timeout"
        ) from None
    finally:
        await client.aclose()


def _store_models(
    db: Session, provider: str, endpoint: str, models: Sequence[ModelInfo]
) -> ProviderModels:
    """Make provider_models hold exactly this list for (provider, endpoint)."""
    now = utcnow()
    rows: dict[str, dict[str, Any]] = {}
    for info in models:
        model_id = info.id.strip()
        if model_id and len(model_id) <= _MODEL_ID_MAX and model_id not in rows:
            owned_by = (info.owned_by or "")[:_MODEL_ID_MAX] or None
            rows[model_id] = {
                "provider": provider,
                "endpoint": endpoint,
                "model_id": model_id,
                "owned_by": owned_by,
                "fetched_at": now,
            }
    values = list(rows.values())
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    for start in range(0, len(values), _UPSERT_BATCH):
        # An upsert, not select-then-insert: two users refreshing the same endpoint at once
        # must not fail on the unique (provider, endpoint, model_id).
        statement = insert(ProviderModel).values(values[start : start + _UPSERT_BATCH])
        db.execute(
            statement.on_conflict_do_update(
                index_elements=["provider", "endpoint", "model_id"],
                set_={
                    "owned_by": statement.excluded.owned_by,
                    "fetched_at": statement.excluded.fetched_at,
                },
            )
        )
    # Models the provider no longer lists are forgotten.
    db.execute(
        delete(ProviderModel).where(
            ProviderModel.provider == provider,
            ProviderModel.endpoint == endpoint,
            ProviderModel.model_id.not_in(list(rows)),
        )
    )
    db.flush()
    return provider_models(db, provider, endpoint)


def provider_models(db: Session, provider: str, endpoint: str | None) -> ProviderModels:
    """The list fetched last time for this provider and endpoint (no provider call)."""
    normalised = normalize_endpoint(provider, endpoint) if endpoint else _default_endpoint(provider)
    rows = db.scalars(
        select(ProviderModel)
        .where(ProviderModel.provider == provider, ProviderModel.endpoint == normalised)
        .order_by(ProviderModel.model_id)
    ).all()
    return ProviderModels(
        provider=provider,
        endpoint=normalised,
        models=[
            RemoteModel(model_id=row.model_id, owned_by=row.owned_by, fetched_at=row.fetched_at)
            for row in rows
        ],
    )


async def refresh_models(db: Session, data: RefreshModelsRequest) -> ProviderModels:
    """Fetch the model list with settings from a form and remember it."""
    provider = data.provider
    endpoint = (
        normalize_endpoint(provider, data.endpoint)
        if data.endpoint
        else _default_endpoint(provider)
    )
    await run_in_threadpool(_release, db)
    models = await _list_models(provider, endpoint, data.api_key or None)
    return await run_then_commit(db, _store_models, db, provider, endpoint, models)


async def refresh_models_for_config(db: Session, config_id: int) -> ProviderModels:
    """Fetch the model list of a saved config with its stored key (any signed-in user: the
    configs are shared and the key never leaves the server)."""
    target = await run_in_threadpool(_read_target, db, config_id)
    models = await _list_models(target.provider, target.endpoint, target.api_key)
    return await run_then_commit(db, _store_models, db, target.provider, target.endpoint, models)


async def check_connection(db: Session, config_id: int) -> ConnectionTest:
    """Send a one-token completion through a saved config and report how it went."""
    target = await run_in_threadpool(_read_target, db, config_id)
    if not target.model:
        raise Conflict("Set a model before testing this config", code="model_required")
    idle = settings.LLM_IDLE_TIMEOUT_SECONDS
    client = _client(target.provider, target.endpoint, target.api_key, idle)
    params = GenerationParams(
        temperature=target.params.temperature,
        top_p=target.params.top_p,
        top_k=target.params.top_k,
        max_tokens=1,
    )
    started = time.perf_counter()
    try:
        async with asyncio.timeout(settings.LLM_CONNECT_TIMEOUT_SECONDS + idle):
            result = await client.chat(
                target.model, [ChatMessage(role="user", content=TEST_PROMPT)], params
            )
    except LLMError as exc:
        return ConnectionTest(
            ok=False, latency_ms=None, model=target.model, error=scrub(exc.message, target.api_key)
        )
    except TimeoutError:
        return ConnectionTest(
            ok=False,
            latency_ms=None,
            model=target.model,
            error=f"No answer within {settings.LLM_CONNECT_TIMEOUT_SECONDS + idle:g} s",
        )
    finally:
        await client.aclose()
    latency_ms = round((time.perf_counter() - started) * 1000)
    return ConnectionTest(
        ok=True, latency_ms=latency_ms, model=result.model or target.model, error=None
    )
