"""What every provider adapter shares: the stream event model, upstream errors and the HTTP transport.

Adapters turn provider bytes into a small set of events (``Delta``, ``Reasoning``, ``Usage``,
``Finish``) and raise ``UpstreamError`` for anything that is not a clean stream. The transport
implements the retry rule once: retry only before the first streamed byte, only for connect
errors, 408, 429 and 5xx, honouring ``Retry-After``, with bounded attempts and total wait.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol

import httpx

from ..engine._sse import SSEMessage, iter_sse_batches
from ._asyncio_backend import AsyncioTransport
from ._parts import ChatMessage
from ._redact import (
    ERROR_BODY_READ_LIMIT,
    Redactor,
    scrub_json,
    secrets_of_headers,
    secrets_of_url,
)

log = logging.getLogger("jupyter_streamchat.providers")

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529})
# Characters of a malformed chunk quoted in its error message.
MALFORMED_SNIPPET_CHARS = 120


@dataclass(slots=True)
class Delta:
    text: str


@dataclass(slots=True)
class Reasoning:
    text: str


@dataclass(slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    final: bool = True


@dataclass(slots=True)
class Finish:
    reason: str | None = None


@dataclass(slots=True)
class Answered:
    """Who answered (SPEC 11): the model name the provider says it used, and its ``system_fingerprint``."""

    model: str | None = None
    system_fingerprint: str | None = None


StreamEvent = Delta | Reasoning | Usage | Finish | Answered
# Providers yield events in batches, one per network read, so per-read costs are paid once per read.
EventBatch = list[StreamEvent]


class UpstreamError(Exception):
    """The upstream call failed; ``code`` is stable and machine-readable, ``message`` is for people."""

    def __init__(self, code: str, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.upstream_status = upstream_status

    def as_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.upstream_status is not None:
            error["upstream_status"] = self.upstream_status
        return error


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    connect_timeout: float = 10.0
    idle_timeout: float = 60.0
    pool_timeout: float = 10.0
    max_connections: int = 64
    retry_attempts: int = 3
    retry_max_total_wait: float = 30.0
    retry_base_delay: float = 0.5
    network_backend: str = "asyncio"  # or "anyio", httpx's stock backend


class Provider(Protocol):
    name: str

    async def list_models(self) -> list[str]: ...

    def knows_model(self, model: str) -> bool: ...

    def stream(
        self, model: str, messages: list[ChatMessage], options: Mapping[str, Any]
    ) -> AsyncIterator[EventBatch]: ...

    async def aclose(self) -> None: ...


@dataclass
class HTTPTransport:
    """One bounded ``httpx.AsyncClient`` per provider plus the retry rule.

    Every text this transport or its adapter makes from what the upstream sent goes through
    ``redactor`` (which also knows this transport's credential headers and URL credentials).
    """

    base_url: str
    name: str = "provider"  # for error messages
    headers: dict[str, str] = field(default_factory=dict)
    settings: UpstreamSettings = field(default_factory=UpstreamSettings)
    redactor: Redactor = field(default_factory=Redactor)
    _client: httpx.AsyncClient | None = None

    def __post_init__(self) -> None:
        self.redactor = self.redactor.including([*secrets_of_headers(self.headers), *secrets_of_url(self.base_url)])

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            s = self.settings
            limits = httpx.Limits(max_connections=s.max_connections, max_keepalive_connections=8)
            # Proxies are configured by httpx from the environment only with its stock transport.
            lean = s.network_backend == "asyncio" and not _proxy_configured()
            self._client = httpx.AsyncClient(
                base_url=self.base_url.rstrip("/") + "/",
                headers=self.headers,
                # The read timeout is the upstream idle timeout: it bounds each wait for the next bytes.
                timeout=httpx.Timeout(
                    connect=s.connect_timeout,
                    read=s.idle_timeout,
                    write=s.connect_timeout,
                    pool=s.pool_timeout,
                ),
                limits=limits,
                # The same options the stock transport gets from this client (verify, trust_env: defaults).
                transport=AsyncioTransport(limits=limits) if lean else None,
                follow_redirects=False,
            )
        return self._client

    def clean(self, text: str) -> str:
        """What may be kept of a text made from upstream bytes (see ``Redactor.clean``)."""
        return self.redactor.clean(text)

    async def get_json(self, path: str, timeout: float = 2.0) -> Any:
        response = await self.client.get(path.lstrip("/"), timeout=timeout)
        response.raise_for_status()
        return response.json()

    @asynccontextmanager
    async def open_stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[httpx.Response]:
        """POST and yield a 200 streaming response; retries happen only here, before any byte is relayed.

        Transport failures while the caller reads the body come back as ``UpstreamError`` too.
        """
        s = self.settings
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            request = self.client.build_request("POST", path.lstrip("/"), json=body)
            try:
                response = await self.client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                    failure = UpstreamError(
                        "upstream_unreachable", self.clean(f"could not connect to the provider: {exc!r}")
                    )
                else:
                    failure = UpstreamError("upstream_timeout", "the provider did not answer in time")
                retryable = isinstance(exc, httpx.ConnectTimeout)
            except httpx.ConnectError as exc:
                failure = UpstreamError("upstream_unreachable", self.clean(f"could not connect to the provider: {exc}"))
                retryable = True
            except httpx.HTTPError as exc:
                raise UpstreamError("upstream_error", self.clean(f"upstream request failed: {exc!r}")) from None
            else:
                if response.status_code == 200:
                    try:
                        yield response
                    except httpx.ReadTimeout:
                        raise UpstreamError(
                            "upstream_idle_timeout", f"{self.name} sent nothing for {s.idle_timeout:g} s"
                        ) from None
                    except httpx.HTTPError as exc:
                        # Protocol, read and decoding errors may quote upstream bytes: cleaned like any.
                        raise UpstreamError(
                            "upstream_connection_lost", self.clean(f"{self.name} connection broke mid-stream: {exc}")
                        ) from None
                    finally:
                        await response.aclose()
                    return
                failure, retry_after = await self._read_failure(response)
                retryable = response.status_code in RETRYABLE_STATUSES
            if not retryable or attempt >= s.retry_attempts:
                raise failure
            delay = retry_after if retry_after is not None else s.retry_base_delay * 2 ** (attempt - 1)
            if waited + delay > s.retry_max_total_wait:
                raise failure
            log.info(
                "upstream %s: %s; retrying in %.2fs (attempt %d)",
                self.redactor.redact(self.base_url),
                failure.code,
                delay,
                attempt,
            )
            waited += delay
            await asyncio.sleep(delay)

    async def _read_failure(self, response: httpx.Response) -> tuple[UpstreamError, float | None]:
        raw = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                raw += chunk
                if len(raw) >= ERROR_BODY_READ_LIMIT:
                    break
        except httpx.HTTPError:
            pass
        finally:
            await response.aclose()
        # Redacted whole before anything is picked out of it or cut: no cut can split a key.
        body = self.redactor.redact(bytes(raw[:ERROR_BODY_READ_LIMIT]).decode("utf-8", "replace"))
        message = _error_message(body) or response.reason_phrase or "error"
        status = response.status_code
        error = UpstreamError("upstream_http_error", self.clean(f"provider answered {status}: {message}"), status)
        return error, _parse_retry_after(response.headers.get("retry-after"))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _proxy_configured() -> bool:
    return any(scheme != "no" for scheme in urllib.request.getproxies())


def _error_message(body: str) -> str:
    """The message of a provider's JSON error body, else the body itself (the caller cuts it)."""
    text = body.strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return text


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# One SSE message -> its events, and whether it was the provider's terminal message.
MessageDecoder = Callable[[SSEMessage], tuple[list[StreamEvent], bool]]


async def stream_batches(
    transport: HTTPTransport,
    path: str,
    body: dict[str, Any],
    decode: MessageDecoder,
    at_end: Callable[[], Iterable[StreamEvent]] | None = None,
) -> AsyncIterator[EventBatch]:
    """The stream loop of every SSE adapter: POST ``body``, yield the events of each network read as one batch.

    The batch ends early at the provider's terminal message. When ``decode`` raises, the events already
    decoded from the same read are yielded first: text the user saw arrive is never dropped by a bad
    chunk after it. ``at_end`` gives what is still pending when the stream ends without a terminal message.
    """
    async with transport.open_stream(path, body) as response:
        async for messages in iter_sse_batches(response.aiter_text()):
            batch: EventBatch = []
            for message in messages:
                try:
                    events, terminal = decode(message)
                except UpstreamError:
                    if batch:
                        yield batch
                    raise
                batch += events
                if terminal:
                    yield batch
                    return
            if batch:
                yield batch
    if at_end is not None:
        tail = list(at_end())
        if tail:
            yield tail


def text_field(value: object) -> str:
    """A text field of a chunk; anything but a string is a malformed chunk (``decode_events`` says so)."""
    if not isinstance(value, str):
        raise TypeError(f"a text field holds {type(value).__name__}, not a string")
    return value


P = ParamSpec("P")


def decode_events(
    transport: HTTPTransport,
    what: str,
    decode: Callable[P, Iterable[StreamEvent]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> list[StreamEvent]:
    """Run an adapter's decoder; an unexpected payload shape becomes a clear ``upstream_malformed``."""
    try:
        return list(decode(*args, **kwargs))
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        message = transport.clean(f"{transport.name} sent an unexpected {what}: {exc}")
        raise UpstreamError("upstream_malformed", message) from None


def parse_json_chunk(data: str, transport: HTTPTransport) -> Any:
    """One upstream SSE data field as JSON; every string in it is storable (lone surrogates become U+FFFD).

    This is where all provider text enters, so it is the one place reply text is made storable.
    """
    try:
        value = json.loads(data)
    except ValueError:
        # Redacted before it is cut: the quote can never hold part of a key.
        snippet = transport.redactor.clean(data, MALFORMED_SNIPPET_CHARS)
        raise UpstreamError("upstream_malformed", f"{transport.name} sent malformed stream data: {snippet!r}") from None
    # Only a \ud… escape can decode to a surrogate: one substring scan in C is all most chunks cost.
    if "\\u" in data and ("\\ud" in data or "\\uD" in data):
        return scrub_json(value)
    return value


def upstream_label(transport: HTTPTransport, value: object, limit: int = 64) -> str | None:
    """A short label the upstream names (a finish reason, a model id), cleaned like any upstream text."""
    if value is None:
        return None
    return transport.redactor.clean(value if isinstance(value, str) else json.dumps(value), limit)
