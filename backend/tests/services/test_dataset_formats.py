"""Dataset files without a database: streamed readers, detection, the rules of every format with
line numbers, statistics, flat memory, preview, and the LLaMA-Factory dataset_info entry."""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from app.services import dataset_formats as formats
from app.services.dataset_formats import ValidationResult, dataset_info_entry, validate_file

IMAGE_ID = "0123456789abcdef0123456789abcdef"
# The dataset_info tags of OpenAI-style messages (LLaMA-Factory's defaults are ShareGPT's).
OPENAI_INFO_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def jsonl(tmp_path: Path, lines: list[Any], name: str = "data.jsonl") -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    return write(tmp_path, name, text)


def check(path: Path, file_format: str | None = None) -> ValidationResult:
    return validate_file(path, file_format or path.suffix[1:])


def errors(result: ValidationResult) -> list[tuple[int, str]]:
    return [(item["line"], item["message"]) for item in result.errors]


def alpaca(i: int = 0, **extra: Any) -> dict[str, Any]:
    return {"instruction": f"question {i}", "input": "", "output": f"answer {i}", **extra}


def sharegpt(*turns: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {"conversations": [{"from": r, "value": v} for r, v in turns], **extra}


def openai(*turns: tuple[str, str]) -> dict[str, Any]:
    return {"messages": [{"role": r, "content": c} for r, c in turns]}


# ------------------------------------------------------------------------------- alpaca


def test_alpaca_jsonl_is_ready_with_spec_and_stats(tmp_path: Path) -> None:
    rows = [
        {"instruction": "abcd", "input": "ef", "output": "1234567890", "system": "be brief"},
        {"instruction": "ab", "output": "12", "history": [["hi", "hello"]]},
        {"instruction": "", "input": "abc", "output": "123456", "images": [IMAGE_ID]},
    ]
    result = check(jsonl(tmp_path, rows))
    assert result.status == "ready"
    assert (result.detected_format, result.rows, result.valid_rows, result.invalid_rows) == (
        "alpaca",
        3,
        3,
        0,
    )
    assert result.errors == [] and result.error_count == 0
    assert result.llamafactory == {
        "formatting": "alpaca",
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "history": "history",
            "system": "system",
            "images": "images",
        },
    }
    # prompt: instruction + input (+ history questions); response: output (+ history answers)
    assert result.stats["prompt"] == {"min": 3, "max": 6, "mean": 4.3, "p50": 4.0, "p95": 5.8}
    assert result.stats["response"] == {"min": 6, "max": 10, "mean": 7.7, "p50": 7.0, "p95": 9.7}
    assert result.stats["total_chars"] == 13 + 23
    assert "rejected" not in result.stats


def test_alpaca_broken_rows_have_their_line_numbers(tmp_path: Path) -> None:
    lines: list[Any] = [
        alpaca(1),  # 1
        "",  # 2: blank lines are not records
        "{not json",  # 3
        [1, 2],  # 4
        {"instruction": "q"},  # 5
        {"instruction": "q", "output": "   "},  # 6
        {"instruction": "q", "input": 5, "output": "a"},  # 7
        {"instruction": "q", "output": "a", "history": [["only one"]]},  # 8
        {"instruction": "q", "output": "a", "history": "no"},  # 9
        {"input": "", "output": "a", "instruction": ""},  # 10
        {"output": "a"},  # 11
        {"instruction": "q", "output": "a", "images": ["/etc/passwd"]},  # 12
        {"instruction": "q", "output": "a", "system": ["x"]},  # 13
        alpaca(14),  # 14
    ]
    path = jsonl(tmp_path, lines)
    with path.open("ab") as fh:
        fh.write(b'{"instruction": "caf\xe9", "output": "a"}\n')  # 15: Latin-1, not UTF-8
    result = check(path)
    assert result.status == "invalid"
    assert result.llamafactory is None
    assert (result.rows, result.valid_rows, result.invalid_rows) == (14, 2, 12)
    found = errors(result)
    assert [line for line, _ in found] == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]
    messages = dict(found)
    assert messages[3].startswith("Invalid JSON: Expecting property name")
    assert messages[4] == "A record must be a JSON object, not a list"
    assert messages[5] == "'output' is missing"
    assert messages[6] == "'output' is empty"
    assert messages[7] == "'input' must be a string, not a number"
    assert messages[8] == "'history' item 1 must be a [question, answer] pair of strings"
    assert messages[9] == "'history' must be a list of [question, answer] pairs, not a string"
    assert messages[10] == "'instruction' is empty"
    assert messages[11] == "'instruction' is missing"
    assert "uploaded image ids" in messages[12]
    assert messages[13] == "'system' must be a string, not a list"
    assert messages[15] == "Not valid UTF-8 text"


