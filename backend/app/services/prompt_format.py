"""Prompt content rules: variable markers, validation, conversion between formats, rendering.

Pure functions (no database, no HTTP), so the rules can be tested and reused on their own.

Variables. A marker is `{{`, optional spaces or tabs, a name `[A-Za-z_][A-Za-z0-9_]*`, optional
spaces or tabs, `}}`, all on one line: `{{ target_lang }}`. Escapes: `{{{{` is a literal `{{`.
In text and markdown, `}}}}` is a literal `}}` and a lone `}}` is an error; in json and yaml a
`}}` outside a marker is ordinary syntax (nested closing braces) and left alone.

JSON and YAML content is checked with every marker standing for a value (`null`), so a variable may
sit inside a string (`"{{ lang }}"`) or in a value position (`{"n": {{ count }}}`).

Conversion. text and markdown hold any string, so text <-> markdown keeps the content unchanged.
A plain prompt becomes the object `{"prompt": "<content>"}` in json and yaml and the array
`[{"role": "system", "content": "<content>"}]` in openai-messages; converting back unwraps it,
so text -> X -> text is lossless for every X. json <-> yaml converts the data (mappings with string
keys, lists, strings, numbers, booleans, null) losslessly; json and openai-messages output is
indented by 2 with non-ASCII kept as is. Other JSON/YAML data converted to text or markdown is
kept verbatim. Impossible conversions raise `ConversionError` with the reason.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from app.models.system_prompt import PROMPT_CONTENT_MAX

CONTENT_MAX = PROMPT_CONTENT_MAX
PROMPT_FORMATS = ("text", "markdown", "json", "yaml")
CONVERT_FORMATS = (*PROMPT_FORMATS, "openai-messages")
MESSAGE_ROLES = ("system", "user", "assistant")
PROMPT_KEY = "prompt"

VARIABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TEXTUAL = ("text", "markdown")


@dataclass(frozen=True)
class Problem:
    """One finding; line and column are 1-based (None when it has no place in the content)."""

    line: int | None
    column: int | None
    message: str


@dataclass(frozen=True)
class Marker:
    name: str
    start: int
    end: int


@dataclass
class Scan:
    markers: list[Marker] = field(default_factory=list)
    # (start, end, replacement) of the escapes `{{{{` and (text/markdown) `}}}}`
    escapes: list[tuple[int, int, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class Validation:
    errors: list[Problem]
    warnings: list[Problem]
    variables: list[str]

    @property
    def valid(self) -> bool:
        return not self.errors


class ConversionError(ValueError):
    """A conversion that cannot be done; the message says why."""


def position(content: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset; columns count characters."""
    line = content.count("\n", 0, offset) + 1
    column = offset - (content.rfind("\n", 0, offset) + 1) + 1
    return line, column


def scan(content: str, fmt: str = "text") -> Scan:
    """Find the variable markers, escapes and marker errors of `content`."""
    result = Scan()
    strict_close = fmt in _TEXTUAL
    i = 0
    n = len(content)
    while i < n:
        if content.startswith("{{", i):
            if content.startswith("{{{{", i):
                result.escapes.append((i, i + 4, "{{"))
                i += 4
                continue
            line_end = content.find("\n", i)
            if line_end == -1:
                line_end = n
            close = content.find("}}", i + 2, line_end)
            reopen = content.find("{{", i + 2, close) if close != -1 else -1
            if close == -1 or reopen != -1:
                result.problems.append(
                    Problem(
                        *position(content, i),
                        "Unclosed '{{': a variable marker must end with '}}' on the same line "
                        "(write '{{{{' for a literal '{{')",
                    )
                )
                i += 2
                continue
            inner = content[i + 2 : close].strip(" \t")
            if not VARIABLE_NAME_RE.match(inner):
                result.problems.append(
                    Problem(
                        *position(content, i),
                        f"Invalid variable name {inner!r}: use letters, digits and '_', "
                        "not starting with a digit",
                    )
                )
            else:
                result.markers.append(Marker(inner, i, close + 2))
            i = close + 2
            continue
        if strict_close and content.startswith("}}", i):
            if content.startswith("}}}}", i):
                result.escapes.append((i, i + 4, "}}"))
                i += 4
                continue
            result.problems.append(
                Problem(
                    *position(content, i),
                    "'}}' without a matching '{{' (write '}}}}' for a literal '}}')",
                )
            )
            i += 2
            continue
        i += 1
    return result


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def find_variables(content: str, fmt: str = "text") -> list[str]:
    """The variable names used in `content`, in order of first use."""
    return _unique(marker.name for marker in scan(content, fmt).markers)


