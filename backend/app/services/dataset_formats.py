"""Training-data files: streamed reading, format detection, validation of every record, length
statistics, and the LLaMA-Factory `dataset_info.json` entry. Pure: no database, no HTTP.

Files (UTF-8; a byte-order mark is allowed):

- `jsonl`: one JSON object per line; blank lines are ignored; errors name the physical line.
- `json`: an array of objects, read element by element, never whole; errors name the line where
  the element starts. A syntax error inside the array ends the reading (no parser can tell where
  the next element starts). A `.json` file whose first character is `{` is read as JSON Lines,
  as LLaMA-Factory's loader (Hugging Face `datasets`) does.
- `csv`: a header row, then one record per row (a quoted field may span lines; the line is where
  the record starts). Column names are taken exactly as written: they are the names
  LLaMA-Factory will look up.
- `txt`: one pre-training sample per non-blank line (LLaMA-Factory reads text files by line).

Formats, detected from the first record that looks like one and then required of every record:

- `alpaca`: `instruction` (string), `output` (non-empty string), optional `input`, `system`,
  `history` (list of [question, answer] string pairs), `images`.
- `sharegpt`: `conversations` (or `messages`) holding `{"from", "value"}` messages: an optional
  leading `system`, then `human`/`observation` and `gpt`/`function_call` turns alternating,
  ending with an answer; optional `system`, `tools`, `images` columns.
- `openai`: `messages` (or `conversations`) holding `{"role", "content"}` messages: an optional
  leading `system`, then `user` and `assistant` alternating, ending with `assistant`.
- `preference`: `chosen` and `rejected` answers (non-empty strings, not equal) to a `prompt`
  (or `instruction` [+ `input`]); or, ShareGPT/OpenAI style, a conversation ending with a user
  turn plus `chosen` / `rejected` messages from the assistant side.
- `kto`: an `alpaca` record or a `sharegpt` / `openai` conversation (ending with the answer) plus
  `kto_tag` (or `label`): JSON true when the answer is desirable, false when it is not. Only the
  JSON boolean counts: LLaMA-Factory reads any other value as no tag and trains the record as
  plain SFT, so a CSV file (strings only) cannot hold KTO data.
- `text`: `text` (non-empty string) per record, or every line of a `.txt` file (pre-training).

Every message content, prompt and answer must be a non-empty string; `images` lists ids of
uploaded images (32 hex characters, resolved by a job against UPLOAD_DIR/images, LLaMA-Factory's
`media_dir`), never paths. A top-level field must keep one JSON type across records (Arrow,
under `datasets`, refuses a column that changes type).

Memory stays flat: the file is read in chunks and one record at a time (at most
MAX_RECORD_BYTES); only counters, the first ERRORS_KEPT errors and fixed-size random samples of
the lengths (for the percentiles) are kept.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import random
import re
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

FILE_FORMATS = ("json", "jsonl", "csv", "txt")
DETECTED_FORMATS = ("alpaca", "sharegpt", "openai", "preference", "kto", "text", "unknown")
ERRORS_KEPT = 100
MAX_RECORD_BYTES = 16 * 1024 * 1024
READ_CHUNK = 1024 * 1024
SAMPLE_SIZE = 10_000
BINARY_PROBE_BYTES = 64 * 1024
PREVIEW_TEXT_MAX = 2000
PREVIEW_ITEMS_MAX = 100
_REPR_MAX = 40

_BOM = codecs.BOM_UTF8
_WS_RE = re.compile(r"[ \t\n\r]*")
_IMAGE_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for every record: json.loads with arguments would build a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def file_format_of(file_name: str) -> str | None:
    """The file format given by a name's extension (json, jsonl, csv, txt), else None."""
    _, dot, ext = file_name.rpartition(".")
    ext = ext.lower()
    return ext if dot and ext in FILE_FORMATS else None


def looks_binary(path: Path) -> bool:
    """True when the start of the file holds NUL bytes: no UTF-8 text does (UTF-16 does)."""
    with path.open("rb") as fh:
        return b"\x00" in fh.read(BINARY_PROBE_BYTES)


# =============================================================================== reading


@dataclass(frozen=True)
class RawRecord:
    """One record as read from the file: a value, or why it could not be read."""

    line: int
    value: Any = None
    error: str | None = None
    # Nothing after this record can be read (a syntax error inside a JSON array, ...).
    fatal: bool = False
    # False for a problem of the file rather than of a record (an array never closed).
    is_row: bool = True


