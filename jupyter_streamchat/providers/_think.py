"""Split a leading ``<think>…</think>`` block out of content deltas (some local servers inline reasoning)."""

from __future__ import annotations

from collections.abc import Iterator

from ._base import Delta, Reasoning

OPEN = "<think>"
CLOSE = "</think>"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class LeadingThinkSplitter:
    """Routes text to ``Reasoning`` while inside a think block that opens the reply, ``Delta`` otherwise.

    Tags may arrive split across chunks, so undecided text is held back until it is unambiguous.
    """

    __slots__ = ("_pending", "_state")

    def __init__(self) -> None:
        self._state = "start"  # start -> thinking -> after_think -> answer, or start -> answer
        self._pending = ""

    def feed(self, text: str) -> Iterator[Delta | Reasoning]:
        if self._state == "answer":
            yield Delta(text)
            return
        self._pending += text
        if self._state == "start":
            head = self._pending.lstrip()
            if not head or (OPEN.startswith(head) and head != OPEN):
                return
            if not head.startswith(OPEN):
                self._state, out, self._pending = "answer", self._pending, ""
                yield Delta(out)
                return
            self._state, self._pending = "thinking", head[len(OPEN) :]
        if self._state == "thinking":
            end = self._pending.find(CLOSE)
            if end < 0:
                keep = _partial_suffix(self._pending, CLOSE)
                thought = self._pending[: len(self._pending) - keep]
                self._pending = self._pending[len(self._pending) - keep :]
                if thought:
                    yield Reasoning(thought)
                return
            if end:
                yield Reasoning(self._pending[:end])
            self._state, self._pending = "after_think", self._pending[end + len(CLOSE) :]
        if self._state == "after_think":
            answer = self._pending.lstrip()
            if answer:
                self._state, self._pending = "answer", ""
                yield Delta(answer)

    def flush(self) -> Iterator[Delta | Reasoning]:
        pending, self._pending = self._pending, ""
        if not pending:
            return
        if self._state == "thinking":
            yield Reasoning(pending)
        elif self._state == "start":
            yield Delta(pending)
