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


# ------------------------------------------------------------- markers through conversion

PERSONA_YAML = (
    "role: support agent for {{ product }}\n"
    "tone: friendly and concise\n"
    "language: {{ language }}\n"
    "rules:\n"
    "  - Answer only questions about the product.\n"
    "  - Never ask for passwords.\n"
)

# Templates whose markers sit in every kind of place: inside strings, as whole values, as list
# items, in keys, in block scalars, with odd spacing.
TEMPLATES: list[tuple[str, str]] = [
    (PERSONA_YAML, "yaml"),
    ('{"lang": "{{ lang }}", "n": {{ count }}, "list": [{{ a }}, "x {{b}} y"]}', "json"),
    ('{"{{ key }}": {"deep": [{{ v }}, {"w": "{{\tw\t}}"}]}, "ok": true}', "json"),
    ("a: '{{ q }}'\nb: \"say {{ q }}\"\nc:\n  - {{ item }}\n  - plain {{ item }} text\n", "yaml"),
    ("prompt: |\n  Hello {{ name }}\n  {{ greeting }}, bye\n", "yaml"),
    ("{{ k }}: value\nflow: [x, y]\n", "yaml"),
    ("- {{ first }}\n- second {{ first }}\n", "yaml"),
]

# Distinctive values: render both sides with them and the data must match.
PROBE = {
    "product": "Acme",
    "language": "English",
    "lang": "de",
    "count": "3",
    "a": "A",
    "b": "B",
    "key": "K",
    "v": "V",
    "w": "W",
    "q": "Q",
    "item": "I",
    "name": "N",
    "greeting": "Hi",
    "k": "kk",
    "first": "F",
}


def _load(content: str, fmt: str) -> Any:
    if fmt == "json":
        return json.loads(content)
    if fmt == "openai-messages":
        return json.loads(content)
    return yaml.safe_load(content)


def test_builtin_yaml_persona_converts_to_every_format() -> None:
    as_json = pf.convert(PERSONA_YAML, "yaml", "json")
    assert '"language": {{ language }}' in as_json
    assert '"role": "support agent for {{ product }}"' in as_json
    assert pf.validate(as_json, "json").valid
    assert pf.find_variables(as_json, "json") == ["product", "language"]
    back = pf.convert(as_json, "json", "yaml")
    assert "language: {{ language }}\n" in back
    assert pf.validate(back, "yaml").valid
    assert pf.convert(back, "yaml", "json") == as_json
    # Other YAML data is itself a plain prompt: kept verbatim.
    assert pf.convert(PERSONA_YAML, "yaml", "text") == PERSONA_YAML
    with pytest.raises(ConversionError, match="openai-messages"):
        pf.convert(PERSONA_YAML, "yaml", "openai-messages")


@pytest.mark.parametrize(("content", "fmt"), TEMPLATES)
def test_templates_convert_between_json_and_yaml_without_loss(content: str, fmt: str) -> None:
    other = "yaml" if fmt == "json" else "json"
    there = pf.convert(content, fmt, other)
    result = pf.validate(there, other)
    assert result.valid, (there, result.errors)
    assert sorted(result.variables) == sorted(pf.find_variables(content, fmt))
    back = pf.convert(there, other, fmt)
    assert pf.validate(back, fmt).valid
    # The converted template means the same: filled in, both give the same data.
    expected = _load(pf.render(content, PROBE, fmt)[0], fmt)
    assert _load(pf.render(there, PROBE, other)[0], other) == expected
    assert _load(pf.render(back, PROBE, fmt)[0], fmt) == expected
    # A second round changes nothing.
    assert pf.convert(pf.convert(back, fmt, other), other, fmt) == back


@pytest.mark.parametrize(
    "content",
    [
        "Hello {{ name }}, {{\tlang\t}} and {{x}}",
        "{{ a }}",
        "Literal braces: {{{{ not a var }}}} and }}}} alone",
        "close }}}}} {{ v }}}}}}",
    ],
)
@pytest.mark.parametrize("target", ["json", "yaml", "openai-messages"])
def test_text_with_markers_round_trips(content: str, target: str) -> None:
    assert pf.validate(content, "text").valid
    there = pf.convert(content, "text", target)
    check_fmt = "json" if target == "openai-messages" else target
    result = pf.validate(there, check_fmt)
    assert result.valid, (there, result.errors)
    assert result.variables == pf.find_variables(content, "text")
    assert pf.convert(there, target, "text") == content
    # The same words once filled in.
    values = {name: f"<{name}>" for name in result.variables}
    rendered_text = pf.render(content, values, "text")[0]
    rendered = _load(pf.render(there, values, check_fmt)[0], target)
    inner = rendered[0]["content"] if target == "openai-messages" else rendered["prompt"]
    assert inner == rendered_text


