"""A reply holding a lone surrogate is recorded like any other (SPEC 4, issue 15 item 7, reply side).

JSON can carry ``"\\ud800"``, a code point that has no UTF-8 form: a reply, a thought or an error
text holding one is streamed, journaled and written into its notebook with U+FFFD in its place,
and a restart finds nothing left to record.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.server_process import ServerProcess, serving
from harness.upstream import Done, FakeUpstream, Finish, Script, StreamError, Text, Think, Usage
from jupyter_streamchat.client import StreamChatClient
from jupyter_streamchat.persistence.journal import TEXT
from tests.helpers import chat, collect, text_of
from tests.test_logging import wait_for_line

NOTEBOOK = "surrogates.ipynb"
FFFD = "\ufffd"


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[ServerProcess]:
    anthropic = [f"--StreamChat.anthropic_base_url={upstream.anthropic_base_url}", "--StreamChat.anthropic_api_key=k"]
    process = ServerProcess(tmp_path / "server", upstream.openai_base_url, extra_args=anthropic)
    with serving(process, NOTEBOOK):
        yield process


def turns_in_file(server: ServerProcess, run_id: str) -> list[dict]:
    """The turns of ``run_id`` in the notebook FILE (not what the server says about it)."""
    notebook = json.loads((server.root / NOTEBOOK).read_text(encoding="utf-8"))
    conversations = notebook["metadata"].get("streamchat", {}).get("conversations", {})
    return [turn for conv in conversations.values() for turn in conv["turns"] if turn["run"] == run_id]


def journaled(server: ServerProcess, run_id: str) -> tuple[str, bool]:
    """The run's text as its journal file holds it, and whether the journal says it is recorded."""
    with sqlite3.connect(f"file:{server.journal}?mode=ro", uri=True) as db:
        (persisted,) = db.execute("SELECT persisted FROM runs WHERE id = ?", (run_id,)).fetchone()
        chunks = db.execute("SELECT text FROM chunks WHERE run_id = ? AND kind = ? ORDER BY seq", (run_id, TEXT))
        text = "".join(chunk for (chunk,) in chunks)
    return text, bool(persisted)


def recorded(server: ServerProcess, run_id: str) -> None:
    """Wait for the server to say the run is in its notebook; fails at once if it said it could not."""
    either = rf"(could not record run {re.escape(run_id)} .*|streamchat run {re.escape(run_id)} recorded in .*)$"
    found = wait_for_line(server, either).group(1)
    assert found == f"streamchat run {run_id} recorded in {NOTEBOOK} (file)", server.log_tail()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_reply_with_lone_surrogates_is_streamed_journaled_and_recorded_with_fffd(
    server: ServerProcess, upstream: FakeUpstream, provider: str
):
    # Given an upstream whose thought and reply hold lone surrogates (JSON "\ud800" escapes)
    steps = [Think("t\udfffx"), Text("a\ud800b"), Text(" \udbff"), Text(" end"), Finish(), Usage(), Done()]
    upstream.script("surrogates", Script(steps))
    body = chat(f"{provider}:surrogates", "hello", notebook=NOTEBOOK)
    want_text, want_thought = f"a{FFFD}b {FFFD} end", f"t{FFFD}x"
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        # When a detached run and a direct stream read it
        detached = (await client.start_run(body))["id"]
        streamed = {detached: await collect(client.events(detached))}
        direct = await collect(client.stream(body))
        streamed[direct[0].json()["id"]] = direct
        for run_id, events in streamed.items():
            record = await client.get_run(run_id)
            # Then each completed, with U+FFFD for each surrogate in what was streamed and in the record
            assert events[-1].json()["status"] == "completed" and record["status"] == "completed"
            assert text_of(events) == record["text"] == want_text
            assert record["reasoning"] == want_thought
            # And the notebook file holds the turn once, as streamed
            recorded(server, run_id)
            (turn,) = turns_in_file(server, run_id)
            assert turn["reply"]["content"] == want_text and turn["reply"]["reasoning"] == want_thought
            # And the journal holds the run, noted as recorded (so no restart retries it)
            assert journaled(server, run_id) == (want_text, True)

    # When the server restarts
    server.kill()
    server.start()
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        for run_id in streamed:
            # Then the runs are still there as they were, and nothing failed to be recorded
            again = await client.get_run(run_id)
            assert again["status"] == "completed" and again["text"] == want_text
            assert len(turns_in_file(server, run_id)) == 1
    assert "could not record" not in server.log_path.read_text(errors="replace")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_an_error_text_with_a_lone_surrogate_fails_the_run_and_is_recorded(
    server: ServerProcess, upstream: FakeUpstream, provider: str
):
    # Given an upstream that reports an error whose message holds a lone surrogate
    upstream.script("surrogate-error", Script([Text("part"), StreamError("bad \ud800 thing", "api_error")]))
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        # When a run reads it
        started = await client.start_run(chat(f"{provider}:surrogate-error", "hello", notebook=NOTEBOOK))
        events = await collect(client.events(started["id"]))
    # Then it failed with the provider's message, U+FFFD in place of the surrogate, and it is recorded
    error = events[-1].json()["error"]
    assert error["code"] == "upstream_error" and f"bad {FFFD} thing" in error["message"]
    recorded(server, started["id"])
    (turn,) = turns_in_file(server, started["id"])
    assert turn["reply"]["content"] == "part" and turn["reply"]["error"] == error
