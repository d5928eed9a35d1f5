"""Detached runs: ordering, re-attach and replay, snapshots, stop, keepalive."""

from __future__ import annotations

import asyncio
import time

import pytest

from harness.upstream import Finish, Script, Stall, Text, Usage
from jupyter_streamchat.client import StreamChatAPIError
from tests.helpers import chat, collect, ids_of, text_of, wait_finished


async def test_detached_run_completes_with_ordered_events(streamchat_client, upstream):
    # Given an upstream that answers in three chunks
    upstream.script("happy", Script.reply(["Hel", "lo", " world"]))
    # When a run is started and its events are read to the end
    started = await streamchat_client.start_run(chat("openai:happy"))
    events = await collect(streamchat_client.events(started["id"]))
    # Then events are numbered from 1, `run` first, `done` last, and the deltas make the run's text
    assert started["status"] == "running"
    assert ids_of(events) == list(range(1, len(events) + 1))
    assert events[0].event == "run" and events[0].json()["id"] == started["id"]
    assert events[-1].event == "done"
    record = await streamchat_client.get_run(started["id"])
    assert record["status"] == "completed" == events[-1].json()["status"]
    assert text_of(events) == record["text"] == "Hello world"
    assert record["usage"]["output_tokens"] == 3
    assert record["first_token"] and record["finished"] and record["mode"] == "detached"


async def test_run_survives_disconnect_and_replays_missing_events(streamchat_client, upstream):
    upstream.script("paced", Script.reply([f"w{i} " for i in range(30)], pace=0.02))
    started = await streamchat_client.start_run(chat("openai:paced"))
    # When the client hangs up after three deltas
    first = await collect(streamchat_client.events(started["id"]), limit=3)
    last_seen = int(first[-1].id)
    # Then the run still completes on the server
    record = await wait_finished(streamchat_client, started["id"])
    assert record["status"] == "completed"
    # And re-attaching with Last-Event-ID after the end yields what was missed: a finished run keeps
    # only its text, so a snapshot of it (which replaces what the client had) and `done`
    rest = await collect(streamchat_client.events(started["id"], after=last_seen))
    assert [m.event for m in rest] == ["snapshot", "done"]
    assert last_seen < ids_of(rest)[0] < ids_of(rest)[1]
    assert text_of(first + rest) == record["text"]
    # And ?after=N is the same resume point
    url = f"runs/{started['id']}/events?after={last_seen}"
    async with streamchat_client._http.stream("GET", url) as response:
        body = (await response.aread()).decode()
    assert body.count("event: ") == len(rest)
    assert f"id: {ids_of(rest)[0]}\n" in body and f"id: {last_seen}\n" not in body


async def test_stop_while_upstream_stalls_closes_upstream_promptly(streamchat_client, upstream):
    upstream.script("stall", Script([Text("Hel"), Text("lo"), Stall(30)]))
    started = await streamchat_client.start_run(chat("openai:stall"))
    seen = await collect(streamchat_client.events(started["id"]), limit=2)
    request = await upstream.wait_for_request_async("stall")
    # When the user presses Stop while the upstream is silent
    answer = await streamchat_client.stop(started["id"])
    # Then the upstream saw its connection closed during its 30 s stall (a hang-up is only recorded while the
    # response is in progress), not at its end; the latency is benchmarks/bench_stop.py's to measure
    assert await request.wait_closed_async(60) is not None
    # And the run is stopped with exactly the text that was streamed
    assert answer == {"id": started["id"], "status": "stopped", "stopped": True}
    record = await streamchat_client.get_run(started["id"])
    assert record["status"] == "stopped" and record["text"] == text_of(seen) == "Hello"
    # And a second stop changes nothing and says so
    again = await streamchat_client.stop(started["id"])
    assert again == {"id": started["id"], "status": "stopped", "stopped": False}


async def test_completion_seen_before_stop_wins(streamchat_client, upstream):
    # The provider's finish_reason arrived; the stream then stalls before usage and [DONE]
    upstream.script("finished", Script([Text("done"), Finish("stop"), Stall(30)]))
    started = await streamchat_client.start_run(chat("openai:finished"))
    await collect(streamchat_client.events(started["id"]), limit=1)
    answer = await streamchat_client.stop(started["id"])
    assert answer["status"] == "completed" and answer["stopped"] is False
    record = await streamchat_client.get_run(started["id"])
    assert record["finish_reason"] == "stop" and record["text"] == "done"