def test_closing_braces_in_json_strings_are_escaped_for_text() -> None:
    # In JSON "}}" is ordinary text; in a text prompt it must be written "}}}}".
    text = pf.convert('{"prompt": "a }} b {{ v }}"}', "json", "text")
    assert text == "a }}}} b {{ v }}"
    assert pf.validate(text, "text").valid
    raw = '{"a": {"b": "{{ v }}"}}'
    as_text = pf.convert(raw, "json", "markdown")
    assert as_text == '{"a": {"b": "{{ v }}"}}}}'
    assert pf.validate(as_text, "markdown").valid
    assert pf.render(as_text, {"v": "1"}, "markdown")[0] == pf.render(raw, {"v": "1"}, "json")[0]


@pytest.mark.parametrize(
    ("content", "source", "target", "reason"),
    [
        ("{ {{ k }}: 1}", "json", "yaml", "key"),
        ('{"a": {{ x }}, "b": }', "json", "yaml", "line 1, column 21"),
        ("a: {{ x }}\nwhen: 2024-01-01", "yaml", "json", "has no JSON form"),
        ("a: {{ x }}\nb: [1,", "yaml", "json", "line 2"),
    ],
)
def test_impossible_conversions_with_markers(
    content: str, source: str, target: str, reason: str
) -> None:
    with pytest.raises(ConversionError) as caught:
        pf.convert(content, source, target)
    assert reason in str(caught.value)
    assert "mtvar" not in str(caught.value)  # no internal placeholder leaks


# ------------------------------------------------------------------ escaping when rendering

TRICKY = [
    "plain",
    "",
    " leading",
    "trailing ",
    "a: b",
    "x # y",
    "'single'",
    '"double"',
    "back\\slash \\n",
    "line1\nline2",
    "line1\n\nline3\n",
    "\ttab",
    "bell\x07 nul\x00 del\x7f",
    "- dash",
    "[a, b]",
    "{c: d}",
    "*star &amp !bang %pct @at `tick |pipe >gt ? q",
    "yes",
    "no",
    "~",
    "0x1F",
    "012",
    "中文：标点，“引号”",
    "emoji 😀",
    "seps \u2028 \u2029 \x85 nel",
    "win\r\nline",
    "{{ inner }}",
    "}} {{{{",
    "  ",
    "---",
    "...",
]


def test_render_json_escapes_values_in_strings() -> None:
    content = '{\n  "task": "Extract {{ fields }}",\n  "quote": "{{ q }}"\n}'
    for value in TRICKY:
        rendered, missing = pf.render(content, {"fields": value, "q": value}, "json")
        assert missing == []
        assert json.loads(rendered) == {"task": f"Extract {value}", "quote": value}, value


def test_render_json_bare_values() -> None:
    content = '{"n": {{ n }}, "list": [{{ n }}]}'
    cases: list[tuple[str, Any]] = [
        ("5", 5),
        ("-2.5e3", -2500.0),
        ("true", True),
        ("null", None),
        ('{"a": [1, "x"]}', {"a": [1, "x"]}),
        ('"already quoted"', "already quoted"),
        ("English", "English"),
        ("NaN", "NaN"),
        ("1 2", "1 2"),
        ("", ""),
        ('say "hi"\n', 'say "hi"\n'),
    ]
    for value, expected in cases:
        rendered, _ = pf.render(content, {"n": value}, "json")
        assert json.loads(rendered) == {"n": expected, "list": [expected]}, value


def test_render_json_leaves_missing_markers_and_stays_a_template() -> None:
    content = '{"a": "{{ a }}", "b": {{ b }}, "c": "{{{{ lit"}'
    rendered, missing = pf.render(content, {"a": 'x"y'}, "json")
    assert missing == ["b"]
    assert rendered == '{"a": "x\\"y", "b": {{ b }}, "c": "{{ lit"}'


