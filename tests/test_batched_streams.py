"""``?batch=S``: a client that renders at a fixed rate (a kernel widget) takes events in batches.

Fewer, larger writes; the same events, in order, with the same text; bad values are refused up front.
"""

from __future__ import annotations

import httpx
import pytest

from harness.upstream import Script
from jupyter_streamchat.engine._sse import SSEDecoder
from tests.helpers import chat

TOKENS = [f"t{i} " for i in range(40)]


async def read_stream(url: str, token: str, path: str, **kwargs) -> tuple[int, list]:
    """(network chunks received, decoded events) of one SSE response."""
    decoder, events, chunks = SSEDecoder(), [], 0
    async with httpx.AsyncClient(base_url=url + "streamchat/", headers={"Authorization": f"token {token}"}) as http:
        async with http.stream(timeout=30, **kwargs, url=path) as response:
            assert response.status_code == 200
            async for text in response.aiter_text():
                chunks += 1
                events += decoder.feed(text)
    return chunks, events


@pytest.mark.parametrize("batch", ["", "0.1"])
async def test_batched_direct_stream_has_the_same_events_in_fewer_writes(streamchat_url, jp_serverapp, upstream, batch):
    upstream.script("paced", Script.reply(TOKENS, pace=0.01))
    params = {"batch": batch} if batch else {}
    chunks, events = await read_stream(
        streamchat_url,
        jp_serverapp.identity_provider.token,
        "stream",
        method="POST",
        json=chat("openai:paced"),
        params=params,
    )
    assert "".join(e.json()["text"] for e in events if e.event == "delta") == "".join(TOKENS)
    assert [int(e.id) for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event == "done" and events[-1].json()["status"] == "completed"
    if batch:
        assert chunks <= 10  # ~0.45 s of tokens at most every 0.1 s
    else:
        assert chunks >= len(TOKENS) // 2  # unbatched: about one write per token


@pytest.mark.parametrize("bad", ["x", "-1", "5"])
async def test_bad_batch_values_are_refused_before_anything_starts(
    streamchat_client, streamchat_url, jp_serverapp, bad
):
    headers = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    async with httpx.AsyncClient(base_url=streamchat_url + "streamchat/", headers=headers) as http:
        direct = await http.post("stream", params={"batch": bad}, json=chat("demo:fast"))
        assert direct.status_code == 400 and "batch" in direct.json()["message"]
        started = await streamchat_client.start_run(chat("demo:fast"))
        events = await http.get(f"runs/{started['id']}/events", params={"batch": bad})
        assert events.status_code == 400
    assert len(await streamchat_client.list_runs()) == 1  # the refused direct stream started no run
