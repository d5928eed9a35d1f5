"""A lean benchmark client: raw HTTP/1.1 over asyncio Protocols, so the client is never the bottleneck.

``SSEStream`` decodes a chunked ``text/event-stream`` response without parsing events: it counts
``delta`` events, pulls the upstream's ``<t>…</t>`` stamps out with one regex per chunk and notes
the receive time of each read.  Tornado writes whole events per flush (one HTTP chunk each), so
counting per decoded chunk is exact.  ``JSONConnection`` is a keep-alive connection for API calls
whose send time must be known exactly (e.g. ``POST stop`` in the stop-latency benchmark).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from array import array
from typing import Any

STAMP = re.compile(rb"<t>(\d+\.\d+)</t>")
DELTA = b"event: delta\n"
DONE = b"event: done\n"
# The fake upstream's OpenAI deltas, for reading it directly.
UPSTREAM_DELTA = b'"delta":{"content":'


def request_bytes(
    method: str, host: str, port: int, path: str, headers: dict[str, str], body: Any = None, close: bool = False
) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    elif method in ("POST", "PUT"):
        lines.append("Content-Length: 0")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class SSEStream(asyncio.Protocol):
    """One streaming request; statistics are filled in as bytes arrive (see module docstring).

    ``latencies`` (if given) receives ``receive wall time - stamp`` in seconds for every stamped delta,
    and ``stamps`` the stamps themselves (so a caller can cut a steady-state window).
    ``marker`` is what counts as one delta event (``DELTA`` for the server, ``UPSTREAM_DELTA`` upstream).
    """

    def __init__(
        self,
        latencies: array | None = None,
        stamps: array | None = None,
        marker: bytes = DELTA,
        done_marker: bytes | None = DONE,
    ) -> None:
        self.latencies = latencies
        self.stamps = stamps  # the stamps themselves, parallel to ``latencies`` (for time windows)
        self.marker = marker
        self.done_marker = done_marker
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.head_done = False
        self.status = 0
        self.chunked = False
        self.body_error = b""
        self.deltas = 0
        self.bytes = 0
        self.first_delta_at: float | None = None  # time.monotonic()
        self.last_delta_at: float | None = None
        self.done_at: float | None = None
        self.sent_at: float | None = None
        self.first_delta = asyncio.get_running_loop().create_future()
        self.finished = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        wall = time.time()
        mono = time.monotonic()
        self.bytes += len(data)
        self.buf += data
        if not self.head_done:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").lower()
            del self.buf[: end + 4]
            self.head_done = True
            self.status = int(head.split(" ", 2)[1])
            self.chunked = "transfer-encoding: chunked" in head
            if self.status != 200 or not self.chunked:
                return
        if self.status != 200 or not self.chunked:
            self.body_error += bytes(self.buf)
            self.buf.clear()
            return
        buf = self.buf
        pos = 0
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
            start = eol + 2
            if size == 0:
                self._finish(mono)
                pos = len(buf)
                break
            if len(buf) < start + size + 2:
                break
            self._on_chunk(bytes(buf[start : start + size]), wall, mono)
            pos = start + size + 2
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(time.monotonic())

    # -- helpers -----------------------------------------------------------------------------
    def _on_chunk(self, chunk: bytes, wall: float, mono: float) -> None:
        n = chunk.count(self.marker)
        if n:
            self.deltas += n
            if self.first_delta_at is None:
                self.first_delta_at = mono
                if not self.first_delta.done():
                    self.first_delta.set_result(mono)
            self.last_delta_at = mono
            if self.latencies is not None:
                latencies, stamps = self.latencies, self.stamps
                for stamp in STAMP.findall(chunk):
                    sent = float(stamp)
                    latencies.append(wall - sent)
                    if stamps is not None:
                        stamps.append(sent)
        if self.done_marker is not None and self.done_at is None and self.done_marker in chunk:
            self.done_at = mono

    def _finish(self, mono: float) -> None:
        if not self.first_delta.done():
            self.first_delta.set_result(None)
        if not self.finished.done():
            self.finished.set_result(mono)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def close(self) -> float:
        """Hang up (FIN), like a browser tab closing; returns the monotonic time just before."""
        at = time.monotonic()
        if self.transport is not None:
            self.transport.close()
        return at

    @property
    def rate(self) -> float:
        """Delta events per second from the first delta to the last one."""
        if self.first_delta_at is None or self.last_delta_at is None or self.deltas < 2:
            return float("nan")
        return (self.deltas - 1) / max(self.last_delta_at - self.first_delta_at, 1e-9)


async def open_stream(
    host: str,
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any = None,
    **kwargs: Any,
) -> SSEStream:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: SSEStream(**kwargs), host, port)
    assert proto.transport is not None
    proto.sent_at = time.monotonic()
    proto.transport.write(request_bytes(method, host, port, path, headers, body, close=True))
    return proto


class JSONConnection:
    """A keep-alive connection for JSON API calls; ``request`` returns (status, json, sent_at)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port, self.headers = host, port, headers
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        for attempt in (1, 2):
            if self.writer is None or self.writer.is_closing():
                await self._connect()
            assert self.reader is not None and self.writer is not None
            sent_at = time.monotonic()
            self.writer.write(request_bytes(method, self.host, self.port, path, self.headers, body))
            try:
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                self.writer = None  # the server closed an idle keep-alive connection: retry once
                if attempt == 2:
                    raise
                continue
            text = head.decode("latin-1")
            status = int(text.split(" ", 2)[1])
            length = 0
            close = False
            for line in text.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
                elif name.strip().lower() == "connection" and value.strip().lower() == "close":
                    close = True
            raw = await self.reader.readexactly(length) if length else b""
            if close:
                self.writer.close()
                self.writer = None
            return status, (json.loads(raw) if raw else None), sent_at
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class JSONPool:
    """A few keep-alive ``JSONConnection``s shared by concurrent callers."""

    def __init__(self, host: str, port: int, headers: dict[str, str], size: int = 8) -> None:
        self._idle: asyncio.Queue[JSONConnection] = asyncio.Queue()
        self._all = [JSONConnection(host, port, headers) for _ in range(size)]
        for conn in self._all:
            self._idle.put_nowait(conn)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        conn = await self._idle.get()
        try:
            return await conn.request(method, path, body)
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
