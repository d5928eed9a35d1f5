"""A notebook that is briefly unreadable when a run ends is retried with backoff, never written over (SPEC 6).

Another writer tears the notebook (cuts it to half, as a save in progress or a crashed tool leaves it)
while the run ends; the server must neither write over the torn file nor wait for its next start: once
the file is whole again, the turn lands, once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from typing import Any

import nbformat
import pytest

from harness.upstream import Script, Stall, Text
from harness.waiting import await_until
from tests.helpers import chat, collect, service_of

NOTEBOOK = "torn.ipynb"


@pytest.fixture
def streamchat_settings(streamchat_settings: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    """``record_retry_timeout`` from an indirect parametrization, else a long one."""
    return {**streamchat_settings, "record_retry_timeout": getattr(request, "param", 60.0)}


@pytest.fixture
def notebook(jp_root_dir) -> str:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# notes")]), jp_root_dir / NOTEBOOK)
    return NOTEBOOK


def turns(root, path: str) -> list[dict[str, Any]]:
    notebook = nbformat.read(root / path, as_version=4)
    return notebook.metadata.get("streamchat", {}).get("conversations", {}).get("default", {}).get("turns", [])


async def streaming(client, upstream, model: str, notebook: str) -> str:
    upstream.script(model, Script([Text("Hal"), Text("f"), Stall(30)]))
    started = await client.start_run(chat(f"openai:{model}", "question?", notebook=notebook))
    await collect(client.events(started["id"]), limit=2)
    return started["id"]


def tear(path) -> tuple[bytes, bytes]:
    """Cut the file to its first half, as a writer caught mid-write leaves it; (whole, torn)."""
    whole = path.read_bytes()
    torn = whole[: len(whole) // 2]
    path.write_bytes(torn)
    return whole, torn


async def logged(caplog: pytest.LogCaptureFixture, words: str, timeout: float = 20.0) -> list[str]:
    """Lines of the package's log holding ``words``, once there is one (each record once: the extension's
    log hands the package's records to the server's handlers too, so a capture may see one record twice)."""

    def lines() -> list[str]:
        records = {id(r): r for r in caplog.records if r.name.startswith("jupyter_streamchat")}.values()
        return [line for line in (r.getMessage() for r in records) if words in line]

    return await await_until(lines, timeout, what=f"a log line with {words!r}")


async def test_a_notebook_torn_while_a_run_ends_gets_the_turn_once_it_is_whole_again(
    streamchat_client, upstream, jp_fetch, jp_root_dir, notebook
):
    run_id = await streaming(streamchat_client, upstream, "torn", notebook)
    # When another writer has the notebook half-written as the run ends
    whole, torn = tear(jp_root_dir / notebook)
    await streamchat_client.stop(run_id)
    # Then the run is not recorded yet, and the torn file was not written over
    assert (await streamchat_client.get_run(run_id))["recorded"] == "pending"
    assert (jp_root_dir / notebook).read_bytes() == torn
    # When the writer finishes (the file is whole again)
    (jp_root_dir / notebook).write_bytes(whole)
    # Then the turn lands without a restart, once
    response = await jp_fetch("streamchat", "runs", run_id, params={"wait": "recorded"})
    assert json.loads(response.body)["recorded"] == "recorded"
    (turn,) = turns(jp_root_dir, notebook)
    assert turn["run"] == run_id and turn["reply"]["content"] == "Half"
    assert nbformat.read(jp_root_dir / notebook, as_version=4).cells[0].source == "# notes"


@pytest.mark.parametrize("streamchat_settings", [0.5], indirect=True)
async def test_a_notebook_unreadable_past_the_retry_timeout_is_left_to_the_journal(
    streamchat_client, upstream, jp_serverapp, jp_root_dir, notebook, caplog
):
    caplog.set_level(logging.INFO, logger="jupyter_streamchat")
    run_id = await streaming(streamchat_client, upstream, "unreadable", notebook)
    # When the notebook stays unreadable for longer than record_retry_timeout
    _, torn = tear(jp_root_dir / notebook)
    await streamchat_client.stop(run_id)
    # Then the server says so once, and leaves the run to the journal's next recovery
    (line,) = await logged(caplog, "left to the journal's next recovery")
    assert run_id in line and notebook in line
    assert (await streamchat_client.get_run(run_id))["recorded"] == "pending"
    with contextlib.closing(sqlite3.connect(service_of(jp_serverapp).journal.path)) as db:
        (persisted,) = db.execute("SELECT persisted FROM runs WHERE id = ?", (run_id,)).fetchone()
    assert persisted == 0
    # And the unreadable file was never written over
    assert (jp_root_dir / notebook).read_bytes() == torn
