"""The lean socket layer under httpx (``providers/_asyncio_backend.py``), against real loopback servers.

It must behave like httpx's stock transport in everything but CPU: read timeouts only where asked for,
no socket left open by a failed TLS handshake, and httpx's transport options (verify, client
certificates, trust_env, HTTP/2, local address) meaning what they mean for ``httpx.AsyncHTTPTransport``.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpcore
import httpx
import pytest

from harness.upstream import Done, FakeUpstream, Finish, Script, Text, Usage
from harness.waiting import await_until
from jupyter_streamchat.providers._asyncio_backend import AsyncioBackend, asyncio_transport

LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4)

# httpx's stock transport, and the lean one with the same options.
Make = Callable[..., httpx.AsyncBaseTransport]
TRANSPORTS: dict[str, Make] = {
    "stock": lambda **options: httpx.AsyncHTTPTransport(**options),
    "asyncio": lambda **options: asyncio_transport(LIMITS, **options),
}


def make_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1, usable by a server and as a client certificate."""
    cert, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN=streamchat {name}"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE"),
            *("-addext", "keyUsage=critical,digitalSignature,keyCertSign"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("certs")
    return {name: make_certificate(folder, name) for name in ("server", "client")}


@pytest.fixture(autouse=True)
def no_ambient_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test says which CA it trusts; nothing from the machine's environment decides it.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def server_context(certificates: dict[str, tuple[Path, Path]], *, client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificates["server"])
    if client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(certificates["client"][0])
    return context


@pytest.fixture
def tls_upstream(certificates: dict[str, tuple[Path, Path]]) -> Iterator[FakeUpstream]:
    with FakeUpstream(tls=server_context(certificates)) as server:
        yield server


@pytest.fixture
def mtls_upstream(certificates: dict[str, tuple[Path, Path]]) -> Iterator[FakeUpstream]:
    with FakeUpstream(tls=server_context(certificates, client_cert=True)) as server:
        yield server


class Loopback:
    """A bare loopback TCP server on the test's loop that records what the transports cannot report:
    the client's address, the bytes it sent (a TLS ClientHello is readable), and when it closed its socket."""

    def __init__(self, tls: ssl.SSLContext | None = None, *, answer: bool = True) -> None:
        self._tls = tls
        self._answer = answer
        self.peers: list[str] = []
        self.received: list[bytes] = []  # everything each connection sent, in order of connection
        self.closed = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Loopback:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:  # connections a failed client left behind
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        self.peers.append(writer.get_extra_info("peername")[0])
        self.received.append(b"")
        index = len(self.received) - 1
        try:
            if self._answer:
                self.received[index] = await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                await writer.drain()
            while chunk := await reader.read(65536):  # until the client closes its end
                self.received[index] += chunk
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self.closed.set()
            writer.close()


# ----- (a) a read made without a timeout never times out --------------------------------------------


async def test_a_read_without_timeout_is_not_timed_out_by_an_earlier_reads_deadline():
    with FakeUpstream() as upstream:
        upstream.script("late", Script([Text("late"), Text(" but whole"), Finish(), Usage(), Done()], header_delay=1.0))
        async with httpx.AsyncClient(transport=asyncio_transport(LIMITS), base_url=upstream.openai_base_url) as client:
            # Given a connection whose last read had a short timeout (its timer outlives the read)
            first = await client.get("models", timeout=httpx.Timeout(0.3))
            assert first.status_code == 200
            earlier_deadline = time.monotonic() + 0.3  # no earlier than the first read's timer can fire
            # When the next request on the same connection reads with no timeout, and the answer takes 1 s
            body = {"model": "late", "messages": [], "stream": True}
            response = await client.post("chat/completions", json=body, timeout=httpx.Timeout(5.0, read=None))
        # Then it is read in full: the earlier 0.3 s deadline does not apply to it
        assert response.status_code == 200 and "but whole" in response.text
        requests = upstream.requests
        # (the answer's first byte left the upstream after the earlier read's deadline had passed)
        assert requests[1].first_byte_at is not None and requests[1].first_byte_at > earlier_deadline
        assert requests[0].connection_id == requests[1].connection_id  # the same connection, so the same timer


async def test_read_timeouts_still_fire_after_a_read_without_timeout():
    with FakeUpstream() as upstream:
        # An upstream that answers long after the read timeout (the delay is the subject, not a wait)
        upstream.script("slow", Script([Text("x"), Finish(), Done()], header_delay=60.0))
        async with httpx.AsyncClient(transport=asyncio_transport(LIMITS), base_url=upstream.openai_base_url) as client:
            await client.get("models", timeout=httpx.Timeout(5.0, read=None))
            with pytest.raises(httpx.ReadTimeout):
                body = {"model": "slow", "messages": [], "stream": True}
                await client.post("chat/completions", json=body, timeout=httpx.Timeout(5.0, read=0.3))
            # Then the client gave up before the upstream answered, and hung up
            (_, slow) = upstream.requests
            assert await slow.wait_closed_async(30) is not None
            assert slow.first_byte_at is None


# ----- (b) a failed TLS handshake leaves no socket open ---------------------------------------------


@pytest.mark.parametrize("name", ["stock", "asyncio"])
async def test_a_tls_setup_failure_closes_the_socket_at_once(name: str):
    async with Loopback(answer=False) as server:
        client = httpx.AsyncClient(transport=TRANSPORTS[name](), timeout=5)
        # When TLS cannot even begin: a server name that is no host name (httpx's public sni_hostname extension;
        # Python's ssl refuses it before the handshake, anyio's stream during it)
        with pytest.raises((ValueError, httpx.ConnectError)):
            await client.get(f"https://127.0.0.1:{server.port}/", extensions={"sni_hostname": "x" * 300})
        # Then the connection is closed, not left open with nobody to close it (the client stays open meanwhile)
        await asyncio.wait_for(server.closed.wait(), 2)
        await client.aclose()


async def test_an_untrusted_certificate_closes_the_socket_and_is_a_connect_error(certificates):
    async with Loopback(server_context(certificates)) as server:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", server.port, timeout=5)
        sock = stream.get_extra_info("socket")
        with pytest.raises(httpcore.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await stream.start_tls(ssl.create_default_context(), server_hostname="127.0.0.1", timeout=5)
        # (asyncio closes an aborted transport's socket on the loop's next turn)
        await await_until(lambda: sock.fileno() == -1, what="the client's socket to be closed")


async def test_a_cancelled_tls_handshake_closes_the_socket_at_once():
    # A plain TCP server that never answers the ClientHello: the handshake waits until cancelled (Stop)
    async with Loopback(answer=False) as server:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", server.port, timeout=5)
        task = asyncio.create_task(stream.start_tls(ssl.create_default_context(), "127.0.0.1", timeout=60))
        await await_until(lambda: server.received and server.received[0], what="the ClientHello at the server")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Then the server sees the socket closed, long before the handshake's own timeout could close it
        await asyncio.wait_for(server.closed.wait(), 30)


async def test_a_tls_handshake_timeout_is_a_connect_timeout_and_closes_the_socket():
    async with Loopback(answer=False) as server:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", server.port, timeout=5)
        with pytest.raises(httpcore.ConnectTimeout):
            await stream.start_tls(ssl.create_default_context(), "127.0.0.1", timeout=0.2)
        await asyncio.wait_for(server.closed.wait(), 2)


# ----- (c) httpx's transport options mean the same as for the stock transport -----------------------


@pytest.fixture(params=list(TRANSPORTS))
def make(request: pytest.FixtureRequest) -> Make:
    return TRANSPORTS[request.param]


@asynccontextmanager
async def client_with(transport: httpx.AsyncBaseTransport) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        yield client


async def outcome(transport: httpx.AsyncBaseTransport, url: str) -> str:
    """ "ok", or the name of the httpx error a GET of ``url`` ended with."""
    async with client_with(transport) as client:
        try:
            response = await client.get(url)
        except httpx.TransportError as exc:
            return type(exc).__name__
    return "ok" if response.status_code == 200 else str(response.status_code)


def trusting(certificates: dict[str, tuple[Path, Path]], client: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificates["server"][0]))
    if client:
        context.load_cert_chain(*certificates["client"])
    return context


async def test_verify_decides_which_servers_are_trusted(make: Make, tls_upstream, certificates):
    url = f"{tls_upstream.openai_base_url}/models"
    assert await outcome(make(), url) == "ConnectError"  # the default CAs do not know this server
    assert await outcome(make(verify=trusting(certificates)), url) == "ok"
    assert await outcome(make(verify=False), url) == "ok"


async def test_trust_env_decides_whether_ssl_cert_file_is_read(make: Make, tls_upstream, certificates, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates["server"][0]))
    url = f"{tls_upstream.openai_base_url}/models"
    assert await outcome(make(), url) == "ok"
    assert await outcome(make(trust_env=False), url) == "ConnectError"


