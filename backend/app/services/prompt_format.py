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
kept verbatim (with "}}" written `}}}}`). Variable markers are opaque: one inside a string stays
inside the string, one that is a whole value stays a whole value (`{"n": {{ n }}}` <->
`n: {{ n }}`). Impossible conversions raise `ConversionError` with the reason.

Rendering escapes values for json and yaml so that the filled-in document stays valid (see the
render section); text and markdown take them verbatim.
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


# ---------------------------------------------------------------- markers as opaque tokens
#
# To parse JSON or YAML that holds markers, each marker (and, when rendering, each `{{{{`
# escape) is first replaced by a token: letters and digits that no part of the content contains,
# valid both inside a string and as a plain YAML scalar. In JSON a marker in a value position
# becomes the quoted token. After the work, tokens are turned back into the original text.


@dataclass(frozen=True)
class _Slot:
    text: str  # the original marker or escape
    name: str | None  # the variable; None for an escape
    bare: bool = False  # the whole value (JSON: outside any string)


@dataclass
class _Protected:
    text: str
    original: str
    slots: dict[str, _Slot]
    pattern: re.Pattern[str]  # any token
    # (start, end) in `text` and (start, end) in `original` of each replaced span, in order
    spans: list[tuple[int, int, int, int]]

    def original_offset(self, offset: int) -> int:
        """The offset in the original content of an offset in the protected text."""
        shift = 0
        for start, end, orig_start, orig_end in self.spans:
            if offset < start:
                break
            if offset < end:
                return orig_start
            shift = orig_end - end
        return offset + shift

    def where(self, offset: int) -> str:
        line, column = position(self.original, self.original_offset(offset))
        return f"line {line}, column {column}"

    def restore(self, text: str, *, json_bare: bool = False) -> str:
        """Tokens back to the original marker text (JSON: a bare token without its quotes)."""
        if json_bare:
            text = re.sub(
                f'"({self.pattern.pattern})"',
                lambda m: (
                    self.slots[m.group(1)].text if self.slots[m.group(1)].bare else m.group(0)
                ),
                text,
            )
        return self.pattern.sub(lambda m: self.slots[m.group(0)].text, text)


def _token_prefix(content: str) -> str:
    # No proper prefix of the prefix is also its suffix, so occurrences never overlap.
    prefix = "mtvar"
    while prefix in content:
        prefix += "q"
    return prefix


def _json_in_string(content: str, offsets: Iterable[int]) -> list[bool]:
    """For each offset (ascending), whether it lies inside a JSON string literal."""
    wanted = list(offsets)
    result: list[bool] = []
    in_string = False
    i = 0
    for offset in wanted:
        while i < offset:
            ch = content[i]
            if in_string and ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_string = not in_string
            i += 1
        result.append(in_string)
    return result


def _protect(content: str, fmt: str, *, escapes: bool = False) -> _Protected:
    """Replace the markers (and, with `escapes`, the `{{{{` escapes) of `content` by tokens."""
    found = scan(content, fmt)
    prefix = _token_prefix(content)
    pattern = re.compile(re.escape(prefix) + r"[sbe]\d+z")
    items: list[tuple[int, int, str, _Slot]] = []
    bare = (
        [not inside for inside in _json_in_string(content, (m.start for m in found.markers))]
        if fmt in ("json", "openai-messages")
        else [False] * len(found.markers)
    )
    for index, (marker, is_bare) in enumerate(zip(found.markers, bare, strict=True)):
        slot = _Slot(content[marker.start : marker.end], marker.name, is_bare)
        kind = "b" if is_bare else "s"
        items.append((marker.start, marker.end, f"{prefix}{kind}{index}z", slot))
    if escapes:
        for index, (start, end, _) in enumerate(found.escapes):
            if content.startswith("{{{{", start):
                items.append((start, end, f"{prefix}e{index}z", _Slot("{{{{", None)))
    items.sort(key=lambda item: item[0])
    parts: list[str] = []
    slots: dict[str, _Slot] = {}
    spans: list[tuple[int, int, int, int]] = []
    last = 0
    length = 0
    for start, end, token, slot in items:
        parts.append(content[last:start])
        length += start - last
        replacement = f'"{token}"' if slot.bare else token
        parts.append(replacement)
        spans.append((length, length + len(replacement), start, end))
        length += len(replacement)
        slots[token] = slot
        last = end
    parts.append(content[last:])
    return _Protected("".join(parts), content, slots, pattern, spans)