def _with_placeholders(content: str, markers: list[Marker]) -> str:
    """Each marker replaced by `null` padded to its length, so that positions stay the same."""
    parts: list[str] = []
    last = 0
    for marker in markers:
        parts.append(content[last : marker.start])
        parts.append("null".ljust(marker.end - marker.start))
        last = marker.end
    parts.append(content[last:])
    return "".join(parts)


def _json_problem(content: str) -> Problem | None:
    try:
        json.loads(content)
    except json.JSONDecodeError as exc:
        return Problem(exc.lineno, exc.colno, f"Invalid JSON: {exc.msg}")
    except RecursionError:
        return Problem(1, 1, "Invalid JSON: nested too deeply")
    return None


def _yaml_message(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [p for p in (exc.context, exc.problem) if p]
        return "; ".join(parts) or "malformed YAML"
    return str(exc) or "malformed YAML"


def _yaml_problem(content: str) -> Problem | None:
    try:
        yaml.safe_load(content)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        return Problem(line, column, f"Invalid YAML: {_yaml_message(exc)}")
    except yaml.YAMLError as exc:
        return Problem(None, None, f"Invalid YAML: {_yaml_message(exc)}")
    except RecursionError:
        return Problem(1, 1, "Invalid YAML: nested too deeply")
    return None


def validate(content: str, fmt: str = "text", declared: list[str] | None = None) -> Validation:
    """Check `content` for its format: errors make it unsavable, warnings do not.

    Warnings about variables are given only when `declared` (the prompt's variable list) is."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    if not content.strip():
        return Validation([Problem(1, 1, "Content is empty")], [], [])
    if len(content) > CONTENT_MAX:
        errors.append(
            Problem(
                *position(content, CONTENT_MAX),
                f"Content is {len(content):,} characters long; the limit is {CONTENT_MAX:,}",
            )
        )
    found = scan(content, fmt)
    errors.extend(found.problems)
    if fmt in ("json", "yaml"):
        prepared = _with_placeholders(content, found.markers)
        problem = _json_problem(prepared) if fmt == "json" else _yaml_problem(prepared)
        if problem is not None:
            errors.append(problem)
    variables = _unique(marker.name for marker in found.markers)
    if declared is not None:
        declared_set = set(declared)
        first_use: dict[str, int] = {}
        for marker in found.markers:
            first_use.setdefault(marker.name, marker.start)
        for name in variables:
            if name not in declared_set:
                warnings.append(
                    Problem(
                        *position(content, first_use[name]),
                        f"Variable '{name}' is used but not declared",
                    )
                )
        for name in _unique(declared):
            if name not in first_use:
                warnings.append(Problem(None, None, f"Variable '{name}' is declared but not used"))
    return Validation(errors, warnings, variables)


def render(content: str, values: Mapping[str, str], fmt: str = "text") -> tuple[str, list[str]]:
    """Fill the variables; returns the text and the names without a value (left as markers)."""
    found = scan(content, fmt)
    edits: list[tuple[int, int, str]] = list(found.escapes)
    missing: list[str] = []
    for marker in found.markers:
        if marker.name in values:
            edits.append((marker.start, marker.end, values[marker.name]))
        elif marker.name not in missing:
            missing.append(marker.name)
    edits.sort()
    parts: list[str] = []
    last = 0
    for start, end, replacement in edits:
        parts.append(content[last:start])
        parts.append(replacement)
        last = end
    parts.append(content[last:])
    return "".join(parts), missing


# ------------------------------------------------------------------------------ conversion


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks (`|`) so prompts stay readable in YAML."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted style by itself where a block cannot hold the string.
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump_yaml(value: Any) -> str:
    text: str = yaml.dump(
        value, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1_000_000
    )
    return text


def _dump_json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, indent=2, allow_nan=False)
    except ValueError:
        raise ConversionError("NaN and infinite numbers have no JSON form") from None


def _load_json(content: str) -> Any:
    try:
        return json.loads(content)
    except json.JSONDecodeError as exc:
        raise ConversionError(
            f"The content is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise ConversionError("The content is nested too deeply") from None


def _load_yaml(content: str) -> Any:
    try:
        return yaml.safe_load(content)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        message = f"The content is not valid YAML: {_yaml_message(exc)}{where}"
        raise ConversionError(message) from None
    except yaml.YAMLError as exc:
        raise ConversionError(f"The content is not valid YAML: {_yaml_message(exc)}") from None
    except RecursionError:
        raise ConversionError("The content is nested too deeply") from None


def _check_json_data(value: Any, path: str = "$") -> None:
    """YAML can hold more than JSON (dates, non-string keys, NaN): refuse what would be lost."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConversionError(f"{path}: NaN and infinite numbers have no JSON form")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_data(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConversionError(f"{path}: the key {key!r} is not a string (JSON keys are)")
            _check_json_data(item, f"{path}.{key}")
        return
    raise ConversionError(f"{path}: a value of type {type(value).__name__} has no JSON form")


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(
            isinstance(item, dict)
            and item.get("role") in MESSAGE_ROLES
            and isinstance(item.get("content"), str)
            for item in value
        )
    )