YAML_CASES: list[tuple[str, Any]] = [
    ("role: support agent for {{ p }}\n", lambda v: {"role": f"support agent for {v}"}),
    ("a: {{ p }}\n", lambda v: {"a": v}),
    ("a: '{{ p }}'\n", lambda v: {"a": v}),
    ("a: 'it''s {{ p }}'\n", lambda v: {"a": f"it's {v}"}),
    ('a: "x {{ p }} y"\n', lambda v: {"a": f"x {v} y"}),
    ('a: "multi\n  line {{ p }}\n  end"\n', lambda v: {"a": f"multi line {v} end"}),
    ("a: |\n  x {{ p }}\n  y\n", lambda v: {"a": f"x {v}\ny\n"}),
    ("a: |-\n    {{ p }}\n", lambda v: {"a": v}),
    ("a: >\n  x {{ p }}\n  y\nb: 1\n", lambda v: {"a": f"x {v} y\n", "b": 1}),
    ("- {{ p }}\n- [{{ p }}, b]\n- {k: x{{ p }}}\n", lambda v: [v, [v, "b"], {"k": f"x{v}"}]),
    ("{{ p }}: 1\n", lambda v: {v: 1}),
    ("a: &anchor '{{ p }}'\nb: *anchor\n", lambda v: {"a": v, "b": v}),
    ("a: !!str {{ p }}\n", lambda v: {"a": v}),
    ("# note {{ p }}\na: 1\n", lambda v: {"a": 1}),
    ("x:\n  - |\n    {{ p }}\n  - y\n", lambda v: {"x": [f"{v}\n", "y"]}),
    ("{{ p }}", lambda v: v),
    ("a: x {{ p }} y  # comment {{ p }}\n", lambda v: {"a": f"x {v} y"}),
]


@pytest.mark.parametrize(("template", "expected"), YAML_CASES)
def test_render_yaml_keeps_the_document_valid(template: str, expected: Any) -> None:
    assert pf.validate(template, "yaml").valid
    for value in TRICKY:
        rendered, missing = pf.render(template, {"p": value}, "yaml")
        assert missing == []
        try:
            loaded = yaml.safe_load(rendered)
        except yaml.YAMLError as exc:  # pragma: no cover - the failure message
            pytest.fail(f"{value!r} broke the YAML:\n{rendered}\n{exc}")
        assert loaded == expected(value), (value, rendered)


def test_render_yaml_typed_values_and_readable_output() -> None:
    template = "n: {{ n }}\n"
    for value, expected in [
        ("5", 5),
        ("-2.5", -2.5),
        ("true", True),
        ("false", False),
        ("null", None),
        ("yes", "yes"),
        ("English", "English"),
    ]:
        rendered, _ = pf.render(template, {"n": value}, "yaml")
        loaded = yaml.safe_load(rendered)["n"]
        assert loaded == expected and type(loaded) is type(expected), (value, rendered)
    # Safe values go in as they are; a block stays a block.
    rendered, _ = pf.render(PERSONA_YAML, {"product": "Acme", "language": "English"}, "yaml")
    assert rendered == PERSONA_YAML.replace("{{ product }}", "Acme").replace(
        "{{ language }}", "English"
    )
    rendered, _ = pf.render("a: |\n  x {{ p }}\n  y\n", {"p": "one\ntwo"}, "yaml")
    assert rendered == "a: |\n  x one\n  two\n  y\n"


def test_render_yaml_missing_markers_stay_a_valid_template() -> None:
    rendered, missing = pf.render(PERSONA_YAML, {"product": 'Acme "Pro": v2'}, "yaml")
    assert missing == ["language"]
    assert "language: {{ language }}" in rendered
    assert pf.validate(rendered, "yaml").valid
    final, _ = pf.render(rendered, {"language": "de"}, "yaml")
    assert yaml.safe_load(final)["role"] == 'support agent for Acme "Pro": v2'


def test_render_text_and_markdown_stay_verbatim() -> None:
    for fmt in ("text", "markdown"):
        rendered, _ = pf.render('Say "{{ v }}"', {"v": 'a "b"\nc: d'}, fmt)
        assert rendered == 'Say "a "b"\nc: d"'


def test_render_yaml_that_does_not_parse_falls_back_to_plain_substitution() -> None:
    rendered, missing = pf.render("a: [ {{ v }}", {"v": "x"}, "yaml")
    assert (rendered, missing) == ("a: [ x", [])
