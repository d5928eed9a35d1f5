"""The journal failing, for real: every run still ends recorded once (journal or notebook), with a log line.

Failures are injected into the real SQLite journal of a real server: its connection set read-only
(``PRAGMA query_only``, as a read-only file would be), its write lock held by another connection
(another server's long transaction), a model sending text that is no UTF-8. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from contextlib import aclosing
from pathlib import Path
from typing import Any

import nbformat
import pytest

from harness.upstream import Finish, Malformed, Script, Stall, Text, Usage
from harness.waiting import await_until
from jupyter_streamchat.client import StreamChatAPIError
from jupyter_streamchat.persistence import RunJournal
from tests.helpers import chat, collect, service_of, text_of, wait_finished


def journal_of(jp_serverapp: Any) -> RunJournal:
    return service_of(jp_serverapp).journal


def set_read_only(journal: RunJournal, read_only: bool) -> None:
    """Make the server's journal connection refuse writes ("attempt to write a readonly database")."""
    journal.db.execute(f"PRAGMA query_only = {'ON' if read_only else 'OFF'}")


def journaled(path: Path, run_id: str) -> dict[str, Any] | None:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT status, persisted FROM runs WHERE id = ?", (run_id,)).fetchone()
        chunks = db.execute("SELECT text FROM chunks WHERE run_id = ? AND kind = 0 ORDER BY seq", (run_id,))
        text = "".join(t if isinstance(t, str) else t.decode("utf-8", "surrogatepass") for (t,) in chunks)
    finally:
        db.close()
    return None if row is None else {"status": row[0], "persisted": row[1], "text": text}


def log_lines(caplog: pytest.LogCaptureFixture, words: str) -> set[tuple[str, float]]:
    """Log calls (not records: the extension's log handler sees each record twice) whose message has ``words``."""
    records = [r for r in caplog.records if r.name.startswith("jupyter_streamchat") and words in r.getMessage()]
    return {(r.getMessage(), r.created) for r in records}


def logged(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("jupyter_streamchat")]
    return [message for message in messages if words in message]


@pytest.fixture
def streamchat_settings(streamchat_settings: dict[str, Any]) -> dict[str, Any]:
    return {**streamchat_settings, "max_concurrent_runs": 1}


async def test_a_run_that_cannot_be_journaled_is_not_started_and_holds_no_slot(
    streamchat_client, upstream, jp_serverapp, caplog
):
    journal = journal_of(jp_serverapp)
    upstream.script("stall", Script([Text("hi"), Stall(30)]))
    upstream.script("quick", Script.reply(["fine"]))
    # Given a journal that cannot be written, and room for one run at a time
    set_read_only(journal, True)
    # When a run is asked for, twice
    for _ in range(2):
        with pytest.raises(StreamChatAPIError) as refused:
            await streamchat_client.start_run(chat("openai:stall"))
        # Then it is refused with a JSON reason, and its model was never called
        assert refused.value.status == 503 and "journal" in str(refused.value)
    assert upstream.requests_for("stall") == []
    assert logged(caplog, "journal could not be written")
    # When the journal can be written again
    set_read_only(journal, False)
    # Then the one slot is free: a run starts and completes
    started = await streamchat_client.start_run(chat("openai:quick"))
    record = await wait_finished(streamchat_client, started["id"])
    assert record["status"] == "completed" and record["text"] == "fine"


async def test_events_the_journal_cannot_take_are_held_then_sent_and_recorded_once_it_can(
    streamchat_client, upstream, jp_serverapp, jp_root_dir, caplog
):
    journal = journal_of(jp_serverapp)
    nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / "nb.ipynb")
    upstream.script("paced", Script.reply([f"w{i} " for i in range(20)], pace=0.02))
    # Given a run into a notebook, journaled when it started, and a client reading it
    started = await streamchat_client.start_run(chat("openai:paced", notebook="nb.ipynb"))
    received: list[Any] = []

    async def read() -> None:
        async with aclosing(streamchat_client.events(started["id"])) as events:
            async for message in events:
                received.append(message)

    reader = asyncio.ensure_future(read())
    await await_until(lambda: text_of(received), what="the first words")
    # When the journal stops taking writes before the run ends
    set_read_only(journal, True)
    run = service_of(jp_serverapp).runs.get(started["id"])
    await (await upstream.wait_for_request_async("paced")).wait_finished_async(10)
    await await_until(lambda: run.status != "running", what="the run to end upstream")
    await await_until(lambda: logged(caplog, "write failed"), what="the log line saying the journal write failed")
    # Then no client is sent what the journal does not hold, nor told the run ended
    assert not reader.done() and "done" not in [m.event for m in received]
    seen = text_of(received)
    row = journaled(journal.path, started["id"])
    assert row is not None and row["status"] == "running" and row["text"] == seen
    record = await streamchat_client.get_run(started["id"])
    assert record["status"] == "running" and record["text"] == seen
    assert [r["id"] for r in await streamchat_client.list_runs(status="running")] == [started["id"]]
    assert await streamchat_client.list_runs(status="completed") == []
    # And new runs are refused while the journal cannot be written
    with pytest.raises(StreamChatAPIError) as refused:
        await streamchat_client.start_run(chat("openai:paced"))
    assert refused.value.status == 503
    # And the notebook does not have the turn yet
    assert turns_in(jp_root_dir / "nb.ipynb") == []

    # When the journal takes writes again
    set_read_only(journal, False)
    await asyncio.wait_for(reader, 10)
    # Then the client gets the rest and the end, as the journal holds them
    record = await wait_finished(streamchat_client, started["id"])
    assert record["status"] == "completed" and text_of(received) == record["text"] == "".join(
        f"w{i} " for i in range(20)
    )
    assert received[-1].event == "done" and received[-1].json()["status"] == "completed"
    row = journaled(journal.path, started["id"])
    assert row is not None and row["status"] == "completed" and row["text"] == record["text"]
    # And the notebook gets the turn, once, with the whole text
    (turn,) = await await_until(lambda: turns_in(jp_root_dir / "nb.ipynb"), what="the turn in the notebook")
    assert turn["run"] == started["id"] and turn["reply"]["content"] == record["text"]
    # And the failure was logged once (not at each retry), and so was the recovery
    await await_until(lambda: logged(caplog, "writes work again"), what="the log line saying writes work again")
    assert len(log_lines(caplog, "write failed")) == 1


