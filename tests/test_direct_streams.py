"""Direct streams (compare panes): the response is the generation; hanging up stops it at once."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

from harness.upstream import Malformed, Script, Stall, Text
from tests.helpers import chat, collect, ids_of, text_of, wait_finished


async def test_direct_stream_completes_with_the_same_event_format(streamchat_client, upstream):
    upstream.script("pane", Script.reply(["a", "b", "c"]))
    events = await collect(streamchat_client.stream(chat("openai:pane")))
    assert ids_of(events) == list(range(1, len(events) + 1))
    assert events[0].event == "run" and events[0].json()["mode"] == "direct"
    assert events[-1].event == "done" and events[-1].json()["status"] == "completed"
    record = await streamchat_client.get_run(events[0].json()["id"])
    assert record["mode"] == "direct" and record["text"] == text_of(events) == "abc"


async def test_client_hangup_mid_stall_closes_upstream_promptly(streamchat_client, upstream):
    upstream.script("stall", Script([Text("Hel"), Text("lo"), Stall(30)]))
    seen = []
    async with aclosing(streamchat_client.stream(chat("openai:stall"))) as events:
        async for message in events:
            seen.append(message)
            if text_of(seen) == "Hello":
                break
    # Leaving the `async with` closed the client's connection
    request = await upstream.wait_for_request_async("stall")
    # Then the upstream saw its connection closed during its 30 s stall (a hang-up is only recorded while the
    # response is in progress), not at its end; the latency is benchmarks/bench_stop.py's to measure
    assert await request.wait_closed_async(60) is not None
    record = await wait_finished(streamchat_client, seen[0].json()["id"])
    assert record["status"] == "stopped" and record["text"] == "Hello"


async def test_pane_stop_route_ends_only_that_pane(streamchat_client, upstream):
    upstream.script("left", Script([Text("L"), Stall(30)]))
    upstream.script("right", Script.reply([f"r{i}" for i in range(10)], pace=0.05))

    async def pane(model: str, stop_after_first: bool) -> list:
        seen = []
        async with aclosing(streamchat_client.stream(chat(model))) as events:
            async for message in events:
                seen.append(message)
                if stop_after_first and message.event == "delta":
                    await streamchat_client.stop(seen[0].json()["id"])
        return seen

    left, right = await asyncio.gather(pane("openai:left", True), pane("openai:right", False))
    assert left[-1].json()["status"] == "stopped" and text_of(left) == "L"
    assert right[-1].json()["status"] == "completed" and text_of(right) == "".join(f"r{i}" for i in range(10))


async def test_hangup_after_finish_reason_is_completed(streamchat_client, upstream):
    # Content and finish_reason in one chunk (as many providers send the last token), so the
    # server has seen the finish before the client can see the delta and hang up.
    last_chunk = b'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}\n\n'
    upstream.script("fin", Script([Malformed(last_chunk), Stall(30)]))
    seen = await collect(streamchat_client.stream(chat("openai:fin")), limit=1)
    record = await wait_finished(streamchat_client, seen[0].json()["id"])
    assert record["status"] == "completed" and record["text"] == "x"
