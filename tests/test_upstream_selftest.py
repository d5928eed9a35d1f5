"""Self-tests for the fake upstream (harness/upstream.py), using plain httpx clients against the real socket."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from harness.upstream import (
    Done,
    Drop,
    FakeUpstream,
    Finish,
    Malformed,
    Ping,
    Script,
    Stall,
    Status,
    StreamError,
    Text,
    Think,
    Truncate,
    Usage,
)

_names = itertools.count()


def unique(prefix: str) -> str:
    # A fresh model name per test keeps records and attempt counters independent of test order.
    return f"{prefix}-{next(_names)}"


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """Minimal SSE parse: (event name, data) per block; comment lines come back as ("comment", text)."""
    events: list[tuple[str | None, str]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith(":"):
                events.append(("comment", line[1:].strip()))
            elif line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].strip())
        if data:
            events.append((name, "\n".join(data)))
    return events


def openai_chunks(text: str) -> list[dict | str]:
    return [data if data == "[DONE]" else json.loads(data) for name, data in sse_events(text) if name is None]


def test_openai_happy_path(up: FakeUpstream) -> None:
    model = unique("oa")
    up.script(
        model,
        Script([Think("hmm"), Think("ok", field="reasoning"), Text("Hel"), Text("lo"), Finish(), Usage(), Done()]),
    )
    with httpx.Client() as client:
        r = client.post(
            f"{up.openai_base_url}/chat/completions",
            json={"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": "Bearer sk-test"},
        )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["transfer-encoding"] == "chunked"

    chunks = openai_chunks(r.text)
    assert chunks[-1] == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1] if isinstance(c, dict) and c["choices"]]
    assert deltas[0] == {"reasoning_content": "hmm"}
    assert deltas[1] == {"reasoning": "ok"}
    assert "".join(d.get("content", "") for d in deltas) == "Hello"
    finish = [c["choices"][0]["finish_reason"] for c in chunks[:-1] if isinstance(c, dict) and c["choices"]]
    assert finish == [None, None, None, None, "stop"]
    usage = next(c for c in chunks if isinstance(c, dict) and not c["choices"])
    assert usage["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    assert all(c["model"] == model and c["object"] == "chat.completion.chunk" for c in chunks[:-1])

    rec = up.wait_for_request(model)
    assert (rec.path, rec.api, rec.attempt, rec.outcome) == ("/v1/chat/completions", "openai", 1, "completed")
    assert rec.headers["authorization"] == "Bearer sk-test"
    assert rec.body["messages"] == [{"role": "user", "content": "hi"}]
    assert rec.events_sent == 7 and rec.tokens_sent == 4
    assert rec.first_byte_at is not None and rec.server_finished_at is not None
    assert rec.accepted_at <= rec.first_byte_at <= rec.server_finished_at
    assert rec.client_closed_at is None


def test_anthropic_happy_path_event_sequence(up: FakeUpstream) -> None:
    model = unique("an")
    up.script(model, Script([Ping(), Think("plan"), Text("Hi"), Text(" there"), Finish(), Usage(), Done()]))
    with httpx.Client() as client:
        r = client.post(f"{up.anthropic_base_url}/v1/messages", json={"model": model, "stream": True})
    assert r.status_code == 200
    events = [(name, json.loads(data)) for name, data in sse_events(r.text)]
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert start["model"] == model and start["usage"]["input_tokens"] == 5
    assert events[2][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": ""},
    }
    assert events[3][1]["delta"] == {"type": "thinking_delta", "thinking": "plan"}
    assert events[5][1]["index"] == 1 and events[5][1]["content_block"]["type"] == "text"
    assert (
        "".join(d["delta"]["text"] for n, d in events if d.get("delta", {}).get("type") == "text_delta") == "Hi there"
    )
    assert events[9][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[9][1]["usage"] == {"output_tokens": 3}
    rec = up.wait_for_request(model)
    assert (rec.api, rec.outcome) == ("anthropic", "completed")


def test_models_endpoint_and_default_script(up: FakeUpstream) -> None:
    model = unique("listed")
    up.script(model, Script.reply(["x"]))
    with httpx.Client() as client:
        listing = client.get(f"{up.openai_base_url}/models").json()
        assert listing["object"] == "list"
        assert {"id": model, "object": "model"} in listing["data"]
        r = client.post(f"{up.openai_base_url}/chat/completions", json={"model": unique("unscripted")})
        assert client.post(f"{up.base_url}/nope", json={}).status_code == 404
    text = "".join(
        c["choices"][0]["delta"].get("content", "")
        for c in openai_chunks(r.text)
        if isinstance(c, dict) and c["choices"]
    )
    assert text == "Hello from fake upstream"


def test_stall_then_client_close_is_detected_promptly(up: FakeUpstream) -> None:
    model = unique("stall")
    up.script(model, Script([Text("Hel"), Text("lo"), Stall(30)]))

    async def scenario() -> tuple[float, float | None, float | None]:
        async with httpx.AsyncClient() as client:
            async with client.stream(
                "POST", f"{up.openai_base_url}/chat/completions", json={"model": model, "stream": True}
            ) as r:
                seen = 0
                async for line in r.aiter_lines():
                    seen += line.startswith("data:")
                    if seen == 2:
                        break
                rec = await up.wait_for_request_async(model)
                closed_at = time.monotonic()
            # Leaving the stream context with an unfinished body makes httpx close the connection.
            return closed_at, await rec.wait_closed_async(60), await rec.wait_finished_async(60)

    closed_at, noticed_at, finished_at = asyncio.run(scenario())
    assert noticed_at is not None and finished_at is not None
    # In order: the client closed, the upstream noticed, then it stopped working on the request
    assert closed_at <= noticed_at <= finished_at
    rec = up.wait_for_request(model)
    assert rec.outcome == "client_closed"  # the 30 s stall was abandoned, not waited out (that is "completed")
    assert rec.tokens_sent == 2


def test_close_between_paced_chunks_is_detected(up: FakeUpstream) -> None:
    model = unique("paced")
    up.script(model, Script.reply(["tok"] * 50, pace=0.5))
    with (
        httpx.Client() as client,
        client.stream("POST", f"{up.anthropic_base_url}/v1/messages", json={"model": model}) as r,
    ):
        for line in r.iter_lines():
            if "text_delta" in line:
                closed_at = time.monotonic()  # just before leaving the block closes the connection
                break
    rec = up.wait_for_request(model)
    noticed_at = rec.wait_closed(60)
    assert noticed_at is not None and noticed_at >= closed_at
    assert rec.wait_finished(60) is not None and rec.outcome == "client_closed"
    assert rec.tokens_sent < 50  # noticed between two paced chunks, before the reply's end


def test_status_429_then_success_across_attempts(up: FakeUpstream) -> None:
    model = unique("retry")
    up.script(
        model,
        [Script([Status(429, headers={"Retry-After": "1"})]), Script([Text("ok"), Finish(), Done()])],
    )
    with httpx.Client() as client:
        url = f"{up.openai_base_url}/chat/completions"
        first = client.post(url, json={"model": model})
        second = client.post(url, json={"model": model})
        third = client.post(url, json={"model": model})
        anthropic_model = unique("retry-an")
        up.script(anthropic_model, Script([Status(529)]))
        overloaded = client.post(f"{up.anthropic_base_url}/v1/messages", json={"model": anthropic_model})
    assert first.status_code == 429
    assert first.headers["retry-after"] == "1"
    assert first.json()["error"]["type"] == "rate_limit_error"
    assert second.status_code == 200 and "[DONE]" in second.text and '"ok"' in second.text
    assert third.status_code == 200  # later attempts reuse the last script
    assert overloaded.status_code == 529
    assert overloaded.json()["type"] == "error" and overloaded.json()["error"]["type"] == "overloaded_error"
    recs = up.requests_for(model)
    assert [(r.attempt, r.status, r.outcome) for r in recs] == [
        (1, 429, "status"),
        (2, 200, "completed"),
        (3, 200, "completed"),
    ]
    assert up.wait_for_request(model, attempt=2) is recs[1]


def test_drop_raises_read_error(up: FakeUpstream) -> None:
    model = unique("drop")
    up.script(model, Script([Text("partial"), Drop(), Text("never")]))
    with httpx.Client() as client:
        with (
            pytest.raises(httpx.ReadError),
            client.stream("POST", f"{up.openai_base_url}/chat/completions", json={"model": model}) as r,
        ):
            for _ in r.iter_lines():
                pass
        # The pool must not hand out the dead connection again.
        assert client.post(f"{up.openai_base_url}/chat/completions", json={"model": "x"}).status_code == 200
    rec = up.wait_for_request(model)
    assert rec.outcome == "dropped" and rec.client_closed_at is None and rec.tokens_sent == 1


def test_truncate_ends_cleanly_without_done(up: FakeUpstream) -> None:
    model = unique("trunc")
    up.script(model, Script([Text("a"), Text("b"), Truncate(), Done()]))
    with httpx.Client() as client:
        r = client.post(f"{up.openai_base_url}/chat/completions", json={"model": model})
        again = client.post(f"{up.openai_base_url}/chat/completions", json={"model": unique("after")})
    chunks = openai_chunks(r.text)
    assert r.status_code == 200 and len(chunks) == 2 and "[DONE]" not in chunks
    assert again.status_code == 200
    rec = up.wait_for_request(model)
    assert rec.outcome == "truncated"


def test_malformed_ping_and_stream_error_are_written_verbatim(up: FakeUpstream) -> None:
    model = unique("raw")
    up.script(model, Script([Ping(), Malformed(), StreamError("boom", "server_error"), Done()]))
    with httpx.Client() as client:
        r = client.post(f"{up.openai_base_url}/chat/completions", json={"model": model})
    assert r.text.startswith(": ping\n\ndata: {not json\n\n")
    assert json.loads(sse_events(r.text)[2][1]) == {"error": {"message": "boom", "type": "server_error"}}


def test_keep_alive_sequential_requests_share_a_connection(up: FakeUpstream) -> None:
    model = unique("ka")
    up.script(model, Script.reply(["one"]))
    with httpx.Client() as client:
        for _ in range(3):
            r = client.post(f"{up.openai_base_url}/chat/completions", json={"model": model})
            assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")
    recs = up.requests_for(model)
    assert len(recs) == 3
    assert len({r.connection_id for r in recs}) == 1
    assert all(r.client_closed_at is None and r.outcome == "completed" for r in recs)


def test_bulk_throughput(up: FakeUpstream) -> None:
    n = 100_000
    model = unique("bulk")
    up.script(model, Script.bulk(n))
    with httpx.Client(timeout=30) as client:
        started = time.perf_counter()
        with client.stream("POST", f"{up.openai_base_url}/chat/completions", json={"model": model}) as r:
            body = b"".join(r.iter_raw(1 << 20))
        elapsed = time.perf_counter() - started
    assert body.count(b'"delta":{"content":"x"}') == n
    assert body.endswith(b"data: [DONE]\n\n")
    rec = up.wait_for_request(model)
    assert rec.outcome == "completed" and rec.tokens_sent == n
    assert rec.first_token_at is not None and rec.server_finished_at is not None
    server_side = rec.server_finished_at - rec.first_token_at
    print(
        f"\nfake upstream bulk: {n} chunks ({len(body) / 1e6:.1f} MB) in {elapsed:.3f}s end to end"
        f" = {n / elapsed:,.0f} chunks/s; server-side {n / server_side:,.0f} chunks/s"
    )


def test_close_during_bulk_is_detected(up: FakeUpstream) -> None:
    model = unique("bulk-huge")
    up.script(model, Script.bulk(50_000_000))
    with httpx.Client() as client:
        with client.stream("POST", f"{up.openai_base_url}/chat/completions", json={"model": model}) as r:
            raw = r.iter_raw()
            next(raw)
            closed_at = time.monotonic()
        rec = up.wait_for_request(model)
        noticed_at = rec.wait_closed(60)
    assert noticed_at is not None and noticed_at >= closed_at
    assert rec.wait_finished(60) is not None and rec.outcome == "client_closed"
    assert rec.tokens_sent < 50_000_000


def test_bulk_stamps_carry_send_time(up: FakeUpstream) -> None:
    model = unique("stamp")
    up.script(model, Script.bulk(200, stamp=True))
    with httpx.Client() as client:
        sent = time.time()
        r = client.post(f"{up.anthropic_base_url}/v1/messages", json={"model": model})
        received = time.time()
    texts = [json.loads(data)["delta"]["text"] for name, data in sse_events(r.text) if name == "content_block_delta"]
    assert len(texts) == 200
    stamps = [float(t.removeprefix("<t>").removesuffix("</t>")) for t in texts]
    assert stamps == sorted(stamps)
    assert sent <= stamps[0] and stamps[-1] <= received  # stamped between the request and its receipt


def test_stop_closes_inflight_connections() -> None:
    server = FakeUpstream().start()
    server.script("hang", Script([Text("a"), Stall(30)]))
    with httpx.Client() as client:
        with client.stream("POST", f"{server.openai_base_url}/chat/completions", json={"model": "hang"}) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data:")
            server.stop()
            # (had stop() waited for the 30 s stall, the body would end normally instead)
            with pytest.raises(httpx.TransportError):
                for _ in lines:
                    pass
    assert server.wait_for_request("hang").outcome == "server_stopped"


def test_status_is_only_valid_first() -> None:
    with pytest.raises(ValueError, match="first step"):
        Script([Text("a"), Status(500)])
