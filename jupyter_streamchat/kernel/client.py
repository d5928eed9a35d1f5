"""An async HTTP client for the streamchat API, used by kernels, tests and benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import unquote

import httpx

from ..engine._sse import SSEMessage, iter_sse
from ..providers import AsyncioTransport


class StreamChatAPIError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class StreamChatClient:
    """``base_url`` is the Jupyter server's base URL (``http://host:port/base/``).

    ``token`` is a Jupyter (or JupyterHub) token; ``headers`` carries any other credential, such as
    the scoped one a kernel gets from its server. ``http+unix://<quoted socket path>/base/`` reaches a
    server listening on a Unix socket.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 30.0,
        *,
        headers: dict[str, str] | None = None,
        verify: bool = True,
        trust_env: bool = True,
    ) -> None:
        all_headers = {"Authorization": f"token {token}"} if token else {}
        all_headers.update(headers or {})
        transport: httpx.AsyncBaseTransport | None = None
        if base_url.startswith("http+unix://"):
            socket_path, _, path = base_url[len("http+unix://") :].partition("/")
            transport = httpx.AsyncHTTPTransport(uds=unquote(socket_path))
            base_url = f"http://localhost/{path}"
        elif base_url.startswith("http://") and not trust_env:
            # The lean socket layer the server uses for providers (about 40 % less CPU per read).
            transport = AsyncioTransport(limits=httpx.Limits())
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/streamchat/",
            headers=all_headers,
            timeout=httpx.Timeout(timeout, read=None),
            transport=transport,
            verify=verify,
            trust_env=trust_env,
        )

    async def __aenter__(self) -> StreamChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The answer, which the API always makes a JSON object (SPEC 4)."""
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise StreamChatAPIError(response.status_code, _message(response))
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise StreamChatAPIError(response.status_code, "the server's answer is not a JSON object")
        return answer

    async def models(self) -> dict[str, Any]:
        return await self._json("GET", "models")

    async def start_run(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json("POST", "runs", json=body)

    async def get_run(self, run_id: str, *, wait: str | None = None) -> dict[str, Any]:
        """The run's record; ``wait="recorded"``: once it has ended and its notebook record is settled
        (the server waits a bounded time, then answers ``"recorded": "pending"``)."""
        return await self._json("GET", f"runs/{run_id}", params={"wait": wait} if wait else None)

    async def list_runs(self, **filters: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = (await self._json("GET", "runs", params=filters))["runs"]
        return runs

    async def conversations(self, notebook: str | None = None, conversation: str | None = None) -> dict[str, Any]:
        """The conversations of ``notebook`` (None: runs naming no notebook), or ``conversation`` alone, as trees:
        ``{"notebook", "conversations": {name: {"active", "turns"}}}``."""
        params = {key: value for key, value in (("notebook", notebook), ("conversation", conversation)) if value}
        return await self._json("GET", "conversations", params=params)

    async def stop(self, run_id: str) -> dict[str, Any]:
        return await self._json("POST", f"runs/{run_id}/stop")

    async def events(self, run_id: str, after: int | None = None, batch: float = 0.0) -> AsyncGenerator[SSEMessage]:
        """A detached run's events from ``after`` on (sent as ``Last-Event-ID``); ``batch``: see the handler."""
        headers = {"Last-Event-ID": str(after)} if after else {}
        params = {"batch": batch} if batch else {}
        request = self._http.build_request("GET", f"runs/{run_id}/events", headers=headers, params=params)
        async for message in self._sse(request):
            yield message

    async def stream(self, body: dict[str, Any], batch: float = 0.0) -> AsyncGenerator[SSEMessage]:
        """A direct stream: leaving the iteration closes the connection, which stops the run."""
        params = {"batch": batch} if batch else {}
        async for message in self._sse(self._http.build_request("POST", "stream", json=body, params=params)):
            yield message

    async def _sse(self, request: httpx.Request) -> AsyncGenerator[SSEMessage]:
        response = await self._http.send(request, stream=True)
        try:
            await _raise_for_status(response)
            async for message in iter_sse(response.aiter_text()):
                yield message
        finally:
            # Shielded: a second cancellation (Stop pressed twice) must not interrupt the close, or the
            # connection leaks open and the server never learns that this client left.
            await asyncio.shield(response.aclose())


async def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        await response.aread()
        raise StreamChatAPIError(response.status_code, _message(response))


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message"))
    except ValueError:
        return response.text[:200]
