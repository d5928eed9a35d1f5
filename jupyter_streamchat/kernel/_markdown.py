"""Markdown for streamed replies: render finished blocks once, re-render only the open tail.

markdown-it-py parses (CommonMark, with GFM tables and strikethrough) and reports the source lines of
every top-level block, which is what telling a finished block from the open one needs; Pygments
highlights code. Raw HTML in a reply is escaped and images are not fetched: a reply is untrusted text.

``ProgressiveMarkdown.advance(text)`` splits the text seen so far into blocks that can no longer
change (returned once, as HTML to append) and the open tail (HTML that replaces the previous tail).
A long fenced code block is sealed in segments of complete lines, so no block makes the tail grow
without bound. ``render(text)`` renders a whole text at once (the final, exact rendering).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from pygments.lexers import get_lexer_by_name
from pygments.token import Comment, Keyword, Name, Number, String, _TokenType
from pygments.util import ClassNotFound

from ._blocks import MarkdownBlocks, closes_fence

# Complete lines of an open code block sealed at once: small enough to keep the tail short, large
# enough that segments (each its own <pre>) stay few.
CODE_SEGMENT_LINES = 16

# markdown-it's recursion guard drops every line below its nesting limit (20 token levels in the
# CommonMark preset: about 10 nested lists). Ours is lower, and below it the rest of the container
# shows as preformatted text instead: a reply nested that deep (lists in lists, quotes in quotes)
# keeps every word, and the recursion stays far from Python's own limit.
MAX_NESTING = 100
DEEPEST_LEVEL = 40  # two token levels per list (list + item): about 20 nested lists lay out as lists

# Only these token kinds are coloured (Pygments' short class names, styled in _static.STYLE). Names,
# operators and punctuation stay plain text: wrapping every token in a span would make code several
# times larger on the wire than the code itself.
_COLOURED: list[tuple[_TokenType, str]] = [
    (Comment, "c"),
    (String, "s"),
    (Number, "m"),
    (Keyword, "k"),
    (Name.Builtin, "nb"),
    (Name.Function, "nf"),
    (Name.Class, "nf"),
    (Name.Decorator, "nf"),
]


@lru_cache(maxsize=512)
def _css_class(token_type: _TokenType) -> str | None:
    for kind, css_class in _COLOURED:
        if token_type in kind:
            return css_class
    return None


def _highlight(code: str, lang: str, _attrs: Any = None) -> str:
    return _highlighted(code, lang.split()[0].lower() if lang.strip() else "")


# A block is highlighted when it is sealed and again in the final rendering of the whole reply.
@lru_cache(maxsize=256)
def _highlighted(code: str, lang: str) -> str:
    lexer = _lexer(lang) if lang else None
    if lexer is None:
        return html.escape(code)
    out: list[str] = []
    run_class: str | None = None
    run: list[str] = []
    for token_type, value in lexer.get_tokens(code):
        css_class = _css_class(token_type)
        if css_class != run_class and not (value.isspace() and run_class is not None):
            _flush(out, run_class, run)
            run_class, run = css_class, []
        run.append(value)
    _flush(out, run_class, run)
    return "".join(out)


def _flush(out: list[str], css_class: str | None, run: list[str]) -> None:
    if not run:
        return
    text = html.escape("".join(run), quote=False)
    out.append(f"<span class={css_class}>{text}</span>" if css_class else text)  # unquoted: no JSON escapes


@lru_cache(maxsize=64)
def _lexer(name: str) -> Any:
    try:
        return get_lexer_by_name(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def _too_deep(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """Below ``DEEPEST_LEVEL``: the rest of this container (the lines markdown-it would have dropped), as
    preformatted text."""
    if state.level < DEEPEST_LEVEL:
        return False
    last = start
    for line in range(start, end):
        if state.isEmpty(line):
            continue
        if state.sCount[line] < state.blkIndent:
            break  # the containing block ends: its parent lays out what follows
        last = line + 1
    if not silent:
        token = state.push("code_block", "code", 0)
        token.content = state.getLines(start, last, state.blkIndent, True)
        token.map = [start, last]
    state.line = last
    return True


def _parser(highlighted: bool) -> MarkdownIt:
    options: dict[str, Any] = {"html": False, "maxNesting": MAX_NESTING}
    if highlighted:
        options["highlight"] = _highlight
    parser = MarkdownIt("commonmark", options).enable(["table", "strikethrough"]).disable("image")
    parser.block.ruler.before("table", "too_deep", _too_deep)
    return parser


_HIGHLIGHTED = _parser(highlighted=True)
# The open tail changes on every render: highlighting it would multiply what is sent for code.
_PLAIN = _parser(highlighted=False)


def render(text: str) -> str:
    """The whole text, highlighted: what a finished reply looks like."""
    rendered: str = _HIGHLIGHTED.render(text)  # markdown-it's renderer is typed loosely
    return rendered


def code_segment(code: str, lang: str, *, first: bool, last: bool, highlighted: bool) -> str:
    """One piece of a code block sealed in pieces; CSS joins the pieces into one box."""
    classes = ["jsc-code-segment"]
    if first:
        classes.append("jsc-first")
    if last:
        classes.append("jsc-last")
    body = _highlight(code, lang) if highlighted else html.escape(code)
    lang_class = f' class="language-{html.escape(lang.split()[0])}"' if lang.strip() else ""
    return f'<pre class="{" ".join(classes)}"><code{lang_class}>{body}</code></pre>\n'


@dataclass(slots=True)
class _OpenFence:
    """A fenced code block whose first lines are already sealed."""

    marker: str  # "```" or "~~~" (at least three)
    lang: str
    indent: int  # the opener's indentation, removed from its code lines (CommonMark)


@dataclass(slots=True)
class Advance:
    sealed: str  # HTML of blocks sealed by this call, to append ("" if none)
    pending: str  # HTML of finished blocks not sealed yet (replaces the previous pending)
    tail: str  # HTML of the open block (replaces the previous tail)


class ProgressiveMarkdown:
    """Which text is finished is decided by ``_blocks.MarkdownBlocks`` (the panel's rule, held to it by
    ``tests/parity/markdown``); this class renders finished text once and the open tail each time."""

    def __init__(self) -> None:
        self._blocks = MarkdownBlocks()
        self._sealed_upto = 0  # characters of the text already sealed
        self._fence: _OpenFence | None = None
        self._pending_key: tuple[int, int] | None = None
        self._pending_html = ""
        self.open_chars = 0  # characters in the open tail after the last call

    @property
    def sealed_chars(self) -> int:
        """Characters of the text sealed so far (finished blocks and sealed pieces of an open code block)."""
        return self._sealed_upto

    def advance(self, text: str, final: bool = False, min_seal: int = 0) -> Advance:
        """``min_seal``: finished blocks adding up to fewer characters wait in ``pending`` (a second,
        rarely changing tail) rather than becoming a sealed piece of their own."""
        if final:
            self._blocks.finish(text)
            sealed = self._render_rest(text[self._sealed_upto :])
            self._sealed_upto = len(text)
            self._fence = None
            self.open_chars = 0
            return Advance(sealed, "", "")
        self._blocks.update(text)
        finished_end = self._blocks.block_start
        parts: list[str] = []
        if finished_end > self._sealed_upto:
            size = finished_end - self._sealed_upto
            if size >= min_seal or self._code_lines(text) >= CODE_SEGMENT_LINES:
                parts.append(self._render_rest(text[self._sealed_upto : finished_end]))
                self._sealed_upto, self._fence = finished_end, None
            else:
                key = (self._sealed_upto, size)
                if self._pending_key != key:
                    self._pending_key = key
                    self._pending_html = self._render_rest(text[self._sealed_upto : finished_end])
                self.open_chars = len(text) - finished_end
                return Advance("", self._pending_html, self._render_tail(text[finished_end:], None))
        sealed_code = self._seal_open_code(text)
        if sealed_code:
            parts.append(sealed_code)
        self.open_chars = len(text) - self._sealed_upto
        return Advance("".join(parts), "", self._render_tail(text[self._sealed_upto :], self._fence))

    # ----- internals -----------------------------------------------------------------------------
    def _render_rest(self, chunk: str) -> str:
        """Render sealed text; if it continues a code block sealed in pieces, finish that block first."""
        return render(chunk) if self._fence is None else _continued(chunk, self._fence, highlighted=True)

    def _code_lines(self, text: str) -> int:
        """Complete code lines of the open block if it is a fenced code block of its own, else 0."""
        fence = self._blocks.fence
        if fence is None or fence.nested:
            return 0
        return text.count("\n", max(fence.code_start, self._sealed_upto))

    def _seal_open_code(self, text: str) -> str:
        """Seal complete lines of a long open fenced block so the tail stays short."""
        fence = self._blocks.fence
        lines = self._code_lines(text)
        if fence is None or lines < CODE_SEGMENT_LINES or self._sealed_upto < self._blocks.block_start:
            return ""
        start = max(fence.code_start, self._sealed_upto)
        end = start
        for _ in range(lines - lines % CODE_SEGMENT_LINES):
            end = text.index("\n", end) + 1
        first = self._fence is None
        self._fence = _OpenFence(fence.marker, fence.info, len(fence.indent))
        self._sealed_upto = end
        code = _dedent(text[start:end], self._fence.indent)
        return code_segment(code, fence.info, first=first, last=False, highlighted=True)

    def _render_tail(self, rest: str, fence: _OpenFence | None) -> str:
        if not rest:
            return ""
        return _PLAIN.render(rest) if fence is None else _continued(rest, fence, highlighted=False)


def _dedent(code: str, indent: int) -> str:
    return re.sub(rf"(?m)^ {{0,{indent}}}", "", code) if indent else code


def _continued(text: str, fence: _OpenFence, highlighted: bool) -> str:
    """Text that continues a code block sealed in pieces: the block's last piece, then whatever follows it."""
    lines = _lines(text)
    end = next((i for i, line in enumerate(lines) if closes_fence(line.rstrip("\r\n"), fence.marker)), len(lines))
    code = _dedent("".join(lines[:end]), fence.indent)
    segment = code_segment(code, fence.lang, first=False, last=True, highlighted=highlighted)
    after = "".join(lines[end + 1 :])
    return segment + ((_HIGHLIGHTED if highlighted else _PLAIN).render(after) if after else "")


def _lines(text: str) -> list[str]:
    """Lines with their endings, split on LF only."""
    lines = text.split("\n")
    last = lines.pop()
    result = [line + "\n" for line in lines]
    if last:
        result.append(last)
    return result