def test_a_field_keeps_one_type(tmp_path: Path) -> None:
    result = check(jsonl(tmp_path, [alpaca(1, meta="x"), alpaca(2, meta=None), alpaca(3, meta=3)]))
    assert errors(result) == [
        (
            3,
            "'meta' is a number here but a string on line 1 "
            "(a field keeps one type across records)",
        )
    ]


def test_only_the_first_errors_are_kept_but_all_are_counted(tmp_path: Path) -> None:
    lines = [alpaca(0)] + [{"instruction": "q"}] * 150
    result = check(jsonl(tmp_path, lines))
    assert (result.invalid_rows, result.error_count, len(result.errors)) == (150, 150, 100)
    assert result.errors[0]["line"] == 2 and result.errors[-1]["line"] == 101


# ---------------------------------------------------------------------------- sharegpt


def test_sharegpt_good(tmp_path: Path) -> None:
    rows = [
        sharegpt(("human", "hi"), ("gpt", "hello"), system="be nice"),
        sharegpt(
            ("system", "inline system"),
            ("human", "weather?"),
            ("function_call", '{"name": "weather"}'),
            ("observation", "sunny"),
            ("gpt", "It is sunny"),
            tools='[{"name": "weather"}]',
        ),
    ]
    result = check(jsonl(tmp_path, rows))
    assert result.status == "ready", result.errors
    assert result.detected_format == "sharegpt"
    assert result.llamafactory == {
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "tools": "tools", "system": "system"},
    }
    # user side: hi | weather? + sunny; model side: hello | call + It is sunny
    assert result.stats["prompt"]["min"] == 2 and result.stats["prompt"]["max"] == 13
    assert result.stats["response"]["max"] == len('{"name": "weather"}') + len("It is sunny")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (sharegpt(("human", "hi")), "'conversations' must end with an answer from 'gpt'"),
        (sharegpt(("gpt", "hi"), ("human", "x")), "message 1: role 'gpt' where 'human' or"),
        (
            sharegpt(("human", "a"), ("human", "b")),
            "message 2: role 'human' where 'gpt' or 'function_call' was expected",
        ),
        (
            sharegpt(("human", "a"), ("gpt", "b"), ("system", "c"), ("gpt", "d")),
            "message 3: role 'system' where",
        ),
        (sharegpt(("human", "a"), ("gpt", "")), "message 2: 'value' must be a non-empty string"),
        (sharegpt(("human", "a"), ("gpt", 5)), "message 2: 'value' must be a non-empty string"),
        ({"conversations": []}, "'conversations' must be a non-empty list of messages"),
        (
            {"conversations": [{"from": "human", "value": "a"}, "gpt: b"]},
            "message 2 must be an object with 'from' and 'value'",
        ),
        (sharegpt(("system", "only")), "'conversations' holds no messages besides"),
        (sharegpt(("human", "a"), ("gpt", "b"), tools=["x"]), "'tools' must be a string"),
    ],
)
def test_sharegpt_broken(tmp_path: Path, record: dict[str, Any], message: str) -> None:
    good = sharegpt(("human", "hi"), ("gpt", "hello"))
    result = check(jsonl(tmp_path, [good, record, good]))
    assert result.status == "invalid"
    assert result.detected_format == "sharegpt"
    assert (result.valid_rows, result.invalid_rows) == (2, 1)
    [(line, found)] = errors(result)
    assert line == 2
    assert found.startswith(message), found


# ------------------------------------------------------------------------------ openai