async def test_client_certificates_are_presented(make: Make, mtls_upstream, certificates):
    url = f"{mtls_upstream.openai_base_url}/models"
    # A server that requires a client certificate refuses one that presents none ...
    assert await outcome(make(verify=trusting(certificates)), url) != "ok"
    # ... and answers one that presents it, given in a context or (deprecated in httpx) as ``cert``
    assert await outcome(make(verify=trusting(certificates, client=True)), url) == "ok"
    cert, key = certificates["client"]
    assert await outcome(make(verify=trusting(certificates), cert=(str(cert), str(key))), url) == "ok"


async def test_local_address_is_the_source_of_connections(make: Make):
    async with Loopback() as server:
        for local_address in ("127.0.0.2", None):
            assert await outcome(make(local_address=local_address), f"http://127.0.0.1:{server.port}/") == "ok"
    assert server.peers == ["127.0.0.2", "127.0.0.1"]


async def test_http2_is_offered_when_asked_for(make: Make):
    # The ClientHello is sent in the clear: its ALPN list shows what the client offers ("\x02h2" is h2)
    async with Loopback(answer=False) as server:
        for http2 in (False, True):
            async with httpx.AsyncClient(transport=make(http2=http2, verify=False), timeout=0.5) as client:
                with pytest.raises(httpx.ConnectTimeout):  # this server never answers the hello
                    await client.get(f"https://127.0.0.1:{server.port}/")
    offered_h2 = [b"\x02h2" in hello for hello in server.received]
    assert all(b"\x08http/1.1" in hello for hello in server.received)
    assert offered_h2 == [False, True]


def test_the_options_are_httpx_own():
    # The lean transport accepts what httpx.AsyncHTTPTransport accepts (but proxy and uds, which it does not offer).
    stock = set(inspect.signature(httpx.AsyncHTTPTransport).parameters) - {"proxy", "uds"}
    lean = set(inspect.signature(type(asyncio_transport(LIMITS))).parameters)
    assert stock <= lean, f"missing: {stock - lean}"
