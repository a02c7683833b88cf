"""Prompt content rules without a database: markers, validation, conversion, rendering."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from app.services import prompt_format as pf
from app.services.prompt_format import ConversionError, Problem

SAMPLES = [
    "You are a helpful assistant.",
    "你是一名乐于助人的助手。\n请用中文回答。",
    "Line one\n\n  indented line\n\ttabbed\ntrailing spaces   \nend",
    "Translate {{ source_lang }} to {{ target_lang }}.\n保留格式。",
    '{"looks": "like json"}',
    "- a markdown list\n- with `code`\n\n```python\nprint('hi')\n```\n",
    "key: value\nother: [1, 2]",
    "yes",
    "  leading and trailing whitespace  \n",
    "special chars: \\ \" ' # & * ! | > % @ ` \u00e9 \U0001f600",
    "windows\r\nline endings\r\n",
    "\n\nstarts with blank lines",
    "- starts like a yaml list",
    "null",
    "123",
]

DATA = [
    {"role": "translator", "rules": ["keep format", "只输出译文"], "temperature": 0.2},
    [1, 2.5, True, None, "x", {"nested": {"deep": [{}]}}],
    {"empty": [], "blank": "", "multi": "a\nb\n", "yes": "yes", "num_str": "123", "n": -7},
    {"中文键": "中文值", "long": "word " * 300},
    "just a string",
    42,
]


# ------------------------------------------------------------------------------- validate


def test_valid_text_lists_variables_in_order() -> None:
    result = pf.validate("Hi {{ name }}, {{lang}} and {{ name }} again", "text")
    assert result.valid
    assert result.errors == []
    assert result.variables == ["name", "lang"]


@pytest.mark.parametrize("content", ["", "   ", "\n\t\n"])
def test_empty_content_is_an_error(content: str) -> None:
    result = pf.validate(content, "text")
    assert not result.valid
    assert result.errors == [Problem(1, 1, "Content is empty")]


def test_too_long_points_at_the_first_character_beyond_the_limit() -> None:
    content = "a" * 100 + "\n" + "b" * pf.CONTENT_MAX
    result = pf.validate(content, "text")
    assert not result.valid
    (error,) = result.errors
    assert (error.line, error.column) == (2, pf.CONTENT_MAX - 101 + 1)
    assert "limit" in error.message


def test_exactly_the_limit_is_valid() -> None:
    assert pf.validate("a" * pf.CONTENT_MAX, "text").valid


def test_unclosed_marker_reports_its_position() -> None:
    result = pf.validate("first line\nsecond {{ name and more", "text")
    assert [(e.line, e.column) for e in result.errors] == [(2, 8)]
    assert "Unclosed" in result.errors[0].message


def test_marker_must_close_on_the_same_line() -> None:
    result = pf.validate("a {{ name\n}} b", "text")
    assert [(e.line, e.column) for e in result.errors] == [(1, 3), (2, 1)]


def test_marker_reopened_before_closing() -> None:
    result = pf.validate("x {{ a {{ b }}", "markdown")
    assert [(e.line, e.column) for e in result.errors] == [(1, 3)]
    assert result.variables == ["b"]


def test_stray_closing_braces_in_text() -> None:
    result = pf.validate("ok {{ a }}\n  done }} here", "text")
    assert [(e.line, e.column) for e in result.errors] == [(2, 8)]
    assert "without a matching" in result.errors[0].message


def test_invalid_variable_name() -> None:
    result = pf.validate("x {{ 1abc }} y {{ a-b }} {{ }}", "text")
    assert [(e.line, e.column) for e in result.errors] == [(1, 3), (1, 16), (1, 26)]
    assert all("Invalid variable name" in e.message for e in result.errors)


def test_escapes_are_not_markers() -> None:
    result = pf.validate("literal {{{{ not_a_var }}}} here", "text")
    assert result.valid
    assert result.variables == []


def test_closing_braces_are_syntax_in_json_and_yaml() -> None:
    assert pf.validate('{"a": {"b": {"c": 1}}}', "json").valid
    assert pf.validate("a: {b: {c: 1}}", "yaml").valid


def test_malformed_json_position() -> None:
    result = pf.validate('{\n  "a": 1,\n  "b": \n}', "json")
    (error,) = result.errors
    assert (error.line, error.column) == (4, 1)
    assert error.message.startswith("Invalid JSON")


def test_malformed_json_with_chinese_counts_characters() -> None:
    result = pf.validate('{"名字": "值" "x"}', "json")
    (error,) = result.errors
    assert (error.line, error.column) == (1, 12)


def test_json_with_variables_in_strings_and_values() -> None:
    result = pf.validate('{"lang": "{{ lang }}", "n": {{ count }}}', "json")
    assert result.valid
    assert result.variables == ["lang", "count"]


def test_malformed_yaml_position() -> None:
    result = pf.validate("a: 1\nb: [1, 2\nc: 3", "yaml")
    (error,) = result.errors
    assert error.line == 3
    assert error.column is not None
    assert error.message.startswith("Invalid YAML")


def test_yaml_bad_indentation() -> None:
    result = pf.validate("a:\n  b: 1\n c: 2", "yaml")
    (error,) = result.errors
    assert error.line == 3


def test_yaml_with_variables() -> None:
    result = pf.validate("a: {{ x }}\nb: '{{ y }}'\nc: plain {{ z }}", "yaml")
    assert result.valid, result.errors
    assert result.variables == ["x", "y", "z"]


def test_text_format_does_not_parse_json() -> None:
    assert pf.validate('{"broken": ', "text").valid
    assert not pf.validate('{"broken": ', "json").valid


def test_declared_variable_warnings() -> None:
    result = pf.validate("Hi {{ name }}\nfrom {{ sender }}", "text", ["name", "unused"])
    assert result.valid
    assert [(w.line, w.column, w.message) for w in result.warnings] == [
        (2, 6, "Variable 'sender' is used but not declared"),
        (None, None, "Variable 'unused' is declared but not used"),
    ]


def test_no_variable_warnings_without_a_declaration() -> None:
    assert pf.validate("Hi {{ name }}", "text").warnings == []


# --------------------------------------------------------------------------------- render


def test_render_fills_and_lists_missing() -> None:
    content, missing = pf.render("{{ a }}-{{b}}-{{ c }}-{{ a }}-{{ c }}", {"a": "1", "b": "二"})
    assert content == "1-二-{{ c }}-1-{{ c }}"
    assert missing == ["c"]


def test_render_escapes() -> None:
    content, missing = pf.render("{{{{ a }}}} = {{ a }}", {"a": "x"})
    assert (content, missing) == ("{{ a }} = x", [])


def test_render_json_keeps_closing_braces() -> None:
    content, _ = pf.render('{"a": {"b": "{{ v }}"}}}}', {"v": "1"}, "json")
    assert content == '{"a": {"b": "1"}}}}'


def test_render_values_are_not_rescanned() -> None:
    content, missing = pf.render("{{ a }}", {"a": "{{ b }}"})
    assert (content, missing) == ("{{ b }}", [])


# -------------------------------------------------------------------------------- convert


@pytest.mark.parametrize("target", pf.CONVERT_FORMATS)
@pytest.mark.parametrize("source", ["text", "markdown"])
@pytest.mark.parametrize("sample", SAMPLES)
def test_plain_prompt_round_trips_through_every_format(
    sample: str, source: str, target: str
) -> None:
    converted = pf.convert(sample, source, target)
    assert pf.convert(converted, target, source) == sample


def test_text_conversions_have_the_documented_shapes() -> None:
    s = "第一行\n第二行"
    assert pf.convert(s, "text", "markdown") == s
    assert json.loads(pf.convert(s, "text", "json")) == {"prompt": s}
    assert yaml.safe_load(pf.convert(s, "text", "yaml")) == {"prompt": s}
    assert pf.convert(s, "text", "yaml") == "prompt: |-\n  第一行\n  第二行\n"
    assert json.loads(pf.convert(s, "text", "openai-messages")) == [
        {"role": "system", "content": s}
    ]
    assert "第一行" in pf.convert(s, "text", "json")  # non-ASCII kept readable


@pytest.mark.parametrize("value", DATA)
def test_json_yaml_round_trip_is_lossless(value: Any) -> None:
    as_json = json.dumps(value, ensure_ascii=False)
    as_yaml = pf.convert(as_json, "json", "yaml")
    assert yaml.safe_load(as_yaml) == value
    back = pf.convert(as_yaml, "yaml", "json")
    assert json.loads(back) == value
    assert pf.convert(back, "json", "yaml") == as_yaml


def test_messages_round_trips() -> None:
    messages = [
        {"role": "system", "content": "你好\n世界"},
        {"role": "user", "content": "hi"},
    ]
    content = json.dumps(messages)
    for middle in ("json", "yaml"):
        there = pf.convert(content, "openai-messages", middle)
        assert json.loads(pf.convert(there, middle, "openai-messages")) == messages


def test_system_messages_join_into_text() -> None:
    content = json.dumps(
        [{"role": "system", "content": "one"}, {"role": "system", "content": "two"}]
    )
    assert pf.convert(content, "openai-messages", "text") == "one\n\ntwo"


def test_json_string_and_prompt_object_become_text() -> None:
    assert pf.convert('"hello"', "json", "text") == "hello"
    assert pf.convert('{"prompt": "hi"}', "json", "markdown") == "hi"
    assert pf.convert("prompt: hi", "yaml", "text") == "hi"


def test_other_json_is_kept_verbatim_as_text() -> None:
    content = '{"role": "x", "rules": [1, 2]}'
    assert pf.convert(content, "json", "text") == content


def test_same_format_is_unchanged_when_well_formed() -> None:
    assert pf.convert('{ "a" : 1 }', "json", "json") == '{ "a" : 1 }'
    with pytest.raises(ConversionError):
        pf.convert("{", "json", "json")


@pytest.mark.parametrize(
    ("content", "source", "target", "reason"),
    [
        ("[1, 2, 3]", "json", "openai-messages", "converts to openai-messages"),
        ('{"a": 1}', "json", "openai-messages", "converts to openai-messages"),
        ("{not json", "json", "yaml", "not valid JSON"),
        ("a: [1,", "yaml", "json", "not valid YAML"),
        ("when: 2024-01-01", "yaml", "json", "has no JSON form"),
        ("1: one", "yaml", "json", "not a string"),
        ("x: .nan", "yaml", "json", "NaN"),
        ("[]", "openai-messages", "text", "non-empty JSON array"),
        ('[{"role": "tool", "content": "x"}]', "openai-messages", "json", "non-empty"),
        ('[{"role": "user", "content": "x"}]', "openai-messages", "text", "Only system"),
        ("NaN", "json", "yaml", None),
    ],
)
def test_impossible_conversions(content: str, source: str, target: str, reason: str | None) -> None:
    if reason is None:
        # json.loads accepts NaN; dumping to yaml keeps it (YAML has .nan), back to json fails.
        as_yaml = pf.convert(content, source, target)
        with pytest.raises(ConversionError):
            pf.convert(as_yaml, "yaml", "json")
        return
    with pytest.raises(ConversionError) as caught:
        pf.convert(content, source, target)
    assert reason in str(caught.value)


def test_find_variables_ignores_escapes_and_bad_markers() -> None:
    assert pf.find_variables("{{{{ x }}}} {{ y }} {{ 9 }} {{ y }} {{z}}") == ["y", "z"]