def test_openai_messages(tmp_path: Path) -> None:
    good = openai(("system", "sys"), ("user", "hi"), ("assistant", "hello"))
    rows: list[Any] = [
        good,
        openai(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")),
        openai(("user", "a"), ("tool", "b")),
        openai(("user", "a")),
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
    ]
    result = check(jsonl(tmp_path, rows))
    assert result.detected_format == "openai"
    assert errors(result) == [
        (3, "message 2: role 'tool' where 'assistant' was expected"),
        (4, "'messages' must end with an answer from 'assistant'"),
        (5, "message 1: 'content' must be a non-empty string"),
    ]
    ready = check(jsonl(tmp_path, rows[:2], "ok.jsonl"))
    assert ready.status == "ready"
    assert ready.llamafactory == {
        "formatting": "sharegpt",
        "columns": {"messages": "messages"},
        "tags": OPENAI_INFO_TAGS,
    }


# -------------------------------------------------------------------------- preference


def test_preference_prompt_style(tmp_path: Path) -> None:
    rows = [
        {"prompt": "p1", "chosen": "good", "rejected": "bad", "system": ""},
        {"prompt": "p22", "chosen": "better", "rejected": "worse", "system": "s"},
    ]
    result = check(jsonl(tmp_path, rows))
    assert result.status == "ready"
    assert result.detected_format == "preference"
    assert result.llamafactory == {
        "formatting": "alpaca",
        "ranking": True,
        "columns": {
            "prompt": "prompt",
            "chosen": "chosen",
            "rejected": "rejected",
            "system": "system",
        },
    }
    assert result.stats["response"]["max"] == 6  # chosen
    assert result.stats["rejected"] == {"min": 3, "max": 5, "mean": 4.0, "p50": 4.0, "p95": 4.9}


def test_preference_instruction_input_and_broken_rows(tmp_path: Path) -> None:
    rows: list[Any] = [
        {"instruction": "q", "input": "ctx", "chosen": "a", "rejected": "b"},
        {"instruction": "q", "input": "ctx", "chosen": "same", "rejected": "same"},
        {"instruction": "q", "chosen": "a", "rejected": ""},
        {"instruction": "q", "chosen": "a"},
        {"instruction": "q", "output": "x"},
    ]
    result = check(jsonl(tmp_path, rows))
    assert result.detected_format == "preference"
    assert errors(result) == [
        (2, "'chosen' and 'rejected' are the same answer"),
        (3, "'rejected' is empty"),
        (4, "'rejected' is missing"),
        (5, "'chosen' is missing"),
    ]
    assert result.status == "invalid"
    spec = formats.llamafactory_spec("preference", formats.Layout(prompt="instruction"))
    assert spec["columns"] == {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}


def test_preference_sharegpt_style(tmp_path: Path) -> None:
    def pref(*turns: tuple[str, str], chosen: Any, rejected: Any) -> dict[str, Any]:
        return sharegpt(*turns, chosen=chosen, rejected=rejected)

    good = pref(
        ("human", "q1"),
        ("gpt", "a1"),
        ("human", "q2"),
        chosen={"from": "gpt", "value": "good"},
        rejected={"from": "gpt", "value": "bad"},
    )
    rows = [
        good,
        pref(
            ("human", "q"),
            ("gpt", "a"),
            chosen={"from": "gpt", "value": "x"},
            rejected={"from": "gpt", "value": "y"},
        ),
        pref(("human", "q"), chosen="just text", rejected={"from": "gpt", "value": "y"}),
        pref(("human", "q"), chosen={"from": "human", "value": "x"}, rejected={"from": "gpt"}),
        pref(
            ("human", "q"),
            chosen={"from": "gpt", "value": "x"},
            rejected={"from": "gpt", "value": ""},
        ),
    ]
    result = check(jsonl(tmp_path, rows))
    assert result.detected_format == "preference"
    assert errors(result) == [
        (
            2,
            "'conversations' must end with a message from 'human' "
            "(the answers are chosen/rejected)",
        ),
        (3, "'chosen' must be a message {'from': 'gpt', 'value': ...}"),
        (4, "'chosen' must be a message {'from': 'gpt', 'value': ...}"),
        (5, "'rejected': 'value' must be a non-empty string"),
    ]
    ready = check(jsonl(tmp_path, [good], "ok.jsonl"))
    assert ready.status == "ready"
    assert ready.llamafactory == {
        "formatting": "sharegpt",
        "ranking": True,
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
    }


# --------------------------------------------------------------------------------- kto


def test_kto_conversations_with_a_kto_tag(tmp_path: Path) -> None:
    rows = [
        {**openai(("user", "2+2?"), ("assistant", "4")), "kto_tag": True},
        {**openai(("system", "s"), ("user", "2+2?"), ("assistant", "5")), "kto_tag": False},
        {**openai(("user", "hi"), ("assistant", "hello")), "kto_tag": True},
    ]
    result = check(jsonl(tmp_path, rows))
    assert (result.status, result.detected_format, result.valid_rows) == ("ready", "kto", 3)
    assert result.stats["labels"] == {"desirable": 2, "undesirable": 1}
    assert result.stats["response"]["max"] == 5
    assert result.llamafactory == {
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "kto_tag": "kto_tag"},
        "tags": OPENAI_INFO_TAGS,
    }


