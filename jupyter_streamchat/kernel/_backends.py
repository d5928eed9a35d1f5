"""Where a kernel's chat runs: in the Jupyter server that started the kernel, or in-process.

Both backends offer the same few calls and yield the same SSE messages, decoded by the same
``SSEDecoder``, so the widgets never know which one they talk to. The in-process backend is the
server's own engine (``providers/``, ``RunManager``, ``ChatService``) without a notebook recorder:
a kernel that no Jupyter server started (VS Code, ``jupyter console``, plain IPython) still chats,
and says that nothing is recorded in a notebook.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import aclosing, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from ..engine import contract
from ..engine._conversations import conversations_answer
from ..engine._errors import StreamChatError
from ..engine._kernel_contract import ENV_ROOT, ENV_TOKEN, ENV_URL, TOKEN_HEADER
from ..engine._relay import run_events
from ..engine._run import DISCONNECT
from ..engine._sse import SSEDecoder, SSEMessage
from ..engine._validation import validate_chat_body, validate_conversation
from .client import StreamChatAPIError, StreamChatClient

if TYPE_CHECKING:
    from ..engine._run import Run

KEEPALIVE_SECONDS = 15.0
# Widgets render at most every 50 ms, so events are taken in batches every 40 ms: one HTTP chunk per
# token costs a kernel several times more CPU than the token itself (see benchmarks).
BATCH_SECONDS = 0.04


class Backend(Protocol):
    #: The server-relative path of this kernel's notebook, if any.
    notebook: str | None
    #: One line for people: where runs go and whether they are recorded.
    note: str

    async def models(self) -> dict[str, Any]: ...
    async def start_run(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def events(self, run_id: str, after: int = 0) -> AsyncGenerator[SSEMessage]: ...
    def stream(self, body: dict[str, Any]) -> AsyncGenerator[SSEMessage]: ...
    async def stop(self, run_id: str) -> dict[str, Any]: ...
    async def get_run(self, run_id: str) -> dict[str, Any]: ...
    async def list_runs(self, status: str = "", notebook: str = "", conversation: str = "") -> list[dict[str, Any]]: ...
    async def wait_recorded(self, run_id: str) -> dict[str, Any]: ...
    async def conversations(self, notebook: str | None, conversation: str | None = None) -> dict[str, Any]: ...
    async def aclose(self) -> None: ...


class ServerBackend:
    """The extension in the Jupyter server, over HTTP (the kernel's own link, or a hub token)."""

    def __init__(self, client: StreamChatClient, notebook: str | None) -> None:
        self._client = client
        self.notebook = notebook
        # What happens to runs, not a confirmation: a widget says "Recorded in" once the server confirms it.
        self.note = (
            f"Runs are recorded in {notebook} when they end."
            if notebook
            else "Not recorded in a notebook: this kernel has no notebook."
        )

    async def models(self) -> dict[str, Any]:
        return await self._client.models()

    async def start_run(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._client.start_run(body)

    def events(self, run_id: str, after: int = 0) -> AsyncGenerator[SSEMessage]:
        return self._client.events(run_id, after, batch=BATCH_SECONDS)

    def stream(self, body: dict[str, Any]) -> AsyncGenerator[SSEMessage]:
        return self._client.stream(body, batch=BATCH_SECONDS)

    async def stop(self, run_id: str) -> dict[str, Any]:
        return await self._client.stop(run_id)

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return await self._client.get_run(run_id)

    async def list_runs(self, status: str = "", notebook: str = "", conversation: str = "") -> list[dict[str, Any]]:
        return await self._client.list_runs(status=status, notebook=notebook, conversation=conversation)

    async def wait_recorded(self, run_id: str) -> dict[str, Any]:
        return await self._client.get_run(run_id, wait="recorded")

    async def conversations(self, notebook: str | None, conversation: str | None = None) -> dict[str, Any]:
        return await self._client.conversations(notebook, conversation)

    async def aclose(self) -> None:
        await self._client.aclose()


class InProcessBackend:
    """The same engine as the server extension, running on the kernel's event loop.

    A thin adapter over ``engine.contract`` and ``engine._relay``, as the server's handlers are: its answers
    have the API's shapes, its events are the bytes the API sends (decoded here as a remote client decodes
    them). Bodies are validated as the Python objects they are, never serialised and parsed again.
    """

    notebook: str | None = None
    note = "Notebook persistence is off: no Jupyter server started this kernel (in-process engine)."

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        from ..engine._validation import BodyLimits
        from ..engine.runs import RunManager
        from ..engine.service import ChatService
        from ..providers import ProviderConfig, ProviderRegistry

        self.service = ChatService(
            registry=ProviderRegistry(ProviderConfig.from_environ(environ)),
            runs=RunManager(),
            body_limits=BodyLimits(),
            root_dir=os.getcwd(),
        )

    async def models(self) -> dict[str, Any]:
        with _as_api_error():
            return dict(await contract.models_answer(self.service.registry))

    async def start_run(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(contract.start_result(await self._start(body, contract.DETACHED)))

    async def list_runs(self, status: str = "", notebook: str = "", conversation: str = "") -> list[dict[str, Any]]:
        given = {"status": status, "notebook": notebook, "conversation": conversation}
        with _as_api_error():
            filters = contract.listing_filters(given.__getitem__)
        return [dict(record) for record in contract.run_list(self.service.runs.list(filters))["runs"]]

    async def events(self, run_id: str, after: int = 0) -> AsyncGenerator[SSEMessage]:
        run = self._run(run_id)
        with _as_api_error():
            after = contract.resume_point(str(after), run)
        async with aclosing(_decoded(run_events(run.subscribe(after), KEEPALIVE_SECONDS, BATCH_SECONDS))) as messages:
            async for message in messages:
                yield message

    async def stream(self, body: dict[str, Any]) -> AsyncGenerator[SSEMessage]:
        run = await self._start(body, contract.DIRECT)
        try:
            async with aclosing(_decoded(run_events(run.subscribe(0), KEEPALIVE_SECONDS, BATCH_SECONDS))) as messages:
                async for message in messages:
                    yield message
        finally:
            # As when a browser hangs up on a direct stream: the run stops at once.
            run.request_end(DISCONNECT)

    async def stop(self, run_id: str) -> dict[str, Any]:
        return dict(await contract.stop(self._run(run_id)))

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return dict(contract.public_record(self._run(run_id)))

    async def wait_recorded(self, run_id: str) -> dict[str, Any]:
        return await self.get_run(run_id)  # no notebook here: nothing to wait for

    async def conversations(self, notebook: str | None, conversation: str | None = None) -> dict[str, Any]:
        return self.conversations_now(conversation)

    def conversations_now(self, conversation: str | None = None) -> dict[str, Any]:
        """No notebook in-process: this kernel's runs are the only turns there are (read without awaiting)."""
        with _as_api_error():
            only = validate_conversation(conversation)
        return dict(conversations_answer(None, {}, self.service.runs.list(), only, lambda _run: True))

    async def aclose(self) -> None:
        await self.service.aclose(timeout=5.0)

    async def _start(self, body: dict[str, Any], mode: str) -> Run:
        with _as_api_error():
            # No notebook in-process: a body naming one (a widget's) is taken, and nothing is recorded.
            parsed = replace(validate_chat_body(body, self.service.body_limits), notebook=None)
            return await self.service.start_run(parsed, mode)

    def _run(self, run_id: str) -> Run:
        with _as_api_error():
            return contract.find_run(self.service.runs.get, run_id)


async def _decoded(chunks: AsyncGenerator[bytes]) -> AsyncGenerator[SSEMessage]:
    """Encoded events, decoded exactly as a remote client decodes them."""
    decoder = SSEDecoder()
    async with aclosing(chunks):
        async for chunk in chunks:
            for message in decoder.feed(chunk.decode()):
                yield message


@contextmanager
def _as_api_error() -> Iterator[None]:
    """Engine errors look like the HTTP API's errors, so callers handle one kind."""
    try:
        yield
    except StreamChatError as exc:
        raise StreamChatAPIError(exc.status, exc.message) from exc


def notebook_from_session(environ: Mapping[str, str]) -> str | None:
    """The kernel's notebook, server-relative, from the ``JPY_SESSION_NAME`` jupyter_server sets."""
    session = environ.get("JPY_SESSION_NAME", "")
    if not session or not session.endswith(".ipynb"):
        return None
    if not os.path.isabs(session):
        return session.replace(os.sep, "/").lstrip("/")
    root = environ.get(ENV_ROOT, "")
    if not root:
        return None
    try:
        relative = os.path.relpath(os.path.realpath(session), os.path.realpath(root))
    except ValueError:  # another drive
        return None
    if relative.startswith(".."):
        return None
    return relative.replace(os.sep, "/")


def discover(environ: Mapping[str, str] = os.environ) -> Backend:
    """The server that started this kernel if there is one, else the in-process engine."""
    url, token = environ.get(ENV_URL), environ.get(ENV_TOKEN)
    notebook = notebook_from_session(environ)
    if url and token:
        if not _answers(url):
            # The server that started this kernel is gone (the kernel outlived it): chat on, in-process.
            backend = InProcessBackend(environ)
            backend.note = (
                f"Notebook persistence is off: the Jupyter server at {url} does not answer (in-process engine)."
            )
            return backend
        client = StreamChatClient(
            url,
            headers={TOKEN_HEADER: token},
            # The link goes straight to this machine's server: never through HTTP(S)_PROXY.
            trust_env=False,
            verify=not (url.startswith("https:") and _is_loopback(url)),
        )
        return ServerBackend(client, notebook)
    hub_url, hub_token = environ.get("JUPYTERHUB_SERVICE_URL"), environ.get("JUPYTERHUB_API_TOKEN")
    if hub_url and hub_token:
        return ServerBackend(StreamChatClient(hub_url, hub_token, trust_env=False), notebook)
    return InProcessBackend(environ)


def _answers(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts connections where ``url`` points (a Unix socket is assumed to)."""
    parts = urlsplit(url)
    if parts.scheme == "http+unix" or not parts.hostname:
        return True
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


_backends: dict[asyncio.AbstractEventLoop, Backend] = {}


def current_backend() -> Backend:
    """One backend per event loop (an httpx client must not be shared across loops)."""
    loop = asyncio.get_event_loop()
    backend = _backends.get(loop)
    if backend is None:
        backend = _backends[loop] = discover()
    return backend