# ---------------------------------------------------------------------------------- render
#
# text and markdown take values verbatim. json and yaml escape them so that the filled-in
# document stays valid and each value arrives unchanged in the data:
# - json: inside a string, JSON string escaping; as a whole value, a value that is itself JSON
#   (number, true/false/null, string, object, array; not NaN) goes in as it is, anything else as
#   a JSON string.
# - yaml: the scalar holding the marker is kept in its style where the value fits (checked by
#   parsing it), otherwise the whole scalar is rewritten as one double-quoted string. A marker
#   that is a whole plain value becomes a number, true, false or null when the value is exactly
#   that, else a string ("yes" stays a string). Markers in comments get the value on one line.
# Markers without a value stay in place, so a partly filled template stays a template.

_YAML_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?\Z")
_YAML_WORDS = {"true": True, "false": False, "null": None}
_YAML_PRINTABLE_RE = re.compile(
    "[\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_YAML_LINE_BREAKS = ("\r", "\x85", "\u2028", "\u2029")
_YAML_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\x85": "\\N",
    "\u2028": "\\L",
    "\u2029": "\\P",
}


def _apply_edits(content: str, edits: list[tuple[int, int, str]]) -> str:
    parts: list[str] = []
    last = 0
    for start, end, replacement in sorted(edits):
        parts.append(content[last:start])
        parts.append(replacement)
        last = end
    parts.append(content[last:])
    return "".join(parts)


def _is_json_value(value: str) -> bool:
    def reject(constant: str) -> Any:
        raise ValueError(constant)

    try:
        json.loads(value, parse_constant=reject)
    except (ValueError, RecursionError):
        return False
    return True


def _render_json(content: str, found: Scan, values: Mapping[str, str]) -> str:
    edits = [(start, end, text) for start, end, text in found.escapes]
    filled = [m for m in found.markers if m.name in values]
    inside = _json_in_string(content, (m.start for m in filled))
    for marker, in_string in zip(filled, inside, strict=True):
        value = values[marker.name]
        if in_string:
            text = json.dumps(value, ensure_ascii=False)[1:-1]
        else:
            text = value if _is_json_value(value) else json.dumps(value, ensure_ascii=False)
        edits.append((marker.start, marker.end, text))
    return _apply_edits(content, edits)


def _yaml_printable(text: str, *, breaks: bool) -> bool:
    """Every character may stand unescaped in YAML (line breaks only "\n", and only if `breaks`)."""
    if not breaks and "\n" in text:
        return False
    if any(ch in text for ch in _YAML_LINE_BREAKS):
        return False
    return all(_YAML_PRINTABLE_RE.match(ch) for ch in text)


def _yaml_double_quoted(text: str) -> str:
    """`text` as one double-quoted YAML scalar on a single line."""
    out: list[str] = []
    for ch in text:
        if ch in _YAML_ESCAPES:
            out.append(_YAML_ESCAPES[ch])
        elif _YAML_PRINTABLE_RE.match(ch) is None:
            code = ord(ch)
            out.append(
                f"\\x{code:02X}"
                if code <= 0xFF
                else f"\\u{code:04X}"
                if code <= 0xFFFF
                else f"\\U{code:08X}"
            )
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _yaml_parses_to(
    text: str, expected: Any, *, in_flow: bool, is_key: bool, is_root: bool
) -> bool:
    """Whether the scalar source `text` reads back as exactly `expected` in such a place."""
    if is_key and not _yaml_parses_to(text, expected, in_flow=in_flow, is_key=False, is_root=False):
        return False  # a `? key` reads like a value: both must hold
    if is_root:
        document = text
    elif is_key:
        if "\n" in text:
            return False
        document = "{" + text + ": 0}" if in_flow else text + ": 0\n"
    else:
        document = "[" + text + "]" if in_flow else "k: " + text + "\n"
    try:
        loaded = yaml.safe_load(document)
    except (yaml.YAMLError, RecursionError):
        return False
    got: Any
    if is_root:
        got = loaded
    elif in_flow and not is_key:
        if not (isinstance(loaded, list) and len(loaded) == 1):
            return False
        got = loaded[0]
    else:
        if not (isinstance(loaded, dict) and len(loaded) == 1):
            return False
        key, got = next(iter(loaded.items()))
        if is_key:
            got = key
        elif key != "k":
            return False
    # type() too: True == 1 and 1 == 1.0 in Python, not in the prompt.
    return type(got) is type(expected) and bool(got == expected)


