"""Server-Sent Events: one encoder for what we send, one incremental decoder for what we read.

The decoder is shared by the upstream adapters and by kernel-side clients, so every party agrees on
framing (multi-line ``data``, comments, ``id``/``event`` fields, CRLF tolerance).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

PING = b": ping\n\n"


@dataclass(slots=True)
class SSEMessage:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


def encode_event(seq: int, event: str, data: Any) -> bytes:
    """Encode one event; the caller keeps the bytes and reuses them for every subscriber."""
    payload = json.dumps(data, separators=(",", ":"))
    return f"id: {seq}\nevent: {event}\ndata: {payload}\n\n".encode()


def encode_text_event(seq: int, event: str, text: str) -> bytes:
    """Fast path for ``delta``/``reasoning``: ``{"text": ...}`` without building a dict per token."""
    return f'id: {seq}\nevent: {event}\ndata: {{"text":{encode_basestring_ascii(text)}}}\n\n'.encode()


class SSEDecoder:
    """Incremental SSE parser (https://html.spec.whatwg.org/#event-stream-interpretation).

    ``feed`` takes text exactly as the network delivered it (lines split anywhere, LF, CRLF or CR
    endings) and returns every message it completed, so a reader does one pass per network read
    instead of one async hop per line.
    """

    __slots__ = ("_data", "_event", "_id", "_partial")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._partial = ""

    def feed(self, text: str) -> list[SSEMessage]:
        if self._partial:
            text = self._partial + text
        if "\r" in text:
            # A trailing CR may be the first half of a CRLF split across reads: keep it for later.
            held = "\r" if text[-1] == "\r" else ""
            text = text[: len(text) - len(held)].replace("\r\n", "\n").replace("\r", "\n") + held
        lines = text.split("\n")
        self._partial = lines.pop()
        messages = []
        for line in lines:
            message = self._feed_line(line)
            if message is not None:
                messages.append(message)
        return messages

    def flush(self) -> list[SSEMessage]:
        """A stream may end without its final line break or blank line; pending data is one last message."""
        return self.feed("\n\n")

    def _feed_line(self, line: str) -> SSEMessage | None:
        if not line:
            if not self._data and not self._event:
                return None
            message = SSEMessage(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return message
        if line[0] == ":":
            return None
        field, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            self._id = value
        return None


async def iter_sse_batches(chunks: AsyncIterator[str]) -> AsyncIterator[list[SSEMessage]]:
    """Messages grouped by the text chunk (network read) that completed them; empty groups are skipped."""
    decoder = SSEDecoder()
    async for text in chunks:
        messages = decoder.feed(text)
        if messages:
            yield messages
    last = decoder.flush()
    if last:
        yield last


async def iter_sse(chunks: AsyncIterator[str]) -> AsyncIterator[SSEMessage]:
    async for messages in iter_sse_batches(chunks):
        for message in messages:
            yield message
