"""Crash safety with real server processes: SIGKILL mid-run and clean SIGTERM shutdown.

A run that was streaming when its server died must come back as ``interrupted`` with exactly the
text clients saw, be listed, and land in its notebook exactly once, also across further restarts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from harness.server_process import ServerProcess
from harness.upstream import FakeUpstream, Script, Stall, Text
from harness.waiting import await_until
from jupyter_streamchat.client import StreamChatAPIError, StreamChatClient
from tests.helpers import chat, collect, text_of, wait_finished

NOTEBOOK = "chat.ipynb"
CHUNKS = ["Hel", "lo ", "wor"]
PARTIAL = "".join(CHUNKS)


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", upstream.openai_base_url, flush_interval=0.1)
    try:
        yield process
    finally:
        process.close()


def client_for(server: ServerProcess) -> StreamChatClient:
    return StreamChatClient(server.base_url, server.token, timeout=10)


async def start_stalling_run(client: StreamChatClient, upstream: FakeUpstream, prompt: str) -> str:
    """A run into NOTEBOOK whose upstream streams CHUNKS and then says nothing for 30 s; returns its id
    once a client has seen all of CHUNKS."""
    upstream.script("stall", Script([*(Text(chunk) for chunk in CHUNKS), Stall(30)]))
    started = await client.start_run(chat("openai:stall", prompt, notebook=NOTEBOOK, conversation="c1"))
    seen = await collect(client.events(started["id"]), limit=len(CHUNKS))
    assert text_of(seen) == PARTIAL
    return started["id"]


def journaled_text(journal: Path, run_id: str) -> str:
    """What the server's SQLite journal holds of a run's answer (read-only, from outside the server)."""
    if not journal.exists():
        return ""
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT text FROM chunks WHERE run_id = ? AND kind = 0 ORDER BY seq", (run_id,)).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return ""
    finally:
        db.close()
    return "".join(text for (text,) in rows)


async def recovered_run(client: StreamChatClient, run_id: str) -> dict[str, Any]:
    """The run record once the restarted server has recovered it from the journal."""

    async def get() -> dict[str, Any] | None:
        try:
            return await client.get_run(run_id)
        except StreamChatAPIError as error:
            if error.status != 404:
                raise
            return None

    return await await_until(get, what=f"run {run_id} to be recovered")


def read_notebook(path: Path) -> nbformat.NotebookNode | None:
    if not path.exists():
        return None
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # mid-write: poll again
        return None


def valid_notebook(path: Path) -> nbformat.NotebookNode:
    notebook = read_notebook(path)
    assert notebook is not None, f"{path.name} is missing or unreadable"
    nbformat.validate(notebook)
    return notebook


def turns_for(notebook: nbformat.NotebookNode, run_id: str) -> list[dict[str, Any]]:
    conversations = notebook.metadata.get("streamchat", {}).get("conversations", {})
    return [turn for conv in conversations.values() for turn in conv.get("turns", []) if turn.get("run") == run_id]


async def notebook_with_turn(path: Path, run_id: str) -> nbformat.NotebookNode:
    def ready() -> nbformat.NotebookNode | None:
        notebook = read_notebook(path)
        return notebook if notebook is not None and turns_for(notebook, run_id) else None

    return await await_until(ready, what=f"a turn for {run_id} in {path.name}")


async def record_barrier_run(client: StreamChatClient, upstream: FakeUpstream, notebook_path: Path) -> str:
    """Complete a new run into the same notebook and wait for its turn on disk.

    Recovery takes the notebook's write lock before the recovered run is visible over HTTP, and turns
    into one notebook are written one after the other; so once this turn is on disk, any (wrong)
    second write of a recovered run would have happened too.
    """
    upstream.script("after", Script.reply(["fine"]))
    started = await client.start_run(chat("openai:after", "again?", notebook=NOTEBOOK, conversation="c1"))
    record = await wait_finished(client, started["id"])
    assert record["status"] == "completed"
    await notebook_with_turn(notebook_path, started["id"])
    return started["id"]


def assert_interrupted_turn(turn: dict[str, Any], prompt: str) -> None:
    assert turn["reply"]["status"] == "interrupted"
    assert turn["reply"]["partial"] is True
    assert turn["reply"]["content"] == PARTIAL
    assert turn["reply"]["error"] is None
    assert turn["prompt"] == {"role": "user", "content": prompt}
    assert turn["model"] == "openai:stall" and turn["finished"]


async def test_sigkill_mid_run_is_interrupted_and_persisted_exactly_once(
    server: ServerProcess, upstream: FakeUpstream
) -> None:
    notebook_path = server.root / NOTEBOOK
    # Given a server streaming a run into a notebook (a run may only name one that exists)
    nbformat.write(nbformat.v4.new_notebook(), notebook_path)
    server.start()
    async with client_for(server) as client:
        run_id = await start_stalling_run(client, upstream, "tell me")
    # And the journal holds the text the client saw (journaled before the client was sent it)
    await await_until(lambda: journaled_text(server.journal, run_id) == PARTIAL, what="the partial text in the journal")
    assert turns_for(valid_notebook(notebook_path), run_id) == []

    # When the server is killed with SIGKILL while the upstream is stalled, and a new one starts
    server.kill()
    server.start()
    async with client_for(server) as client:
        # Then the run is interrupted with exactly the streamed text, and listed
        record = await recovered_run(client, run_id)
        assert record["status"] == "interrupted"
        assert record["text"] == PARTIAL
        assert record["notebook"] == NOTEBOOK and record["conversation"] == "c1"
        assert record["finished"]
        listed = await client.list_runs(status="interrupted")
        assert [r["id"] for r in listed] == [run_id]
        assert [r["id"] for r in await client.list_runs()] == [run_id]
        # And it replays like any finished run: its text, then `done` with the status
        events = await collect(client.events(run_id))
        assert text_of(events) == PARTIAL
        assert events[-1].event == "done" and events[-1].json()["status"] == "interrupted"

    # And the notebook on disk holds exactly one turn for it
    notebook = await notebook_with_turn(notebook_path, run_id)
    nbformat.validate(notebook)
    (turn,) = turns_for(notebook, run_id)
    assert_interrupted_turn(turn, "tell me")
    assert notebook.metadata["streamchat"]["version"] == 2 and turn["parent"] is None

    # When the second server stops cleanly and a third one starts on the same journal and root
    server.terminate()
    server.start()
    async with client_for(server) as client:
        record = await recovered_run(client, run_id)
        assert record["status"] == "interrupted" and record["text"] == PARTIAL
        barrier = await record_barrier_run(client, upstream, notebook_path)

    # Then the notebook still has exactly one turn for the run, unchanged, next to the new one
    notebook = valid_notebook(notebook_path)
    assert turns_for(notebook, run_id) == [turn]
    assert len(turns_for(notebook, barrier)) == 1
    assert [t["run"] for t in notebook.metadata["streamchat"]["conversations"]["c1"]["turns"]] == [run_id, barrier]


async def test_sigterm_interrupts_and_persists_running_run(server: ServerProcess, upstream: FakeUpstream) -> None:
    notebook_path = server.root / NOTEBOOK
    # Given a notebook with the user's own content
    original = nbformat.v4.new_notebook()
    original.cells.append(nbformat.v4.new_markdown_cell("my notes"))
    original.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(original, notebook_path)
    # And a server streaming a run into it
    server.start()
    async with client_for(server) as client:
        run_id = await start_stalling_run(client, upstream, "go on")
        request = await upstream.wait_for_request_async("stall")

        # When the server gets SIGTERM while the upstream is stalled
        server.terminate(timeout=30)  # raises if it does not exit: a guard against a hang

    # Then it exits, having hung up on the upstream during its stall
    assert await request.wait_closed_async(30) is not None
    # And the notebook holds exactly one interrupted turn with the streamed text, the user's content intact
    notebook = valid_notebook(notebook_path)
    (turn,) = turns_for(notebook, run_id)
    assert_interrupted_turn(turn, "go on")
    assert [cell.source for cell in notebook.cells] == ["my notes"]
    assert notebook.metadata["kernelspec"]["name"] == "python3"

    # When the server starts again on the same journal and root
    server.start()
    async with client_for(server) as client:
        # Then the run is still known as interrupted with its text
        record = await recovered_run(client, run_id)
        assert record["status"] == "interrupted" and record["text"] == PARTIAL
        barrier = await record_barrier_run(client, upstream, notebook_path)

    # And the restart did not add a second turn
    notebook = valid_notebook(notebook_path)
    assert turns_for(notebook, run_id) == [turn]
    assert len(turns_for(notebook, barrier)) == 1
