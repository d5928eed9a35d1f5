"""A real loopback HTTP/1.1 server impersonating streaming LLM providers (OpenAI and Anthropic).

Tests and benchmarks point the product at this server instead of mocking httpx, so that everything
between the product and the socket (connection pooling, chunked framing, TCP hang-ups, resets) is real.

    up = FakeUpstream().start()          # own asyncio loop in a daemon thread
    up.script("m-stall", Script([Text("Hel"), Text("lo"), Stall(30)]))
    ...                                  # product POSTs {"model": "m-stall", ...} to up.openai_base_url
    rec = up.wait_for_request("m-stall")
    rec.wait_closed(2)                   # -> time.monotonic() at which the server saw the hang-up
    up.stop()

Routes: ``POST /v1/chat/completions`` (OpenAI wire format), ``POST /v1/messages`` (Anthropic wire
format), ``GET /v1/models``.  A request's behaviour is the script registered for its JSON ``model``;
unknown models get a short happy-path reply, and unscripted models named ``bulk-<n>`` /
``bulk-<n>-stamp`` get ``Script.bulk(n)`` / ``Script.bulk(n, stamp=True)``.

Every request is recorded as a :class:`RequestRecord` whose timestamps come from ``time.monotonic()``,
which is system-wide on Linux and therefore comparable with the test's own clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import itertools
import json
import logging
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Bulk",
    "Done",
    "Drop",
    "FakeUpstream",
    "Finish",
    "Malformed",
    "Ping",
    "RequestRecord",
    "Script",
    "Stall",
    "Status",
    "StreamError",
    "Text",
    "Think",
    "Truncate",
    "Usage",
]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Script steps
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """One content delta. ``delay=None`` means "use the script's pace"."""

    text: str
    delay: float | None = None


@dataclass(frozen=True)
class Think:
    """One reasoning delta; OpenAI-compatible servers disagree on the field name, hence ``field``."""

    text: str
    delay: float | None = None
    field: Literal["reasoning_content", "reasoning"] = "reasoning_content"


@dataclass(frozen=True)
class Stall:
    """Send nothing for ``seconds`` (a client hang-up is still noticed immediately)."""

    seconds: float


@dataclass(frozen=True)
class Finish:
    """Terminal chunk with the finish reason (Anthropic: ``message_delta`` with the mapped stop_reason)."""

    reason: str = "stop"


@dataclass(frozen=True)
class Usage:
    """OpenAI usage chunk; ``output_tokens=None`` counts the Text/Think deltas sent so far."""

    input_tokens: int = 5
    output_tokens: int | None = None


@dataclass(frozen=True)
class Done:
    """OpenAI ``data: [DONE]``; Anthropic ``message_stop``."""


@dataclass(frozen=True)
class Ping:
    """Anthropic ``event: ping``; OpenAI an SSE comment line (``: ping``)."""


@dataclass(frozen=True)
class Drop:
    """Reset the TCP connection right now (SO_LINGER 0 + abort, so the client sees an RST)."""


@dataclass(frozen=True)
class Truncate:
    """End the chunked body cleanly without any terminal SSE event; later steps are ignored."""


@dataclass(frozen=True)
class Malformed:
    """Raw bytes written verbatim into the event stream (still inside valid HTTP chunk framing)."""

    raw: bytes = b"data: {not json\n\n"


@dataclass(frozen=True)
class StreamError:
    """A provider error inside a 200 stream (OpenAI ``data: {"error":...}``, Anthropic ``event: error``)."""

    message: str = "Overloaded"
    type: str = "overloaded_error"


@dataclass(frozen=True)
class Status:
    """Answer with an HTTP error status instead of a stream (only valid as the first step), then close."""

    code: int
    body: dict[str, Any] | str | bytes | None = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class Bulk:
    """``n`` content deltas pushed as fast as the socket takes them (see :meth:`Script.bulk`).

    With ``stamp=True`` each delta's text is ``<t>{time.time():.6f}</t>`` taken when the delta was
    serialised, so a client can compute the latency added between the upstream and itself.
    """

    n: int
    text: str = "x"
    stamp: bool = False


Step = Text | Think | Stall | Finish | Usage | Done | Ping | Drop | Truncate | Malformed | StreamError | Status | Bulk
_STEP_TYPES = (
    Text,
    Think,
    Stall,
    Finish,
    Usage,
    Done,
    Ping,
    Drop,
    Truncate,
    Malformed,
    StreamError,
    Status,
    Bulk,
)


class Script:
    """What the fake does for one request: ``steps`` run in order.

    ``pace`` is the default delay before each Text/Think step (and between Bulk deltas), and
    ``header_delay`` holds back the status line, to imitate a provider that is slow to answer at all.
    ``answered_model`` is the model name the stream says answered (default: the requested one), and
    ``system_fingerprint`` the one OpenAI chunks carry (default: none).
    """

    def __init__(
        self,
        steps: Iterable[Step],
        pace: float = 0.0,
        header_delay: float = 0.0,
        answered_model: str | None = None,
        system_fingerprint: str | None = None,
    ) -> None:
        self.steps: tuple[Step, ...] = tuple(steps)
        self.pace = pace
        self.header_delay = header_delay
        self.answered_model = answered_model
        self.system_fingerprint = system_fingerprint
        for i, step in enumerate(self.steps):
            if not isinstance(step, _STEP_TYPES):
                raise TypeError(f"not a script step: {step!r}")
            if isinstance(step, Status) and i != 0:
                # Once a 200 and stream bytes are out, an HTTP status can no longer be sent.
                raise ValueError("Status(...) is only valid as the first step of a Script")

    @classmethod
    def reply(cls, text_chunks: Iterable[str], pace: float = 0.0, usage: bool = True, **answered: Any) -> Script:
        """The normal happy path: the text deltas, Finish, Usage (OpenAI only on the wire), Done.
        ``answered``: ``answered_model`` / ``system_fingerprint`` (see the class)."""
        steps: list[Step] = [Text(chunk) for chunk in text_chunks]
        steps.append(Finish())
        if usage:
            steps.append(Usage())
        steps.append(Done())
        return cls(steps, pace=pace, **answered)

    @classmethod
    def bulk(cls, n: int, text: str = "x", pace: float = 0.0, stamp: bool = False) -> Script:
        """A benchmark stream of ``n`` deltas, batched into large writes when ``pace == 0``."""
        return cls([Bulk(n, text=text, stamp=stamp), Finish(), Usage(), Done()], pace=pace)

    def __repr__(self) -> str:
        return f"Script({list(self.steps)!r}, pace={self.pace!r}, header_delay={self.header_delay!r})"


DEFAULT_SCRIPT = Script.reply(["Hello", " from", " fake", " upstream"])
_BULK_MODEL = re.compile(r"bulk-(\d+)(-stamp)?")

# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------

Outcome = Literal["running", "completed", "truncated", "client_closed", "dropped", "status", "server_stopped", "error"]


async def _poll(ready: Callable[[], bool], timeout: float, interval: float = 0.002) -> bool:
    """Wait for ``ready()`` from any event loop without blocking it (the state lives in another thread)."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