def _yaml_insertion(style: str | None, value: str, indent: int) -> str | None:
    """How `value` is written inside a scalar of `style`, keeping the style; None if it cannot."""
    if style == '"':
        return _yaml_double_quoted(value)[1:-1]
    if style == "'":
        return value.replace("'", "''") if _yaml_printable(value, breaks=False) else None
    if style == "|":
        if indent < 1 or not _yaml_printable(value, breaks=True):
            return None
        return value.replace("\n", "\n" + " " * indent)
    # plain and folded scalars: one line only
    return value if _yaml_printable(value, breaks=False) else None


def _block_indent(source: str) -> int:
    """Content indentation of a block scalar source (header line first); 0 if not simple."""
    header, _, body = source.partition("\n")
    if any(ch.isdigit() or ch == "+" for ch in header):
        return 0  # explicit indentation or "keep" chomping: leave it to the quoted form
    for line in body.split("\n"):
        if line.strip(" "):
            return len(line) - len(line.lstrip(" "))
    return 0


def _render_yaml(content: str, found: Scan, values: Mapping[str, str]) -> str | None:
    """Render YAML with escaping; None when the content does not parse as YAML."""
    p = _protect(content, "yaml", escapes=True)
    loader = yaml.SafeLoader(p.text)
    try:
        root = loader.get_single_node()
        scalar_tokens = {
            token.end_mark.index: token
            for token in yaml.scan(p.text, Loader=yaml.SafeLoader)
            if isinstance(token, yaml.ScalarToken)
        }
    except (yaml.YAMLError, RecursionError):
        return None
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML

    def unfilled(token: str) -> str | None:
        """The raw text a token stays as (an unfilled marker; an escape's "{{"), else None."""
        slot = p.slots[token]
        if slot.name is None:
            return "{{"
        return None if slot.name in values else slot.text

    def value_of(token: str) -> str:
        name = p.slots[token].name
        return values[name] if name is not None else "{{"

    def quoted(text: str) -> str:
        """A double-quoted scalar of `text` (with tokens); unfilled markers stay raw."""
        parts: list[str] = []
        last = 0
        for match in p.pattern.finditer(text):
            parts.append(_yaml_double_quoted(text[last : match.start()])[1:-1])
            raw = unfilled(match.group(0))
            parts.append(
                raw if raw is not None else _yaml_double_quoted(value_of(match.group(0)))[1:-1]
            )
            last = match.end()
        parts.append(_yaml_double_quoted(text[last:])[1:-1])
        return '"' + "".join(parts) + '"'

    edits: list[tuple[int, int, str]] = []
    seen: set[int] = set()

    def scalar(node: yaml.ScalarNode, *, in_flow: bool, is_key: bool, is_root: bool) -> None:
        token = scalar_tokens.get(node.end_mark.index)
        if token is None:
            return
        start, end = token.start_mark.index, token.end_mark.index
        source = p.text[start:end]
        whole = p.pattern.fullmatch(node.value)
        bare = node.style is None and whole is not None and node.start_mark.index == start
        expected: Any
        if bare and not is_key and whole is not None:
            if unfilled(whole.group(0)) is not None:
                return  # an unfilled marker stays as it is
            value = value_of(whole.group(0))
            expected = value
            if _YAML_NUMBER_RE.match(value):
                expected = yaml.safe_load(value)
            elif value in _YAML_WORDS:
                expected = _YAML_WORDS[value]
        else:
            expected = p.pattern.sub(
                lambda m: unfilled(m.group(0)) or value_of(m.group(0)), node.value
            )
        indent = _block_indent(source) if node.style == "|" else 0
        parts: list[str] | None = []
        last = 0
        for match in p.pattern.finditer(source):
            assert parts is not None
            parts.append(source[last : match.start()])
            raw = unfilled(match.group(0))
            inserted = (
                raw
                if raw is not None
                else _yaml_insertion(node.style, value_of(match.group(0)), indent)
            )
            if inserted is None:
                parts = None
                break
            parts.append(inserted)
            last = match.end()
        replacement = None
        if parts is not None:
            candidate = "".join(parts) + source[last:]
            if _yaml_parses_to(
                candidate, expected, in_flow=in_flow, is_key=is_key, is_root=is_root
            ):
                replacement = candidate
        if replacement is None:
            replacement = quoted(node.value) + ("\n" if source.endswith("\n") else "")
        edits.append((start, end, replacement))

    def visit(node: yaml.Node, *, in_flow: bool, is_key: bool) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            flow = in_flow or bool(node.flow_style)
            for key, item in node.value:
                visit(key, in_flow=flow, is_key=True)
                visit(item, in_flow=flow, is_key=False)
        elif isinstance(node, yaml.SequenceNode):
            flow = in_flow or bool(node.flow_style)
            for item in node.value:
                visit(item, in_flow=flow, is_key=False)
        elif isinstance(node, yaml.ScalarNode) and p.pattern.search(node.value):
            scalar(node, in_flow=in_flow, is_key=is_key, is_root=node is root)

    if root is not None:
        visit(root, in_flow=False, is_key=False)

    # Tokens outside scalars (comments): the value on one line.
    def outside(match: re.Match[str]) -> str:
        text = unfilled(match.group(0)) or value_of(match.group(0))
        return "".join(
            ch
            if ch != "\n" and _YAML_PRINTABLE_RE.match(ch) and ch not in _YAML_LINE_BREAKS
            else " "
            for ch in text
        )

    parts = []
    last = 0
    for start, end, replacement in sorted(edits):
        parts.append(p.pattern.sub(outside, p.text[last:start]))
        parts.append(replacement)
        last = end
    parts.append(p.pattern.sub(outside, p.text[last:]))
    return "".join(parts)


