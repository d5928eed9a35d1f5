"""An httpcore network backend on a plain ``asyncio.Protocol``: the upstream read path, made cheap.

httpcore's default (anyio) stream pays, for every read, an ``anyio.fail_after`` (a sniffio lookup,
a cancel scope and a timer) and a pause/resume of the socket reader (two ``epoll_ctl`` calls).
Upstream tokens arrive one small read at a time, so that was most of the relay's CPU per token.
Here the socket is read continuously into a buffer (paused only above a high-water mark), and the
read timeout is one lazy timer per connection that is moved only when it fires.

Cancellation keeps its meaning: a cancelled ``read`` (Stop) leaves the connection to httpcore,
which closes it; ``aclose`` aborts the transport so the upstream sees the hang-up at once, even
on TLS (a graceful TLS shutdown would wait for the peer's close_notify).

``AsyncioTransport`` puts this backend under httpx through public APIs only: an
``httpx.AsyncBaseTransport`` around ``httpcore.AsyncConnectionPool(network_backend=...)``, taking
httpx's own transport options, so TLS verification, client certificates, HTTP/2 and the local
address mean exactly what they mean for ``httpx.AsyncHTTPTransport``. It is public as
``jupyter_streamchat.providers.AsyncioTransport``, where the kernel's API client (``kernel/client.py``)
takes it from.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["AsyncioBackend", "AsyncioTransport", "asyncio_transport"]

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
        # The read timeout: the current wait's deadline (None: the wait has no timeout), checked by one
        # timer that fires no earlier. The timer outlives the read that armed it, so it must never act
        # on a deadline that a later read did not set.
        self._deadline: float | None = None
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
    def _arm(self, timeout: float | None) -> None:
        if timeout is None:
            # A timer left by an earlier read may still be pending; with no deadline it does nothing.
            self._deadline = None
            return
        deadline = self._loop.time() + timeout
        self._deadline = deadline
        if self._timer is None or self._timer.when() > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        reader, deadline = self._reader, self._deadline
        if reader is None or reader.done() or deadline is None:
            return
        if self._loop.time() >= deadline:
            reader.set_exception(httpcore.ReadTimeout("the upstream sent nothing within the read timeout"))
        else:
            self._timer = self._loop.call_at(deadline, self._check_deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ----- httpcore.AsyncNetworkStream -----------------------------------------------------------
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while not self._chunks:
            if self._eof:
                if self._error is not None:
                    raise httpcore.ReadError(str(self._error) or type(self._error).__name__)
                return b""
            self._reader = self._loop.create_future()
            self._arm(timeout)
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
        self._cancel_timer()
        if self._transport is not None:
            self._transport.abort()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        raw = self._transport
        if raw is None or raw.is_closing():
            raise httpcore.ConnectError("the upstream connection is closed")
        try:
            async with asyncio.timeout(timeout):
                transport = await self._loop.start_tls(raw, self, ssl_context, server_hostname=server_hostname)
            if transport is None:
                raise httpcore.ConnectError("the TLS handshake did not complete")
        except BaseException as exc:
            # httpcore drops a stream whose start_tls failed without closing it, so the socket is ours to
            # close. asyncio closes it only for failures after the handshake began, not for those raised
            # while setting it up (say, a context that checks hostnames and no hostname), nor is a
            # cancellation's close immediate; abort covers all of them, at once.
            self._cancel_timer()
            raw.abort()
            if isinstance(exc, TimeoutError):
                raise httpcore.ConnectTimeout("the TLS handshake timed out") from None
            if isinstance(exc, OSError | ssl.SSLError):
                raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
            raise
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
        try:
            sock = connection.get_extra_info("socket")
            for option in socket_options or ():
                sock.setsockopt(*option)
        except BaseException:
            await connection.aclose()
            raise
        return connection

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not supported by this backend")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# httpcore's exceptions as httpx raises them (its transport does the same mapping, privately).
_HTTPX_ERRORS: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}


def _as_httpx_error(exc: Exception) -> httpx.TransportError | None:
    for cls in type(exc).__mro__:  # the most specific mapped class wins
        mapped = _HTTPX_ERRORS.get(cls)
        if mapped is not None:
            return mapped(str(exc))
    return None


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except Exception as exc:
            mapped = _as_httpx_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class AsyncioTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncHTTPTransport`` with its connection pool on ``AsyncioBackend``.

    Same options, same meaning: the TLS context comes from ``httpx.create_ssl_context`` with the
    given ``verify``, ``cert`` and ``trust_env`` (so ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` are honoured
    as by the stock transport), and the rest is handed to httpcore's pool as httpx hands it. Proxies
    are not offered: httpx configures them from the environment only for its stock transport.
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[Any] | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        # ``cert`` is deprecated in httpx (a ``verify`` context with ``load_cert_chain`` replaces it);
        # pass it only when given, so that no deprecation warning is raised for nothing.
        tls: dict[str, Any] = {"verify": verify, "trust_env": trust_env}
        if cert is not None:
            tls["cert"] = cert
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(**tls),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=http1,
            http2=http2,
            local_address=local_address,
            retries=retries,
            socket_options=socket_options,
            network_backend=AsyncioBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self._pool.handle_async_request(core_request)
        except Exception as exc:
            mapped = _as_httpx_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def asyncio_transport(limits: httpx.Limits, **options: Any) -> AsyncioTransport:
    """Shorthand for ``AsyncioTransport(limits=limits, **options)``."""
    return AsyncioTransport(limits=limits, **options)