def test_kto_alpaca_and_llamafactorys_label_key(tmp_path: Path) -> None:
    # LLaMA-Factory's kto_en_demo names the flag `label`; alpaca records work as well.
    rows = [alpaca(1, label=True), alpaca(2, label=False, system="s")]
    result = check(jsonl(tmp_path, rows))
    assert (result.status, result.detected_format) == ("ready", "kto")
    assert result.stats["labels"] == {"desirable": 1, "undesirable": 1}
    assert result.llamafactory == {
        "formatting": "alpaca",
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "system": "system",
            "kto_tag": "label",
        },
    }
    sharegpt_rows = [sharegpt(("human", "q"), ("gpt", "a"), label=False)]
    assert check(jsonl(tmp_path, sharegpt_rows, "s.jsonl")).llamafactory == {
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "kto_tag": "label"},
    }


def test_kto_flags_must_be_json_booleans(tmp_path: Path) -> None:
    # LLaMA-Factory trains a record whose flag is not a boolean as plain SFT, silently.
    rows = [
        alpaca(1, kto_tag=True),
        alpaca(2, kto_tag="true"),
        alpaca(3, kto_tag=1),
        alpaca(4),
        {"instruction": "q", "kto_tag": False},
    ]
    result = check(jsonl(tmp_path, rows))
    assert (result.status, result.detected_format, result.valid_rows) == ("invalid", "kto", 1)
    assert errors(result) == [
        (
            2,
            "'kto_tag' must be the JSON boolean true or false, not 'true' (without quotes; CSV "
            "has no booleans: write KTO data as JSON or JSON Lines)",
        ),
        (3, "'kto_tag' must be the JSON boolean true or false, not 1"),
        (4, "'kto_tag' is missing (true: a desirable answer, false: an undesirable one)"),
        (5, "'output' is missing"),
    ]
    assert result.stats["labels"] == {"desirable": 1, "undesirable": 0}
    # A conversation must end with the answer the flag judges.
    asked = [{**openai(("user", "q"), ("assistant", "a")), "kto_tag": True}]
    asked.append({**openai(("user", "q")), "kto_tag": False})
    result = check(jsonl(tmp_path, asked, "c.jsonl"))
    assert errors(result) == [(2, "'messages' must end with an answer from 'assistant'")]
    csv_file = write(tmp_path, "k.csv", "instruction,output,kto_tag\nq,a,true\n")
    from_csv = check(csv_file)
    assert (from_csv.status, from_csv.detected_format) == ("invalid", "kto")
    assert "CSV has no booleans" in from_csv.errors[0]["message"]


def test_kto_detection() -> None:
    found = formats.detect({**openai(("user", "q"), ("assistant", "a")), "kto_tag": None})
    assert found is not None and found[0] == "kto" and found[1].kto_tag == "kto_tag"
    # `label` is a KTO flag only as a boolean; elsewhere it is an ordinary column.
    found = formats.detect(alpaca(label="positive"))
    assert found is not None and found[0] == "alpaca" and found[1].kto_tag is None
    # A preference record keeps its pairs; a flag does not make text KTO.
    found = formats.detect({"prompt": "q", "chosen": "a", "rejected": "b", "kto_tag": True})
    assert found is not None and found[0] == "preference"
    found = formats.detect({"text": "doc", "kto_tag": True})
    assert found is not None and found[0] == "text"