def render(content: str, values: Mapping[str, str], fmt: str = "text") -> tuple[str, list[str]]:
    """Fill the variables; returns the text and the names without a value (left as markers).

    text/markdown take values verbatim; json/yaml escape them so the document stays valid."""
    found = scan(content, fmt)
    missing = _unique(m.name for m in found.markers if m.name not in values)
    if fmt == "json":
        return _render_json(content, found, values), missing
    if fmt == "yaml":
        rendered = _render_yaml(content, found, values)
        if rendered is not None:
            return rendered, missing
    edits = list(found.escapes)
    edits += [(m.start, m.end, values[m.name]) for m in found.markers if m.name in values]
    return _apply_edits(content, edits), missing


# ------------------------------------------------------------------------------ conversion
#
# Markers are opaque: before parsing, each becomes a token (a JSON marker outside any string,
# like a YAML marker that is a whole plain scalar, is a "bare" value); the data is converted;
# the tokens are written back as the original marker text: inside strings in JSON and quoted
# YAML (or in a `|` block), bare ones as plain `{{ v }}` values. `{{{{` escapes are text that
# both sides read alike. Only "}}" differs: ordinary text in JSON/YAML strings, written `}}}}`
# in text and markdown; that is translated in each direction.


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks (`|`) so prompts stay readable in YAML."""

    bare_tokens: frozenset[str] = frozenset()
    token_pattern: re.Pattern[str] | None = None


def _represent_str(dumper: _Dumper, data: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted style by itself where a block cannot hold the string.
    style: str | None = "|" if "\n" in data else None
    if data in dumper.bare_tokens:
        style = None  # written back as a bare `{{ v }}`
    elif dumper.token_pattern is not None and dumper.token_pattern.search(data) and not style:
        style = '"'  # a marker in a plain scalar could read as a flow mapping
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump_yaml(value: Any, protected: _Protected | None = None) -> str:
    dumper_class: type[_Dumper] = _Dumper
    if protected is not None:
        dumper_class = type(
            "_TokenDumper",
            (_Dumper,),
            {
                "bare_tokens": frozenset(t for t, s in protected.slots.items() if s.bare),
                "token_pattern": protected.pattern,
            },
        )
    text: str = yaml.dump(
        value, Dumper=dumper_class, allow_unicode=True, sort_keys=False, width=1_000_000
    )
    return text


def _dump_json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, indent=2, allow_nan=False)
    except ValueError:
        raise ConversionError("NaN and infinite numbers have no JSON form") from None


def _load_json(p: _Protected) -> Any:
    try:
        value = json.loads(p.text)
    except json.JSONDecodeError as exc:
        raise ConversionError(
            f"The content is not valid JSON: {exc.msg} ({p.where(exc.pos)})"
        ) from None
    except RecursionError:
        raise ConversionError("The content is nested too deeply") from None
    bare = {token for token, slot in p.slots.items() if slot.bare}
    if bare:
        _check_bare_keys(value, bare, p)
    return value


def _check_bare_keys(value: Any, bare: set[str], p: _Protected) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if key in bare:
                    raise ConversionError(
                        f"The variable {p.slots[key].text} is used as a key without quotes "
                        "(JSON keys are strings)"
                    )
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)


def _mark_bare_scalars(node: yaml.Node, p: _Protected) -> None:
    """A plain scalar that is exactly one marker becomes a bare token (a whole value)."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, yaml.MappingNode):
            for key, inner in item.value:
                stack += [key, inner]
        elif isinstance(item, yaml.SequenceNode):
            stack.extend(item.value)
        elif isinstance(item, yaml.ScalarNode) and item.style is None:
            whole = p.pattern.fullmatch(item.value)
            if whole and item.tag == "tag:yaml.org,2002:str":
                token = whole.group(0)
                slot = p.slots[token]
                bare_token = _bare_token(token)
                p.slots[bare_token] = _Slot(slot.text, slot.name, True)
                item.value = bare_token


