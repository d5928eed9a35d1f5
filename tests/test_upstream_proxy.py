"""An HTTP(S)_PROXY in the environment is honoured (corporate networks), whatever the network backend."""

from __future__ import annotations

from typing import Any

import pytest

from harness.upstream import Script
from tests.helpers import chat, collect, text_of

UNRESOLVABLE = "http://api.upstream.invalid/v1"  # only reachable through the proxy


@pytest.fixture(params=["asyncio", "anyio"])
def streamchat_settings(request, streamchat_settings, upstream, monkeypatch) -> dict[str, Any]:
    # The fake upstream doubles as the forward proxy: it accepts absolute-form request targets.
    monkeypatch.setenv("HTTP_PROXY", upstream.base_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return {**streamchat_settings, "openai_base_url": UNRESOLVABLE, "upstream_network_backend": request.param}


async def test_requests_go_through_the_configured_proxy(streamchat_client, upstream):
    upstream.script("via-proxy", Script.reply(["through", " the", " proxy"]))
    started = await streamchat_client.start_run(chat("openai:via-proxy"))
    events = await collect(streamchat_client.events(started["id"]))
    assert text_of(events) == "through the proxy" and events[-1].json()["status"] == "completed"
    request = await upstream.wait_for_request_async("via-proxy")
    assert request.headers["host"] == "api.upstream.invalid"
