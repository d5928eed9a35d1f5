"""A run follows its notebook across renames (SPEC 6): it lands in the renamed file, exactly once.

Renames and deletes go through the real contents API of the real test server, while a real upstream holds
the reply open (a stall); the run is then stopped, or left to complete, and the test waits for the server
to say the run is no longer pending (``GET runs/{id}?wait=recorded``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import nbformat
import pytest
from tornado.httpclient import HTTPClientError

from harness.server_process import ServerProcess
from harness.upstream import Script, Stall, Text
from harness.waiting import await_until
from jupyter_streamchat.client import StreamChatAPIError, StreamChatClient
from tests.helpers import chat, collect, service_of

NOTEBOOK = "nb.ipynb"


def turns(root, path: str, conversation: str = "default") -> list[dict[str, Any]]:
    notebook = nbformat.read(root / path, as_version=4)
    nbformat.validate(notebook)
    return notebook.metadata.get("streamchat", {}).get("conversations", {}).get(conversation, {}).get("turns", [])


@pytest.fixture
def notebook(jp_root_dir) -> str:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), jp_root_dir / NOTEBOOK)
    return NOTEBOOK


async def rename(jp_fetch, old: str, new: str) -> None:
    """What the file browser does: PATCH /api/contents/<old> {"path": new}."""
    await jp_fetch("api", "contents", old, method="PATCH", body=json.dumps({"path": new}))


async def wait_recorded(jp_fetch, run_id: str) -> dict[str, Any]:
    response = await jp_fetch("streamchat", "runs", run_id, params={"wait": "recorded"})
    return json.loads(response.body)


async def journaled_notebook(journal: str, run_id: str, expected: str) -> str:
    """The notebook path in the run's journal row, once it is ``expected``."""

    def notebook() -> str:
        with contextlib.closing(sqlite3.connect(journal)) as db:
            (raw,) = db.execute("SELECT record FROM runs WHERE id = ?", (run_id,)).fetchone()
        return str(json.loads(raw)["notebook"])

    return await await_until(lambda: (path := notebook()) == expected and path, what=f"{expected} in the journal")


async def streaming(client, upstream, model: str, notebook: str, conversation: str | None = None) -> str:
    """A run whose reply stalls after two words; returns once the client has seen both (so: mid-run)."""
    upstream.script(model, Script([Text("Hal"), Text("f"), Stall(30)]))
    extra = {"conversation": conversation} if conversation else {}
    started = await client.start_run(chat(f"openai:{model}", "question?", notebook=notebook, **extra))
    await collect(client.events(started["id"]), limit=2)
    return started["id"]


async def test_a_turn_lands_in_the_notebook_renamed_while_the_reply_streams(
    streamchat_client, upstream, jp_fetch, jp_root_dir, notebook
):
    run_id = await streaming(streamchat_client, upstream, "follow", notebook)
    # When the notebook is renamed through the contents API while the reply streams
    await rename(jp_fetch, notebook, "renamed.ipynb")
    assert (await streamchat_client.get_run(run_id))["status"] == "running"
    await streamchat_client.stop(run_id)
    # Then the run says where its notebook is now, and that the turn is there
    record = await wait_recorded(jp_fetch, run_id)
    assert record["notebook"] == "renamed.ipynb" and record["recorded"] == "recorded"
    (turn,) = turns(jp_root_dir, "renamed.ipynb")
    assert turn["run"] == run_id and turn["reply"]["content"] == "Half"
    # And the old path was not recreated
    assert not (jp_root_dir / notebook).exists()
    # And listing by the new path finds the run
    assert [r["id"] for r in await streamchat_client.list_runs(notebook="renamed.ipynb")] == [run_id]


async def test_a_completed_reply_lands_in_the_renamed_notebook(
    streamchat_client, upstream, jp_fetch, jp_root_dir, notebook
):
    # A reply paced over seconds: it is still streaming when the rename lands (asserted below)
    upstream.script("paced", Script.reply(["w "] * 60, pace=0.05))
    started = await streamchat_client.start_run(chat("openai:paced", "q", notebook=notebook))
    await collect(streamchat_client.events(started["id"]), limit=1)
    # When the notebook is renamed mid-reply and the reply then completes
    await rename(jp_fetch, notebook, "done.ipynb")
    assert (await streamchat_client.get_run(started["id"]))["status"] == "running"
    record = await wait_recorded(jp_fetch, started["id"])
    # Then the completed turn is in the renamed notebook, once
    assert record["status"] == "completed" and record["recorded"] == "recorded"
    assert record["notebook"] == "done.ipynb"
    (turn,) = turns(jp_root_dir, "done.ipynb")
    assert turn["reply"]["content"] == "w " * 60 and turn["reply"]["status"] == "completed"
    assert not (jp_root_dir / notebook).exists()