async def test_usage_without_done_still_completes(streamchat_client, upstream):
    upstream.script("usage-only", Script([Text("a"), Usage(3, 1)]))
    started = await streamchat_client.start_run(chat("openai:usage-only"))
    record = await wait_finished(streamchat_client, started["id"])
    assert record["status"] == "completed" and record["usage"] == {"input_tokens": 3, "output_tokens": 1}


async def test_idle_stream_sends_keepalive_pings(streamchat_client, upstream):
    upstream.script("quiet", Script([Text("x"), Stall(30)]))
    started = await streamchat_client.start_run(chat("openai:quiet"))
    received = b""
    async with streamchat_client._http.stream("GET", f"runs/{started['id']}/events") as response:
        deadline = time.monotonic() + 5
        async for chunk in response.aiter_bytes():
            received += chunk
            if b": ping\n\n" in received or time.monotonic() > deadline:
                break
    assert b": ping\n\n" in received
    await streamchat_client.stop(started["id"])


async def read_raw(client, run_id: str, until: bytes, count: int) -> tuple[bytes, list[int]]:
    """Raw SSE bytes until ``until`` was seen ``count`` times (or the stream ended), with the index of the
    chunk each one arrived in."""
    received, arrivals = b"", []
    async with client._http.stream("GET", f"runs/{run_id}/events") as response:
        async for index, chunk in aenumerate(response.aiter_bytes()):
            received += chunk
            arrivals += [index] * chunk.count(until)
            if len(arrivals) >= count:
                break
    return received, arrivals


async def aenumerate(items):
    index = 0
    async for item in items:
        yield index, item
        index += 1


async def test_keepalive_pings_repeat_while_the_upstream_is_silent(streamchat_client, upstream):
    # Given a run whose upstream goes quiet, and a keepalive interval of 1 s (conftest)
    upstream.script("quiet2", Script([Text("x"), Stall(30)]))
    started = await streamchat_client.start_run(chat("openai:quiet2"))
    # When a client listens through three intervals
    _, pings = await read_raw(streamchat_client, started["id"], b": ping\n\n", 3)
    await streamchat_client.stop(started["id"])
    # Then it gets a ping per interval, each written on its own, not a burst
    assert len(pings) == 3
    assert len(set(pings)) == 3, pings


async def test_a_steady_stream_needs_no_keepalive(streamchat_client, upstream):
    # Given tokens every 0.2 s, five times more often than the 1 s keepalive interval
    upstream.script("steady", Script.reply(["t"] * 12, pace=0.2))
    started = await streamchat_client.start_run(chat("openai:steady"))
    # When a client reads the whole run
    received, _ = await read_raw(streamchat_client, started["id"], b"event: done", 1)
    # Then activity kept the connection alive and no ping was sent
    assert b"event: done" in received and b": ping" not in received


async def test_list_runs_filters_and_orders_newest_first(streamchat_client, upstream):
    upstream.script("q", Script.reply(["ok"]))
    first = await streamchat_client.start_run(chat("openai:q", conversation="c1"))
    second = await streamchat_client.start_run(chat("openai:q", conversation="c2"))
    await wait_finished(streamchat_client, first["id"])
    await wait_finished(streamchat_client, second["id"])
    runs = await streamchat_client.list_runs()
    assert [r["id"] for r in runs][:2] == [second["id"], first["id"]]
    only = await streamchat_client.list_runs(conversation="c1", status="completed")
    assert [r["id"] for r in only] == [first["id"]]


async def test_reattach_to_running_run_gets_live_events(streamchat_client, upstream):
    upstream.script("live", Script.reply([f"t{i} " for i in range(20)], pace=0.03))
    started = await streamchat_client.start_run(chat("openai:live"))
    first = await collect(streamchat_client.events(started["id"]), limit=2)
    # Two clients attach at once from the same point: both see the same, complete tail
    tails = await asyncio.gather(
        collect(streamchat_client.events(started["id"], after=int(first[-1].id))),
        collect(streamchat_client.events(started["id"], after=int(first[-1].id))),
    )
    record = await streamchat_client.get_run(started["id"])
    assert ids_of(tails[0]) == ids_of(tails[1])
    assert text_of(first) + text_of(tails[0]) == record["text"]
    assert tails[0][-1].event == "done"


async def test_events_of_unknown_run_is_404(streamchat_client):
    with pytest.raises(StreamChatAPIError) as info:
        await collect(streamchat_client.events("nope"))
    assert info.value.status == 404
