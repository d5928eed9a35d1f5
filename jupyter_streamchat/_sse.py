"""Server-Sent Events: one encoder for what we send, one incremental decoder for what we read.

The decoder is shared by the upstream adapters and by kernel-side clients, so every party agrees on
framing (multi-line ``data``, comments, ``id``/``event`` fields, CRLF tolerance).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
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
    """Incremental, line-based SSE parser (https://html.spec.whatwg.org/#event-stream-interpretation)."""

    __slots__ = ("_data", "_event", "_id")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed_line(self, line: str) -> SSEMessage | None:
        """Feed one line without its terminator; returns a message when a blank line completes one."""
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

    def feed_lines(self, lines: Iterable[str]) -> list[SSEMessage]:
        messages = []
        for line in lines:
            message = self.feed_line(line.rstrip("\r"))
            if message is not None:
                messages.append(message)
        return messages

    def flush(self) -> SSEMessage | None:
        """A stream may end without the final blank line; treat pending data as one last message."""
        return self.feed_line("")


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEMessage]:
    decoder = SSEDecoder()
    async for line in lines:
        message = decoder.feed_line(line.rstrip("\r"))
        if message is not None:
            yield message
    last = decoder.flush()
    if last is not None:
        yield last
