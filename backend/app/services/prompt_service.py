"""The system-prompt library: private, shared and built-in prompts; validate, convert, render.

Visibility is part of every query: a user sees their own prompts, shared prompts and the
built-ins; an admin sees all. Another user's private prompt answers 404. Built-ins (seeded once,
owned by an admin) are read-only for non-admins; own prompts are editable by the owner; admins may
change anything. The content rules themselves live in `prompt_format` (no database).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, false, func, or_, select, true
from sqlalchemy.orm import Session

from app.database import utcnow
from app.exceptions import AppError, FieldError, InvalidFields, NotFound, PermissionDenied
from app.models import SystemPrompt, User
from app.schemas.common import Page
from app.schemas.model_config import OwnerRef
from app.schemas.system_prompt import (
    ConvertRequest,
    ConvertResponse,
    PromptFacets,
    PromptProblem,
    RenderRequest,
    RenderResponse,
    SystemPromptCreate,
    SystemPromptPublic,
    SystemPromptUpdate,
    ValidateRequest,
    ValidateResponse,
)
from app.services import prompt_format
from app.services.seeding import seed_once

logger = logging.getLogger(__name__)

SEED_MARKER = "system_prompt_templates_seeded"
_LIKE_ESCAPE = "\\"


class ConversionFailed(AppError):
    """A conversion the formats cannot express, or input that does not parse."""

    status_code = 422
    code = "conversion_failed"
    detail = "The content cannot be converted"


# ----------------------------------------------------------------------- visibility


def _visible(actor: User) -> ColumnElement[bool]:
    if actor.is_admin:
        return true()
    return or_(
        SystemPrompt.owner_id == actor.id,
        SystemPrompt.is_shared.is_(True),
        SystemPrompt.builtin_key.is_not(None),
    )


def _may_edit(actor: User, row: SystemPrompt) -> bool:
    if actor.is_admin:
        return True
    return row.builtin_key is None and row.owner_id == actor.id


def to_public(row: SystemPrompt, actor: User) -> SystemPromptPublic:
    """The response shape of one prompt, as `actor` sees it."""
    return SystemPromptPublic(
        id=row.id,
        name=row.name,
        content=row.content,
        category=row.category,
        tags=list(row.tags or []),
        format=row.format,
        variables=list(row.variables or []),
        is_shared=row.is_shared,
        is_builtin=row.builtin_key is not None,
        owner=OwnerRef(id=row.owner.id, nickname=row.owner.nickname),
        can_edit=_may_edit(actor, row),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _get_visible(db: Session, actor: User, prompt_id: int) -> SystemPrompt:
    row = db.scalar(select(SystemPrompt).where(SystemPrompt.id == prompt_id, _visible(actor)))
    if row is None:
        raise NotFound("System prompt not found", code="system_prompt_not_found")
    return row


def _get_editable(db: Session, actor: User, prompt_id: int) -> SystemPrompt:
    row = _get_visible(db, actor, prompt_id)
    if not _may_edit(actor, row):
        what = "built-in templates" if row.builtin_key else "this prompt"
        raise PermissionDenied(f"Only an admin may change {what}", code="forbidden")
    return row


# ----------------------------------------------------------------------------- CRUD


def _like_pattern(text: str) -> str:
    escaped = text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def _tag_condition(tag: str) -> ColumnElement[bool]:
    # Tags are a JSON list; a serialised element `"tag"` matches only a whole element (tags hold
    # no quotes or backslashes). Both escapings, whichever the driver's serialiser used.
    stored = cast(SystemPrompt.tags, Text)
    patterns = {json.dumps(tag), json.dumps(tag, ensure_ascii=False)}
    conditions = []
    for quoted in patterns:
        escaped = (
            quoted.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
        )
        conditions.append(stored.like(f"%{escaped}%", escape=_LIKE_ESCAPE))
    return or_(*conditions)


def _scope_conditions(actor: User, scope: str) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [_visible(actor)]
    if scope == "mine":
        conditions += [SystemPrompt.owner_id == actor.id, SystemPrompt.builtin_key.is_(None)]
    elif scope == "shared":
        conditions += [SystemPrompt.is_shared.is_(True), SystemPrompt.builtin_key.is_(None)]
    elif scope == "builtin":
        conditions.append(SystemPrompt.builtin_key.is_not(None))
    return conditions


def list_prompts(
    db: Session,
    actor: User,
    *,
    page: int,
    size: int,
    scope: str = "all",
    category: str | None = None,
    tag: str | None = None,
    q: str | None = None,
) -> Page[SystemPromptPublic]:
    """One page of the prompts `actor` may see, most recently changed first."""
    conditions = _scope_conditions(actor, scope)
    if category:
        conditions.append(SystemPrompt.category == category.strip())
    if tag and tag.strip():
        cleaned = tag.strip()
        if '"' in cleaned or "\\" in cleaned:
            conditions.append(false())  # no stored tag holds these
        else:
            conditions.append(_tag_condition(cleaned))
    if q and q.strip():
        pattern = _like_pattern(q.strip())
        conditions.append(
            or_(
                func.lower(SystemPrompt.name).like(pattern, escape=_LIKE_ESCAPE),
                func.lower(SystemPrompt.content).like(pattern, escape=_LIKE_ESCAPE),
            )
        )
    total = db.scalar(select(func.count()).select_from(SystemPrompt).where(*conditions)) or 0
    rows = db.scalars(
        select(SystemPrompt)
        .where(*conditions)
        .order_by(SystemPrompt.updated_at.desc(), SystemPrompt.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    ).all()
    return Page[SystemPromptPublic](
        items=[to_public(row, actor) for row in rows], total=total, page=page, size=size
    )


def prompt_facets(db: Session, actor: User, scope: str = "all") -> PromptFacets:
    """The categories and tags of the prompts `actor` may see in `scope`, sorted."""
    conditions = _scope_conditions(actor, scope)
    categories = set(db.scalars(select(SystemPrompt.category).where(*conditions).distinct()))
    tags: set[str] = set()
    for row_tags in db.scalars(select(SystemPrompt.tags).where(*conditions)):
        tags.update(row_tags or [])
    # Sorted here, not in SQL: the same order on SQLite and PostgreSQL whatever the collation.
    return PromptFacets(categories=sorted(categories), tags=sorted(tags))


def get_prompt(db: Session, actor: User, prompt_id: int) -> SystemPromptPublic:
    """One prompt the caller may see."""
    return to_public(_get_visible(db, actor, prompt_id), actor)


def _check_content(content: str, fmt: str) -> None:
    """422 on the content field with the first problem, as a form shows it."""
    result = prompt_format.validate(content, fmt)
    if result.errors:
        first = result.errors[0]
        where = f"line {first.line}, column {first.column}: " if first.line is not None else ""
        ctx = (
            {"line": str(first.line), "column": str(first.column)}
            if first.line is not None
            else None
        )
        raise InvalidFields(
            [FieldError(loc=("body", "content"), msg=where + first.message, ctx=ctx)]
        )


def _apply(row: SystemPrompt, changes: dict[str, Any]) -> None:
    for column in ("name", "category", "tags", "is_shared", "format", "content"):
        if column in changes:
            setattr(row, column, changes[column])
    _check_content(row.content, row.format)
    if changes.get("variables") is not None:
        row.variables = changes["variables"]
    elif "content" in changes or "format" in changes:
        row.variables = prompt_format.find_variables(row.content, row.format)


def create_prompt(db: Session, actor: User, data: SystemPromptCreate) -> SystemPromptPublic:
    """A new prompt owned by `actor` (private unless is_shared)."""
    now = utcnow()
    row = SystemPrompt(owner=actor, owner_id=actor.id, created_at=now, updated_at=now)
    _apply(row, data.model_dump())
    db.add(row)
    db.flush()
    return to_public(row, actor)


def replace_prompt(
    db: Session, actor: User, prompt_id: int, data: SystemPromptCreate
) -> SystemPromptPublic:
    """PUT: every field from the body (defaults for those left out)."""
    row = _get_editable(db, actor, prompt_id)
    _apply(row, data.model_dump())
    db.flush()
    return to_public(row, actor)


def update_prompt(
    db: Session, actor: User, prompt_id: int, data: SystemPromptUpdate
) -> SystemPromptPublic:
    """PATCH: only the fields sent."""
    row = _get_editable(db, actor, prompt_id)
    _apply(row, data.model_dump(exclude_unset=True))
    db.flush()
    return to_public(row, actor)


def delete_prompt(db: Session, actor: User, prompt_id: int) -> None:
    """Delete a prompt (a deleted built-in is not re-created)."""
    row = _get_editable(db, actor, prompt_id)
    db.delete(row)
    db.flush()


# ------------------------------------------------------------- validate / convert / render


def _problems(items: list[prompt_format.Problem]) -> list[PromptProblem]:
    return [PromptProblem(line=p.line, column=p.column, message=p.message) for p in items]


def validate_content(data: ValidateRequest) -> ValidateResponse:
    """Check content for a format: errors, warnings (variables) and the variables used."""
    result = prompt_format.validate(data.content, data.format, data.variables)
    return ValidateResponse(
        valid=result.valid,
        errors=_problems(result.errors),
        warnings=_problems(result.warnings),
        variables=result.variables,
    )


def convert_content(data: ConvertRequest) -> ConvertResponse:
    """Convert content between formats; 422 conversion_failed with the reason."""
    try:
        content = prompt_format.convert(data.content, data.from_, data.to)
    except prompt_format.ConversionError as exc:
        raise ConversionFailed(str(exc)) from None
    return ConvertResponse(content=content, format=data.to)


def render_prompt(db: Session, actor: User, data: RenderRequest) -> RenderResponse:
    """Fill the variables of a visible prompt or of given content."""
    if data.prompt_id is not None:
        row = _get_visible(db, actor, data.prompt_id)
        content, fmt = row.content, row.format
    else:
        content, fmt = data.content or "", data.format
    rendered, missing = prompt_format.render(content, data.variables, fmt)
    return RenderResponse(content=rendered, missing=missing)


# ---------------------------------------------------------------------------- seeding


@dataclass(frozen=True)
class _Template:
    key: str
    name: str
    category: str
    tags: tuple[str, ...]
    content: str
    format: str = "text"


TEMPLATES: tuple[_Template, ...] = (
    _Template(
        "zh-general-assistant",
        "通用助手",
        "general",
        ("中文", "通用"),
        "你是一名乐于助人、知识渊博的中文助手。\n"
        "- 回答准确、简洁，先给结论，再给必要的解释。\n"
        "- 不确定时直接说明，不要编造事实。\n"
        "- 需要时使用 Markdown 列表、表格和代码块组织内容。",
        "markdown",
    ),
    _Template(
        "zh-code-review",
        "代码审查",
        "coding",
        ("中文", "代码"),
        "你是一名资深软件工程师，负责审查用户提交的 {{ language }} 代码。\n"
        "请按以下顺序给出意见：\n"
        "1. 正确性：逻辑错误、边界条件、异常处理；\n"
        "2. 安全性：注入、越权、敏感信息泄露；\n"
        "3. 性能与可维护性：复杂度、重复代码、命名；\n"
        "4. 给出修改后的关键代码片段。\n"
        "只指出真实存在的问题，不要泛泛而谈。",
        "markdown",
    ),
    _Template(
        "zh-translate",
        "翻译",
        "writing",
        ("中文", "翻译"),
        "你是一名专业译者。请把用户提供的 {{ source_lang }} 文本翻译成 {{ target_lang }}。\n"
        "要求：忠实原文，语言自然流畅；保留原有格式、专有名词和代码；"
        "只输出译文，不要添加解释。",
    ),
    _Template(
        "zh-json-output",
        "JSON 输出",
        "structured",
        ("中文", "JSON"),
        "{\n"
        '  "role": "你是一个只输出 JSON 的信息抽取助手",\n'
        '  "task": "从用户输入中抽取 {{ fields }}",\n'
        '  "rules": [\n'
        '    "只输出一个合法的 JSON 对象，不要输出任何其他文字",\n'
        '    "缺失的字段填 null",\n'
        '    "字符串使用双引号"\n'
        "  ]\n"
        "}",
        "json",
    ),
    _Template(
        "zh-summary",
        "摘要",
        "writing",
        ("中文", "摘要"),
        "请为用户提供的内容写一份摘要，不超过 {{ max_words }} 字。\n"
        "先用一句话概括主旨，再列出 3–5 个要点；保留关键数字、人名和结论，不加入原文没有的信息。",
    ),
    _Template(
        "en-general-assistant",
        "General assistant",
        "general",
        ("english", "general"),
        "You are a helpful, knowledgeable assistant.\n"
        "- Answer accurately and concisely: the conclusion first, then the reasoning it needs.\n"
        "- Say so when you are not sure; never invent facts.\n"
        "- Use Markdown lists, tables and code blocks where they help.",
        "markdown",
    ),
    _Template(
        "en-code-reviewer",
        "Code reviewer",
        "coding",
        ("english", "code"),
        "You are a senior engineer reviewing {{ language }} code.\n"
        "Report, in this order: bugs and edge cases, security issues, performance, readability.\n"
        "For each finding quote the line, explain the risk and propose a fix. "
        "Do not comment on style a formatter would fix.",
        "markdown",
    ),
    _Template(
        "en-sql-expert",
        "SQL expert",
        "coding",
        ("english", "sql", "database"),
        "You are an expert in {{ dialect }} SQL.\n"
        "Write correct, efficient queries for the user's request, explain them briefly, "
        "and point out the indexes they rely on. Never use SELECT * in answers; "
        "ask for the schema when it is missing.",
    ),
    _Template(
        "en-yaml-persona",
        "Structured persona (YAML)",
        "structured",
        ("english", "yaml"),
        "role: support agent for {{ product }}\n"
        "tone: friendly and concise\n"
        "language: {{ language }}\n"
        "rules:\n"
        "  - Answer only questions about the product.\n"
        "  - Escalate billing problems to a human.\n"
        "  - Never ask for passwords.\n",
        "yaml",
    ),
)


def seed_builtin_prompts(db: Session) -> int:
    """Create the built-in templates once per database; returns how many.
    A built-in an admin deleted is not re-created (see services/seeding.py)."""

    def build(owner: User, now: datetime) -> Iterator[SystemPrompt]:
        present = set(
            db.scalars(
                select(SystemPrompt.builtin_key).where(SystemPrompt.builtin_key.is_not(None))
            )
        )
        for template in TEMPLATES:
            if template.key in present:
                continue
            yield SystemPrompt(
                owner_id=owner.id,
                name=template.name,
                content=template.content,
                category=template.category,
                tags=list(template.tags),
                format=template.format,
                variables=prompt_format.find_variables(template.content, template.format),
                is_shared=True,
                builtin_key=template.key,
                created_at=now,
                updated_at=now,
            )

    return seed_once(db, SEED_MARKER, "built-in system prompts", build)
