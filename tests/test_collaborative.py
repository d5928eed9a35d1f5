"""Collaborative mode: with jupyter-collaboration, a finished run lands in the shared document.

The notebook is opened the way JupyterLab opens it (``PUT api/collaboration/session/<path>``, then
the y-websocket room), by a real pycrdt client over a real websocket. The turn must reach that
client, the server's shared model and, after the room's save delay, the file on disk: once each.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Map, Provider
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect
from traitlets.config import Config

from harness.upstream import FakeUpstream, Script, Stall, Text
from harness.waiting import await_until
from jupyter_streamchat.client import StreamChatClient
from tests.helpers import chat, collect, text_of, wait_finished

NOTEBOOK = "shared.ipynb"
SAVE_DELAY = 0.2

# YNotebook keeps its metadata map private (``_ymeta``); the recorder reaches it through the public
# ``ydoc.get("meta", type=Map)``. These tests fail if that ever stops reaching the shared document.


@pytest.fixture
def jp_server_config(streamchat_server_config: dict[str, Any], tmp_path: Path) -> Config:
    config = copy.deepcopy(streamchat_server_config)
    config["ServerApp"]["jpserver_extensions"].update({"jupyter_server_ydoc": True, "jupyter_server_fileid": True})
    config["YDocExtension"] = {"document_save_delay": SAVE_DELAY, "document_cleanup_delay": 60}
    config["SQLiteYStore"] = {"db_path": str(tmp_path / "ystore.db")}
    config["BaseFileIdManager"] = {"db_path": str(tmp_path / "file_id.db")}
    return Config(config)


class WebsocketChannel:
    """A pycrdt ``Channel`` over Tornado's websocket client (what y-websocket speaks in the browser)."""

    def __init__(self, connection: WebSocketClientConnection, path: str) -> None:
        self._connection = connection
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WebsocketChannel:
        return self

    async def __anext__(self) -> bytes:
        message = await self._connection.read_message()
        if message is None:
            raise StopAsyncIteration
        return message if isinstance(message, bytes) else message.encode()

    async def recv(self) -> bytes:
        return await self.__anext__()

    async def send(self, message: bytes) -> None:
        await self._connection.write_message(message, binary=True)


@asynccontextmanager
async def open_collaboratively(base_url: str, token: str, path: str) -> AsyncIterator[YNotebook]:
    """Open ``path`` like JupyterLab in collaborative mode; yields the client's live replica."""
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(headers=headers) as http:
        response = await http.put(
            f"{base_url}api/collaboration/session/{path}", json={"format": "json", "type": "notebook"}
        )
    assert response.status_code in (200, 201), response.text
    session = response.json()
    room = f"{session['format']}:{session['type']}:{session['fileId']}"
    ws_url = f"{base_url.replace('http', 'ws', 1)}api/collaboration/room/{room}?sessionId={session['sessionId']}"
    connection = await websocket_connect(HTTPRequest(ws_url, headers=headers))
    notebook = YNotebook()
    try:
        async with Provider(notebook.ydoc, WebsocketChannel(connection, room)) as provider:
            await asyncio.wait_for(provider.synced.wait(), 10)
            # The room loads the file when it starts; wait until its cells reached this client.
            await await_until(lambda: len(notebook.ycells) > 0, what="the room's content")
            yield notebook
    finally:
        connection.close()


def streamchat_turns(metadata: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    conversations = (metadata.get("streamchat") or {}).get("conversations") or {}
    return [turn for conv in conversations.values() for turn in conv.get("turns", []) if turn.get("run") == run_id]


def client_turns(notebook: YNotebook, run_id: str) -> list[dict[str, Any]]:
    return streamchat_turns(notebook.get()["metadata"], run_id)


async def server_turns(serverapp: Any, run_id: str) -> list[dict[str, Any]]:
    """The turns for ``run_id`` in the server's own shared model of the notebook (no copy, no room created)."""
    ydoc_app = next(iter(serverapp.extension_manager.extension_apps["jupyter_server_ydoc"]))
    document = await ydoc_app.get_document(path=NOTEBOOK, content_type="notebook", file_format="json", copy=False)
    assert document is not None, "the notebook's room is gone"
    meta = document.ydoc.get("meta", type=Map)  # the notebook schema's root map of jupyter_ydoc
    return streamchat_turns(meta["metadata"].to_py(), run_id)


def disk_turns(path: Path, run_id: str) -> list[dict[str, Any]] | None:
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception:  # mid-save: poll again
        return None
    return streamchat_turns(notebook.metadata, run_id)


def recorded_via(serverapp: Any, run_id: str) -> str | None:
    """How the run reached its notebook; None until recorded (the run's status turns final first, then the
    journal and the notebook are written)."""
    app = next(iter(serverapp.extension_manager.extension_apps["jupyter_streamchat"]))
    return app.service.recorded_via.get(run_id)


def write_notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_markdown_cell("# shared notes"))
    nbformat.write(notebook, path)