@dataclass(eq=False)
class RequestRecord:
    """What the fake saw and did for one request; fields are filled in live by the server thread.

    ``client_closed_at`` is only set while the response is in progress: a pooled keep-alive connection
    being closed later is not a hang-up.  ``attempt`` is 1-based per model and restarts whenever the
    model is (re-)scripted.  ``events_sent`` counts SSE events/comments written (including
    ``message_start``, ``[DONE]`` ...); ``tokens_sent`` counts Text/Think/Bulk deltas only.

    ``outcome``/``server_finished_at`` are settled before the last byte of a response is written, so
    once a client has read a response to its end the record is final; after a hang-up, use
    ``wait_closed``/``wait_finished``.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    model: str | None
    api: Literal["openai", "anthropic"] | None
    attempt: int
    connection_id: int
    accepted_at: float
    first_byte_at: float | None = None
    first_token_at: float | None = None
    client_closed_at: float | None = None
    server_finished_at: float | None = None
    events_sent: int = 0
    tokens_sent: int = 0
    status: int | None = None
    outcome: Outcome = "running"
    error: str | None = None
    _generation: int = field(default=0, repr=False)
    _closed: threading.Event = field(default_factory=threading.Event, repr=False)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)

    def wait_closed(self, timeout: float = 5.0) -> float | None:
        """Block until the server noticed the client hang up; the monotonic timestamp, or None on timeout."""
        self._closed.wait(timeout)
        return self.client_closed_at

    async def wait_closed_async(self, timeout: float = 5.0) -> float | None:
        await _poll(self._closed.is_set, timeout)
        return self.client_closed_at

    def wait_finished(self, timeout: float = 5.0) -> float | None:
        """Block until the server stopped working on this request (any outcome); ``server_finished_at``."""
        self._finished.wait(timeout)
        return self.server_finished_at

    async def wait_finished_async(self, timeout: float = 5.0) -> float | None:
        await _poll(self._finished.is_set, timeout)
        return self.server_finished_at

    # -- server side ------------------------------------------------------------------------------

    def _mark_client_closed(self, at: float) -> None:
        if self.client_closed_at is None:
            self.client_closed_at = at
        self._closed.set()

    def _mark_finished(self, outcome: Outcome) -> None:
        if self._finished.is_set():
            return
        self.outcome = outcome
        self.server_finished_at = time.monotonic()
        self._finished.set()


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------

_READ_SIZE = 65536
_MAX_HEADER_BYTES = 1 << 20
_ZERO_CHUNK = b"0\r\n\r\n"


class _ClientGone(Exception):
    """A write failed because the peer has gone (reset / broken pipe)."""


class _BadRequest(Exception):
    pass


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        # A client talking through a forward proxy sends the absolute form: http://host/path?query
        target = self.target
        if "://" in target.split("?", 1)[0]:
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        return target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _json(obj: Any) -> bytes:
    # ensure_ascii=False puts real UTF-8 on the wire, so multi-byte characters can straddle TCP reads.
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # A lone surrogate (Text("a\ud800b")) has no UTF-8 form: JSON carries it as a \ud800 escape,
        # as a provider that escapes non-ASCII text sends it.
        return json.dumps(obj, separators=(",", ":")).encode()


def _reason_phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _head(code: int, headers: Sequence[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {code} {_reason_phrase(code)}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Connection:
    """One accepted socket: a small read buffer shared by request parsing and the hang-up watcher."""

    def __init__(self, conn_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.id = conn_id
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.eof = False
        # Set before *we* close/abort, so the resulting EOF is not mistaken for a client hang-up.
        self.server_closed = False
        self.task: asyncio.Task[None] | None = None

    async def _fill(self) -> bool:
        try:
            data = await self.reader.read(_READ_SIZE)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def _read_until(self, sep: bytes, limit: int) -> bytes | None:
        while (idx := self.buf.find(sep)) < 0:
            if len(self.buf) > limit:
                raise _BadRequest("header section too large")
            if self.eof or not await self._fill():
                return None
        out = bytes(self.buf[:idx])
        del self.buf[: idx + len(sep)]
        return out

    async def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.eof or not await self._fill():
                raise _BadRequest("body shorter than announced")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_request(self) -> _Request | None:
        """The next request on this connection, or None when the client closed it between requests."""
        head = await self._read_until(b"\r\n\r\n", _MAX_HEADER_BYTES)
        if head is None:
            return None
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = request_line.split(" ", 2)
        except ValueError:
            raise _BadRequest(f"bad request line {request_line!r}") from None
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(f"bad header line {line!r}")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked_body()
        else:
            body = await self._read_exact(int(headers.get("content-length", "0") or 0))
        return _Request(method, target, version, headers, body)

    async def _read_chunked_body(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = await self._read_until(b"\r\n", 1024)
            if size_line is None:
                raise _BadRequest("truncated chunked body")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                # Skip trailers up to the blank line that ends the body.
                while await self._read_until(b"\r\n", 65536):
                    pass
                return b"".join(parts)
            parts.append(await self._read_exact(size))
            await self._read_exact(2)

    async def watch_for_hangup(self, record: RequestRecord) -> None:
        """Runs alongside the script: returns (after timestamping) as soon as the client closes or resets.

        Reading concurrently is the only way to notice a hang-up while the script is silent (Stall,
        pace): a server that only writes finds out at its next write at best.  Anything the client does
        send meanwhile (a pipelined request) is kept in ``buf`` for the next ``read_request``.
        """
        while await self._fill():
            pass
        if not self.server_closed:
            record._mark_client_closed(time.monotonic())

    # -- writing ----------------------------------------------------------------------------------

    def write_nowait(self, data: bytes) -> None:
        if self.writer.transport.is_closing():
            raise _ClientGone
        self.writer.write(data)

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise _ClientGone from exc

    async def write(self, data: bytes) -> None:
        self.write_nowait(data)
        await self.drain()

    def abort_with_rst(self) -> None:
        self.server_closed = True
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                # Linger 0 turns close() into an RST, which is what a crashed proxy or LB looks like.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    def close(self) -> None:
        self.server_closed = True
        if not self.writer.transport.is_closing():
            self.writer.close()


# --------------------------------------------------------------------------------------------------
# Wire formats
# --------------------------------------------------------------------------------------------------


def _sse(data: Any, event: str | None = None) -> bytes:
    payload = b"data: " + (data if isinstance(data, bytes) else _json(data)) + b"\n\n"
    return b"event: " + event.encode() + b"\n" + payload if event else payload


_HTTP_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


class _OpenAIWire:
    api: Literal["openai"] = "openai"

    def __init__(self, model: str, system_fingerprint: str | None = None) -> None:
        self.model = model
        self._head = b'{"id":"chatcmpl-x","object":"chat.completion.chunk","created":0,"model":' + _json(model)
        if system_fingerprint is not None:
            self._head += b',"system_fingerprint":' + _json(system_fingerprint)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}]
        return b"data: " + self._head + b',"choices":' + _json(choices) + b"}\n\n"

    def start(self, input_tokens: int) -> list[bytes]:
        return []

    def delta(self, kind: Literal["text", "thinking"], text: str, reasoning_field: str) -> list[bytes]:
        return [self._chunk({"content": text} if kind == "text" else {reasoning_field: text})]

    def bulk_parts(self) -> tuple[list[bytes], bytes, bytes]:
        prefix = b"data: " + self._head + b',"choices":[{"index":0,"delta":{"content":'
        return [], prefix, b'},"finish_reason":null}]}\n\n'

    def finish(self, reason: str, output_tokens: int) -> list[bytes]:
        return [self._chunk({}, reason)]

    def usage(self, input_tokens: int, output_tokens: int) -> list[bytes]:
        usage = {"prompt_tokens": input_tokens, "completion_tokens": output_tokens}
        usage["total_tokens"] = input_tokens + output_tokens
        return [b"data: " + self._head + b',"choices":[],"usage":' + _json(usage) + b"}\n\n"]

    def done(self) -> list[bytes]:
        return [b"data: [DONE]\n\n"]

    def ping(self) -> list[bytes]:
        return [b": ping\n\n"]

    def stream_error(self, message: str, type_: str) -> list[bytes]:
        return [_sse({"error": {"message": message, "type": type_}})]

    @staticmethod
    def error_body(code: int) -> dict[str, Any]:
        kind = _HTTP_ERROR_TYPES.get(code, "api_error")
        return {"error": {"message": f"fake upstream: HTTP {code}", "type": kind}}


class _AnthropicWire:
    api: Literal["anthropic"] = "anthropic"
    _STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}

    def __init__(self, model: str, system_fingerprint: str | None = None) -> None:
        self.model = model  # Anthropic has no system fingerprint
        self._open: Literal["text", "thinking"] | None = None
        self._index = -1

    def start(self, input_tokens: int) -> list[bytes]:
        message = {
            "id": "msg_x",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        }
        return [_sse({"type": "message_start", "message": message}, "message_start")]

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [_sse({"type": "content_block_stop", "index": self._index}, "content_block_stop")]

    def _ensure_block(self, kind: Literal["text", "thinking"]) -> list[bytes]:
        if self._open == kind:
            return []
        events = self._close_block()
        self._open, self._index = kind, self._index + 1
        block = {"type": "text", "text": ""} if kind == "text" else {"type": "thinking", "thinking": ""}
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        return [*events, _sse(start, "content_block_start")]

    def delta(self, kind: Literal["text", "thinking"], text: str, reasoning_field: str) -> list[bytes]:
        events = self._ensure_block(kind)
        delta = {"type": "text_delta", "text": text} if kind == "text" else {"type": "thinking_delta", "thinking": text}
        events.append(
            _sse({"type": "content_block_delta", "index": self._index, "delta": delta}, "content_block_delta")
        )
        return events

    def bulk_parts(self) -> tuple[list[bytes], bytes, bytes]:
        opening = self._ensure_block("text")
        prefix = (
            b"event: content_block_delta\ndata: "
            b'{"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":' % self._index
        )
        return opening, prefix, b"}}\n\n"

    def finish(self, reason: str, output_tokens: int) -> list[bytes]:
        stop_reason = self._STOP_REASONS.get(reason, reason)
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        }
        return [*self._close_block(), _sse(message_delta, "message_delta")]

    def usage(self, input_tokens: int, output_tokens: int) -> list[bytes]:
        return []  # Anthropic reports usage in message_start / message_delta instead.

    def done(self) -> list[bytes]:
        return [*self._close_block(), _sse({"type": "message_stop"}, "message_stop")]

    def ping(self) -> list[bytes]:
        return [_sse({"type": "ping"}, "ping")]

    def stream_error(self, message: str, type_: str) -> list[bytes]:
        return [_sse({"type": "error", "error": {"type": type_, "message": message}}, "error")]

    @staticmethod
    def error_body(code: int) -> dict[str, Any]:
        kind = _HTTP_ERROR_TYPES.get(code, "api_error")
        return {"type": "error", "error": {"type": kind, "message": f"fake upstream: HTTP {code}"}}


_Wire = _OpenAIWire | _AnthropicWire

_STREAM_HEADERS = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
    ("Transfer-Encoding", "chunked"),
)

# --------------------------------------------------------------------------------------------------
# Script execution
# --------------------------------------------------------------------------------------------------


class _ScriptRunner:
    """Plays one Script onto one connection; returns (outcome, keep_alive)."""

    def __init__(self, conn: _Connection, record: RequestRecord, script: Script, wire: _Wire, keep_alive: bool) -> None:
        self.conn = conn
        self.record = record
        self.script = script
        self.wire = wire
        self.keep_alive = keep_alive
        self._ended = False

    async def run(self) -> tuple[Outcome, bool]:
        steps = self.script.steps
        if self.script.header_delay > 0:
            await asyncio.sleep(self.script.header_delay)
        if steps and isinstance(steps[0], Status):
            await self._status(steps[0])
            return "status", False
        input_tokens = next((s.input_tokens for s in steps if isinstance(s, Usage)), 5)
        await self._send_head(self.wire.start(input_tokens))
        for i, step in enumerate(steps):
            # The last step's bytes go out in the same write as the end of the body (see _emit).
            last = i == len(steps) - 1
            match step:
                case Text(text=text, delay=delay):
                    await self._delta("text", text, delay, "", last)
                case Think(text=text, delay=delay, field=reasoning_field):
                    await self._delta("thinking", text, delay, reasoning_field, last)
                case Bulk():
                    await self._bulk(step)
                case Stall(seconds=seconds):
                    await asyncio.sleep(seconds)
                case Finish(reason=reason):
                    await self._emit(self.wire.finish(reason, self.record.tokens_sent), last)
                case Usage(input_tokens=tokens_in, output_tokens=tokens_out):
                    out = self.record.tokens_sent if tokens_out is None else tokens_out
                    await self._emit(self.wire.usage(tokens_in, out), last)
                case Done():
                    await self._emit(self.wire.done(), last)
                case Ping():
                    await self._emit(self.wire.ping(), last)
                case Malformed(raw=raw):
                    await self._emit([raw] if raw else [], last)
                case StreamError(message=message, type=type_):
                    await self._emit(self.wire.stream_error(message, type_), last)
                case Drop():
                    self.record._mark_finished("dropped")
                    self.conn.abort_with_rst()
                    return "dropped", False
                case Truncate():
                    await self._emit([], final=True, outcome="truncated")
                    return "truncated", self.keep_alive
        if not self._ended:
            await self._emit([], final=True)
        return "completed", self.keep_alive

    async def _send_head(self, opening_events: list[bytes]) -> None:
        headers = [*_STREAM_HEADERS, ("Connection", "keep-alive" if self.keep_alive else "close")]
        self.record.status = 200
        self.record.first_byte_at = time.monotonic()
        payload = b"".join(opening_events)
        self.record.events_sent += len(opening_events)
        await self.conn.write(_head(200, headers) + (_chunk(payload) if payload else b""))

    async def _status(self, step: Status) -> None:
        body = self.wire.error_body(step.code) if step.body is None else step.body
        raw = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else _json(body)
        headers = {"content-type": ("Content-Type", "application/json")}
        for name, value in (step.headers or {}).items():
            headers[name.lower()] = (name, value)
        headers["content-length"] = ("Content-Length", str(len(raw)))
        headers["connection"] = ("Connection", "close")
        self.record.status = step.code
        self.record.first_byte_at = time.monotonic()
        self.record._mark_finished("status")
        await self.conn.write(_head(step.code, list(headers.values())) + raw)
        self.conn.close()

    async def _emit(self, events: list[bytes], final: bool = False, outcome: Outcome = "completed") -> None:
        """Write events as one HTTP chunk; ``final`` also ends the body in the same write.

        The record is finalised *before* the write, so a client that has seen the end of the stream
        (or the [DONE] that comes with it) always finds ``outcome`` and the counters settled.
        """
        payload = _chunk(b"".join(events)) if events else b""
        self.record.events_sent += len(events)
        if final:
            self._ended = True
            self.record._mark_finished(outcome)
            payload += _ZERO_CHUNK
        if payload:
            await self.conn.write(payload)

    def _count_tokens(self, n: int) -> None:
        if self.record.first_token_at is None:
            self.record.first_token_at = time.monotonic()
        self.record.tokens_sent += n

    async def _delta(
        self,
        kind: Literal["text", "thinking"],
        text: str,
        delay: float | None,
        reasoning_field: str,
        final: bool,
    ) -> None:
        delay = self.script.pace if delay is None else delay
        if delay > 0:
            await asyncio.sleep(delay)
        events = self.wire.delta(kind, text, reasoning_field)
        self._count_tokens(1)
        await self._emit(events, final)

    async def _bulk(self, step: Bulk) -> None:
        opening, prefix, suffix = self.wire.bulk_parts()
        await self._emit(opening)
        if self.script.pace > 0:
            for _ in range(step.n):
                await asyncio.sleep(self.script.pace)
                text = _stamp() if step.stamp else _json(step.text)
                self._count_tokens(1)
                await self._emit([prefix + text + suffix])
            return
        # Throughput path: many events per HTTP chunk and per write() syscall.  Stamped batches are
        # kept small so a stamp never waits long behind its batch-mates before hitting the socket.
        per_batch = 32 if step.stamp else 512
        fixed = prefix + _json(step.text) + suffix
        remaining = step.n
        while remaining > 0:
            k = min(per_batch, remaining)
            if step.stamp:
                payload = b"".join([b'%s"<t>%.6f</t>"%s' % (prefix, time.time(), suffix) for _ in range(k)])
            else:
                payload = fixed * k
            self._count_tokens(k)
            self.conn.write_nowait(_chunk(payload))
            self.record.events_sent += k
            remaining -= k
            await self.conn.drain()  # back-pressure: only waits when the client reads slower than we write
            # drain() does not yield while the buffer is low; yield anyway so the hang-up watcher runs.
            await asyncio.sleep(0)


def _stamp() -> bytes:
    return b'"<t>%.6f</t>"' % time.time()


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------

_STREAM_ROUTES: dict[tuple[str, str], type[_OpenAIWire] | type[_AnthropicWire]] = {
    ("POST", "/v1/chat/completions"): _OpenAIWire,
    ("POST", "/v1/messages"): _AnthropicWire,
}

ScriptSpec = Script | Sequence[Script] | Sequence[Step]


class FakeUpstream:
    """Loopback HTTP/1.1 server on its own event loop thread; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self._host = host
        self._tls = tls
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._stopping = False
        self._conns: set[_Connection] = set()
        self._conn_ids = itertools.count(1)
        # One lock guards scripts, attempt counters and records; the Condition wakes wait_for_request.
        self._cond = threading.Condition()
        self._scripts: dict[str, list[Script]] = {}
        self._attempts: dict[str | None, int] = {}
        self._generation: dict[str | None, int] = {}
        self._records: list[RequestRecord] = []

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="FakeUpstream", daemon=True)
        self._thread.start()
        self._port = asyncio.run_coroutine_threadsafe(self._bind(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Close the listener and every connection (in-flight requests get outcome "server_stopped")."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()

    def __enter__(self) -> FakeUpstream:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeUpstream not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    # -- scripting & records (any thread) ---------------------------------------------------------

    def script(self, model: str, script: ScriptSpec) -> None:
        """Set the behaviour for ``model``; a list of Scripts is per attempt (the last one repeats).

        Re-scripting restarts the model's attempt count, and ``wait_for_request`` then only looks at
        requests that arrive afterwards.
        """
        if isinstance(script, Script):
            scripts = [script]
        elif script and all(isinstance(s, Script) for s in script):
            scripts = list(script)  # type: ignore[arg-type]
        else:
            scripts = [Script(script)]  # type: ignore[arg-type]
        with self._cond:
            self._scripts[model] = scripts
            self._attempts[model] = 0
            self._generation[model] = self._generation.get(model, 0) + 1

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of all records so far, in arrival order."""
        with self._cond:
            return list(self._records)

    def requests_for(self, model: str | None) -> list[RequestRecord]:
        with self._cond:
            return [r for r in self._records if r.model == model]

    def reset(self) -> None:
        """Forget all scripts, attempt counters and records."""
        with self._cond:
            self._scripts.clear()
            self._attempts.clear()
            self._records.clear()
            for model in self._generation:
                self._generation[model] += 1

    def _find(self, model: str | None, attempt: int | None) -> RequestRecord | None:
        generation = self._generation.get(model, 0)
        for rec in self._records:
            if rec.model == model and rec._generation == generation and attempt in (None, rec.attempt):
                return rec
        return None

    def wait_for_request(self, model: str | None, timeout: float = 5.0, attempt: int | None = None) -> RequestRecord:
        """The first request for ``model`` since it was last scripted (or that ``attempt``).

        Raises TimeoutError if none arrives within ``timeout`` seconds.
        """
        with self._cond:
            found = self._cond.wait_for(lambda: self._find(model, attempt), timeout)
        if found is None:
            raise TimeoutError(self._timeout_message(model, attempt, timeout))
        return found

    async def wait_for_request_async(
        self, model: str | None, timeout: float = 5.0, attempt: int | None = None
    ) -> RequestRecord:
        found: list[RequestRecord] = []

        def ready() -> bool:
            with self._cond:
                rec = self._find(model, attempt)
            if rec is not None:
                found.append(rec)
            return rec is not None

        if not await _poll(ready, timeout):
            raise TimeoutError(self._timeout_message(model, attempt, timeout))
        return found[0]

    def _timeout_message(self, model: str | None, attempt: int | None, timeout: float) -> str:
        seen = [(r.path, r.model, r.attempt) for r in self.requests]
        return f"no request for model={model!r} attempt={attempt!r} within {timeout}s; seen: {seen}"

    def _record(
        self,
        conn: _Connection,
        request: _Request,
        body: Any,
        model: str | None,
        api: Literal["openai", "anthropic"] | None,
    ) -> tuple[RequestRecord, Script | None]:
        """Register the request (waking waiters) and pick its script under one lock: exact attempts."""
        with self._cond:
            attempt, script = 0, None
            if api is not None:
                attempt = self._attempts[model] = self._attempts.get(model, 0) + 1
                scripts = self._scripts.get(model) if model is not None else None
                script = scripts[min(attempt, len(scripts)) - 1] if scripts else _default_script(model)
            record = RequestRecord(
                method=request.method,
                path=request.path,
                query=request.query,
                headers=request.headers,
                body=body,
                model=model,
                api=api,
                attempt=attempt,
                connection_id=conn.id,
                accepted_at=time.monotonic(),
                _generation=self._generation.get(model, 0),
            )
            self._records.append(record)
            self._cond.notify_all()
        return record, script

    # -- server internals (loop thread) -----------------------------------------------------------

    async def _bind(self) -> int:
        self._server = await asyncio.start_server(
            self._serve_connection, self._host, self._requested_port, ssl=self._tls
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        tasks = []
        for conn in list(self._conns):
            conn.server_closed = True
            conn.writer.transport.abort()
            if conn.task is not None:
                conn.task.cancel()
                tasks.append(conn.task)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(next(self._conn_ids), reader, writer)
        conn.task = asyncio.current_task()
        self._conns.add(conn)
        try:
            while not self._stopping:
                try:
                    request = await conn.read_request()
                except _BadRequest as exc:
                    body = _json({"error": {"message": str(exc), "type": "invalid_request_error"}})
                    await self._send_plain(conn, 400, body, keep_alive=False)
                    break
                if request is None or not await self._dispatch(conn, request):
                    break
        except _ClientGone:
            pass
        except asyncio.CancelledError:
            # stop() cancels handlers; ending normally keeps asyncio's client_connected_cb done-callback
            # (which calls task.exception()) from logging a spurious error on Python 3.11.
            if not self._stopping:
                raise
        except Exception:
            log.exception("fake upstream: connection handler failed")
        finally:
            self._conns.discard(conn)
            conn.close()

    async def _send_plain(self, conn: _Connection, code: int, body: bytes, keep_alive: bool) -> None:
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "keep-alive" if keep_alive else "close"),
        ]
        await conn.write(_head(code, headers) + body)

    async def _dispatch(self, conn: _Connection, request: _Request) -> bool:
        """Answer one request; True if the connection may carry another one."""
        try:
            body: Any = json.loads(request.body) if request.body else None
            bad_json = False
        except ValueError:
            body, bad_json = request.body.decode("utf-8", "replace"), True
        model = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else None
        wire_type = _STREAM_ROUTES.get((request.method, request.path))
        api = wire_type.api if wire_type is not None else None
        record, script = self._record(conn, request, body, model, api)
        keep_alive = request.keep_alive

        if wire_type is None or script is None or bad_json:
            if (request.method, request.path) == ("GET", "/v1/models"):
                code, payload = 200, self._models_body()
            elif bad_json:
                code, payload = 400, _OpenAIWire.error_body(400)
            else:
                code, payload = 404, _OpenAIWire.error_body(404)
            record.status = code
            record.first_byte_at = time.monotonic()
            record._mark_finished("completed")
            await self._send_plain(conn, code, _json(payload), keep_alive)
            return keep_alive

        wire = wire_type(script.answered_model or model or "fake-model", script.system_fingerprint)
        runner = _ScriptRunner(conn, record, script, wire, keep_alive)
        outcome, keep_alive = await self._supervise(conn, record, runner)
        record._mark_finished(outcome)
        return keep_alive

    async def _supervise(self, conn: _Connection, record: RequestRecord, runner: _ScriptRunner) -> tuple[Outcome, bool]:
        """Run the script while watching the socket; whichever ends first decides the outcome."""
        script_task = asyncio.create_task(runner.run())
        watch_task = asyncio.create_task(conn.watch_for_hangup(record))
        try:
            await asyncio.wait({script_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # stop(): abandon the request
            script_task.cancel()
            watch_task.cancel()
            record._mark_finished("server_stopped")
            raise
        if not script_task.done():
            # The client hung up mid-script (maybe during a Stall): stop "generating" at once.
            script_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, _ClientGone):
                await script_task
            return "client_closed", False
        # Cancelling a pending StreamReader.read() loses no bytes, so keep-alive parsing can resume.
        watch_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch_task
        try:
            return script_task.result()
        except _ClientGone:
            # A write failed (RST / broken pipe) before the watcher saw EOF.
            record._mark_client_closed(time.monotonic())
            return "client_closed", False
        except Exception as exc:
            log.exception("fake upstream: script failed")
            record.error = repr(exc)
            return "error", False

    def _models_body(self) -> dict[str, Any]:
        with self._cond:
            names = list(self._scripts)
        return {"object": "list", "data": [{"id": name, "object": "model"} for name in names]}


def _default_script(model: str | None) -> Script:
    match = _BULK_MODEL.fullmatch(model or "")
    if match:
        return Script.bulk(int(match.group(1)), stamp=bool(match.group(2)))
    return DEFAULT_SCRIPT
