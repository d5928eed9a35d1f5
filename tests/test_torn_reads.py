"""Jupyter's own save rewrites a notebook in place: a read in that moment meets a half-written file.
Building history or recording a turn then tries again briefly instead of failing the request."""

from __future__ import annotations

import asyncio

import nbformat

from jupyter_streamchat.client import StreamChatAPIError
from tests.helpers import wait_finished


def half_written(path) -> bytes:
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return whole


async def test_history_waits_out_a_save_in_progress(streamchat_client, jp_root_dir):
    notebook = jp_root_dir / "saving.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), notebook)
    first = await streamchat_client.start_run(
        {"model": "demo:fast", "prompt": "one", "notebook": "saving.ipynb", "conversation": "c"}
    )
    assert (await wait_finished(streamchat_client, first["id"]))["status"] == "completed"
    assert (await streamchat_client.get_run(first["id"], wait="recorded"))["recorded"] == "recorded"
    # Given the notebook is half-written by a save that finishes 150 ms later
    whole = half_written(notebook)
    asyncio.get_running_loop().call_later(0.15, notebook.write_bytes, whole)
    # When the next turn asks for its history, Then it starts, with the first turn as history
    second = await streamchat_client.start_run(
        {"model": "demo:fast", "prompt": "two", "notebook": "saving.ipynb", "conversation": "c"}
    )
    record = await wait_finished(streamchat_client, second["id"])
    assert record["status"] == "completed"
    assert "two" in record["text"]


async def test_a_notebook_that_stays_unreadable_is_a_clear_conflict(streamchat_client, jp_root_dir):
    (jp_root_dir / "broken.ipynb").write_text('{"cells": [')
    try:
        await streamchat_client.start_run(
            {"model": "demo:fast", "prompt": "x", "notebook": "broken.ipynb", "conversation": "c"}
        )
    except StreamChatAPIError as exc:
        assert exc.status == 409 and "broken.ipynb" in exc.message
    else:
        raise AssertionError("a run started on an unreadable notebook")
    assert (jp_root_dir / "broken.ipynb").read_text() == '{"cells": ['
