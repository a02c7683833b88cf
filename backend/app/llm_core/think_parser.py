"""Split inline `<think>…</think>` reasoning out of model output, incrementally.

Rules (the same for streamed and complete text):

- `<think>` switches to reasoning, `</think>` back to content; either tag may be split across
  chunks at any character position (a possible tag prefix at the end of a chunk is held back
  until the next chunk or `flush()` decides).
- An unclosed `<think>` at the end: the rest is reasoning.
- Whitespace: leading whitespace of reasoning and of the content after `</think>` is dropped
  ("<think>\\nWhy…\\n</think>\\n\\nAnswer" -> reasoning "Why…", content "Answer"), trailing
  whitespace of reasoning is dropped, and whitespace before an opening `<think>` at the very
  start is dropped. Whitespace anywhere else is kept as sent.
- A missing opening tag (DeepSeek-R1 distills, whose chat template already opened `<think>`):
  for a complete text, `split_think()` treats everything before a leading `</think>` as
  reasoning. A stream cannot take back what it has already emitted, so the incremental parser
  only knows this when told: `ThinkParser(think_open=True)` starts in reasoning (as vLLM's
  deepseek_r1 reasoning parser does). Without it, a stray `</think>` is dropped and the text
  before it has already gone out as content.
"""

from __future__ import annotations

from typing import Literal

from app.llm_core.types import ChatChunk

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
_LONGEST = len(CLOSE_TAG)

_Kind = Literal["reasoning", "content"]


class ThinkParser:
    """Feed text deltas, get reasoning/content chunks; call `flush()` once at the end.

    `think_open=True` means the output starts inside a think block (see the module docstring).
    `provider_separates_reasoning()` cancels that assumption once a provider has shown that it
    sends reasoning in a field of its own (reasoning_content, thinking): its content is then
    plain content.
    """

    __slots__ = ("_assumed", "_at_start", "_hold", "_lstrip", "_pending", "_state")

    def __init__(self, *, think_open: bool = False) -> None:
        self._state: _Kind = "reasoning" if think_open else "content"
        self._pending = ""  # a possible partial tag at the end of the last chunk
        self._hold = ""  # whitespace not yet known to be worth emitting
        self._lstrip = think_open  # drop leading whitespace of the current section
        self._at_start = not think_open  # nothing but whitespace seen yet, in content
        self._assumed = think_open  # in the assumed-open block, nothing emitted yet

    @property
    def in_reasoning(self) -> bool:
        return self._state == "reasoning"

    def provider_separates_reasoning(self) -> None:
        """The provider sends reasoning in its own field: an assumed-open think block is not
        there after all (an explicit `<think>` in the content still counts)."""
        if self._assumed:
            self._assumed = False
            self._state = "content"
            self._lstrip = False
            self._at_start = True
            self._hold = ""

    def feed(self, text: str) -> list[ChatChunk]:
        """The chunks that `text` (the next delta) completes; may be empty."""
        if self._pending:
            text = self._pending + text
            self._pending = ""
        if "<" not in text:  # the common case: no tag can start here
            out: list[ChatChunk] = []
            self._emit(text, out)
            return out
        return self._scan(text)

    def flush(self) -> list[ChatChunk]:
        """Whatever is held back, at the end of the output."""
        out: list[ChatChunk] = []
        if self._pending:
            pending, self._pending = self._pending, ""
            self._emit(pending, out)  # never completed into a tag: it was literal text
        if self._state == "content" and self._hold and not self._at_start:
            self._push("content", self._hold, out)
        self._hold = ""  # trailing reasoning whitespace / a whitespace-only answer: dropped
        return out

    # ------------------------------------------------------------------ internals

    def _scan(self, text: str) -> list[ChatChunk]:
        out: list[ChatChunk] = []
        start = 0  # text[start:] not yet emitted
        search = 0
        length = len(text)
        while True:
            lt = text.find("<", search)
            if lt < 0:
                self._emit(text[start:], out)
                return out
            if text.startswith(OPEN_TAG, lt):
                self._emit(text[start:lt], out)
                self._open()
                start = search = lt + len(OPEN_TAG)
            elif text.startswith(CLOSE_TAG, lt):
                self._emit(text[start:lt], out)
                self._close()
                start = search = lt + len(CLOSE_TAG)
            elif length - lt < _LONGEST and (
                OPEN_TAG.startswith(text[lt:]) or CLOSE_TAG.startswith(text[lt:])
            ):
                self._emit(text[start:lt], out)
                self._pending = text[lt:]
                return out
            else:
                search = lt + 1  # a literal "<"

    def _open(self) -> None:
        # Held whitespace is either leading content ("\n\n<think>") or trailing reasoning
        # (a repeated `<think>`): neither is worth emitting.
        self._hold = ""
        self._state = "reasoning"
        self._lstrip = True
        self._at_start = False
        self._assumed = False

    def _close(self) -> None:
        # Drops reasoning's held trailing whitespace (or a stray close's leading whitespace).
        self._hold = ""
        self._state = "content"
        self._lstrip = True
        self._at_start = False
        self._assumed = False

    def _emit(self, text: str, out: list[ChatChunk]) -> None:
        if not text:
            return
        if self._lstrip:
            text = text.lstrip()
            if not text:
                return
            self._lstrip = False
        if self._state == "content":
            if self._at_start:
                # Hold leading whitespace until we know whether `<think>` follows it.
                if text.isspace():
                    self._hold += text
                    return
                self._at_start = False
            if self._hold:
                text = self._hold + text
                self._hold = ""
            self._push("content", text, out)
            return
        # Reasoning: hold trailing whitespace, which `</think>` would drop.
        body = text.rstrip()
        if not body:
            self._hold += text
            return
        tail = text[len(body) :]
        self._assumed = False
        if self._hold:
            body = self._hold + body
        self._hold = tail
        self._push("reasoning", body, out)

    @staticmethod
    def _push(kind: _Kind, text: str, out: list[ChatChunk]) -> None:
        if out and out[-1].kind == kind:
            out[-1] = ChatChunk(kind=kind, text=out[-1].text + text)
        else:
            out.append(ChatChunk(kind=kind, text=text))


def split_think(text: str, *, think_open: bool = False) -> tuple[str, str]:
    """(reasoning, content) of a complete text. A `</think>` with no `<think>` before it means
    the opening tag was omitted: everything before it is reasoning."""
    close = text.find(CLOSE_TAG)
    if close >= 0:
        open_ = text.find(OPEN_TAG)
        if open_ < 0 or open_ > close:
            think_open = True
    parser = ThinkParser(think_open=think_open)
    reasoning: list[str] = []
    content: list[str] = []
    for chunk in (*parser.feed(text), *parser.flush()):
        (reasoning if chunk.kind == "reasoning" else content).append(chunk.text)
    return "".join(reasoning), "".join(content)