async def test_a_turn_follows_a_rename_of_the_folder_its_notebook_is_in(
    streamchat_client, upstream, jp_fetch, jp_root_dir
):
    (jp_root_dir / "project").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / "project" / "analysis.ipynb")
    run_id = await streaming(streamchat_client, upstream, "folder", "project/analysis.ipynb")
    # When the folder above the notebook is renamed mid-run
    await rename(jp_fetch, "project", "archive")
    await streamchat_client.stop(run_id)
    # Then the turn lands in the notebook at its new place
    record = await wait_recorded(jp_fetch, run_id)
    assert record["notebook"] == "archive/analysis.ipynb" and record["recorded"] == "recorded"
    (turn,) = turns(jp_root_dir, "archive/analysis.ipynb")
    assert turn["run"] == run_id
    assert not (jp_root_dir / "project").exists()


async def test_a_turn_follows_two_renames_in_a_row(streamchat_client, upstream, jp_fetch, jp_root_dir, notebook):
    run_id = await streaming(streamchat_client, upstream, "twice", notebook)
    # When the notebook is renamed twice while the reply streams
    await rename(jp_fetch, notebook, "first.ipynb")
    await rename(jp_fetch, "first.ipynb", "second.ipynb")
    await streamchat_client.stop(run_id)
    # Then the turn is in the last name only
    record = await wait_recorded(jp_fetch, run_id)
    assert record["notebook"] == "second.ipynb" and record["recorded"] == "recorded"
    assert [t["run"] for t in turns(jp_root_dir, "second.ipynb")] == [run_id]
    assert not (jp_root_dir / notebook).exists() and not (jp_root_dir / "first.ipynb").exists()


async def test_a_run_started_with_the_old_path_after_a_rename_is_refused(
    streamchat_client, upstream, jp_fetch, jp_root_dir, notebook
):
    await rename(jp_fetch, notebook, "moved.ipynb")
    # When a run still names the old path
    with pytest.raises(StreamChatAPIError) as refused:
        await streamchat_client.start_run(chat("openai:any", notebook=notebook))
    # Then it is a 404, nothing started, and the old path is not created
    assert refused.value.status == 404
    assert await streamchat_client.list_runs() == []
    assert not (jp_root_dir / notebook).exists()


async def test_a_notebook_deleted_mid_run_is_never_recreated_and_the_run_says_gone(
    streamchat_client, upstream, jp_fetch, jp_root_dir, notebook
):
    run_id = await streaming(streamchat_client, upstream, "deleted", notebook)
    # When the notebook is deleted through the contents API mid-run
    await jp_fetch("api", "contents", notebook, method="DELETE")
    await streamchat_client.stop(run_id)
    # Then the run stays readable with its text, and says that its notebook is gone
    record = await wait_recorded(jp_fetch, run_id)
    assert record["recorded"] == "gone" and record["status"] == "stopped" and record["text"] == "Half"
    assert record["notebook"] == notebook
    # And no file was created again
    assert not (jp_root_dir / notebook).exists()
    assert sorted(p.name for p in jp_root_dir.iterdir() if not p.name.startswith(".")) == []


async def test_a_notebook_deleted_outside_jupyter_mid_run_ends_gone(
    streamchat_client, upstream, jp_fetch, jp_root_dir, notebook
):
    run_id = await streaming(streamchat_client, upstream, "rm", notebook)
    # When the file is removed behind Jupyter's back (``rm`` in a terminal)
    (jp_root_dir / notebook).unlink()
    await streamchat_client.stop(run_id)
    # Then, once it stayed missing, the run says gone and nothing is created
    record = await wait_recorded(jp_fetch, run_id)
    assert record["recorded"] == "gone" and not (jp_root_dir / notebook).exists()


async def test_the_journal_row_of_a_running_run_follows_a_rename(
    streamchat_client, upstream, jp_fetch, jp_serverapp, notebook
):
    run_id = await streaming(streamchat_client, upstream, "journaled", notebook)
    # When the notebook is renamed while the run is still running
    await rename(jp_fetch, notebook, "after.ipynb")
    # Then the journal (what a recovery after a crash reads) names the new path
    assert await journaled_notebook(service_of(jp_serverapp).journal.path, run_id, "after.ipynb") == "after.ipynb"
    record = await streamchat_client.get_run(run_id)
    assert record["notebook"] == "after.ipynb" and record["status"] == "running"
    await streamchat_client.stop(run_id)
    assert (await wait_recorded(jp_fetch, run_id))["recorded"] == "recorded"


