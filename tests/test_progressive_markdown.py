"""Progressive Markdown: finished blocks are rendered once, the open tail stays short, no word is lost."""

from __future__ import annotations

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_streamchat.kernel._markdown import CODE_SEGMENT_LINES, ProgressiveMarkdown, render

REPLY = (
    """# Plan

Some *intro* text with `code`, **bold** and a [link](https://jupyter.org).

- one
- two

- three, loose

1. first
2. second

| model | tokens |
|---|---|
| demo | 12 |

```python
import math
"""
    + "".join(f"print(math.sqrt({i}))\n" for i in range(40))
    + """```

> quoted
> text

<script>alert("x")</script> and ~~gone~~.
para
---
~~~
never closed
"""
)

BLOCKS = st.sampled_from(
    [
        "Plain words here.\n\n",
        "# Heading\n\n",
        "- a\n- b\n\n",
        "1. x\n\n2. y\n\n",
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n",
        "```py\nx = 1\ny = 2\n```\n\n",
        "```\n" + "line\n" * 20 + "```\n\n",
        "> q\n\n",
        "text\n---\n",
        "*emph* `tick` **strong**\n",
        "    indented code\n\n",
        "<b>raw</b>\n\n",
    ]
)


def visible(markup: str) -> str:
    """What a reader sees, whitespace aside."""
    return re.sub(r"\s+", "", html.unescape(re.sub(r"<[^>]+>", "", markup)))


def stream(text: str, cuts: list[int]) -> tuple[str, list[int]]:
    """Feed ``text`` cut at ``cuts``; the HTML a browser ends with, and the tail sizes seen on the way."""
    progress = ProgressiveMarkdown()
    sealed, tails = [], []
    for cut in sorted(set(cuts)):
        step = progress.advance(text[:cut])
        sealed.append(step.sealed)
        tails.append(progress.open_chars)
    sealed.append(progress.advance(text, final=True).sealed)
    return "".join(sealed), tails


@settings(max_examples=150, deadline=None)
@given(blocks=st.lists(BLOCKS, min_size=1, max_size=12), data=st.data())
def test_any_split_shows_exactly_the_whole_reply(blocks, data):
    text = "".join(blocks)
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=40))
    shown, _ = stream(text, cuts)
    assert visible(shown) == visible(render(text))


def test_a_token_by_token_stream_shows_exactly_the_reply():
    tokens = re.findall(r"\s*\S+", REPLY)
    cuts = [sum(len(t) for t in tokens[: i + 1]) for i in range(len(tokens))]
    shown, tails = stream(REPLY, cuts)
    assert visible(shown) == visible(render(REPLY))
    # The 40-line code block never sat whole in the tail: it was sealed in segments.
    code_block = REPLY[REPLY.index("```python") : REPLY.index("```\n\n>") + 4]
    assert max(tails) < len(code_block) / 2
    assert shown.count("jsc-code-segment") >= 40 // CODE_SEGMENT_LINES


def test_reply_html_is_escaped_and_images_are_not_fetched():
    out = render("<script>alert(1)</script>\n\n![x](https://tracker.example/p.png)\n\n[j](javascript:alert(1))")
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<img" not in out
    assert 'href="javascript:' not in out


def test_finished_blocks_are_sealed_once_and_the_tail_is_only_the_open_block():
    progress = ProgressiveMarkdown()
    first = progress.advance("# Title\n\nFirst paragraph.\n\nSecond")
    assert "<h1>Title</h1>" in first.sealed and "First paragraph." in first.sealed
    assert "Second" in first.tail and "Title" not in first.tail
    again = progress.advance("# Title\n\nFirst paragraph.\n\nSecond paragraph")
    assert again.sealed == ""
    assert "Second paragraph" in again.tail


def test_highlighted_code_when_sealed():
    progress = ProgressiveMarkdown()
    step = progress.advance("```python\ndef f():\n    return 1\n```\n\nafter")
    assert "<span class=k>def" in step.sealed