# -------------------------------------------------------------------------------- text


def test_text_records_and_txt_lines(tmp_path: Path) -> None:
    result = check(jsonl(tmp_path, [{"text": "doc one"}, {"text": ""}, {"text": 3}]))
    assert result.detected_format == "text"
    assert errors(result) == [(2, "'text' is empty"), (3, "'text' must be a string, not a number")]
    assert result.stats["response"] is None

    txt = write(
        tmp_path,
        "corpus.txt",
        b"\xef\xbb\xbffirst line\r\n\n   \nsecond\n\xff\xfe broken\nlast without newline",
    )
    result = check(txt)
    assert (result.detected_format, result.rows, result.valid_rows) == ("text", 4, 3)
    assert errors(result) == [(5, "Not valid UTF-8 text")]
    fixed = write(tmp_path, "ok.txt", "first line\n\nsecond\n")
    result = check(fixed)
    assert result.status == "ready"
    assert result.llamafactory == {"formatting": "alpaca", "columns": {"prompt": "text"}}
    assert result.stats["prompt"]["min"] == 6 and result.stats["prompt"]["max"] == 10


# ------------------------------------------------------------------- detection in general


def test_unrecognised_records_and_mixed_formats(tmp_path: Path) -> None:
    rows: list[Any] = [
        {"question": "q", "answer": "a"},
        '"a string"',
        alpaca(3),
        sharegpt(("human", "hi"), ("gpt", "hello")),
    ]
    result = check(jsonl(tmp_path, rows))
    assert result.detected_format == "alpaca"
    found = errors(result)
    assert [line for line, _ in found] == [1, 2, 4]
    assert found[0][1].startswith("No known format: expected alpaca")
    assert found[1][1] == "A record must be a JSON object, not a string"
    assert found[2][1] == "'instruction' is missing"

    nothing = check(jsonl(tmp_path, [{"a": 1}], "unknown.jsonl"))
    assert (nothing.detected_format, nothing.status, nothing.llamafactory) == (
        "unknown",
        "invalid",
        None,
    )


def test_detect() -> None:
    assert formats.detect([]) is None
    assert formats.detect({"chosen": "a", "rejected": "b"}) is None  # no prompt
    found = formats.detect({"messages": [{"role": "user"}], "chosen": {}, "rejected": {}})
    assert found is not None and found[0] == "preference"
    assert found[1].tags is formats.OPENAI_TAGS and found[1].messages == "messages"
    found = formats.detect({"conversations": [{"role": "user", "content": "x"}]})
    assert found is not None and found[0] == "openai" and found[1].messages == "conversations"
    found = formats.detect({"output": "x"})
    assert found is not None and found[0] == "alpaca"


# ------------------------------------------------------------------------------- json


def _array(records: list[Any]) -> str:
    return json.dumps(records, indent=2, ensure_ascii=False)


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1024 * 1024])
def test_json_array_is_read_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(formats, "READ_CHUNK", chunk)
    records = [
        sharegpt(("human", "héllo\nwörld ✓"), ("gpt", "12345"), n=12345),
        sharegpt(("human", "x"), ("gpt", "y"), n=1.5),
        {"conversations": [{"from": "human", "value": "x"}]},
    ]
    path = write(tmp_path, "data.json", "\ufeff" + _array(records))
    result = check(path)
    assert result.detected_format == "sharegpt"
    assert (result.rows, result.valid_rows) == (3, 2)
    assert errors(result) == [(28, "'conversations' must end with an answer from 'gpt'")]
    assert [r.line for r in formats.iter_records(path, "json")] == [2, 15, 28]