async def test_completed_run_lands_in_shared_document_and_file_once(
    jp_serverapp: Any,
    jp_root_dir: Path,
    streamchat_url: str,
    streamchat_client: StreamChatClient,
    upstream: FakeUpstream,
) -> None:
    path = jp_root_dir / NOTEBOOK
    write_notebook(path)
    upstream.script("collab", Script.reply(["Hi", " there"], pace=0.05))
    token = jp_serverapp.identity_provider.token
    # Given the notebook is open collaboratively by a client
    async with open_collaboratively(streamchat_url, token, NOTEBOOK) as shared:
        # When a run into the notebook starts, and the client adds a cell (unsaved) while it streams
        started = await streamchat_client.start_run(chat("openai:collab", "hello", notebook=NOTEBOOK))
        shared.append_cell(nbformat.v4.new_code_cell("x = 1"))
        record = await wait_finished(streamchat_client, started["id"])
        assert record["status"] == "completed" and record["text"] == "Hi there"
        run_id = started["id"]

        # Then the turn went through the shared document
        assert await await_until(lambda: recorded_via(jp_serverapp, run_id), what="the turn to be recorded") == "shared"
        # And the collaborating client receives it, exactly once
        (turn,) = await await_until(lambda: client_turns(shared, run_id), what="the turn at the client")
        assert turn["reply"]["content"] == "Hi there"
        assert turn["reply"]["status"] == "completed" and turn["reply"]["partial"] is False
        assert turn["prompt"] == {"role": "user", "content": "hello"}
        # And the server's shared model has it exactly once
        assert await server_turns(jp_serverapp, run_id) == [turn]

        # And after the save delay the file on disk has it exactly once, next to the client's new cell
        await await_until(lambda: disk_turns(path, run_id), what="the turn in the file")
        on_disk = nbformat.read(path, as_version=4)
        nbformat.validate(on_disk)
        assert streamchat_turns(on_disk.metadata, run_id) == [turn]
        assert [cell.source for cell in on_disk.cells] == ["# shared notes", "x = 1"]
        # And the file was not written by the recorder behind the room's back
        app = next(iter(jp_serverapp.extension_manager.extension_apps["jupyter_streamchat"]))
        assert app.service.notebooks.writes.get(NOTEBOOK, 0) == 0
        assert len(client_turns(shared, run_id)) == 1


async def test_stopped_run_lands_in_shared_document_once_with_partial_text(
    jp_serverapp: Any,
    jp_root_dir: Path,
    streamchat_url: str,
    streamchat_client: StreamChatClient,
    upstream: FakeUpstream,
) -> None:
    path = jp_root_dir / NOTEBOOK
    write_notebook(path)
    upstream.script("collab-stall", Script([Text("par"), Text("tial"), Stall(30)]))
    token = jp_serverapp.identity_provider.token
    # Given the notebook is open collaboratively and a run into it is streaming
    async with open_collaboratively(streamchat_url, token, NOTEBOOK) as shared:
        started = await streamchat_client.start_run(chat("openai:collab-stall", "go", notebook=NOTEBOOK))
        run_id = started["id"]
        seen = await collect(streamchat_client.events(run_id), limit=2)
        # When the user stops it mid-stream, twice
        answer = await streamchat_client.stop(run_id)
        again = await streamchat_client.stop(run_id)

        # Then the stop answered once the partial was recorded, through the shared document
        assert answer["status"] == "stopped" and answer["stopped"] is True and again["stopped"] is False
        assert await await_until(lambda: recorded_via(jp_serverapp, run_id), what="the turn to be recorded") == "shared"
        (in_model,) = await server_turns(jp_serverapp, run_id)
        assert in_model["reply"]["status"] == "stopped"
        assert in_model["reply"]["partial"] is True
        assert in_model["reply"]["content"] == text_of(seen) == "partial"
        # And the client sees exactly that turn, once
        assert await await_until(lambda: client_turns(shared, run_id), what="the turn at the client") == [in_model]

        # And the saved file has it exactly once
        await await_until(lambda: disk_turns(path, run_id), what="the turn in the file")
        on_disk = nbformat.read(path, as_version=4)
        nbformat.validate(on_disk)
        assert streamchat_turns(on_disk.metadata, run_id) == [in_model]
        assert [cell.source for cell in on_disk.cells] == ["# shared notes"]

    # And a later completed run into the same conversation is appended after it, not replacing it
    upstream.script("collab-next", Script.reply(["ok"]))
    async with open_collaboratively(streamchat_url, token, NOTEBOOK) as shared:
        assert len(client_turns(shared, run_id)) == 1
        later = await streamchat_client.start_run(chat("openai:collab-next", "more", notebook=NOTEBOOK))
        assert (await wait_finished(streamchat_client, later["id"]))["status"] == "completed"
        await await_until(lambda: disk_turns(path, later["id"]), what="the second turn in the file")
        turns = nbformat.read(path, as_version=4).metadata["streamchat"]["conversations"]["default"]["turns"]
        assert [t["run"] for t in turns] == [run_id, later["id"]]
        assert (
            await await_until(lambda: recorded_via(jp_serverapp, later["id"]), what="the turn to be recorded")
            == "shared"
        )