def _bare_token(token: str) -> str:
    return re.sub(r"s(\d+)z\Z", r"b\1z", token)


def _load_yaml(p: _Protected) -> Any:
    loader = yaml.SafeLoader(p.text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _mark_bare_scalars(node, p)
        return loader.construct_document(node)  # type: ignore[no-untyped-call]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" ({p.where(mark.index)})" if mark else ""
        message = f"The content is not valid YAML: {_yaml_message(exc)}{where}"
        raise ConversionError(p.restore(message)) from None
    except yaml.YAMLError as exc:
        message = f"The content is not valid YAML: {_yaml_message(exc)}"
        raise ConversionError(p.restore(message)) from None
    except RecursionError:
        raise ConversionError("The content is nested too deeply") from None
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML


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


def _keys_as_strings(value: Any, p: _Protected) -> Any:
    """A bare marker used as a YAML key is a quoted string key in JSON."""
    if isinstance(value, list):
        return [_keys_as_strings(item, p) for item in value]
    if isinstance(value, dict):
        result: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and key in p.slots and p.slots[key].bare:
                string_token = re.sub(r"b(\d+)z\Z", r"s\1z", key)
                p.slots.setdefault(string_token, _Slot(p.slots[key].text, p.slots[key].name))
                key = string_token
            result[key] = _keys_as_strings(item, p)
        return result
    return value


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


def _read(p: _Protected, fmt: str) -> Any:
    if fmt in _TEXTUAL:
        # `}}}}` is how text writes a literal "}}"; in a JSON/YAML string it is just "}}".
        return {PROMPT_KEY: p.text.replace("}}}}", "}}")}
    if fmt == "yaml":
        return _load_yaml(p)
    value = _load_json(p)
    if fmt == "openai-messages" and not _is_messages(value):
        raise ConversionError(
            "openai-messages content must be a non-empty JSON array of "
            '{"role": "system" | "user" | "assistant", "content": "<string>"} objects'
        )
    return value


def _escape_closing(raw: str, fmt: str) -> str:
    """JSON/YAML source as a text prompt: each "}}" outside markers written `}}}}`."""
    found = scan(raw, fmt)
    keep = sorted([(m.start, m.end) for m in found.markers] + [(s, e) for s, e, _ in found.escapes])
    parts: list[str] = []
    last = 0
    for start, end in keep:
        parts.append(raw[last:start].replace("}}", "}}}}"))
        parts.append(raw[start:end])
        last = end
    parts.append(raw[last:].replace("}}", "}}}}"))
    return "".join(parts)


def _as_text(value: Any, src: str, p: _Protected) -> str:
    prompt = _prompt_string(value)
    if prompt is None and _is_messages(value):
        if all(item["role"] == "system" for item in value):
            prompt = "\n\n".join(item["content"] for item in value)
        elif src == "openai-messages":
            raise ConversionError(
                "Only system messages convert to plain text; user and assistant roles would be lost"
            )
    if prompt is not None:
        return p.restore(prompt.replace("}}", "}}}}"))
    # Any other JSON/YAML document is itself a plain-text prompt (with "}}" escaped).
    return _escape_closing(p.original, "json" if src == "openai-messages" else src)


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
    """Convert prompt content between text, markdown, json, yaml and openai-messages.

    Variable markers are carried through as they are (see above)."""
    if src not in CONVERT_FORMATS or dst not in CONVERT_FORMATS:
        raise ConversionError(f"Formats must be among: {', '.join(CONVERT_FORMATS)}")
    if src in _TEXTUAL and dst in _TEXTUAL:
        return content
    p = _protect(content, src)
    try:
        value = _read(p, src)
        if src == dst:
            return content  # well-formed (read above): unchanged
        if dst in _TEXTUAL:
            return _as_text(value, src, p)
        if src == "yaml":
            _check_json_data(value)
        if dst == "yaml":
            return p.restore(_dump_yaml(value, p))
        data = _keys_as_strings(value if dst == "json" else _as_messages(value), p)
        return p.restore(_dump_json(data), json_bare=True)
    except ConversionError as exc:
        raise ConversionError(p.restore(str(exc))) from None