class _Fatal(Exception):
    def __init__(self, message: str, line: int, *, is_row: bool) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.is_row = is_row

    def record(self) -> RawRecord:
        return RawRecord(self.line, error=self.message, fatal=True, is_row=self.is_row)


# Stands for an element that was read whole but is over the limit.
_TOO_LONG = object()


def _too_long() -> str:
    return f"The record is longer than {MAX_RECORD_BYTES} bytes"


def _lines(fh: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) of each physical line; None for a line over MAX_RECORD_BYTES,
    which is skipped without ever being held whole."""
    number = 0
    while True:
        line = fh.readline(MAX_RECORD_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_RECORD_BYTES:
            while not line.endswith(b"\n"):
                line = fh.readline(READ_CHUNK)
                if not line:
                    break
            yield number, None
            continue
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        yield number, line


def _parse_json(text: str) -> Any:
    """A JSON value; ValueError (with a message for people) when it is not one."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise ValueError("Invalid JSON: nested too deeply") from None


def _jsonl(fh: BinaryIO, skip: int) -> Iterator[RawRecord]:
    seen = 0
    for number, raw in _lines(fh):
        if raw is not None and not raw.strip():
            continue
        seen += 1
        if seen <= skip:
            continue
        if raw is None:
            yield RawRecord(number, error=_too_long())
            continue
        try:
            value = _parse_json(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield RawRecord(number, error="Not valid UTF-8 text")
        except ValueError as exc:
            yield RawRecord(number, error=str(exc))
        else:
            yield RawRecord(number, value)


class _JsonArrayReader:
    """Incremental reading of a JSON array: text is decoded chunk by chunk and each element
    parsed with `raw_decode` as soon as it is complete; `line` is the line number at `pos`."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False

    def fill(self, at_least: int = 0) -> bool:
        """Append more text (dropping what was consumed); False at the end of the file."""
        if self.eof:
            return False
        data = self.fh.read(max(READ_CHUNK, at_least))
        try:
            text = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError:
            line = self.line + self.buf.count("\n", self.pos)
            raise _Fatal("Not valid UTF-8 text", line, is_row=False) from None
        self.eof = not data
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return bool(data)

    def advance(self, to: int) -> None:
        self.line += self.buf.count("\n", self.pos, to)
        self.pos = to

    def next_char(self) -> str:
        """The next non-blank character (not consumed), or "" at the end of the file."""
        while True:
            match = _WS_RE.match(self.buf, self.pos)
            assert match is not None  # the pattern matches the empty string
            self.advance(match.end())
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""

    def _grow(self, start_line: int) -> None:
        pending = len(self.buf) - self.pos
        if pending > MAX_RECORD_BYTES:
            raise _Fatal(_too_long(), start_line, is_row=True)
        # Doubling what is read keeps a long element linear, not quadratic, to parse.
        self.fill(at_least=pending)

    def value(self) -> tuple[int, Any]:
        """(line where it starts, value) of the element at `pos`."""
        start_line = self.line
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # Cut off by the end of the buffer rather than wrong: read on and try again.
                near_end = exc.pos >= len(self.buf) - 16
                if not self.eof and (near_end or exc.msg.startswith("Unterminated string")):
                    self._grow(start_line)
                    continue
                line = self.line + self.buf.count("\n", self.pos, exc.pos)
                # No column: the buffer may start in the middle of a line.
                raise _Fatal(f"Invalid JSON: {exc.msg}", line, is_row=True) from None
            except RecursionError:
                raise _Fatal("Invalid JSON: nested too deeply", start_line, is_row=True) from None
            except ValueError as exc:  # NaN / Infinity
                raise _Fatal(f"Invalid JSON: {exc}", start_line, is_row=True) from None
            if end == len(self.buf) and not self.eof:
                # A number may go on in the next chunk ("12" of "123").
                self._grow(start_line)
                continue
            too_long = end - self.pos > MAX_RECORD_BYTES
            self.advance(end)
            return start_line, (_TOO_LONG if too_long else value)


def _json(fh: BinaryIO, skip: int) -> Iterator[RawRecord]:
    reader = _JsonArrayReader(fh)
    try:
        first = reader.next_char()
        if first == "":
            return
        if first == "{":
            fh.seek(0)
            yield from _jsonl(fh, skip)
            return
        if first != "[":
            raise _Fatal(
                "A .json file must hold an array of records ([...]) or one JSON object per line",
                reader.line,
                is_row=False,
            )
        reader.advance(reader.pos + 1)
        seen = 0
        if reader.next_char() == "]":
            reader.advance(reader.pos + 1)
        else:
            while True:
                if reader.next_char() == "":
                    raise _Fatal("The array is not closed (missing ']')", reader.line, is_row=False)
                line, value = reader.value()
                seen += 1
                if seen > skip:
                    if value is _TOO_LONG:
                        yield RawRecord(line, error=_too_long())
                    else:
                        yield RawRecord(line, value)
                char = reader.next_char()
                if char == ",":
                    reader.advance(reader.pos + 1)
                    if reader.next_char() == "]":
                        raise _Fatal(
                            "A comma before ']' (JSON has no trailing commas)",
                            reader.line,
                            is_row=False,
                        )
                    continue
                if char == "]":
                    reader.advance(reader.pos + 1)
                    break
                if char == "":
                    raise _Fatal("The array is not closed (missing ']')", reader.line, is_row=False)
                raise _Fatal(
                    f"Expected ',' or ']' after a record, found {char!r}", reader.line, is_row=False
                )
        if reader.next_char() != "":
            raise _Fatal("Unexpected data after the closing ']'", reader.line, is_row=False)
    except _Fatal as fatal:
        yield fatal.record()


def _csv(fh: BinaryIO, skip: int) -> Iterator[RawRecord]:
    bad_lines: list[int] = []

    def text_lines() -> Iterator[str]:
        for number, raw in _lines(fh):
            if raw is None:
                raise _Fatal(f"Line {number}: {_too_long()}", number, is_row=True)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                bad_lines.append(number)
                yield raw.decode("utf-8", "replace")

    # A record may be as long as any other file's; the limit is the module's, not csv's 128 KiB.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES))
    reader = csv.reader(text_lines(), strict=True)
    header: list[str] | None = None
    previous_end = 0
    seen = 0
    try:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if header is None or reader.line_num == previous_end:
                    raise _Fatal(f"Invalid CSV: {exc}", previous_end + 1, is_row=False) from None
                seen += 1
                if seen > skip:
                    yield RawRecord(previous_end + 1, error=f"Invalid CSV: {exc}")
                previous_end = reader.line_num
                bad_lines.clear()
                continue
            start, previous_end = previous_end + 1, reader.line_num
            if not row:
                continue
            if header is None:
                header = row
                duplicates = sorted({name for name in header if header.count(name) > 1})
                if duplicates:
                    raise _Fatal(
                        f"Duplicate column name {duplicates[0]!r} in the header",
                        start,
                        is_row=False,
                    )
                bad_lines.clear()
                continue
            seen += 1
            broken = any(start <= number <= previous_end for number in bad_lines)
            bad_lines.clear()
            if seen <= skip:
                continue
            if broken:
                yield RawRecord(start, error="Not valid UTF-8 text")
            elif len(row) != len(header):
                yield RawRecord(
                    start,
                    error=f"Expected {len(header)} columns as in the header, found {len(row)}",
                )
            else:
                yield RawRecord(start, dict(zip(header, row, strict=True)))
    except _Fatal as fatal:
        yield fatal.record()


def _txt(fh: BinaryIO, skip: int) -> Iterator[RawRecord]:
    seen = 0
    for number, raw in _lines(fh):
        if raw is not None and not raw.strip():
            continue
        seen += 1
        if seen <= skip:
            continue
        if raw is None:
            yield RawRecord(number, error=_too_long())
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield RawRecord(number, error="Not valid UTF-8 text")
        else:
            yield RawRecord(number, text.rstrip("\r\n"))


_READERS: dict[str, Callable[[BinaryIO, int], Iterator[RawRecord]]] = {
    "jsonl": _jsonl,
    "json": _json,
    "csv": _csv,
    "txt": _txt,
}


def iter_records(
    path: Path, file_format: str, *, skip: int = 0
) -> Generator[RawRecord, None, None]:
    """The records of a file in order, one at a time, after the first `skip` ones. A `txt`
    record's value is the line's text; a `csv` record's is {column: cell}."""
    reader = _READERS[file_format]
    with path.open("rb") as fh:
        yield from reader(fh, skip)


# ============================================================================ validation


class _Invalid(Exception):
    """A record that does not fit the detected format; the message is for people."""


@dataclass(frozen=True)
class Tags:
    """The keys and role names of the messages of one conversation style."""

    role: str
    content: str
    user: str
    assistant: str
    system: str
    observation: str | None
    function: str | None

    @property
    def user_side(self) -> tuple[str, ...]:
        return tuple(t for t in (self.user, self.observation) if t)

    @property
    def model_side(self) -> tuple[str, ...]:
        return tuple(t for t in (self.assistant, self.function) if t)


SHAREGPT_TAGS = Tags("from", "value", "human", "gpt", "system", "observation", "function_call")
OPENAI_TAGS = Tags("role", "content", "user", "assistant", "system", None, None)


@dataclass
class Layout:
    """Where a format's parts are, as far as dataset_info must say: the prompt column (alpaca,
    prompt-style preference) or the messages column and message style (conversations), plus
    the optional columns that valid records use."""

    prompt: str | None = None
    messages: str | None = None
    tags: Tags | None = None
    optional: set[str] = field(default_factory=set)
    kto_tag: str | None = None  # the key of the desirable / undesirable flag (kto)


@dataclass(frozen=True)
class _Checked:
    prompt_chars: int
    response_chars: int
    rejected_chars: int | None
    optional: tuple[str, ...]
    label: bool | None = None  # kto: the answer is desirable


_KIND_NAMES: dict[type, str] = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
}


