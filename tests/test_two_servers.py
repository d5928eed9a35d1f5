"""Two real server processes on one folder (one root, one journal), as with a terminal and an IDE.

A server may only recover the runs of a server that is gone: a second server starting next to a
live one must not mark its running runs ``interrupted`` nor write their partial text into notebooks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from harness.server_process import ServerProcess
from harness.upstream import FakeUpstream
from harness.waiting import await_until
from jupyter_streamchat.client import StreamChatAPIError, StreamChatClient
from tests.helpers import chat, collect, text_of, wait_finished
from tests.test_crash_recovery import (
    NOTEBOOK,
    PARTIAL,
    assert_interrupted_turn,
    journaled_text,
    notebook_with_turn,
    record_barrier_run,
    recovered_run,
    start_stalling_run,
    turns_for,
    valid_notebook,
)

MAINTENANCE = "--StreamChat.journal_maintenance_interval=0.5"


@pytest.fixture
def servers(tmp_path: Path, upstream: FakeUpstream) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Servers a and b: their own config, data and runtime dirs, but one root and one journal."""
    a = ServerProcess(tmp_path / "a", upstream.openai_base_url, extra_args=[MAINTENANCE], demo_speed=0.5)
    b = ServerProcess(tmp_path / "b", upstream.openai_base_url, extra_args=[MAINTENANCE], demo_speed=0.5)
    b.root, b.journal = a.root, a.journal
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def client_for(server: ServerProcess) -> StreamChatClient:
    return StreamChatClient(server.base_url, server.token, timeout=10)


def journaled_status(journal: Path, run_id: str) -> str | None:
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    finally:
        db.close()
    return row[0] if row else None


async def finished_run_on(server: ServerProcess) -> str:
    """A quick run on ``server`` that is journaled and finished; returns its id."""
    async with client_for(server) as client:
        started = await client.start_run(chat("demo:fast", "barrier"))
        record = await wait_finished(client, started["id"], timeout=30)
    assert record["status"] == "completed"
    return started["id"]


async def start_after_recovery(server: ServerProcess, known_run: str) -> None:
    """Start ``server`` and wait until its start-up recovery is over.

    Recovery lists every finished journaled run, oldest first, after dealing with each older run;
    so once ``known_run`` (finished before this start, newer than the runs under test) is listed,
    whatever the recovery did to those runs is done.
    """
    server.start()

    async def listed() -> bool:
        async with client_for(server) as client:
            try:
                await client.get_run(known_run)
            except StreamChatAPIError as error:
                if error.status != 404:
                    raise
                return False
        return True

    await await_until(listed, what=f"{known_run} to be listed by the new server")


async def test_a_second_server_leaves_a_live_run_alone(servers: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = servers
    notebook_path = a.root / "real.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), notebook_path)
    # Given server a streaming a detached run on demo:slow (~24 s; b starts in ~5 s) into a notebook
    a.start()
    async with client_for(a) as client:
        body = chat("demo:slow", "Two servers on one folder: tell me a slow story", notebook="real.ipynb")
        started = await client.start_run(body)
        run_id = started["id"]
        await collect(client.events(run_id), limit=3)
    await await_until(lambda: len(journaled_text(a.journal, run_id)) > 0, what="the run's text in the journal")
    barrier = await finished_run_on(a)

    # When a second server starts on the same folder and journal, and is done recovering
    await start_after_recovery(b, barrier)

    # Then the run is still running on a, still running in the journal, and not in the notebook
    async with client_for(a) as client:
        status = (await client.get_run(run_id))["status"]
    assert status == "running", f"the run ended ({status}) before server b had started: too slow a machine?"
    assert journaled_status(a.journal, run_id) == "running"
    assert turns_for(valid_notebook(notebook_path), run_id) == []
    # And b neither lists it as interrupted nor can stop it
    async with client_for(b) as client:
        assert run_id not in [r["id"] for r in await client.list_runs()]

    # When the run ends on a
    async with client_for(a) as client:
        events = await collect(client.events(run_id))
        record = await wait_finished(client, run_id, timeout=60)
    # Then it completed with everything streamed
    assert record["status"] == "completed" and text_of(events) == record["text"]
    # And the notebook holds it exactly once, as completed with its whole text
    notebook = await notebook_with_turn(notebook_path, run_id)
    (turn,) = turns_for(notebook, run_id)
    assert turn["reply"]["status"] == "completed" and turn["reply"]["partial"] is False
    assert turn["reply"]["content"] == record["text"]
    assert journaled_status(a.journal, run_id) == "completed"
    # (b's upkeep ran every 0.5 s during the whole run: a recovery by it would have left an
    # interrupted turn above, which the completed one could not have replaced)


async def test_a_run_of_a_server_that_died_is_recovered_once_by_the_other(
    servers: tuple[ServerProcess, ServerProcess], upstream: FakeUpstream
) -> None:
    a, b = servers
    notebook_path = a.root / NOTEBOOK
    nbformat.write(nbformat.v4.new_notebook(), notebook_path)
    # Given server a streaming a run into a notebook, its text journaled, and server b next to it
    a.start()
    async with client_for(a) as client:
        run_id = await start_stalling_run(client, upstream, "tell me")
    await await_until(lambda: journaled_text(a.journal, run_id) == PARTIAL, what="the partial text in the journal")
    barrier = await finished_run_on(a)
    await start_after_recovery(b, barrier)
    assert journaled_status(a.journal, run_id) == "running"
    assert turns_for(nbformat.read(notebook_path, as_version=4), run_id) == []

    # When a is killed (SIGKILL: no cleanup at all)
    a.kill()
    # Then b, without restarting, recovers the run as interrupted with the text clients saw
    async with client_for(b) as client:

        async def interrupted() -> dict | None:
            try:
                record = await client.get_run(run_id)
            except StreamChatAPIError as error:
                if error.status != 404:
                    raise
                return None
            return record if record["status"] == "interrupted" else None

        record = await await_until(interrupted, what=f"b to recover {run_id}")
        assert record["text"] == PARTIAL
    # And writes it into the notebook once
    notebook = await notebook_with_turn(notebook_path, run_id)
    (turn,) = turns_for(notebook, run_id)
    assert_interrupted_turn(turn, "tell me")

    # When b restarts and a starts again, both on the same journal
    b.terminate()
    await start_after_recovery(b, barrier)
    a.start()
    async with client_for(a) as client:
        assert (await recovered_run(client, run_id))["status"] == "interrupted"
    async with client_for(b) as client:
        barrier_run = await record_barrier_run(client, upstream, notebook_path)
    # Then the notebook still holds exactly that one turn for the run
    notebook = valid_notebook(notebook_path)
    assert turns_for(notebook, run_id) == [turn]
    assert len(turns_for(notebook, barrier_run)) == 1
