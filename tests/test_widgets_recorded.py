"""The widget footer says "Recorded in <notebook>" only once the server confirms that the notebook holds the
turn, and otherwise what happened: refused (nothing started), or persistence off without a server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from harness.kernels import Kernel, LocalKernel, ServerKernel
from harness.server_process import ServerProcess, serving
from harness.upstream import FakeUpstream

NOTEBOOK = "analysis.ipynb"


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", upstream.openai_base_url, demo_speed=20.0)
    with serving(process, NOTEBOOK):
        yield process


async def value_of(kernel: Kernel, expression: str) -> Any:
    run = await kernel.execute(f"import json\nprint(json.dumps({expression}))", timeout=60)
    return json.loads(run.raise_for_error().stdout)


def shown_html(kernel: Kernel) -> list[str]:
    """Every rendering the kernel sent to the cell (displays and their updates), in order."""
    return [
        m.content["data"].get("text/html", "")
        for m in kernel.messages
        if m.msg_type in ("display_data", "update_display_data") and "data" in m.content
    ]


def turns_on_disk(server: ServerProcess) -> list[dict[str, Any]]:
    metadata = nbformat.read(server.root / NOTEBOOK, as_version=4).metadata
    conversations = (metadata.get("streamchat") or {}).get("conversations") or {}
    return [turn for conversation in conversations.values() for turn in conversation["turns"]]


async def test_when_a_chat_completes_then_the_footer_says_recorded_in_its_notebook_once_the_server_confirms(server):
    async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
        # When a chat starts, its footer does not claim a record yet
        await kernel.execute("from jupyter_streamchat import chat\nreply = chat('Hello', model='demo:fast')")
        before = await value_of(kernel, "reply.record_note")
        # And once the run has ended and the server has answered
        after = await value_of(kernel, "await reply.settled()")
        (result,) = await value_of(kernel, "reply.results")
        footer = await value_of(kernel, "reply.note.value")

    assert "Recorded in" not in before and NOTEBOOK in before
    # Then it says where, because the file holds the turn
    assert after == f"Recorded in {NOTEBOOK}"
    assert [turn["run"] for turn in turns_on_disk(server)] == [result["run"]]
    assert result["recorded"] == "recorded" and result["notebook"] == NOTEBOOK
    # And the live footer and the saved static output say it too
    assert f"Recorded in {NOTEBOOK}" in footer
    assert f"Recorded in {NOTEBOOK}" in shown_html(kernel)[-1]


async def test_when_the_server_refuses_a_request_then_no_footer_says_recorded(server):
    async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
        # When a chat names an unknown model (the server answers 404, nothing starts)
        await kernel.execute(
            "from jupyter_streamchat import chat, compare\n"
            "unknown = chat('Hello', model='demo:nope')\n"
            "mixed = compare('Hello', models=['demo:nope', 'demo:fast'])"
        )
        refused = await value_of(kernel, "await unknown.settled()")
        (unknown,) = await value_of(kernel, "unknown.results")
        mixed = await value_of(kernel, "await mixed.settled()")
        shown = shown_html(kernel)

    # Then the footer says it was refused, never that it was recorded
    assert unknown["status"] == "failed" and unknown["error"]["code"] == "not_found"
    assert "Recorded in" not in refused and "refused" in refused
    assert unknown["recorded"] == "refused"
    # And a comparison says it per model: the refused pane is not recorded, the other one is
    assert "demo:nope: Not recorded: the request was refused" in mixed
    assert f"demo:fast: Recorded in {NOTEBOOK}" in mixed
    assert len(turns_on_disk(server)) == 1
    # And no rendering of the refused chat ever said it was recorded
    renderings = [html for html in shown if "demo:nope" in html and "demo:fast" not in html]
    assert renderings and not any("Recorded in" in html for html in renderings)


async def test_when_no_server_started_the_kernel_then_the_footer_says_persistence_is_off():
    async with LocalKernel.start() as kernel:
        await kernel.execute("from jupyter_streamchat import chat\nreply = chat('Hello', model='demo:fast')")
        note = await value_of(kernel, "await reply.settled()")
        (result,) = await value_of(kernel, "reply.results")

    assert result["status"] == "completed"
    assert "Notebook persistence is off" in note and "Recorded in" not in note
    assert result["recorded"] is None
