"""A run whose replay buffer was trimmed resumes with a snapshot and loses nothing."""

from __future__ import annotations

import pytest

from harness.upstream import Finish, Script, Text, Think, Usage
from jupyter_streamchat.engine._sse import SSEDecoder
from tests.helpers import chat, collect, ids_of, service_of, text_of, wait_finished


@pytest.fixture
def streamchat_settings(streamchat_settings):
    return {**streamchat_settings, "replay_buffer_events": 16}


async def test_trimmed_buffer_resumes_with_snapshot(streamchat_client, upstream):
    upstream.script("many", Script.reply([f"{i}," for i in range(100)]))
    started = await streamchat_client.start_run(chat("openai:many"))
    record = await wait_finished(streamchat_client, started["id"])
    # When a client resumes from an event that is no longer buffered
    events = await collect(streamchat_client.events(started["id"], after=2))
    # Then a snapshot stands in for the evicted events, and snapshot + later deltas == text
    assert events[0].event == "snapshot"
    assert ids_of(events) == list(range(ids_of(events)[0], ids_of(events)[0] + len(events)))
    assert text_of(events) == record["text"]
    # And a fresh client still gets `run` first
    fresh = await collect(streamchat_client.events(started["id"]))
    assert [m.event for m in fresh[:2]] == ["run", "snapshot"]
    assert text_of(fresh) == record["text"]


async def test_a_finished_run_keeps_only_its_text_and_replays_exactly(streamchat_client, upstream, jp_serverapp):
    steps = [Think("hm, "), Think("ok"), *(Text(f"{i} ") for i in range(12)), Finish(), Usage()]
    upstream.script("thinks", Script(steps))
    started = await streamchat_client.start_run(chat("openai:thinks"))
    record = await wait_finished(streamchat_client, started["id"])
    done_id = service_of(jp_serverapp).runs.get(started["id"]).last_seq
    # Then a fresh client gets `run`, a snapshot of the whole text and reasoning, and `done`
    fresh = await collect(streamchat_client.events(started["id"]))
    assert [m.event for m in fresh] == ["run", "snapshot", "done"]
    assert ids_of(fresh) == [1, done_id - 1, done_id]
    assert fresh[1].json() == {"text": record["text"], "reasoning": "hm, ok"}
    assert fresh[2].json()["status"] == "completed"
    # And a client resuming from any id before the end gets a snapshot then `done`: the exact text
    for after in range(1, done_id - 1):
        resumed = await collect(streamchat_client.events(started["id"], after=after))
        assert [m.event for m in resumed] == ["snapshot", "done"], after
        assert after < ids_of(resumed)[0] < ids_of(resumed)[1] == done_id
        assert text_of(resumed) == record["text"]
    # And one that saw all but `done` gets `done`; one that saw `done` gets nothing
    assert [m.event for m in await collect(streamchat_client.events(started["id"], after=done_id - 1))] == ["done"]
    assert await collect(streamchat_client.events(started["id"], after=done_id)) == []
    # And what the server keeps of the run is its text, not its events
    run = service_of(jp_serverapp).runs.get(started["id"])
    events, kept = run.retained_events()
    assert events == 1 and kept < 200, f"{events} events, {kept} bytes kept"


async def test_a_reader_behind_at_the_end_still_gets_every_event(streamchat_client, upstream, jp_serverapp):
    upstream.script("few", Script.reply([f"{i}," for i in range(10)], pace=0.01))
    started = await streamchat_client.start_run(chat("openai:few"))
    run = service_of(jp_serverapp).runs.get(started["id"])
    # Given a reader attached from the start that reads nothing until the run has ended
    subscription = run.subscribe(0)
    record = await wait_finished(streamchat_client, started["id"])
    # Then it still gets every event, deltas and all, and no snapshot
    events = SSEDecoder().feed(subscription.take().decode())
    subscription.close()
    assert [m.event for m in events] == ["run", *["delta"] * 10, "usage", "done"]
    assert text_of(events) == record["text"]
    # And once it has gone, the run is collapsed for later readers
    assert [m.event for m in await collect(streamchat_client.events(started["id"]))] == ["run", "snapshot", "done"]
