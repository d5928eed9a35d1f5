"""The side panel reads a notebook kernel's variables and context items without disturbing it (SPEC 10).

The panel asks through the notebook's own kernel connection with a silent ``execute_request`` that runs no code
and evaluates one user expression (``kernel/_inspect.py``). These tests send exactly that request to a real
kernel and check what the user would notice: the execution count, the namespace, the history, outputs, and a
cell that is running.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

from harness.kernels import OUTPUT_TYPES, KernelMessage, LocalKernel

MAKE_DATA = (
    "import matplotlib\n"
    "matplotlib.use('Agg')\n"
    "import matplotlib.pyplot as plt\n"
    "import pandas as pd\n"
    "df = pd.DataFrame({'month': ['Jan', 'Feb', 'Mar'], 'sales': [120.5, 130.0, 80.25], 'units': [12, 13, 8]})\n"
    "fig, ax = plt.subplots(figsize=(4, 3), dpi=50)\n"
    "ax.plot(df['month'], df['sales'])\n"
    "notes = 'March was cold'\n"
)
INSPECT = "__import__('jupyter_streamchat.kernel._inspect', fromlist=['_'])"
# What the user sees of the kernel's state, read without binding a name (json through __import__).
STATE = (
    "print(__import__('json').dumps({'names': sorted(k for k in get_ipython().user_ns),"
    " 'In': len(In), '_ih': len(_ih), 'Out': len(Out)}))"
)


def ask(kernel: LocalKernel, expression: str) -> str:
    """Send the panel's request: no code, silent, no history, one user expression; returns its msg_id."""
    return kernel.send_execute(
        "", silent=True, store_history=False, allow_stdin=False, user_expressions={"streamchat": expression}
    )


def answer_of(reply: KernelMessage) -> Any:
    expression = reply.content["user_expressions"]["streamchat"]
    assert expression["status"] == "ok", expression
    return expression["data"]["application/json"]


async def state_of(kernel: LocalKernel) -> tuple[int, dict[str, Any]]:
    run = (await kernel.execute(STATE)).raise_for_error()
    return run.reply["execution_count"], json.loads(run.stdout)


async def test_reading_variables_and_items_leaves_the_kernel_as_it_was() -> None:
    async with LocalKernel.start() as kernel:
        (await kernel.execute(MAKE_DATA)).raise_for_error()
        count_before, before = await state_of(kernel)

        # When the panel asks for the variables and for the items of df, fig, notes and a name that is gone
        asked = [
            ask(kernel, f"{INSPECT}.variables()"),
            ask(kernel, f"{INSPECT}.items(['df', 'fig', 'notes', 'gone'])"),
        ]
        executions = [await kernel.wait_execution(msg_id) for msg_id in asked]
        listed, built = (answer_of(kernel.replies[msg_id]) for msg_id in asked)

        # Then no output, no execute_input, no result was published for those requests: only busy and idle
        for execution in executions:
            assert execution.outputs == []
            published = {m.msg_type for m in kernel.messages if m.parent_msg_id == execution.msg_id}
            assert published == {"status"}, published
        # And the next cell gets the next execution count; the namespace and the history grew by that cell only
        count_after, after = await state_of(kernel)
        assert count_after == count_before + 1
        assert set(after["names"]) - set(before["names"]) == {f"_i{count_after}"}
        assert (after["In"], after["_ih"], after["Out"]) == (before["In"] + 1, before["_ih"] + 1, before["Out"])

    # And the answers are the variables (name, type, shape) and the items as the request's context takes them
    by_name = {v["name"]: v for v in listed["variables"]}
    assert by_name["df"] == {"name": "df", "type": "pandas.DataFrame", "shape": "3 x 3"}
    assert by_name["notes"]["type"] == "str" and "plt" not in by_name and "pd" not in by_name
    df, fig, notes, gone = built["items"]
    assert df["name"] == "df" and df["item"]["kind"] == "dataframe" and df["item"]["name"] == "df"
    assert "| sales | float64 |" in df["item"]["text"]
    assert df["item"]["tokens_estimate"] == -(-len(df["item"]["text"]) // 4)
    assert fig["item"]["kind"] == "image" and fig["item"]["image"]["mime"] == "image/png"
    assert base64.b64decode(fig["item"]["data"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert notes["item"]["kind"] == "text" and "March was cold" in notes["item"]["text"]
    assert gone == {"name": "gone", "error": gone["error"]} and "no variable 'gone'" in gone["error"]
    assert "\n" not in gone["error"]


async def test_a_mistyped_name_says_the_close_variable() -> None:
    async with LocalKernel.start() as kernel:
        (await kernel.execute("sales = [1, 2, 3]")).raise_for_error()
        msg_id = ask(kernel, f"{INSPECT}.items(['sale'])")
        await kernel.wait_execution(msg_id)
        (answer,) = answer_of(kernel.replies[msg_id])["items"]
    assert answer["error"].endswith("did you mean sales?")


async def test_a_busy_kernel_answers_after_the_running_cell(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    async with LocalKernel.start() as kernel:
        (await kernel.execute("x = 1")).raise_for_error()
        # Given a cell that runs until the test opens the gate (reading a FIFO blocks until a writer comes)
        cell = await kernel.start_running(f"released = open({str(gate)!r}).read()")

        # When the panel asks for the variables while the cell runs
        asked = ask(kernel, f"{INSPECT}.variables()")
        # And then the cell is let go (a FIFO write returns once the cell has read it)
        await asyncio.to_thread(gate.write_text, "go")
        await kernel.wait_execution(asked)

        # Then the cell ended before the answer came: the kernel answered after the cell, not in its middle
        order = list(kernel.replies)
        assert order.index(cell) < order.index(asked)
        idle_of_cell = next(
            i
            for i, m in enumerate(kernel.messages)
            if m.parent_msg_id == cell and m.msg_type == "status" and m.content["execution_state"] == "idle"
        )
        busy_of_ask = next(
            i
            for i, m in enumerate(kernel.messages)
            if m.parent_msg_id == asked and m.msg_type == "status" and m.content["execution_state"] == "busy"
        )
        assert idle_of_cell < busy_of_ask
        # And it lists what the cell made
        names = [v["name"] for v in answer_of(kernel.replies[asked])["variables"]]
        assert names == ["released", "x"]
        assert not [m for m in kernel.messages if m.parent_msg_id == asked and m.msg_type in OUTPUT_TYPES]
