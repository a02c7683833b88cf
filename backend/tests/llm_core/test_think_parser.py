"""ThinkParser and split_think: tags split anywhere, missing/unclosed tags, whitespace."""

from __future__ import annotations

import pytest

from app.llm_core import ChatChunk, ThinkParser, split_think

REASONING = "The user greets me. I should greet back."
ANSWER = "Hello there! The answer is 42."
INLINE = f"<think>\n{REASONING}\n</think>\n\n{ANSWER}"


def run(pieces: list[str], *, think_open: bool = False) -> tuple[str, str, list[ChatChunk]]:
    parser = ThinkParser(think_open=think_open)
    chunks: list[ChatChunk] = []
    for piece in pieces:
        chunks += parser.feed(piece)
    chunks += parser.flush()
    reasoning = "".join(c.text for c in chunks if c.kind == "reasoning")
    content = "".join(c.text for c in chunks if c.kind == "content")
    return reasoning, content, chunks


@pytest.mark.parametrize("tag", ["<think>", "</think>"])
def test_tag_split_at_every_position(tag: str) -> None:
    start = INLINE.index(tag)
    for cut in range(start, start + len(tag) + 1):
        assert run([INLINE[:cut], INLINE[cut:]])[:2] == (REASONING, ANSWER), cut


def test_tag_split_across_three_chunks_everywhere() -> None:
    for i in range(len(INLINE) + 1):
        for j in range(i, min(i + 10, len(INLINE)) + 1):
            assert run([INLINE[:i], INLINE[i:j], INLINE[j:]])[:2] == (REASONING, ANSWER), (i, j)


def test_one_character_at_a_time() -> None:
    reasoning, content, chunks = run(list(INLINE))
    assert (reasoning, content) == (REASONING, ANSWER)
    # Reasoning chunks all come before content chunks.
    kinds = [c.kind for c in chunks]
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning")


def test_no_tags_is_all_content_and_streams_at_once() -> None:
    parser = ThinkParser()
    assert parser.feed("Hello ") == [ChatChunk(kind="content", text="Hello ")]
    assert parser.feed("world") == [ChatChunk(kind="content", text="world")]
    assert parser.flush() == []


def test_leading_whitespace_of_plain_answer_is_kept() -> None:
    assert run(["    indented code"])[:2] == ("", "    indented code")


def test_literal_angle_brackets_are_content() -> None:
    text = "a < b and <b>bold</b> and <thinking> and x <thin"
    assert run([text])[:2] == ("", text)
    assert run(list(text))[:2] == ("", text)


def test_partial_tag_at_the_end_is_flushed_as_text() -> None:
    parser = ThinkParser()
    assert parser.feed("answer <thi") == [ChatChunk(kind="content", text="answer ")]
    assert parser.flush() == [ChatChunk(kind="content", text="<thi")]


def test_unclosed_think_at_the_end_is_reasoning() -> None:
    assert run(["<think>still thinking", " about it\n"])[:2] == ("still thinking about it", "")


def test_missing_open_tag_complete_text() -> None:
    text = f"{REASONING}\n</think>\n\n{ANSWER}"
    assert split_think(text) == (REASONING, ANSWER)


def test_missing_open_tag_streamed_with_think_open() -> None:
    text = f"{REASONING}\n</think>\n\n{ANSWER}"
    for cut in range(len(text) + 1):
        assert run([text[:cut], text[cut:]], think_open=True)[:2] == (REASONING, ANSWER), cut


def test_missing_open_tag_streamed_without_hint_drops_the_stray_tag() -> None:
    # A stream cannot take back what it emitted: documented behaviour without think_open.
    reasoning, content, _ = run([f"{REASONING}\n</think>\n\n{ANSWER}"])
    assert reasoning == ""
    assert "</think>" not in content
    assert content.endswith(ANSWER)


def test_think_open_with_explicit_open_tag_too() -> None:
    assert run(["<think>\n", REASONING, "</think>", ANSWER], think_open=True)[:2] == (
        REASONING,
        ANSWER,
    )


def test_think_open_without_any_tag_is_reasoning() -> None:
    assert run(["just thoughts"], think_open=True)[:2] == ("just thoughts", "")


def test_provider_separates_reasoning_cancels_think_open() -> None:
    parser = ThinkParser(think_open=True)
    parser.provider_separates_reasoning()
    assert parser.feed("plain answer") == [ChatChunk(kind="content", text="plain answer")]


def test_whitespace_around_tags() -> None:
    assert run(["\n\n<think>\n\n  why  \n\n</think>\n\n\nanswer\n"])[:2] == ("why", "answer\n")
    # Whitespace inside the reasoning is kept; only its ends are trimmed.
    assert run(["<think>a\n\n", "b   ", "\n</think>c"])[:2] == ("a\n\nb", "c")


def test_empty_think_block() -> None:
    assert run(["<think>\n\n</think>\n\nAnswer"])[:2] == ("", "Answer")


def test_split_think_helper() -> None:
    assert split_think(INLINE) == (REASONING, ANSWER)
    assert split_think(ANSWER) == ("", ANSWER)
    assert split_think("<think>unclosed") == ("unclosed", "")
    assert split_think("") == ("", "")
