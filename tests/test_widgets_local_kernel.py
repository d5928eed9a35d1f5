"""Widgets in a kernel that no Jupyter server started (as VS Code or ``jupyter console`` start them).

Such a kernel runs the server's engine in-process: demo models and environment keys work, Stop works,
and the widget says that nothing is recorded in a notebook. Also: the magics, and the comm traffic of
a long reply (throttled, linear in the reply, exact at the end).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.kernels import Execution, LocalKernel
from harness.server_process import ServerProcess, free_port
from harness.upstream import FakeUpstream, Script, Stall, Text
from harness.waiting import await_until
from tests.conftest import OPENAI_KEY

PAYLOAD_PER_CHAR = 8


def upstream_env(upstream: FakeUpstream) -> dict[str, str]:
    return {"OPENAI_BASE_URL": upstream.openai_base_url, "OPENAI_API_KEY": OPENAI_KEY}


async def results_of(kernel: LocalKernel, name: str, timeout: float = 60) -> list[dict[str, Any]]:
    run = await kernel.execute(f"import json\nprint(json.dumps(await {name}.done))", timeout=timeout)
    return json.loads(run.raise_for_error().stdout)


async def value_of(kernel: LocalKernel, expression: str) -> Any:
    run = await kernel.execute(f"import json\nprint(json.dumps({expression}))")
    return json.loads(run.raise_for_error().stdout)


async def until(kernel: LocalKernel, expression: str) -> None:
    await await_until(lambda: value_of(kernel, f"bool({expression})"), what=expression)


async def test_fallback_chat_streams_demo_stop_works_and_persistence_is_visibly_off(upstream):
    async with LocalKernel.start(env=upstream_env(upstream)) as kernel:
        # Given a kernel with no server: the demo model streams in-process
        await kernel.execute("from jupyter_streamchat import chat\nslow = chat('Hello there', model='demo:slow')")
        await until(kernel, "len(slow.panes[0].state.text) > 20")
        # When Stop is clicked
        await kernel.execute("slow.panes[0].stop_button.click()")
        (stopped,) = await results_of(kernel, "slow")
        # And a model configured only by environment variables answers too
        upstream.script("env-model", Script.reply(["from ", "the ", "environment"]))
        await kernel.execute("env = chat('Hi', model='openai:env-model')")
        (from_env,) = await results_of(kernel, "env")
        # And reasoning is shown apart from the reply (collapsed), never inside it
        await kernel.execute("thinker = chat('Think first', model='demo:thinker')")
        (thought,) = await results_of(kernel, "thinker")
        accordion = await value_of(
            kernel, "[thinker.panes[0].reasoning.selected_index, thinker.panes[0].reasoning.titles]"
        )
        note = await value_of(kernel, "slow.note.value")
        outputs = [m for m in kernel.messages if m.msg_type in ("display_data", "update_display_data")]

    # Then the stopped reply keeps its partial text, and the env-configured model completed
    assert stopped["status"] == "stopped" and 20 < len(stopped["text"]) < 300
    assert from_env["status"] == "completed" and from_env["text"] == "from the environment"
    assert thought["reasoning"] and thought["reasoning"] not in thought["text"] and thought["status"] == "completed"
    assert accordion == [None, ["Reasoning"]]  # collapsed
    # And the widget, live and in its saved static form, says persistence is off
    assert "persistence is off" in note
    final = [m.content["data"].get("text/html", "") for m in outputs if m.msg_type == "update_display_data"]
    assert any("persistence is off" in html and "stopped" in html for html in final)
    assert any("<details" in html and "Reasoning" in html for html in final)
    # And the API key never reached the kernel's outputs
    assert all(OPENAI_KEY not in json.dumps(m.content) for m in kernel.messages)


def usage_errors(run: Execution) -> list[str]:
    """The one-line usage errors a magic printed (tracebacks would show up as ``error`` outputs)."""
    return [line for line in run.stderr.splitlines() if line.strip()]


BAD_MAGIC_CELLS = [
    "%%chat not-a-model-id\nhi",
    "%%chat demo:fast demo:chat\nhi",
    "%%chat demo:fast --conversation\nhi",
    "%%chat 'unclosed\nhi",
    "%%chat --colour blue\nhi",
    "%%compare demo:fast\nhi",
    "%%compare demo:fast demo:chat demo:slow demo:long demo:thinker\nhi",
    "%%compare demo:fast nomodel\nhi",
    "%chat_models please",
]


async def test_magics_parse_arguments_and_reject_bad_ones_with_one_line():
    async with LocalKernel.start() as kernel:
        (await kernel.execute("%load_ext jupyter_streamchat")).raise_for_error()
        # Bad arguments: one line each, never a traceback, and nothing is started
        for cell in BAD_MAGIC_CELLS:
            run = await kernel.execute(cell)
            assert not any(output.msg_type == "error" for output in run.outputs), f"traceback for {cell!r}"
            lines = usage_errors(run)
            assert len(lines) == 1 and lines[0].startswith("UsageError:"), (cell, lines)
        started = "len(__import__('jupyter_streamchat.kernel._backends', fromlist=['x'])._backends)"
        assert await value_of(kernel, started) == 0

        # Good arguments reach the runs as given
        await kernel.execute("%%chat demo:fast --conversation c9\nWhat is 2+2?")
        await kernel.execute("%%compare demo:fast demo:chat\nCompare us")
        await kernel.execute("%%chat\nDefault model please")
        runs = await value_of(
            kernel,
            "[(r.model, r.mode, r.conversation, r.prompt['content']) for r in "
            "__import__('jupyter_streamchat.kernel._backends', fromlist=['x']).current_backend().service.runs.list()]",
        )
        listing = await kernel.execute("%chat_models")
    assert ["demo:fast", "detached", "c9", "What is 2+2?"] in runs
    compared = [run for run in runs if run[1] == "direct"]
    assert sorted(run[0] for run in compared) == ["demo:chat", "demo:fast"]
    assert len({run[2] for run in compared}) == 1 and compared[0][3] == "Compare us"
    assert ["demo:chat", "detached", "default", "Default model please"] in runs  # the default model
    shown = [m.content["data"].get("text/markdown", "") for m in listing.outputs if m.msg_type == "display_data"]
    assert any("demo:chat" in text and "default" in text for text in shown)


def long_markdown(paragraphs: int) -> list[str]:
    """A realistic reply, as tokens: paragraphs, a list, a code block and a table, repeated."""
    unit = (
        "## Part {n}\n\nStreaming replies arrive token by token, and the notebook must keep up without "
        "re-sending what it already showed. This paragraph is long enough to look like a real answer from "
        "a real model, with *emphasis*, `inline code` and **strong words** in it.\n\n"
        "- first point about {n}\n- second point\n- third point\n\n"
        "```python\n" + "".join(f"value_{{n}}_{i} = compute({i}, scale=2.5)\n" for i in range(12)) + "```\n\n"
        "| metric | value |\n|---|---|\n| tokens | {n} |\n| speed | fast |\n\n"
    )
    text = "".join(unit.format(n=n) for n in range(paragraphs))
    return [token for token in re.findall(r"\S*\s*", text) if token]


async def test_long_replies_are_throttled_linear_and_exact(upstream):
    short, long = long_markdown(6), long_markdown(18)
    upstream.script("short", Script.reply(short, pace=0.004))
    upstream.script("long", Script.reply(long, pace=0.004))
    async with LocalKernel.start(env=upstream_env(upstream)) as kernel:
        await kernel.execute(
            "from jupyter_streamchat import compare\ncmp = compare('Explain', ['openai:short', 'openai:long'])"
        )
        results = await results_of(kernel, "cmp")
        panes = await value_of(
            kernel,
            "[{'tail': p.reply._tail.model_id, 'ids': sorted(__import__('harness.widget_tree', fromlist=['x'])"
            ".model_ids(p.box))} for p in cmp.panes]",
        )
        messages = list(kernel.messages)

    ratios = []
    for pane, result, tokens in zip(panes, results, (short, long), strict=True):
        # The final text is exactly what the model sent
        assert result["status"] == "completed"
        assert result["text"] == "".join(tokens)
        # Renders are coalesced: the pane's tail is updated, but far less often than tokens arrive (the rate,
        # ~20 a second, is benchmarks/bench_widgets.py's tail_max_per_1s)
        tail_updates = [m for m in messages if m.msg_type == "comm_msg" and m.comm_id == pane["tail"]]
        assert 0 < len(tail_updates) <= len(tokens) / 2, (len(tail_updates), len(tokens))
        # What reaches the browser is a small multiple of the reply
        ids = set(pane["ids"])
        sent = sum(m.size for m in messages if m.msg_type in ("comm_open", "comm_msg") and m.comm_id in ids)
        ratios.append(sent / len(result["text"]))
    assert max(ratios) <= PAYLOAD_PER_CHAR, ratios
    # ...and stays that multiple as the reply grows three times longer (linear, not quadratic)
    assert ratios[1] <= ratios[0] * 1.3, ratios


async def test_a_server_going_away_fails_the_panes_with_a_clear_reason(tmp_path: Path, upstream):
    upstream.script("stall", Script([Text("half "), Stall(60)]))
    server = ServerProcess(tmp_path / "server", upstream.openai_base_url)
    server.start()
    try:
        # A kernel pointed at the server with a hub-style token (not the server's child: it survives)
        env = {"JUPYTERHUB_SERVICE_URL": server.base_url, "JUPYTERHUB_API_TOKEN": server.token}
        async with LocalKernel.start(env=env) as kernel:
            await kernel.execute(
                "from jupyter_streamchat import compare\ncmp = compare('Hi', ['openai:stall', 'openai:stall'])"
            )
            await until(kernel, "all(p.state.text == 'half ' for p in cmp.panes)")
            server.kill()
            results = await results_of(kernel, "cmp", timeout=20)
            shown = await value_of(kernel, "[p.error.value for p in cmp.panes]")
    finally:
        server.close()
    assert {r["status"] for r in results} == {"failed"}
    assert {r["error"]["code"] for r in results} == {"server_unreachable"}
    assert {r["text"] for r in results} == {"half "}
    assert all("\n" not in line and "server_unreachable" in line for line in shown)


async def test_a_kernel_whose_server_is_gone_chats_in_process_and_says_so():
    # A kernel that outlived the server that started it: its link points at a closed port
    gone = f"http://127.0.0.1:{free_port()}/user/alice/"
    env = {"JUPYTER_STREAMCHAT_URL": gone, "JUPYTER_STREAMCHAT_TOKEN": "stale", "JPY_SESSION_NAME": "nb.ipynb"}
    async with LocalKernel.start(env=env) as kernel:
        await kernel.execute("from jupyter_streamchat import chat\nreply = chat('Still there?', model='demo:fast')")
        (result,) = await results_of(kernel, "reply")
        note = await value_of(kernel, "reply.note.value")
    assert result["status"] == "completed" and "Still there?" in result["text"]
    assert "persistence is off" in note and "does not answer" in note