@pytest.mark.parametrize(
    ("text", "rows", "found"),
    [
        ('[{"text": "a"},\n{"text": "b"', 2, [(2, "Invalid JSON: Expecting ',' delimiter")]),
        ('[{"text": "a"},\n{"text": "unterminated}]', 2, [(2, "Invalid JSON: Unterminated")]),
        ('[{"text": "a"},\n{"text": "b"}', 2, [(2, "The array is not closed (missing ']')")]),
        ('[{"text": "a"},', 1, [(1, "The array is not closed (missing ']')")]),
        ('[{"text": "a"},\n]', 1, [(2, "A comma before ']' (JSON has no trailing commas)")]),
        ('[{"text": "a"} {"text": "b"}]', 1, [(1, "Expected ',' or ']' after a record")]),
        ('[{"text": "a"}]\n[]', 1, [(2, "Unexpected data after the closing ']'")]),
        ('[{"text": NaN}]', 1, [(1, "Invalid JSON: NaN is not valid JSON")]),
        ("42", 0, [(1, "A .json file must hold an array of records")]),
        ("[]", 0, []),
        ("  \n", 0, []),
    ],
)
def test_json_file_errors(
    tmp_path: Path, text: str, rows: int, found: list[tuple[int, str]]
) -> None:
    result = check(write(tmp_path, "data.json", text))
    assert result.status == "invalid"
    assert result.rows == rows
    got = errors(result)
    assert [line for line, _ in got] == [line for line, _ in found]
    for (_, message), (_, prefix) in zip(got, found, strict=True):
        assert message.startswith(prefix), message


def test_json_lines_in_a_json_file(tmp_path: Path) -> None:
    path = write(tmp_path, "data.json", '{"text": "a"}\n\n{"text": "b"}\n')
    result = check(path)
    assert (result.status, result.rows) == ("ready", 2)
    assert [r.line for r in formats.iter_records(path, "json")] == [1, 3]


def test_json_bad_utf8_stops_reading(tmp_path: Path) -> None:
    result = check(write(tmp_path, "data.json", b'[{"text": "a"},\n{"text": "\xff"}]'))
    assert result.status == "invalid"
    assert errors(result) == [(1, "Not valid UTF-8 text")]


def test_records_over_the_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "MAX_RECORD_BYTES", 100)
    monkeypatch.setattr(formats, "READ_CHUNK", 16)
    long = {"text": "x" * 500}
    result = check(jsonl(tmp_path, [{"text": "a"}, long, {"text": "b"}]))
    assert (result.rows, result.valid_rows) == (3, 2)
    assert errors(result) == [(2, "The record is longer than 100 bytes")]
    result = check(write(tmp_path, "data.json", _array([{"text": "a"}, long, {"text": "b"}])))
    assert result.rows == 2  # the reader cannot tell where the long element ends: it stops
    assert errors(result) == [(5, "The record is longer than 100 bytes")]
    monkeypatch.setattr(formats, "READ_CHUNK", 4096)  # read whole at once: skipped, not fatal
    result = check(tmp_path / "data.json")
    assert (result.rows, result.valid_rows) == (3, 2)
    assert errors(result) == [(5, "The record is longer than 100 bytes")]


# -------------------------------------------------------------------------------- csv


def test_csv_by_header(tmp_path: Path) -> None:
    text = (
        "\ufeffinstruction,input,output\n"
        "q1,,a1\n"
        '"multi\nline question",ctx,"an ""answer"""\n'
        "\n"
        "q3,,\n"
        "q4,only two\n"
        'q5,"bad"quote,a5\n'
        "q6,,a6\n"
    )
    result = check(write(tmp_path, "data.csv", text))
    assert result.detected_format == "alpaca"
    assert (result.rows, result.valid_rows) == (6, 3)
    assert errors(result) == [
        (6, "'output' is empty"),
        (7, "Expected 3 columns as in the header, found 2"),
        (8, "Invalid CSV: ',' expected after '\"'"),
    ]
    preview, _ = formats.preview(tmp_path / "data.csv", "csv", 1, 1)
    assert preview[0].line == 3
    assert preview[0].record == {
        "instruction": "multi\nline question",
        "input": "ctx",
        "output": 'an "answer"',
    }
    good = check(write(tmp_path, "ok.csv", "instruction,input,output\nq1,,a1\nq2,x,a2\n"))
    assert good.status == "ready"
    assert good.llamafactory == {
        "formatting": "alpaca",
        "columns": {"prompt": "instruction", "query": "input", "response": "output"},
    }


