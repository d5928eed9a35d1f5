"""Upstream failures: truncation, drops, malformed data, idle timeout, retries, Anthropic, thinking."""

from __future__ import annotations

import pytest

from harness.upstream import Drop, Finish, Malformed, Script, Stall, Status, StreamError, Text, Think, Truncate, Usage
from tests.helpers import chat, collect, text_of, wait_finished


async def run_to_end(client, model: str) -> dict:
    started = await client.start_run(chat(model))
    events = await collect(client.events(started["id"]))
    record = await client.get_run(started["id"])
    assert text_of(events) == record["text"]
    assert events[-1].json()["status"] == record["status"]
    return record


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        ([Text("part"), Truncate()], "upstream_truncated"),
        ([Text("part"), Drop()], "upstream_connection_lost"),
        ([Text("part"), Malformed(b"data: {not json\n\n")], "upstream_malformed"),
        ([Text("part"), Malformed(b'data: {"choices": 7}\n\n')], "upstream_malformed"),
        (
            [Text("part"), Malformed(b'data: {"choices": [{"index": 0, "delta": {"content": 5}}]}\n\n')],
            "upstream_malformed",
        ),
        (
            [Text("part"), Malformed(b'data: {"choices": [{"index": 0, "delta": {"reasoning": ["x"]}}]}\n\n')],
            "upstream_malformed",
        ),
        ([Text("part"), StreamError("Overloaded")], "upstream_error"),
    ],
    ids=[
        "truncated",
        "dropped",
        "malformed-json",
        "malformed-shape",
        "number-content",
        "list-reasoning",
        "error-event",
    ],
)
async def test_broken_streams_fail_and_keep_partial_text(streamchat_client, upstream, steps, code):
    upstream.script("broken", Script(steps))
    record = await run_to_end(streamchat_client, "openai:broken")
    assert record["status"] == "failed"
    assert record["error"]["code"] == code and record["error"]["message"]
    assert record["text"] == "part"


async def test_text_sharing_a_network_read_with_malformed_data_is_kept(streamchat_client, upstream):
    # One write, so one read on the server: events are decoded per read, and the good chunk
    # before the bad one must still reach the record.
    same_write = b'data: {"choices":[{"index":0,"delta":{"content":" kept"}}]}\n\ndata: {not json\n\n'
    upstream.script("mixed", Script([Text("part"), Malformed(same_write)]))
    record = await run_to_end(streamchat_client, "openai:mixed")
    assert record["status"] == "failed" and record["error"]["code"] == "upstream_malformed"
    assert record["text"] == "part kept"


async def test_server_stays_healthy_after_malformed_data(streamchat_client, upstream):
    upstream.script("bad", Script([Malformed(b"data: \xff\xfe garbage\n\n")]))
    assert (await run_to_end(streamchat_client, "openai:bad"))["status"] == "failed"
    upstream.script("good", Script.reply(["fine"]))
    assert (await run_to_end(streamchat_client, "openai:good"))["text"] == "fine"


@pytest.fixture
def streamchat_settings(streamchat_settings):
    return {**streamchat_settings, "upstream_idle_timeout": 0.5, "upstream_retry_max_wait": 5.0}


async def test_silent_upstream_fails_after_idle_timeout(streamchat_client, upstream):
    upstream.script("silent", Script([Text("a"), Stall(30)]))
    record = await run_to_end(streamchat_client, "openai:silent")
    assert record["status"] == "failed" and record["error"]["code"] == "upstream_idle_timeout"
    closed = await (await upstream.wait_for_request_async("silent")).wait_closed_async(2)
    assert closed is not None


async def test_429_is_retried_after_retry_after(streamchat_client, upstream):
    upstream.script(
        "limited",
        [Script([Status(429, headers={"Retry-After": "1"})]), Script.reply(["ok"])],
    )
    record = await run_to_end(streamchat_client, "openai:limited")
    assert record["status"] == "completed" and record["text"] == "ok"
    first = await upstream.wait_for_request_async("limited", attempt=1)
    second = await upstream.wait_for_request_async("limited", attempt=2)
    # In order: the second attempt came no earlier than the moment Retry-After named (1 s after the first)
    assert second.accepted_at >= first.accepted_at + 1.0


async def test_400_is_not_retried(streamchat_client, upstream):
    upstream.script("rejected", Script([Status(400, body={"error": {"message": "bad model"}})]))
    record = await run_to_end(streamchat_client, "openai:rejected")
    assert record["status"] == "failed" and record["error"]["upstream_status"] == 400
    assert "bad model" in record["error"]["message"]
    assert len(upstream.requests_for("rejected")) == 1


async def test_5xx_retries_are_bounded(streamchat_client, upstream):
    upstream.script("down", Script([Status(503)]))
    record = await run_to_end(streamchat_client, "openai:down")
    assert record["status"] == "failed" and record["error"]["upstream_status"] == 503
    assert len(upstream.requests_for("down")) == 3  # the default upstream_retry_attempts


async def test_no_retry_once_streaming_began(streamchat_client, upstream):
    upstream.script("midway", Script([Text("x"), Drop()]))
    record = await run_to_end(streamchat_client, "openai:midway")
    assert record["status"] == "failed"
    assert len(upstream.requests_for("midway")) == 1


async def test_anthropic_text_thinking_and_usage(streamchat_client, upstream):
    upstream.script(
        "claude",
        Script([Think("Let me "), Think("think."), Text("Hi"), Text(" there"), Usage(7), Finish("stop")]),
    )
    # Finish on the Anthropic wire is message_delta (stop_reason + usage); message_stop follows via Done
    started = await streamchat_client.start_run(chat("anthropic:claude"))
    events = await collect(streamchat_client.events(started["id"]))
    record = await wait_finished(streamchat_client, started["id"])
    kinds = [m.event for m in events]
    assert kinds[0] == "run" and kinds[-1] == "done"
    assert kinds.index("reasoning") < kinds.index("delta")
    assert record["reasoning"] == "Let me think." and record["text"] == "Hi there"
    assert record["status"] == "completed" and record["finish_reason"] == "end_turn"
    assert record["usage"] == {"input_tokens": 7, "output_tokens": 4}
    assert events[-1].json()["usage"] == record["usage"]
    request = await upstream.wait_for_request_async("claude")
    assert request.path == "/v1/messages" and request.body["stream"] is True


async def test_openai_reasoning_fields_and_think_tags_stay_out_of_the_text(streamchat_client, upstream):
    upstream.script(
        "r1",
        Script([Think("plan", field="reasoning"), Text("<thi"), Text("nk>more</th"), Text("ink>\n\nAnswer"), Finish()]),
    )
    record = await run_to_end(streamchat_client, "openai:r1")
    assert record["reasoning"] == "planmore" and record["text"] == "Answer"
    assert record["status"] == "completed"
