"""The SSE decoder yields the same messages however the network splits the bytes."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from jupyter_streamchat.engine._sse import SSEDecoder, SSEMessage, encode_event

# Text that survives a data line: no line breaks (multi-line data is built from several lines below).
line_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12)


@st.composite
def streams(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    messages = draw(
        st.lists(st.tuples(st.sampled_from(["", "delta", "done"]), st.lists(line_text, min_size=1, max_size=3)))
    )
    out, expected = [], []
    for event, lines in messages:
        if draw(st.booleans()):
            out.append(": keepalive" + newline)
        if event:
            out.append(f"event: {event}{newline}")
        out.extend(f"data: {line}{newline}" for line in lines)
        out.append(newline)
        expected.append((event or "message", "\n".join(lines)))
    return "".join(out), expected


def decode_in_pieces(text: str, cuts: list[int]) -> list[SSEMessage]:
    decoder = SSEDecoder()
    messages: list[SSEMessage] = []
    edges = [0, *sorted(c % (len(text) + 1) for c in cuts), len(text)]
    for start, end in itertools.pairwise(edges):
        messages += decoder.feed(text[start:end])
    return messages + decoder.flush()


@given(streams(), st.lists(st.integers(min_value=0), max_size=8))
def test_any_split_gives_the_same_messages(stream, cuts):
    text, expected = stream
    assert [(m.event, m.data) for m in decode_in_pieces(text, cuts)] == expected


def test_crlf_split_between_reads_is_one_line_break():
    decoder = SSEDecoder()
    assert decoder.feed("data: a\r") == []
    assert [m.data for m in decoder.feed("\n\r\n")] == ["a"]


def test_stream_ending_without_blank_line_still_yields_the_last_message():
    decoder = SSEDecoder()
    assert decoder.feed("data: x\n\ndata: tail") == [SSEMessage("message", "x")]
    assert decoder.flush() == [SSEMessage("message", "tail")]


def test_our_encoding_round_trips_with_ids():
    raw = encode_event(7, "delta", {"text": "a\nb\u2028c"}).decode()
    [message] = SSEDecoder().feed(raw)
    assert (message.id, message.event, message.json()) == ("7", "delta", {"text": "a\nb\u2028c"})
