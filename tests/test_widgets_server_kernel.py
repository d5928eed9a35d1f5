"""Widgets in a real kernel started by a real Jupyter server, against the real loopback upstream.

The kernel finds the server by itself (no URL or token typed), Stop buttons are clicked in the kernel,
and the upstream itself reports when its connection closed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from harness.kernels import ServerKernel
from harness.server_process import ServerProcess, serving
from harness.upstream import FakeUpstream, Script, Stall, Status, Text
from harness.waiting import await_until
from jupyter_streamchat.client import StreamChatClient

NOTEBOOK = "analysis.ipynb"
CHUNKS = ["Partial ", "answer ", "so far"]


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", upstream.openai_base_url, demo_speed=20.0)
    with serving(process, NOTEBOOK):
        yield process


def turns_on_disk(server: ServerProcess) -> list[dict[str, Any]]:
    metadata = nbformat.read(server.root / NOTEBOOK, as_version=4).metadata
    conversations = (metadata.get("streamchat") or {}).get("conversations") or {}
    return [turn for conversation in conversations.values() for turn in conversation["turns"]]


async def wait_turns(server: ServerProcess, count: int) -> list[dict[str, Any]]:
    return await await_until(lambda: turns if len(turns := turns_on_disk(server)) >= count else None)


async def results_of(kernel: ServerKernel, name: str, timeout: float = 30) -> list[dict[str, Any]]:
    """``await <name>.done`` in the kernel, returned as JSON."""
    run = await kernel.execute(f"import json\nprint(json.dumps(await {name}.done))", timeout=timeout)
    return json.loads(run.raise_for_error().stdout)


async def test_compare_pane_stop_closes_its_upstream_while_the_other_completes(server, upstream):
    # Given a comparison where one model stalls after a few words and the other answers normally
    upstream.script("stall", Script([*(Text(chunk) for chunk in CHUNKS), Stall(60)]))
    upstream.script("steady", Script.reply(["The ", "whole ", "reply."], pace=0.3))
    async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
        await kernel.execute(
            "from jupyter_streamchat import compare\n"
            "cmp = compare('Which is faster?', models=['openai:stall', 'openai:steady'])"
        )
        stalled = await upstream.wait_for_request_async("stall", timeout=15)
        await poll_kernel(kernel, "cmp.panes[0].state.text", repr("".join(CHUNKS)))

        # When the stalled pane's Stop button is clicked in the kernel
        clicked = await kernel.execute(
            "import time\nclicked_at = time.monotonic()\ncmp.panes[0].stop_button.click()\nprint(clicked_at)"
        )
        clicked_at = float(clicked.raise_for_error().stdout)

        # Then its upstream connection closes after the click and during the 60 s stall, although it was silent
        closed_at = await stalled.wait_closed_async(timeout=60)
        assert closed_at is not None, "the stalled upstream never saw its connection close"
        assert closed_at >= clicked_at
        results = await results_of(kernel, "cmp")

    # And the other pane completed, each pane with its exact text
    by_model = {result["model"]: result for result in results}
    assert by_model["openai:stall"]["status"] == "stopped"
    assert by_model["openai:stall"]["text"] == "".join(CHUNKS)
    assert by_model["openai:steady"]["status"] == "completed"
    assert by_model["openai:steady"]["text"] == "The whole reply."
    # And both turns are in the kernel's notebook (found with no argument), once each, in one conversation
    turns = await wait_turns(server, 2)
    assert sorted(turn["run"] for turn in turns) == sorted(result["run"] for result in results)
    assert len({turn["run"] for turn in turns}) == len(turns) == 2
    conversations = nbformat.read(server.root / NOTEBOOK, as_version=4).metadata["streamchat"]["conversations"]
    assert list(conversations) == [results[0]["conversation"]]
    stopped_turn = next(turn for turn in turns if turn["model"] == "openai:stall")
    assert stopped_turn["reply"]["content"] == "".join(CHUNKS) and stopped_turn["reply"]["partial"] is True


async def test_chat_survives_a_kernel_interrupt_and_a_cell_rerun(server, upstream):
    words = [f"w{i} " for i in range(15)]
    upstream.script("paced", Script.reply(words, pace=0.15))
    async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
        cell = "from jupyter_streamchat import chat\nreply = chat('Tell me', model='openai:paced')"
        await kernel.execute(cell)
        await upstream.wait_for_request_async("paced", timeout=15)
        # When the kernel is interrupted while a cell is busy waiting for the reply
        busy = await kernel.start_running("await reply.done")
        await kernel.interrupt()
        interrupted = await kernel.wait_execution(busy, timeout=10)
        assert interrupted.status == "error"
        # And the cell is run again while the reply still streams (the first one is still ours as `first`)
        await kernel.execute("first = reply\n" + cell)
        first = await results_of(kernel, "first")
        second = await results_of(kernel, "reply")
        # And a later chat() in the notebook continues the same conversation
        await kernel.execute("later = chat('And then?', model='openai:paced')")
        later = await results_of(kernel, "later")

    # Then the first run completed with every word: the interrupt did not touch it
    assert first[0]["status"] == "completed" and first[0]["text"] == "".join(words)
    # And the re-run, asked while the conversation's reply still streamed, waited for it and then followed it
    # (SPEC 11: a new turn never follows half a reply), and the later chat followed the re-run
    assert second[0]["status"] == "completed" and later[0]["status"] == "completed"
    assert len(upstream.requests_for("paced")) == 3
    # And the three runs are recorded exactly once each
    turns = await wait_turns(server, 3)
    assert sorted(turn["run"] for turn in turns) == sorted(r[0]["run"] for r in (first, second, later))
    # And each turn's history is the whole branch before it (built by the server from the notebook)
    answer = "".join(words)
    assert upstream.requests_for("paced")[1].body["messages"] == [
        {"role": "user", "content": "Tell me"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "Tell me"},
    ]
    assert upstream.requests_for("paced")[2].body["messages"][-2:] == [
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "And then?"},
    ]


async def test_a_chat_asked_while_another_clients_reply_streams_waits_for_it_then_follows_it(server, upstream):
    # Given a reply streaming in the notebook's conversation, started by another client (the side panel, say)
    upstream.script("panel", Script([Text("From "), Text("the panel."), Stall(60)]))
    upstream.script("cell", Script.reply(["From the cell."]))
    async with StreamChatClient(server.base_url, server.token) as other:
        body = {"model": "openai:panel", "prompt": "First?", "conversation": "default", "notebook": NOTEBOOK}
        streaming = await other.start_run(body)
        await upstream.wait_for_request_async("panel", timeout=15)
        async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
            # When a cell asks in the same conversation
            await kernel.execute("from jupyter_streamchat import chat\nreply = chat('Second?', model='openai:cell')")
            # Then nothing is sent while the other reply streams: the cell's request comes once it has ended
            await await_until(
                lambda: "-> 409: a reply in this conversation is still streaming" in server.log_tail(20_000),
                what="the server to refuse the cell's request while the other reply streams",
            )
            await other.stop(streaming["id"])
            result = await results_of(kernel, "reply")
    assert result[0]["status"] == "completed"
    (asked,) = upstream.requests_for("cell")
    (first,) = upstream.requests_for("panel")
    assert first.client_closed_at is not None and asked.accepted_at > first.client_closed_at
    # And the cell's turn follows the other client's (stopped, partial) reply
    assert asked.body["messages"] == [
        {"role": "user", "content": "First?"},
        {"role": "assistant", "content": "From the panel."},
        {"role": "user", "content": "Second?"},
    ]


async def test_chat_stop_button_stops_the_detached_run_and_keeps_the_partial(server, upstream):
    upstream.script("stall", Script([*(Text(chunk) for chunk in CHUNKS), Stall(60)]))
    async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
        await kernel.execute("from jupyter_streamchat import chat\nreply = chat('Go', model='openai:stall')")
        stalled = await upstream.wait_for_request_async("stall", timeout=15)
        await poll_kernel(kernel, "reply.panes[0].state.text", repr("".join(CHUNKS)))
        await kernel.execute("reply.panes[0].stop_button.click()")
        assert await stalled.wait_closed_async(timeout=5) is not None
        (result,) = await results_of(kernel, "reply")
    assert result["status"] == "stopped" and result["text"] == "".join(CHUNKS)
    (turn,) = await wait_turns(server, 1)
    assert turn["run"] == result["run"] and turn["reply"]["status"] == "stopped"


async def test_pane_errors_are_one_line_statuses_and_spare_the_other_panes(server, upstream):
    upstream.script("busy", Script([Status(429, headers={"Retry-After": "0"})]))
    upstream.script("fine", Script.reply(["ok"]))
    async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
        run = await kernel.execute(
            "from jupyter_streamchat import compare\n"
            "cmp = compare('Hi', models=['openai:busy', 'demo:nope', 'openai:fine'])\n"
            "empty = compare('   ', models=['demo:fast', 'demo:chat'])"
        )
        assert run.raise_for_error().error is None
        results = await results_of(kernel, "cmp")
        empty = await results_of(kernel, "empty")
        outputs = await kernel.execute("print(cmp.panes[0].error.value)")
    by_model = {result["model"]: result for result in results}
    assert by_model["openai:busy"]["status"] == "failed"
    assert by_model["openai:busy"]["error"]["upstream_status"] == 429
    assert by_model["demo:nope"]["status"] == "failed"
    assert by_model["demo:nope"]["error"]["code"] == "not_found"
    assert by_model["openai:fine"]["status"] == "completed" and by_model["openai:fine"]["text"] == "ok"
    assert {r["error"]["code"] for r in empty} == {"empty_prompt"}
    shown = outputs.stdout.strip()
    assert "\n" not in shown and shown.startswith('<div class="jsc-error"')
    assert by_model["openai:busy"]["error"]["code"] in shown


async def poll_kernel(kernel: ServerKernel, expression: str, expected: str) -> None:
    async def seen() -> bool:
        return (await kernel.execute(f"print(repr({expression}))")).raise_for_error().stdout.strip() == expected

    await await_until(seen, what=f"{expression} == {expected}")
