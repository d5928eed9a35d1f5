"""One contract, two adapters: the HTTP API and the in-process backend answer the same shapes.

A kernel that no server started runs the engine in-process (``InProcessBackend``); a widget must not be able
to tell which one it talks to. Each test does the same thing through a real Jupyter server and through a real
in-process engine, both streaming from the same loopback upstream, and compares what they answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from harness.upstream import FakeUpstream, Script, Stall, Text
from jupyter_streamchat.engine import contract
from jupyter_streamchat.engine._validation import BodyLimits, validate_chat_body
from jupyter_streamchat.kernel._backends import InProcessBackend
from jupyter_streamchat.kernel.client import StreamChatAPIError
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.helpers import chat, collect, text_of

# What differs between two runs of the same request by nature: identity, clock, and who started it (a
# Jupyter user over HTTP, nobody in a kernel of its own).
PER_RUN = {"id", "created", "first_token", "finished", "owner"}


@asynccontextmanager
async def in_process(upstream: FakeUpstream) -> AsyncIterator[InProcessBackend]:
    """The engine as a kernel without a server runs it, configured by the environment for the same upstream."""
    backend = InProcessBackend(
        {
            "OPENAI_BASE_URL": upstream.openai_base_url,
            "OPENAI_API_KEY": OPENAI_KEY,
            "ANTHROPIC_BASE_URL": upstream.anthropic_base_url,
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            # Where no Ollama answers (the server under test has it disabled).
            "OLLAMA_HOST": "127.0.0.1:9",
        }
    )
    try:
        yield backend
    finally:
        await backend.aclose()


def same_kind(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key not in PER_RUN}


async def refusal(call: Any) -> tuple[int, str]:
    with pytest.raises(StreamChatAPIError) as refused:
        await call
    return refused.value.status, refused.value.message


async def test_a_finished_run_has_the_same_record_over_http_and_in_process(streamchat_client, upstream):
    upstream.script("same", Script.reply(["one ", "two ", "three"]))
    body = chat("openai:same", "Count to three", conversation="counting")
    async with in_process(upstream) as backend:
        # Given the same request started through the API and in-process, both read to their end
        over_http = await streamchat_client.start_run(body)
        local = await backend.start_run(body)
        await collect(streamchat_client.events(over_http["id"]))
        await collect(backend.events(local["id"]))
        # When each is asked for the run's record
        http_record = await streamchat_client.get_run(over_http["id"])
        local_record = await backend.get_run(local["id"])

    # Then the start answers agree (the events URL is the API's way to the events; in-process it is events())
    assert set(over_http) - set(local) == {"events_url"} and local == {"id": local["id"], "status": "running"}
    assert over_http["status"] == local["status"]
    # And the records have the same keys and values, the prompt included (the in-process one lacked it)
    assert local_record.keys() == http_record.keys()
    assert same_kind(local_record) == same_kind(http_record)
    assert local_record["prompt"] == "Count to three" and local_record["status"] == "completed"


async def test_a_direct_stream_sends_the_same_events_over_http_and_in_process(streamchat_client, upstream):
    upstream.script("same", Script.reply(["one ", "two ", "three"]))
    async with in_process(upstream) as backend:
        # When the same direct stream (subscribed from its first event on) is read through both
        http_events = await collect(streamchat_client.stream(chat("openai:same")))
        local_events = await collect(backend.stream(chat("openai:same")))

    # Then both sent the same events with the same ids and data, the run's own identity and clock aside
    assert [m.event for m in local_events] == [m.event for m in http_events]
    assert [m.event for m in local_events] == ["run", "delta", "delta", "delta", "usage", "done"]
    assert [m.id for m in local_events] == [m.id for m in http_events]
    assert [m.json() for m in local_events[1:]] == [m.json() for m in http_events[1:]]
    assert local_events[0].json().keys() == http_events[0].json().keys()
    assert text_of(local_events) == text_of(http_events) == "one two three"


async def test_listing_filters_and_their_refusals_are_the_same(streamchat_client, upstream):
    upstream.script("listed", Script.reply(["listed"]))
    async with in_process(upstream) as backend:
        for client in (streamchat_client, backend):
            for conversation in ("a", "b"):
                started = await client.start_run(chat("openai:listed", conversation=conversation))
                await collect(client.events(started["id"]))
        # When both are asked for the completed runs of one conversation
        http_runs = await streamchat_client.list_runs(status="completed", conversation="b")
        local_runs = await backend.list_runs(status="completed", conversation="b")
        # And for a status that does not exist
        http_refused = await refusal(streamchat_client.list_runs(status="finished"))
        local_refused = await refusal(backend.list_runs(status="finished"))

    # Then each lists the one run of that conversation, with the same record
    assert len(http_runs) == len(local_runs) == 1
    assert same_kind(local_runs[0]) == same_kind(http_runs[0])
    # And both refuse the unknown status alike
    assert local_refused == http_refused == (400, "unknown status 'finished'")


async def test_stop_answers_the_same_the_first_time_and_after_the_end(streamchat_client, upstream):
    upstream.script("stalls", Script([Text("partial "), Stall(60)]))
    async with in_process(upstream) as backend:
        answers: dict[str, list[dict[str, Any]]] = {}
        records = {}
        for name, client in (("http", streamchat_client), ("local", backend)):
            started = await client.start_run(chat("openai:stalls"))
            # Given a run that streamed its first words, then stalls
            await collect(client.events(started["id"]), limit=1)
            # When it is stopped, and stopped again
            answers[name] = [await client.stop(started["id"]), await client.stop(started["id"])]
            records[name] = await client.get_run(started["id"])

    # Then the first stop stopped it and the second says it changed nothing, in the same words
    for name in ("http", "local"):
        first, second = answers[name]
        assert first == {"id": first["id"], "status": "stopped", "stopped": True}, name
        assert second == {"id": first["id"], "status": "stopped", "stopped": False}, name
    # And the stopped runs' records agree, partial text and all
    assert same_kind(records["local"]) == same_kind(records["http"])
    assert records["local"]["text"] == "partial "


async def test_models_unknown_runs_and_resume_points_are_answered_alike(streamchat_client, upstream):
    upstream.script("short", Script.reply(["short"]))
    async with in_process(upstream) as backend:
        http_models, local_models = await streamchat_client.models(), await backend.models()
        started = {}
        for name, client in (("http", streamchat_client), ("local", backend)):
            started[name] = (await client.start_run(chat("openai:short")))["id"]
            await collect(client.events(started[name]))
        # When a run id is unknown, or a resume point lies beyond a run's last event
        http_unknown = await refusal(streamchat_client.get_run("no-such-run"))
        local_unknown = await refusal(backend.get_run("no-such-run"))
        http_beyond = await refusal(collect(streamchat_client.events(started["http"], after=999)))
        local_beyond = await refusal(collect(backend.events(started["local"], after=999)))

    # Then the models answers have the same shape and the same models for the same configuration
    assert local_models.keys() == http_models.keys() == {"models", "default"}
    assert local_models == http_models
    # And the refusals have the same status and message
    assert local_unknown == http_unknown == (404, "unknown run 'no-such-run'")
    assert local_beyond[0] == http_beyond[0] == 400
    assert local_beyond[1].startswith("the resume point 999 is beyond the run's last event")
    assert local_beyond == http_beyond


async def test_bad_bodies_are_refused_alike_and_in_process_bodies_are_never_reencoded(streamchat_client, upstream):
    bad_bodies = [
        {"model": "openai:x", "messages": []},
        {"model": "openai:x", "messages": [{"role": "robot", "content": "hi"}]},
        {"model": "openai:x", "prompt": "hi", "messages": [{"role": "user", "content": "hi"}]},
        {"model": "openai:x", "prompt": "hi", "conversation": "__proto__"},
        {"model": "openai:x", "prompt": "hi", "options": {"temperature": 7}},
    ]
    async with in_process(upstream) as backend:
        for body in bad_bodies:
            # When the same bad body goes to both
            http_refused = await refusal(streamchat_client.start_run(body))
            local_refused = await refusal(backend.start_run(body))
            # Then both refuse it with the same status and message
            assert local_refused == http_refused, body
            assert http_refused[0] == 400
        # And text that no JSON file can hold (a lone surrogate, which only Python code can send) is refused
        # in-process, where nothing serialises the body on the way
        surrogate = await refusal(backend.start_run({"model": "openai:x", "prompt": "hi \ud800"}))
        assert surrogate == (400, "prompt holds text that cannot be stored as UTF-8 (a lone surrogate)")
        assert backend.service.runs.list() == []


def test_the_validated_body_is_a_copy_of_what_the_caller_passed():
    # Given a body a Python caller keeps using after it started a run
    messages = [{"role": "user", "content": "hi", "extra": "dropped"}]
    options = {"temperature": 0.5}
    body = validate_chat_body({"messages": messages, "options": options}, BodyLimits())
    # When the caller changes its own objects
    messages[0]["content"] = "changed"
    options["temperature"] = 2
    # Then what was validated is unchanged: nothing of the caller's objects is kept
    assert body.messages == [{"role": "user", "content": "hi"}]
    assert body.options == {"temperature": 0.5}


def test_statuses_and_event_names_are_the_specs():
    assert contract.STATUSES == ("running", "completed", "stopped", "failed", "interrupted")
    assert contract.TERMINAL_STATUSES == contract.STATUSES[1:]
    events = (contract.EVENT_RUN, contract.EVENT_DELTA, contract.EVENT_REASONING, contract.EVENT_USAGE)
    assert (*events, contract.EVENT_SNAPSHOT, contract.EVENT_DONE) == (
        "run",
        "delta",
        "reasoning",
        "usage",
        "snapshot",
        "done",
    )
    assert contract.DEFAULT_CONVERSATION == "default"