def test_csv_preference_and_text_headers(tmp_path: Path) -> None:
    pref = check(write(tmp_path, "p.csv", "prompt,chosen,rejected\np,good,bad\n"))
    assert (pref.status, pref.detected_format) == ("ready", "preference")
    assert pref.llamafactory is not None and pref.llamafactory["ranking"] is True
    text = check(write(tmp_path, "t.csv", "text\ndocument one\ndocument two\n"))
    assert (text.status, text.detected_format, text.rows) == ("ready", "text", 2)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("a,a\n1,2\n", [(1, "Duplicate column name 'a' in the header")]),
        ('text\n"never closed\nmore\n', [(2, "Invalid CSV: unexpected end of data")]),
        ("question,answer\nq,a\n", [(2, "No known format: expected alpaca")]),
        (b"text\nok\n\xff\n", [(3, "Not valid UTF-8 text")]),
    ],
)
def test_csv_errors(tmp_path: Path, text: str | bytes, found: list[tuple[int, str]]) -> None:
    result = check(write(tmp_path, "data.csv", text))
    assert result.status == "invalid"
    got = errors(result)
    assert [line for line, _ in got] == [line for line, _ in found]
    for (_, message), (_, prefix) in zip(got, found, strict=True):
        assert message.startswith(prefix), message


# ------------------------------------------------------------------------- statistics


def test_percentiles_come_from_a_uniform_sample(tmp_path: Path) -> None:
    lengths = formats._Lengths(seed=7)
    values = list(range(1, 100_001))
    random.Random(1).shuffle(values)
    for value in values:
        lengths.add(value)
    summary = lengths.summary()
    assert summary is not None
    assert (summary["min"], summary["max"], summary["mean"]) == (1, 100_000, 50_000.5)
    assert len(lengths.sample) == formats.SAMPLE_SIZE
    assert abs(summary["p50"] - 50_000) < 2_000
    assert abs(summary["p95"] - 95_000) < 1_000
    assert formats._Lengths(seed=1).summary() is None


# ------------------------------------------------------------------------------ memory


