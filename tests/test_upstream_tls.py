"""Providers over TLS, with both network backends: verified certificates, streaming, prompt Stop."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.upstream import Drop, FakeUpstream, Script, Stall, Text
from tests.helpers import chat, collect, text_of, wait_finished


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (made with the system's openssl, offline)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=streamchat test upstream"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE"),
            *("-addext", "keyUsage=critical,digitalSignature,keyCertSign"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def upstream(certificate: tuple[Path, Path]) -> Iterator[FakeUpstream]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    with FakeUpstream(tls=context) as server:
        yield server


@pytest.fixture(params=["asyncio", "anyio"])
def streamchat_settings(request, streamchat_settings, certificate, monkeypatch) -> dict[str, Any]:
    # The standard way to trust a private CA; the provider's client is built on first use, after this.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    return {**streamchat_settings, "upstream_network_backend": request.param}


async def test_reply_streams_over_tls(streamchat_client, upstream):
    # Given a provider behind TLS with a certificate we trust
    assert upstream.openai_base_url.startswith("https://")
    upstream.script("secure", Script.reply(["over", " tls"], pace=0.01))
    # When a run streams from it
    started = await streamchat_client.start_run(chat("openai:secure"))
    events = await collect(streamchat_client.events(started["id"]))
    # Then every word arrives
    assert text_of(events) == "over tls" and events[-1].json()["status"] == "completed"


async def test_stop_closes_a_silent_tls_connection_at_once(streamchat_client, upstream):
    # Given a TLS upstream that went silent mid-answer
    upstream.script("tls-stall", Script([Text("partial"), Stall(30)]))
    started = await streamchat_client.start_run(chat("openai:tls-stall"))
    request = await upstream.wait_for_request_async("tls-stall")
    await collect(streamchat_client.events(started["id"]), limit=1)
    # When the user stops the run
    await streamchat_client.stop(started["id"])
    # Then the upstream sees its connection end during its 30 s stall (no waiting for a TLS close handshake,
    # which a silent peer never answers; a hang-up is only recorded while the response is in progress)
    assert await request.wait_closed_async(60) is not None
    record = await streamchat_client.get_run(started["id"])
    assert record["status"] == "stopped" and record["text"] == "partial"


async def test_reset_tls_connection_fails_the_run_and_keeps_the_text(streamchat_client, upstream):
    upstream.script("tls-drop", Script([Text("kept"), Drop()]))
    started = await streamchat_client.start_run(chat("openai:tls-drop"))
    record = await wait_finished(streamchat_client, started["id"])
    assert record["status"] == "failed" and record["error"]["code"] == "upstream_connection_lost"
    assert record["text"] == "kept"


async def test_untrusted_certificate_is_refused(streamchat_client, upstream, monkeypatch):
    # Given no trust in the upstream's self-signed certificate
    monkeypatch.delenv("SSL_CERT_FILE")
    upstream.script("untrusted", Script.reply(["never"]))
    # When a run tries to reach it
    started = await streamchat_client.start_run(chat("openai:untrusted"))
    record = await wait_finished(streamchat_client, started["id"])
    # Then it fails to connect with a clear error, and nothing was streamed
    assert record["status"] == "failed" and record["error"]["code"] == "upstream_unreachable"
    assert "certificate" in record["error"]["message"].lower() and record["text"] == ""