def turns_in(path: Path) -> list[dict[str, Any]]:
    notebook = nbformat.read(path, as_version=4)
    return notebook.metadata.get("streamchat", {}).get("conversations", {}).get("default", {}).get("turns", [])


async def test_journal_work_never_stalls_the_event_loop(streamchat_client, upstream, jp_serverapp, caplog):
    journal = journal_of(jp_serverapp)
    upstream.script("steady", Script.reply([f"t{i} " for i in range(80)], pace=0.05))
    started = await streamchat_client.start_run(chat("openai:steady"))
    await collect(streamchat_client.events(started["id"]), limit=2)
    # Given another connection (another server, a backup tool...) holding the journal's write lock until released
    locked, release = threading.Event(), threading.Event()
    released_by_test: list[bool] = []

    def hold_lock() -> None:
        db = sqlite3.connect(journal.path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        locked.set()
        released_by_test.append(release.wait(60))  # the guard only ends a hang: then the test fails below
        db.execute("COMMIT")
        db.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    assert await asyncio.to_thread(locked.wait, 30)
    # When the server journals the streaming run meanwhile, while a client asks for the models
    try:
        for _ in range(5):
            await streamchat_client.models()
        answered_before_the_write_gave_up = not logged(caplog, "write failed")
    finally:
        release.set()
        await asyncio.to_thread(holder.join)
    # Then the server answered while the lock was held, before the journal's write gave up waiting for it
    # (a loop blocked on the write answers only after BUSY_TIMEOUT): writes wait in their own thread
    assert released_by_test == [True]
    assert answered_before_the_write_gave_up
    # And the run's text reached the journal once the lock was gone
    record = await wait_finished(streamchat_client, started["id"], timeout=20)
    await await_until(
        lambda: (r := journaled(journal.path, started["id"])) and r["text"] == record["text"], what="text"
    )


async def test_text_that_is_no_utf8_neither_stops_the_committer_nor_is_lost(streamchat_client, upstream, jp_serverapp):
    journal = journal_of(jp_serverapp)
    # Given a model whose JSON holds a lone surrogate (valid JSON, but no UTF-8 once decoded)
    lone = Malformed(b'data: {"choices":[{"index":0,"delta":{"content":"a\\ud800b"},"finish_reason":null}]}\n\n')
    upstream.script("odd", Script([Text("x"), lone, Stall(0.5), Finish("stop"), Usage()]))
    started = await streamchat_client.start_run(chat("openai:odd"))
    record = await wait_finished(streamchat_client, started["id"])
    # Then it completes with the surrogate replaced (SPEC 4: a reply is always storable as UTF-8)
    assert record["status"] == "completed" and record["text"] == "xa\ufffdb"
    # And the journal holds exactly that text
    await await_until(
        lambda: (r := journaled(journal.path, started["id"])) and r["text"] == record["text"], what="text"
    )
    # And the committer goes on journaling later runs while they stream
    upstream.script("later", Script([Text("still "), Text("here"), Stall(30)]))
    later = await streamchat_client.start_run(chat("openai:later"))
    await collect(streamchat_client.events(later["id"]), limit=2)
    await await_until(lambda: (r := journaled(journal.path, later["id"])) and r["text"] == "still here", what="text")
    await streamchat_client.stop(later["id"])


class TestRetention:
    @pytest.fixture
    def streamchat_settings(self, streamchat_settings: dict[str, Any]) -> dict[str, Any]:
        return {**streamchat_settings, "finished_run_retention": 1.0, "journal_maintenance_interval": 0.2}

    async def test_finished_runs_leave_the_journal_while_the_server_runs(
        self, streamchat_client, upstream, jp_serverapp
    ):
        journal = journal_of(jp_serverapp)
        upstream.script("quick", Script.reply(["brief"]))
        started = await streamchat_client.start_run(chat("openai:quick"))
        await collect(streamchat_client.events(started["id"]))
        assert await await_until(lambda: journaled(journal.path, started["id"]), what="the journaled run")
        # When its retention (1 s) has passed, without any restart
        # Then periodic upkeep has removed it from the journal and from memory
        await await_until(lambda: journaled(journal.path, started["id"]) is None, what="the run to be pruned")

        async def forgotten() -> bool:
            try:
                await streamchat_client.get_run(started["id"])
            except StreamChatAPIError as gone:
                return gone.status == 404
            return False

        await await_until(forgotten, what="the run to leave memory after its retention")
