"""Requests and responses of the prompt library (`/api/chat/system-prompts`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.models.system_prompt import (
    CATEGORY_MAX,
    PROMPT_CONTENT_MAX,
    PROMPT_NAME_MAX,
    TAG_MAX,
    TAGS_MAX,
)
from app.schemas.model_config import OwnerRef

PromptFormat = Literal["text", "markdown", "json", "yaml"]
ConvertFormat = Literal["text", "markdown", "json", "yaml", "openai-messages"]
PromptScope = Literal["all", "mine", "shared", "builtin"]

VARIABLES_MAX = 50
VARIABLE_MAX = 64
# /validate reports "too long" as a finding, so it accepts more than a prompt may hold.
VALIDATE_CONTENT_MAX = 100_000
RENDER_VALUE_MAX = 20_000

_VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Tags are matched as JSON text in SQL: no quotes, backslashes or control characters.
_TAG_FORBIDDEN_RE = re.compile(r'["\\\x00-\x1f\x7f]')

PromptName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=PROMPT_NAME_MAX)
]
Category = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=CATEGORY_MAX)
]


def _clean_tags(value: list[str]) -> list[str]:
    tags: list[str] = []
    for raw in value:
        tag = raw.strip()
        if not tag:
            raise ValueError("Tags must not be empty")
        if len(tag) > TAG_MAX:
            raise ValueError(f"Tags must be at most {TAG_MAX} characters")
        if _TAG_FORBIDDEN_RE.search(tag):
            raise ValueError("Tags must not contain quotes, backslashes or control characters")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > TAGS_MAX:
        raise ValueError(f"At most {TAGS_MAX} tags")
    return tags


def _clean_variables(value: list[str]) -> list[str]:
    names: list[str] = []
    for raw in value:
        name = raw.strip()
        if len(name) > VARIABLE_MAX or not _VARIABLE_RE.match(name):
            raise ValueError(
                f"Invalid variable name {name!r}: letters, digits and '_', not starting with a "
                f"digit, at most {VARIABLE_MAX} characters"
            )
        if name not in names:
            names.append(name)
    return names


Tags = Annotated[list[str], Field(max_length=TAGS_MAX * 3), AfterValidator(_clean_tags)]
Variables = Annotated[list[str], Field(max_length=VARIABLES_MAX), AfterValidator(_clean_variables)]


class SystemPromptCreate(BaseModel):
    """POST and PUT body. `variables` omitted or null: the variables found in the content.
    The content is checked for its format (see POST /validate); a problem answers 422."""

    name: PromptName
    content: str = Field(max_length=PROMPT_CONTENT_MAX)
    category: Category = "general"
    tags: Tags = Field(default_factory=list)
    format: PromptFormat = "text"
    variables: Variables | None = None
    is_shared: bool = False


def _not_null(value: object) -> object:
    if value is None:
        raise ValueError("This field may not be null")
    return value


class SystemPromptUpdate(BaseModel):
    """PATCH body: only the fields sent change. When `content` changes and `variables` is not
    sent, the variables are found in the new content again."""

    name: PromptName | None = None
    content: str | None = Field(default=None, max_length=PROMPT_CONTENT_MAX)
    category: Category | None = None
    tags: Tags | None = None
    format: PromptFormat | None = None
    variables: Variables | None = None
    is_shared: bool | None = None

    _required = field_validator(
        "name", "content", "category", "tags", "format", "is_shared", mode="before"
    )(_not_null)


class SystemPromptPublic(BaseModel):
    """A prompt as the acting user sees it."""

    id: int
    name: str
    content: str
    category: str
    tags: list[str]
    format: PromptFormat
    variables: list[str]
    is_shared: bool
    is_builtin: bool
    owner: OwnerRef
    can_edit: bool = Field(description="The acting user owns the prompt or is an admin")
    created_at: datetime
    updated_at: datetime


class PromptFacets(BaseModel):
    """Choices for the list filters: what the visible prompts use."""

    categories: list[str]
    tags: list[str]


class PromptProblem(BaseModel):
    """1-based position; null when the finding has no place (a declared but unused variable)."""

    line: int | None
    column: int | None
    message: str


class ValidateRequest(BaseModel):
    """`variables`: the declared variable list; when given, unused and undeclared variables are
    reported as warnings."""

    content: str = Field(max_length=VALIDATE_CONTENT_MAX)
    format: PromptFormat = "text"
    variables: Variables | None = None


class ValidateResponse(BaseModel):
    valid: bool
    errors: list[PromptProblem]
    warnings: list[PromptProblem]
    variables: list[str]


class ConvertRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    content: str = Field(min_length=1, max_length=PROMPT_CONTENT_MAX)
    from_: ConvertFormat = Field(alias="from")
    to: ConvertFormat


class ConvertResponse(BaseModel):
    content: str
    format: ConvertFormat


class RenderRequest(BaseModel):
    """Exactly one of `prompt_id` (a prompt the caller can see) and `content`. `format` applies to
    `content` (a stored prompt uses its own): it decides whether `}}}}` is an escape and how
    values are escaped (json/yaml: so that the result stays valid JSON/YAML; text/markdown:
    verbatim)."""

    prompt_id: int | None = None
    content: str | None = Field(default=None, max_length=PROMPT_CONTENT_MAX)
    format: PromptFormat = "text"
    variables: dict[
        Annotated[str, StringConstraints(max_length=VARIABLE_MAX)],
        Annotated[str, StringConstraints(max_length=RENDER_VALUE_MAX)],
    ] = Field(default_factory=dict, max_length=VARIABLES_MAX)

    @model_validator(mode="after")
    def _one_source(self) -> RenderRequest:
        if (self.prompt_id is None) == (self.content is None):
            raise ValueError("Give exactly one of prompt_id and content")
        return self


class RenderResponse(BaseModel):
    content: str
    missing: list[str] = Field(description="Variables without a value, left in place as markers")