def _kind(value: Any) -> str:
    """The JSON type of a value, in words."""
    return _KIND_NAMES.get(type(value)) or type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_MAX else text[: _REPR_MAX - 1] + "…"


def _text(record: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    """A string field: required ones must be non-empty, optional ones may be absent/null."""
    value = record.get(key)
    if value is None:
        if required:
            raise _Invalid(f"'{key}' is missing")
        return ""
    if not isinstance(value, str):
        raise _Invalid(f"'{key}' must be a string, not {_kind(value)}")
    if required and not value.strip():
        raise _Invalid(f"'{key}' is empty")
    return value


def _present(record: Mapping[str, Any], *keys: str) -> tuple[str, ...]:
    return tuple(key for key in keys if record.get(key) is not None)


def _check_images(record: Mapping[str, Any]) -> None:
    images = record.get("images")
    if images is None:
        return
    if not isinstance(images, list) or not all(
        isinstance(item, str) and _IMAGE_ID_RE.match(item) for item in images
    ):
        raise _Invalid("'images' must be a list of uploaded image ids (32 hex characters)")


def _check_history(record: Mapping[str, Any]) -> tuple[int, int]:
    history = record.get("history")
    if history is None:
        return 0, 0
    if not isinstance(history, list):
        raise _Invalid(
            f"'history' must be a list of [question, answer] pairs, not {_kind(history)}"
        )
    asked = answered = 0
    for number, pair in enumerate(history, start=1):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise _Invalid(f"'history' item {number} must be a [question, answer] pair of strings")
        asked += len(pair[0])
        answered += len(pair[1])
    return asked, answered


def _prompt_and_query(record: Mapping[str, Any], key: str) -> int:
    if record.get(key) is None:
        raise _Invalid(f"'{key}' is missing")
    prompt = _text(record, key, required=False)
    query = _text(record, "input", required=False)
    if not (prompt.strip() or query.strip()):
        raise _Invalid(f"'{key}' is empty")
    return len(prompt) + len(query)


def _check_alpaca(record: Mapping[str, Any], layout: Layout) -> _Checked:
    prompt = _prompt_and_query(record, "instruction")
    response = len(_text(record, "output"))
    _text(record, "system", required=False)
    asked, answered = _check_history(record)
    _check_images(record)
    return _Checked(
        prompt + asked,
        response + answered,
        None,
        _present(record, "input", "system", "history", "images"),
    )


def _check_text(record: Mapping[str, Any], layout: Layout) -> _Checked:
    return _Checked(len(_text(record, "text")), 0, None, ())


def _message_content(message: Any, label: str, tags: Tags) -> str:
    if not isinstance(message, dict):
        raise _Invalid(f"{label} must be an object with '{tags.role}' and '{tags.content}'")
    content = message.get(tags.content)
    if not isinstance(content, str) or not content.strip():
        raise _Invalid(f"{label}: '{tags.content}' must be a non-empty string")
    return content


def _check_conversation(
    record: Mapping[str, Any], key: str, tags: Tags, *, ranking: bool
) -> tuple[int, int]:
    """(user-side, model-side) characters of a conversation in LLaMA-Factory's rules: an
    optional system message first, then user-side and model-side turns alternating; it ends
    with an answer, or with a question when the answers are `chosen` / `rejected`."""
    messages = record.get(key)
    if not isinstance(messages, list) or not messages:
        raise _Invalid(f"'{key}' must be a non-empty list of messages")
    first = 0
    if isinstance(messages[0], dict) and messages[0].get(tags.role) == tags.system:
        if not isinstance(messages[0].get(tags.content), str):
            raise _Invalid(f"message 1: '{tags.content}' must be a string")
        first = 1
    asked = answered = 0
    for index in range(first, len(messages)):
        turn = index - first
        expected = tags.user_side if turn % 2 == 0 else tags.model_side
        message = messages[index]
        content = _message_content(message, f"message {index + 1}", tags)
        role = message.get(tags.role)
        if role not in expected:
            wanted = " or ".join(repr(name) for name in expected)
            raise _Invalid(f"message {index + 1}: role {_short(role)} where {wanted} was expected")
        if turn % 2 == 0:
            asked += len(content)
        else:
            answered += len(content)
    turns = len(messages) - first
    if turns == 0:
        raise _Invalid(f"'{key}' holds no messages besides the system prompt")
    if ranking and turns % 2 == 0:
        raise _Invalid(
            f"'{key}' must end with a message from {tags.user!r} (the answers are chosen/rejected)"
        )
    if not ranking and turns % 2 == 1:
        raise _Invalid(f"'{key}' must end with an answer from {tags.assistant!r}")
    return asked, answered


def _check_messages(record: Mapping[str, Any], layout: Layout) -> _Checked:
    assert layout.messages is not None and layout.tags is not None
    asked, answered = _check_conversation(record, layout.messages, layout.tags, ranking=False)
    _text(record, "system", required=False)
    _text(record, "tools", required=False)
    _check_images(record)
    return _Checked(asked, answered, None, _present(record, "system", "tools", "images"))


def _different(chosen: str, rejected: str) -> None:
    if chosen == rejected:
        raise _Invalid("'chosen' and 'rejected' are the same answer")


def _check_preference(record: Mapping[str, Any], layout: Layout) -> _Checked:
    if layout.messages is not None:
        tags = layout.tags
        assert tags is not None
        asked, _ = _check_conversation(record, layout.messages, tags, ranking=True)
        answers = []
        for key in ("chosen", "rejected"):
            message = record.get(key)
            if not isinstance(message, dict) or message.get(tags.role) not in tags.model_side:
                raise _Invalid(
                    f"'{key}' must be a message {{'{tags.role}': '{tags.assistant}', "
                    f"'{tags.content}': ...}}"
                )
            answers.append(_message_content(message, f"'{key}'", tags))
        _different(answers[0], answers[1])
        _text(record, "system", required=False)
        _text(record, "tools", required=False)
        _check_images(record)
        return _Checked(
            asked,
            len(answers[0]),
            len(answers[1]),
            _present(record, "system", "tools", "images"),
        )
    assert layout.prompt is not None
    prompt = _prompt_and_query(record, layout.prompt)
    chosen = _text(record, "chosen")
    rejected = _text(record, "rejected")
    _different(chosen, rejected)
    _text(record, "system", required=False)
    _check_images(record)
    return _Checked(
        prompt, len(chosen), len(rejected), _present(record, "input", "system", "images")
    )


def _check_kto(record: Mapping[str, Any], layout: Layout) -> _Checked:
    checked = _check_messages(record, layout) if layout.messages else _check_alpaca(record, layout)
    key = layout.kto_tag
    assert key is not None
    if key not in record:
        raise _Invalid(f"'{key}' is missing (true: a desirable answer, false: an undesirable one)")
    tag = record[key]
    if not isinstance(tag, bool):
        hint = " (without quotes; CSV has no booleans: write KTO data as JSON or JSON Lines)"
        raise _Invalid(
            f"'{key}' must be the JSON boolean true or false, not {_short(tag)}"
            + (hint if isinstance(tag, str) else "")
        )
    return replace(checked, label=tag)


_CHECKS: dict[str, Callable[[Mapping[str, Any], Layout], _Checked]] = {
    "alpaca": _check_alpaca,
    "sharegpt": _check_messages,
    "openai": _check_messages,
    "preference": _check_preference,
    "kto": _check_kto,
    "text": _check_text,
}

_UNRECOGNISED = (
    "No known format: expected alpaca (instruction, output), sharegpt (conversations of "
    "from/value), openai (messages of role/content), preference (prompt, chosen, rejected), "
    "kto (one of those with a true/false kto_tag) or text fields"
)


def _message_style(messages: Any) -> Tags | None:
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        if "role" in messages[0]:
            return OPENAI_TAGS
        if "from" in messages[0]:
            return SHAREGPT_TAGS
    return None


def _kto_key(record: Mapping[str, Any]) -> str | None:
    """The key of a record's KTO flag: `kto_tag` whatever its value (a wrong one is reported),
    `label` only when it is a boolean (elsewhere it is just a column)."""
    if "kto_tag" in record:
        return "kto_tag"
    if isinstance(record.get("label"), bool):
        return "label"
    return None


def detect(value: Any) -> tuple[str, Layout] | None:
    """The format a record looks like (by its keys, before any rule is checked) and where its
    parts are; None when it looks like none."""
    if not isinstance(value, dict):
        return None
    key = "conversations" if "conversations" in value else "messages"
    tags = _message_style(value.get(key))
    kto = _kto_key(value)
    if kto is not None and not ("chosen" in value and "rejected" in value):
        if tags is not None:
            return "kto", Layout(messages=key, tags=tags, kto_tag=kto)
        if "instruction" in value or "output" in value:
            return "kto", Layout(prompt="instruction", kto_tag=kto)
    if "chosen" in value and "rejected" in value:
        if tags is not None:
            return "preference", Layout(messages=key, tags=tags)
        for prompt in ("prompt", "instruction"):
            if prompt in value:
                return "preference", Layout(prompt=prompt)
        return None
    if tags is not None:
        return ("openai" if tags is OPENAI_TAGS else "sharegpt"), Layout(messages=key, tags=tags)
    if "instruction" in value or "output" in value:
        return "alpaca", Layout(prompt="instruction")
    if "text" in value:
        return "text", Layout(prompt="text")
    return None


class _Lengths:
    """Count, total, min, max and a fixed-size uniform sample (for percentiles) of lengths."""

    def __init__(self, seed: int) -> None:
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0
        self.sample: list[int] = []
        self._random = random.Random(seed).random  # sampling, not secrets

    def add(self, value: int) -> None:
        if self.count == 0 or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value
        if len(self.sample) < SAMPLE_SIZE:
            self.sample.append(value)
        else:
            slot = int(self._random() * self.count)
            if slot < SAMPLE_SIZE:
                self.sample[slot] = value

    def summary(self) -> dict[str, float | int] | None:
        if not self.count:
            return None
        ordered = sorted(self.sample)
        return {
            "min": self.min,
            "max": self.max,
            "mean": round(self.total / self.count, 1),
            "p50": round(_percentile(ordered, 50), 1),
            "p95": round(_percentile(ordered, 95), 1),
        }


def _percentile(ordered: list[int], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) of a sorted list."""
    position = (len(ordered) - 1) * pct / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


@dataclass
class ValidationResult:
    """What validation found: counts, the first errors, length statistics and, for a file that
    is ready to train on, the dataset_info spec (`dataset_info_entry` without the file name)."""

    file_format: str
    detected_format: str
    rows: int
    valid_rows: int
    invalid_rows: int
    errors: list[dict[str, Any]]
    error_count: int
    stats: dict[str, Any]
    llamafactory: dict[str, Any] | None

    @property
    def status(self) -> str:
        """`ready` when there are records and every one of them (and the file) is valid."""
        return "ready" if self.llamafactory is not None else "invalid"


class Validator:
    """Feed it the records of one file in order (`add`), then read `result()`."""

    def __init__(self, file_format: str) -> None:
        if file_format not in FILE_FORMATS:
            raise ValueError(f"unknown file format {file_format!r}")
        self.file_format = file_format
        self.detected: str | None = "text" if file_format == "txt" else None
        self.layout = Layout(prompt="text") if file_format == "txt" else Layout()
        self._check: Callable[[Mapping[str, Any], Layout], _Checked] | None = None
        self.rows = 0
        self.valid_rows = 0
        self.invalid_rows = 0
        self.errors: list[dict[str, Any]] = []
        self.error_count = 0
        self._types: dict[str, tuple[str, int]] = {}
        self.prompt = _Lengths(1)
        self.response = _Lengths(2)
        self.rejected = _Lengths(3)
        self.labels = {True: 0, False: 0}  # kto: valid records by flag

    def _error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append({"line": line, "message": message})

    def _invalid(self, line: int, message: str) -> None:
        self.invalid_rows += 1
        self._error(line, message)

    def _same_types(self, record: Mapping[str, Any], line: int) -> None:
        types = self._types
        for key, value in record.items():
            if value is None:
                continue
            kind = _KIND_NAMES.get(type(value)) or _kind(value)
            known = types.get(key)
            if known is None:
                types[key] = (kind, line)
            elif known[0] is not kind and known[0] != kind:
                raise _Invalid(
                    f"'{key}' is {kind} here but {known[0]} on line {known[1]} "
                    "(a field keeps one type across records)"
                )

    def add(self, record: RawRecord) -> None:
        """Count and check one record."""
        if not record.is_row:
            self._error(record.line, record.error or "Unreadable file")
            return
        self.rows += 1
        if record.error is not None:
            self._invalid(record.line, record.error)
            return
        value = record.value
        if self.file_format == "txt":
            # Lines are never blank here; a line is a sample as it is.
            self.valid_rows += 1
            self.prompt.add(len(value))
            return
        if self._check is None:
            found = detect(value)
            if found is None:
                if isinstance(value, dict):
                    self._invalid(record.line, _UNRECOGNISED)
                else:
                    self._invalid(
                        record.line, f"A record must be a JSON object, not {_kind(value)}"
                    )
                return
            self.detected, self.layout = found
            self._check = _CHECKS[self.detected]
        if not isinstance(value, dict):
            self._invalid(record.line, f"A record must be a JSON object, not {_kind(value)}")
            return
        try:
            checked = self._check(value, self.layout)
            self._same_types(value, record.line)
        except _Invalid as exc:
            self._invalid(record.line, str(exc))
            return
        self.valid_rows += 1
        self.layout.optional.update(checked.optional)
        self.prompt.add(checked.prompt_chars)
        if self.detected != "text":
            self.response.add(checked.response_chars)
        if checked.rejected_chars is not None:
            self.rejected.add(checked.rejected_chars)
        if checked.label is not None:
            self.labels[checked.label] += 1

    def result(self) -> ValidationResult:
        """The findings so far."""
        stats: dict[str, Any] = {
            "prompt": self.prompt.summary(),
            "response": self.response.summary(),
            "total_chars": self.prompt.total + self.response.total + self.rejected.total,
        }
        if self.rejected.count:
            stats["rejected"] = self.rejected.summary()
        if self.detected == "kto":
            stats["labels"] = {
                "desirable": self.labels[True],
                "undesirable": self.labels[False],
            }
        detected = self.detected or "unknown"
        ready = self.rows > 0 and self.error_count == 0 and detected != "unknown"
        return ValidationResult(
            file_format=self.file_format,
            detected_format=detected,
            rows=self.rows,
            valid_rows=self.valid_rows,
            invalid_rows=self.invalid_rows,
            errors=list(self.errors),
            error_count=self.error_count,
            stats=stats,
            llamafactory=llamafactory_spec(detected, self.layout) if ready else None,
        )


def validate_file(path: Path, file_format: str) -> ValidationResult:
    """Read the whole file once, as a stream, and validate every record."""
    validator = Validator(file_format)
    for record in iter_records(path, file_format):
        validator.add(record)
    return validator.result()


# ============================================================================ LLaMA-Factory


def _tags_entry(tags: Tags) -> dict[str, str] | None:
    if tags is SHAREGPT_TAGS:
        return None  # LLaMA-Factory's defaults
    return {
        "role_tag": tags.role,
        "content_tag": tags.content,
        "user_tag": tags.user,
        "assistant_tag": tags.assistant,
        "system_tag": tags.system,
    }


def llamafactory_spec(detected: str, layout: Layout) -> dict[str, Any]:
    """The dataset_info entry of a file in `detected` format laid out as `layout`, without
    `file_name` (see LLaMA-Factory's data/README.md)."""
    optional = layout.optional
    columns: dict[str, str] = {}
    spec: dict[str, Any] = {}
    if detected in ("alpaca", "text") or (detected in ("preference", "kto") and layout.prompt):
        assert layout.prompt is not None
        spec["formatting"] = "alpaca"
        columns["prompt"] = layout.prompt
        if "input" in optional:
            columns["query"] = "input"
        if detected in ("alpaca", "kto"):
            columns["response"] = "output"
        if "history" in optional:
            columns["history"] = "history"
    elif detected in ("sharegpt", "openai", "preference", "kto"):
        assert layout.messages is not None and layout.tags is not None
        spec["formatting"] = "sharegpt"
        columns["messages"] = layout.messages
        if "tools" in optional:
            columns["tools"] = "tools"
    else:
        raise ValueError(f"no dataset_info for format {detected!r}")
    if detected == "preference":
        spec["ranking"] = True
        columns["chosen"] = "chosen"
        columns["rejected"] = "rejected"
    if detected == "kto":
        assert layout.kto_tag is not None
        columns["kto_tag"] = layout.kto_tag
    for name in ("system", "images"):
        if name in optional:
            columns[name] = name
    spec["columns"] = columns
    if layout.tags is not None:
        tags = _tags_entry(layout.tags)
        if tags:
            spec["tags"] = tags
    return spec


def dataset_info_entry(spec: Mapping[str, Any], file_name: str) -> dict[str, Any]:
    """The `dataset_info.json` entry for a dataset file placed at `file_name` (relative to the
    job's dataset_dir), from the spec stored with the dataset (`Dataset.llamafactory`)."""
    parts = file_name.replace("\\", "/").split("/")
    if (
        not file_name
        or file_name.startswith(("/", "\\"))
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ValueError(f"file_name must be a relative path inside dataset_dir: {file_name!r}")
    if spec.get("formatting") not in ("alpaca", "sharegpt") or not spec.get("columns"):
        raise ValueError("not a dataset_info spec (formatting and columns are required)")
    entry: dict[str, Any] = {"file_name": file_name, "formatting": spec["formatting"]}
    if spec.get("ranking"):
        entry["ranking"] = True
    entry["columns"] = dict(spec["columns"])
    if spec.get("tags"):
        entry["tags"] = dict(spec["tags"])
    return entry


# ================================================================================ preview


@dataclass(frozen=True)
class PreviewItem:
    """One record for display: its value (long strings and lists clipped) or its error."""

    line: int
    record: Any
    error: str | None


def _clip(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= PREVIEW_TEXT_MAX else value[:PREVIEW_TEXT_MAX] + "…"
    if depth > 20:
        return "…"
    if isinstance(value, list):
        items = [_clip(item, depth + 1) for item in value[:PREVIEW_ITEMS_MAX]]
        if len(value) > PREVIEW_ITEMS_MAX:
            items.append(f"… {len(value) - PREVIEW_ITEMS_MAX} more")
        return items
    if isinstance(value, dict):
        return {key: _clip(item, depth + 1) for key, item in value.items()}
    return value


def preview(
    path: Path, file_format: str, offset: int, limit: int
) -> tuple[list[PreviewItem], bool]:
    """Records offset .. offset+limit-1 (in file order, unreadable ones included with their
    error) and whether more follow. Reading stops after the page."""
    items: list[PreviewItem] = []
    has_more = False
    records = iter_records(path, file_format, skip=offset)
    try:
        for record in records:
            if not record.is_row:
                continue
            if len(items) == limit:
                has_more = True
                break
            if record.error is not None:
                items.append(PreviewItem(record.line, None, record.error))
            elif file_format == "txt":
                items.append(PreviewItem(record.line, {"text": _clip(record.value)}, None))
            else:
                items.append(PreviewItem(record.line, _clip(record.value), None))
    finally:
        records.close()
    return items, has_more