async def test_recorded_is_pending_while_the_run_streams_and_absent_without_a_notebook(
    streamchat_client, upstream, jp_fetch, notebook
):
    run_id = await streaming(streamchat_client, upstream, "state", notebook)
    assert (await streamchat_client.get_run(run_id))["recorded"] == "pending"
    upstream.script("plain", Script.reply(["no notebook"]))
    plain = await streamchat_client.start_run(chat("openai:plain"))
    # When a run without a notebook is waited for
    record = await wait_recorded(jp_fetch, plain["id"])
    # Then it has no "recorded" key (it answers without waiting for anything notebook-related)
    assert "recorded" not in record
    await streamchat_client.stop(run_id)
    assert (await wait_recorded(jp_fetch, run_id))["recorded"] == "recorded"


async def test_a_refused_request_is_never_recorded_in_anything(streamchat_client, jp_root_dir, notebook):
    before = (jp_root_dir / notebook).read_bytes()
    # When a request is refused (an empty prompt, an unknown provider)
    for body in ({"prompt": "", "notebook": notebook, "conversation": "c"}, chat("nope:model", notebook=notebook)):
        with pytest.raises(StreamChatAPIError) as refused:
            await streamchat_client.start_run(body)
        assert 400 <= refused.value.status < 500
    # Then no run exists to be "recorded", and the notebook is untouched
    assert await streamchat_client.list_runs() == []
    assert (jp_root_dir / notebook).read_bytes() == before


async def test_wait_accepts_only_recorded(streamchat_client, upstream, jp_fetch, notebook):
    run_id = await streaming(streamchat_client, upstream, "badwait", notebook)
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("streamchat", "runs", run_id, params={"wait": "forever"})
    assert refused.value.code == 400
    assert "recorded" in json.loads(refused.value.response.body)["message"]
    await streamchat_client.stop(run_id)


@pytest.fixture
def server(tmp_path, upstream) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", upstream.openai_base_url)
    nbformat.write(nbformat.v4.new_notebook(), process.root / NOTEBOOK)
    try:
        yield process
    finally:
        process.close()


async def test_a_run_killed_after_its_notebook_was_renamed_is_recovered_into_the_renamed_notebook(
    server: ServerProcess, upstream
):
    server.start()
    headers = {"Authorization": f"token {server.token}"}
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        run_id = await streaming(client, upstream, "killed", NOTEBOOK)
        # When the notebook is renamed mid-run, and the server is then killed (its journal row followed the rename)
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as http:
            renamed = await http.patch(f"api/contents/{NOTEBOOK}", json={"path": "kept.ipynb"})
            assert renamed.status_code == 200
        assert await journaled_notebook(str(server.journal), run_id, "kept.ipynb") == "kept.ipynb"
    server.kill()
    server.start()
    # Then the restarted server records the interrupted run in the renamed notebook, once
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        record = await client._json("GET", f"runs/{run_id}", params={"wait": "recorded"})
    assert record["status"] == "interrupted" and record["recorded"] == "recorded"
    assert record["notebook"] == "kept.ipynb"
    (turn,) = turns(server.root, "kept.ipynb")
    assert turn["run"] == run_id and turn["reply"]["content"] == "Half"
    assert not (server.root / NOTEBOOK).exists()


async def test_a_run_whose_notebook_was_deleted_still_says_gone_after_a_restart(server: ServerProcess, upstream):
    server.start()
    headers = {"Authorization": f"token {server.token}"}
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        run_id = await streaming(client, upstream, "gone", NOTEBOOK)
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as http:
            assert (await http.delete(f"api/contents/{NOTEBOOK}")).status_code == 204
        await client.stop(run_id)
        assert (await client._json("GET", f"runs/{run_id}", params={"wait": "recorded"}))["recorded"] == "gone"
    # When the server restarts
    server.terminate()
    server.start()
    # Then the run is still listed, still gone, and its notebook was not created again
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        record = await client.get_run(run_id)
    assert record["recorded"] == "gone" and record["text"] == "Half" and record["status"] == "stopped"
    assert not (server.root / NOTEBOOK).exists()
