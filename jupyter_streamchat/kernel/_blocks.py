"""Split a streaming Markdown reply into finished blocks and the open tail (source text, no rendering).

The same rule as the JupyterLab panel's ``labextension/src/blocks.ts``; the fixtures in
``tests/parity/markdown`` hold both to it. A block is finished when what follows cannot change how
it renders:

- a fenced code block, once its closing fence arrived;
- the text before a fence opener (a fence interrupts any paragraph);
- the text before a line that starts at column 0 after a blank line (as soon as its first character
  arrives). An indented line after a blank line may continue a list item, so it does not end the block.

A fence indented by 1-3 spaces after content of the open block may belong to a list item (LLMs write
``1. Install:\\n\\n   ```bash``): it neither ends the block before it nor is sealed on its own, so the
list item keeps its code.

Incremental: each update scans only the lines completed since the last one (the hot path).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# As JavaScript reads them: its "." stops at CR and the Unicode line separators.
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})([^\r\u2028\u2029]*)$")
_FENCE_CLOSE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*$")
_LINE_END = re.compile(r"\r?\n$")


@dataclass(slots=True)
class OpenFence:
    marker: str  # the opening run of ` or ~
    info: str
    code_start: int  # offset of the first code line
    indent: str  # the opener's indentation
    nested: bool  # part of the open block (maybe of a list item), not a block of its own


def closes_fence(line: str, marker: str) -> bool:
    """CommonMark: a closing fence is the same character, at least as long, nothing but spaces after."""
    match = _FENCE_CLOSE.match(line)
    return match is not None and match.group(1)[0] == marker[0] and len(match.group(1)) >= len(marker)


def fence_opener(line: str) -> re.Match[str] | None:
    """The fence ``line`` opens, if any (a backtick fence's info string has no backtick)."""
    match = _FENCE_OPEN.match(line)
    if match is None or (match.group(1)[0] == "`" and "`" in match.group(2)):
        return None
    return match


class MarkdownBlocks:
    """Feed the whole reply so far with ``update``; ``block_start`` is where the open block starts."""

    def __init__(self) -> None:
        self._text = ""
        self._scanned = 0  # offset of the first line not scanned yet
        self.block_start = 0
        self.fence: OpenFence | None = None
        self._after_blank = False  # the last scanned line was blank, after some content of the open block

    def _clear(self) -> None:
        self._text, self._scanned, self.block_start, self.fence, self._after_blank = "", 0, 0, None, False

    def update(self, text: str) -> list[str]:
        """The blocks finished by this text (in order); a text that does not extend the last one starts over."""
        start = max(0, self._scanned - 64)
        if len(text) < self._scanned or text[start : self._scanned] != self._text[start : self._scanned]:
            self._clear()
        self._text = text
        sealed: list[str] = []
        while (newline := text.find("\n", self._scanned)) != -1:
            self._line(self._scanned, newline + 1, sealed)
            self._scanned = newline + 1
        # A line begun at column 0 after a blank line ends the block before it, whatever the line becomes.
        if self._after_blank and self._scanned < len(text) and not text[self._scanned].isspace():
            self._seal(self._scanned, sealed)
            self._after_blank = False
        return sealed

    def finish(self, text: str) -> list[str]:
        """The reply is over: everything left becomes a finished block (an open fence is closed)."""
        sealed = self.update(text)
        if self._scanned < len(text):  # the end of the text ends its last line
            self._line(self._scanned, len(text), sealed)
        rest = text[self.block_start :]
        if rest.strip():
            fence = self.fence
            newline = "" if rest.endswith("\n") else "\n"
            sealed.append(rest if fence is None else f"{rest}{newline}{fence.indent}{fence.marker}\n")
        self.block_start = self._scanned = len(text)
        self.fence = None
        return sealed

    @property
    def tail(self) -> str:
        return self._text[self.block_start :]

    def _line(self, start: int, end: int, sealed: list[str]) -> None:
        line = _LINE_END.sub("", self._text[start:end])
        if self.fence is not None:
            if closes_fence(line, self.fence.marker):
                if not self.fence.nested:
                    self._seal(end, sealed)
                self.fence = None
            return
        opener = fence_opener(line)
        if opener is not None:
            indent = line[: len(line) - len(line.lstrip())]
            nested = indent != "" and self._text[self.block_start : start].strip() != ""
            if not nested:
                self._seal(start, sealed)
            self.fence = OpenFence(opener.group(1), opener.group(2).strip(), end, indent, nested)
            self._after_blank = False
            return
        if line.strip() == "":
            self._after_blank = self._text[self.block_start : start].strip() != ""
            return
        if self._after_blank and not line[0].isspace():
            self._seal(start, sealed)
        self._after_blank = False

    def _seal(self, end: int, sealed: list[str]) -> None:
        block = self._text[self.block_start : end]
        if block.strip():
            sealed.append(block)
        self.block_start = end
