"""``kill -9`` while a client reads: the recorded text always holds every word any client was sent, and the
turn keeps its first token's time and the model that answered.

Events are journaled before they are released to subscribers, so whatever point the kill lands on, the
restarted server's record (``GET runs/{id}`` and the notebook file's one turn) starts with all the client
received. The race is run at several points of a fast, paced stream, on detached runs and direct streams.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import nbformat
import pytest

from harness.server_process import ServerProcess
from harness.upstream import FakeUpstream, Script, Stall, Text
from jupyter_streamchat.client import StreamChatClient
from tests.helpers import chat
from tests.test_crash_recovery import notebook_with_turn, recovered_run, turns_for, valid_notebook

NOTEBOOK = "seen.ipynb"
WORDS = [f"word{i} " for i in range(600)]  # ~4,700 characters, a chunk every 2 ms


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", upstream.openai_base_url)
    try:
        yield process
    finally:
        process.close()


async def read_then_kill(events: Any, server: ServerProcess, chars: int) -> tuple[str, str, int]:
    """Read ``events`` until at least ``chars`` characters of text arrived, then SIGKILL the server at once
    (before reading on); returns the run id (from the ``run`` event), the text received and the last event id."""
    seen, run_id, last_id = "", "", 0
    async with aclosing(events) as stream:
        async for message in stream:
            last_id = int(message.id or last_id)
            if message.event == "run":
                run_id = message.json()["id"]
            elif message.event == "delta":
                seen += message.json()["text"]
                if len(seen) >= chars:
                    server.kill()
                    break
            elif message.event == "done":
                raise AssertionError(f"the run ended before the client had {chars} characters")
    return run_id, seen, last_id


@pytest.mark.parametrize(
    ("mode", "chars"),
    [("detached", 1), ("detached", 250), ("detached", 1031), ("detached", 3000), ("direct", 600)],
)
async def test_the_record_after_kill9_starts_with_everything_a_client_received(
    server: ServerProcess, upstream: FakeUpstream, mode: str, chars: int
) -> None:
    notebook_path = server.root / NOTEBOOK
    nbformat.write(nbformat.v4.new_notebook(), notebook_path)
    steps = [*(Text(word) for word in WORDS), Stall(30)]
    upstream.script("fast", Script(steps, pace=0.002, answered_model="fast-2026-12-01", system_fingerprint="fp_9"))
    server.start()
    body = chat("openai:fast", "talk", notebook=NOTEBOOK, conversation="c")
    # Given a client reading a fast stream into a notebook
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        if mode == "detached":
            started = await client.start_run(body)
            events = client.events(started["id"])
        else:
            events = client.stream(body)
        # When the server is killed with SIGKILL right after the client received `chars` characters
        run_id, seen, _ = await read_then_kill(events, server, chars)
    assert run_id and len(seen) >= chars

    # And a new server starts on the same root and journal
    server.start()
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        record = await recovered_run(client, run_id)
    # Then the recorded text starts with everything the client received
    assert record["status"] == "interrupted"
    assert record["text"].startswith(seen), (len(seen), len(record["text"]))
    # And the notebook file holds exactly one turn for the run, with that same text
    await notebook_with_turn(notebook_path, run_id)
    (turn,) = turns_for(valid_notebook(notebook_path), run_id)
    assert turn["reply"]["content"] == record["text"]
    assert turn["reply"]["status"] == "interrupted"
    # And what the run had learnt before the kill is kept with it: when its first token came, who answered
    assert record["first_token"] is not None and turn["first_token"] == record["first_token"]
    assert (turn["response_model"], turn["system_fingerprint"]) == ("fast-2026-12-01", "fp_9")


async def test_a_client_resumes_after_kill9_from_the_last_event_it_saw(
    server: ServerProcess, upstream: FakeUpstream
) -> None:
    nbformat.write(nbformat.v4.new_notebook(), server.root / NOTEBOOK)
    upstream.script("fast", Script([*(Text(word) for word in WORDS), Stall(30)], pace=0.002))
    server.start()
    # Given a client that read part of a detached run when the server was killed
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        started = await client.start_run(chat("openai:fast", "talk", notebook=NOTEBOOK, conversation="c"))
        run_id, seen, last_id = await read_then_kill(client.events(started["id"]), server, 700)
    assert last_id > 100
    # When a new server starts and the client re-attaches with the last event id it saw
    server.start()
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        record = await recovered_run(client, run_id)
        messages = [message async for message in client.events(run_id, after=last_id)]
    # Then it is answered (not refused as beyond the end): a snapshot of the recorded text, then done
    assert [m.event for m in messages] == ["snapshot", "done"]
    assert all(int(m.id or 0) > last_id for m in messages)
    assert messages[0].json()["text"] == record["text"] and record["text"].startswith(seen)
    assert messages[1].json()["status"] == "interrupted"


async def test_a_regenerated_turn_killed_mid_stream_is_recovered_as_the_active_alternative(
    server: ServerProcess, upstream: FakeUpstream
) -> None:
    notebook_path = server.root / NOTEBOOK
    nbformat.write(nbformat.v4.new_notebook(), notebook_path)
    server.start()
    in_conversation = {"notebook": NOTEBOOK, "conversation": "c"}
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        # Given a conversation of two recorded turns
        run_ids = []
        for model, prompt in (("one", "first"), ("two", "second")):
            upstream.script(model, Script.reply([f"answer to {prompt}"]))
            started = await client.start_run({"model": f"openai:{model}", "prompt": prompt, **in_conversation})
            assert (await client.get_run(started["id"], wait="recorded"))["recorded"] == "recorded"
            run_ids.append(started["id"])
        first, second = run_ids
        # When the second reply is regenerated with a temperature, and the server is killed while it streams
        upstream.script("again", Script([*(Text(word) for word in WORDS), Stall(30)], pace=0.002))
        body = {"model": "openai:again", "prompt": "second", "parent": first, "options": {"temperature": 0.3}}
        started = await client.start_run({**body, **in_conversation})
        regenerated, seen, _ = await read_then_kill(client.events(started["id"]), server, 40)

    # And a new server starts on the same root and journal
    server.start()
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        record = await recovered_run(client, regenerated)
    await notebook_with_turn(notebook_path, regenerated)
    conversation = valid_notebook(notebook_path).metadata["streamchat"]["conversations"]["c"]
    # Then the notebook holds each turn once: the regenerated one as an alternative of the second, interrupted,
    # with the text the client saw, its parameters, and as the conversation's active leaf
    assert [turn["run"] for turn in conversation["turns"]] == [first, second, regenerated]
    turn = conversation["turns"][2]
    assert turn["parent"] == first == conversation["turns"][1]["parent"]
    assert turn["reply"]["status"] == "interrupted" and turn["reply"]["content"].startswith(seen)
    assert turn["params"]["temperature"] == 0.3 == record["params"]["temperature"]
    assert conversation["active"] == regenerated