def _big_jsonl(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            fh.write(
                json.dumps(
                    {
                        "instruction": f"Explain item {i} in a few words",
                        "input": "",
                        "output": "Some answer text " * (1 + i % 9),
                    }
                )
                + "\n"
            )


def _peak(path: Path) -> tuple[ValidationResult, int]:
    tracemalloc.start()
    try:
        result = validate_file(path, "jsonl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_validation_memory_stays_flat(tmp_path: Path) -> None:
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    _big_jsonl(small, 5_000)
    _big_jsonl(big, 100_000)
    small_result, small_peak = _peak(small)
    result, peak = _peak(big)
    assert (small_result.valid_rows, result.valid_rows) == (5_000, 100_000)
    assert result.status == "ready"
    size = big.stat().st_size
    # 20 times the rows, ~13 MB of file: the peak grows only by the filling of the samples.
    assert peak < 3 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte file"
    assert peak < small_peak + 1024 * 1024, (small_peak, peak)


# ------------------------------------------------------------------------------ preview


def test_preview_pages_and_clips(tmp_path: Path) -> None:
    lines: list[Any] = [{"text": f"row {i}"} for i in range(5)]
    lines.insert(2, "{broken")
    lines.append({"text": "y" * 5000, "items": list(range(150))})
    path = jsonl(tmp_path, lines)
    items, more = formats.preview(path, "jsonl", 0, 3)
    assert more is True
    assert [(i.line, i.record, i.error) for i in items] == [
        (1, {"text": "row 0"}, None),
        (2, {"text": "row 1"}, None),
        (3, None, "Invalid JSON: Expecting property name enclosed in double quotes (column 2)"),
    ]
    items, more = formats.preview(path, "jsonl", 5, 10)
    assert more is False
    assert [i.line for i in items] == [6, 7]
    clipped = items[1].record
    assert len(clipped["text"]) == formats.PREVIEW_TEXT_MAX + 1 and clipped["text"].endswith("…")
    assert len(clipped["items"]) == formats.PREVIEW_ITEMS_MAX + 1
    assert clipped["items"][-1] == "… 50 more"
    assert formats.preview(path, "jsonl", 100, 10) == ([], False)
    txt = write(tmp_path, "a.txt", "one\n\ntwo\nthree\n")
    items, more = formats.preview(txt, "txt", 1, 1)
    assert [(i.line, i.record) for i in items] == [(3, {"text": "two"})] and more is True
    array = write(tmp_path, "a.json", _array([{"text": "a"}, {"text": "b"}, {"text": "c"}]))
    items, _ = formats.preview(array, "json", 2, 5)
    assert [(i.line, i.record) for i in items] == [(8, {"text": "c"})]


def test_file_helpers(tmp_path: Path) -> None:
    assert formats.file_format_of("a.JSONL") == "jsonl"
    assert formats.file_format_of("notes.txt") == "txt"
    assert formats.file_format_of("tool.exe") is None
    assert formats.file_format_of("json") is None
    assert formats.looks_binary(write(tmp_path, "a.bin", b"MZ\x90\x00\x03"))
    assert not formats.looks_binary(write(tmp_path, "a.txt", "héllo"))
    assert formats.looks_binary(write(tmp_path, "u16.txt", "hello".encode("utf-16")))


# ------------------------------------------------------------- LLaMA-Factory dataset_info


def _entry(records: list[Any], tmp_path: Path, name: str = "data.jsonl") -> dict[str, Any]:
    result = check(jsonl(tmp_path, records, name))
    assert result.llamafactory is not None, result.errors
    return dataset_info_entry(result.llamafactory, name)


def test_dataset_info_entries_match_llamafactory_documentation(tmp_path: Path) -> None:
    """The entries LLaMA-Factory's data/README.md gives for each documented format."""
    # Alpaca supervised fine-tuning, every column.
    assert _entry([alpaca(1, system="s", history=[["q0", "a0"]])], tmp_path, "data.json") == {
        "file_name": "data.json",
        "formatting": "alpaca",
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "history": "history",
            "system": "system",
        },
    }
    # Pre-training: only the prompt column.
    assert _entry([{"text": "document"}], tmp_path) == {
        "file_name": "data.jsonl",
        "formatting": "alpaca",
        "columns": {"prompt": "text"},
    }
    # Alpaca preference: ranking + instruction/input/chosen/rejected.
    assert _entry(
        [{"instruction": "q", "input": "i", "chosen": "good", "rejected": "bad"}], tmp_path
    ) == {
        "file_name": "data.jsonl",
        "formatting": "alpaca",
        "ranking": True,
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "chosen": "chosen",
            "rejected": "rejected",
        },
    }
    # ShareGPT supervised fine-tuning with system and tools.
    assert _entry([sharegpt(("human", "q"), ("gpt", "a"), system="s", tools="[]")], tmp_path) == {
        "file_name": "data.jsonl",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "tools": "tools", "system": "system"},
    }
    # OpenAI messages: sharegpt formatting with role/content tags.
    assert _entry([openai(("system", "s"), ("user", "q"), ("assistant", "a"))], tmp_path) == {
        "file_name": "data.jsonl",
        "formatting": "sharegpt",
        "columns": {"messages": "messages"},
        "tags": OPENAI_INFO_TAGS,
    }
    # The model-test DPO export (model_test_service): prompt/chosen/rejected + system + images.
    dpo = {"prompt": "<image>q", "chosen": "a", "rejected": "b", "system": "", "images": [IMAGE_ID]}
    assert _entry([dpo], tmp_path) == {
        "file_name": "data.jsonl",
        "formatting": "alpaca",
        "ranking": True,
        "columns": {
            "prompt": "prompt",
            "chosen": "chosen",
            "rejected": "rejected",
            "system": "system",
            "images": "images",
        },
    }


@pytest.mark.parametrize("name", ["", "/etc/data.json", "../data.json", "a/../b.json", "a//b"])
def test_dataset_info_entry_refuses_paths_outside_the_dataset_dir(name: str) -> None:
    spec = {"formatting": "alpaca", "columns": {"prompt": "text"}}
    with pytest.raises(ValueError):
        dataset_info_entry(spec, name)
    assert dataset_info_entry(spec, "3/corpus.txt")["file_name"] == "3/corpus.txt"
    with pytest.raises(ValueError):
        dataset_info_entry({"columns": {}}, "a.json")
