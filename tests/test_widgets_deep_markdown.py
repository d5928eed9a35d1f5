"""Replies nested deeper than markdown-it's recursion guard (lists in lists, quotes in quotes) keep every word:
what is too deep to lay out is shown as preformatted text, never dropped."""

from __future__ import annotations

import html
import re

import pytest

from jupyter_streamchat.kernel._markdown import ProgressiveMarkdown, render


def nested_list(depth: int, marker: str = "-") -> str:
    return "".join(f"{'  ' * level}{marker} item{level}\n" for level in range(depth))


def nested_ordered_list(depth: int) -> str:
    # An ordered item's content starts after "1. ": three columns per level.
    return "".join(f"{'   ' * level}1. item{level}\n" for level in range(depth))


def nested_quotes(depth: int) -> str:
    return "".join(f"{'>' * (level + 1)} item{level}\n\n" for level in range(depth))


def visible_text(rendered: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", rendered))


@pytest.mark.parametrize("depth", [10, 12, 30, 200])
@pytest.mark.parametrize(
    "source", [nested_list, nested_ordered_list, nested_quotes], ids=["bullets", "ordered", "quotes"]
)
def test_when_a_reply_nests_deeply_then_the_rendering_holds_every_item(source, depth):
    reply = source(depth) + "\nAfter the list.\n"

    rendered = render(reply)

    words = visible_text(rendered).split()
    for level in range(depth):
        assert f"item{level}" in words, f"item{level} of {depth} levels is missing"
    assert "After the list." in visible_text(rendered)


def test_when_a_list_nests_a_little_then_it_still_renders_as_lists():
    rendered = render(nested_list(12))

    assert rendered.count("<ul>") == 12
    assert "<pre>" not in rendered


def test_when_a_deep_list_streams_then_the_sealed_blocks_and_the_tail_hold_every_item():
    reply = nested_list(40) + "\nAfter the list.\n\nThe end"
    progress = ProgressiveMarkdown()
    sealed: list[str] = []
    tail = ""
    for end in range(1, len(reply) + 1, 7):
        step = progress.advance(reply[:end])
        sealed.append(step.sealed)
        tail = step.pending + step.tail
    sealed.append(progress.advance(reply, final=True).sealed)

    words = visible_text("".join(sealed) + tail).split()
    assert all(f"item{level}" in words for level in range(40))
    assert "end" in words
