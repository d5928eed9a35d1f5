"""A run whose replay buffer was trimmed resumes with a snapshot and loses nothing."""

from __future__ import annotations

import pytest

from tests.helpers import chat, collect, ids_of, text_of, wait_finished
from tests.upstream import Script


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