def _prompt_string(value: Any) -> str | None:
    """The prompt a value wraps: a string, or {"prompt": "<string>"}; else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and list(value) == [PROMPT_KEY]:
        inner = value[PROMPT_KEY]
        return inner if isinstance(inner, str) else None
    return None


def _read(content: str, fmt: str) -> Any:
    if fmt in _TEXTUAL:
        return {PROMPT_KEY: content}
    if fmt == "yaml":
        return _load_yaml(content)
    value = _load_json(content)
    if fmt == "openai-messages" and not _is_messages(value):
        raise ConversionError(
            "openai-messages content must be a non-empty JSON array of "
            '{"role": "system" | "user" | "assistant", "content": "<string>"} objects'
        )
    return value


def _as_text(value: Any, src: str, raw: str) -> str:
    prompt = _prompt_string(value)
    if prompt is not None:
        return prompt
    if _is_messages(value):
        if all(item["role"] == "system" for item in value):
            return "\n\n".join(item["content"] for item in value)
        if src == "openai-messages":
            raise ConversionError(
                "Only system messages convert to plain text; user and assistant roles would be lost"
            )
    # Any other JSON/YAML document is itself a valid plain-text prompt.
    return raw


def _as_messages(value: Any) -> list[Any]:
    if _is_messages(value):
        messages: list[Any] = value
        return messages
    prompt = _prompt_string(value)
    if prompt is None:
        raise ConversionError(
            'Only a string, a {"prompt": "<string>"} object or a list of '
            "{role, content} messages converts to openai-messages"
        )
    return [{"role": "system", "content": prompt}]


def convert(content: str, src: str, dst: str) -> str:
    """Convert prompt content between text, markdown, json, yaml and openai-messages."""
    if src not in CONVERT_FORMATS or dst not in CONVERT_FORMATS:
        raise ConversionError(f"Formats must be among: {', '.join(CONVERT_FORMATS)}")
    if src in _TEXTUAL and dst in _TEXTUAL:
        return content
    value = _read(content, src)
    if src == dst:
        return content  # well-formed (read above): unchanged
    if dst in _TEXTUAL:
        return _as_text(value, src, content)
    if src == "yaml":
        _check_json_data(value)
    if dst == "yaml":
        return _dump_yaml(value)
    if dst == "json":
        return _dump_json(value)
    return _dump_json(_as_messages(value))
