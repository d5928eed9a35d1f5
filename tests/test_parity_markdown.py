"""Parity: a streamed Markdown reply -> finished blocks and the open tail, as the kernel widgets split it.

The same fixtures (``tests/parity/markdown/*.json``) run in node against the panel's splitter
(``labextension/test/parity_markdown.test.ts``). Each fixture is a text, prefixes of it as a stream
delivers them (``steps``: the blocks finished so far and the open tail), and the blocks once the reply
has ended. The widget's ``ProgressiveMarkdown`` seals exactly the finished blocks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_streamchat.kernel._blocks import MarkdownBlocks
from jupyter_streamchat.kernel._markdown import ProgressiveMarkdown

FIXTURES = sorted((Path(__file__).parent / "parity" / "markdown").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_there_are_markdown_fixtures() -> None:
    assert len(FIXTURES) >= 10


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_a_streamed_reply_is_split_into_the_blocks_of_the_fixture(path: Path) -> None:
    fixture = _load(path)
    text = fixture["text"]
    splitter, widget = MarkdownBlocks(), ProgressiveMarkdown()
    finished: list[str] = []
    for step in fixture["steps"]:
        # When the stream has delivered a prefix of the reply
        prefix = text[: step["length"]]
        finished += splitter.update(prefix)
        widget.advance(prefix)
        # Then the finished blocks and the open tail are the fixture's
        where = f"{path.stem} at {step['length']}"
        assert finished == step["finished"], where
        assert splitter.tail == step["tail"], where
        # And the widget has sealed exactly the finished blocks (no code block is long enough to seal in pieces)
        assert widget.sealed_chars == len("".join(step["finished"])), where
    # When the reply ends, Then its blocks are the fixture's
    assert finished + splitter.finish(text) == fixture["blocks"], path.stem


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_a_reply_cut_anywhere_gives_the_same_blocks(path: Path) -> None:
    fixture = _load(path)
    text = fixture["text"]
    for cut in range(len(text) + 1):
        splitter = MarkdownBlocks()
        blocks = splitter.update(text[:cut])
        assert blocks + splitter.finish(text) == fixture["blocks"], f"{path.stem} cut at {cut}"


def test_an_indented_fence_sealed_in_pieces_has_the_code_of_the_whole_rendering() -> None:
    # Given a reply whose fence is indented by two spaces and long enough to be sealed in pieces
    text = "  ```\n" + "".join(f"    line {i}\n" for i in range(40)) + "  ```\nAfter.\n"
    widget = ProgressiveMarkdown()
    # When it streams line by line
    shown = [widget.advance(text[: end + 1]).sealed for end, char in enumerate(text) if char == "\n"]
    shown.append(widget.advance(text, final=True).sealed)
    # Then every code line lost the opener's two spaces, as in CommonMark (and in the final rendering)
    html = "".join(shown)
    assert html.count("jsc-code-segment") >= 2
    assert html.count("  line ") == 40 and "    line" not in html
