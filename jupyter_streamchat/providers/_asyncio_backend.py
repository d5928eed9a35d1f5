"""An httpcore network backend on a plain ``asyncio.Protocol``: the upstream read path, made cheap.

httpcore's default (anyio) stream pays, for every read, an ``anyio.fail_after`` (a sniffio lookup,
a cancel scope and a timer) and a pause/resume of the socket reader (two ``epoll_ctl`` calls).
Upstream tokens arrive one small read at a time, so that was most of the relay's CPU per token.
Here the socket is read continuously into a buffer (paused only above a high-water mark), and the
read timeout is one lazy timer per connection that is moved only when it fires.

Cancellation keeps its meaning: a cancelled ``read`` (Stop) leaves the connection to httpcore,
which closes it; ``aclose`` aborts the transport so the upstream sees the hang-up at once, even
on TLS (a graceful TLS shutdown would wait for the peer's close_notify).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

_HIGH_WATER = 1 << 20  # buffered bytes before we stop reading the socket (back-pressure)


class _Connection(asyncio.Protocol, httpcore.AsyncNetworkStream):
    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._eof = False
        self._error: BaseException | None = None
        self._reader: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        # The read timeout: the current wait's deadline, checked by one timer that fires no earlier.
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # ----- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _wake(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    # ----- read timeout --------------------------------------------------------------------------
    def _arm(self, deadline: float) -> None:
        self._deadline = deadline
        if self._timer is None or self._timer.when() > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        reader = self._reader
        if reader is None or reader.done():
            return
        if self._loop.time() >= self._deadline:
            reader.set_exception(httpcore.ReadTimeout("the upstream sent nothing within the read timeout"))
        else:
            self._timer = self._loop.call_at(self._deadline, self._check_deadline)

    # ----- httpcore.AsyncNetworkStream -----------------------------------------------------------
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while not self._chunks:
            if self._eof:
                if self._error is not None:
                    raise httpcore.ReadError(str(self._error) or type(self._error).__name__)
                return b""
            self._reader = self._loop.create_future()
            if timeout is not None:
                self._arm(self._loop.time() + timeout)
            try:
                await self._reader
            finally:
                self._reader = None
        chunk = self._chunks.popleft()
        if len(chunk) > max_bytes:
            self._chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        self._buffered -= len(chunk)
        if self._paused and self._buffered < _HIGH_WATER // 2 and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return chunk

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport is None or self._transport.is_closing():
            raise httpcore.WriteError("the upstream connection is closed")
        self._transport.write(buffer)
        if self._writable is not None:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._writable)
            except TimeoutError:
                raise httpcore.WriteTimeout("the upstream did not take the request in time") from None

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.abort()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        if self._transport is None:
            raise httpcore.ConnectError("the upstream connection is closed")
        try:
            async with asyncio.timeout(timeout):
                transport = await self._loop.start_tls(
                    self._transport, self, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout("the TLS handshake timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        if transport is None:
            raise httpcore.ConnectError("the TLS handshake did not complete")
        self._transport = transport
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # httpcore's "was this idle connection closed under us?" check
            return bool(self._chunks) or self._eof
        if self._transport is None:
            return None
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info in ("ssl_object", "socket"):
            return self._transport.get_extra_info(info)
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation (Stop) that
            # lands just as the connection completes, and the run would go on streaming.
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    _Connection, host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = connection.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return connection

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not supported by this backend")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def asyncio_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport | None:
    """httpx's own transport with its connection pool on ``AsyncioBackend``; None if that cannot be done.

    httpx has no public way to pick httpcore's network backend, so the pool is rebuilt (same TLS
    context rules, same limits) and swapped in. Should a future httpx change that layout, the
    caller falls back to the stock transport rather than failing.
    """
    transport = httpx.AsyncHTTPTransport(limits=limits)
    if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        return None
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=AsyncioBackend(),
    )
    return transport
