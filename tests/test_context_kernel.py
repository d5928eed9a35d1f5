"""Context from a real kernel's live objects (SPEC 10): ``chat(..., context=[df, fig])``, ``@df`` in a ``%%chat``
cell and ``--context``, in a kernel started by a real server and in the fallback kernel; the loopback upstream
receives the table as text and the figure as a PNG, and the notebook records what the model saw."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from harness.kernels import LocalKernel, ServerKernel
from harness.server_process import ServerProcess, serving
from harness.upstream import FakeUpstream, Script
from harness.waiting import await_until
from tests.conftest import OPENAI_KEY

NOTEBOOK = "sales.ipynb"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAKE_DATA = (
    "import matplotlib\n"
    "matplotlib.use('Agg')\n"
    "import matplotlib.pyplot as plt\n"
    "import pandas as pd\n"
    "df = pd.DataFrame({'month': ['Jan', 'Feb', 'Mar'], 'sales': [120.5, 130.0, 80.25], 'units': [12, 13, 8]})\n"
    "fig, ax = plt.subplots(figsize=(4, 3), dpi=50)\n"
    "ax.plot(df['month'], df['sales'])\n"
)


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[ServerProcess]:
    anthropic = [f"--StreamChat.anthropic_base_url={upstream.anthropic_base_url}", "--StreamChat.anthropic_api_key=k"]
    process = ServerProcess(tmp_path / "server", upstream.openai_base_url, extra_args=anthropic)
    with serving(process, NOTEBOOK):
        yield process


def recorded_turns(server: ServerProcess) -> list[dict[str, Any]]:
    metadata = nbformat.read(server.root / NOTEBOOK, as_version=4).metadata
    conversations = (metadata.get("streamchat") or {}).get("conversations") or {}
    return [turn for conv in conversations.values() for turn in conv["turns"]]


def turns_now(server: ServerProcess) -> list[dict[str, Any]]:
    try:
        return recorded_turns(server)
    except (ValueError, nbformat.reader.NotJSONError):  # caught mid-write: read again
        return []


async def turns_written(server: ServerProcess, count: int) -> list[dict[str, Any]]:
    """The notebook's turns once the server has written ``count`` of them (a magic returns no widget to await)."""

    def enough() -> list[dict[str, Any]] | None:
        turns = turns_now(server)
        return turns if len(turns) >= count else None

    return await await_until(enough, 60, what=f"{count} turns in {NOTEBOOK}")


async def settled(kernel: LocalKernel | ServerKernel, name: str) -> dict[str, Any]:
    """The widget's one result once the server has said whether its run is recorded."""
    run = await kernel.execute(f"import json\nawait {name}.settled()\nprint(json.dumps({name}.results[0]))", timeout=60)
    return json.loads(run.raise_for_error().stdout)


def text_parts(content: list[dict[str, Any]]) -> list[str]:
    return [part["text"] for part in content if part["type"] == "text"]


def assert_table_described(text: str) -> None:
    # (month's dtype is "object" before pandas 3 and "str" since)
    for row in ("| month | ", "| sales | float64 |", "| units | int64 |"):
        assert row in text, (row, text)
    assert "3 rows" in text


async def test_chat_with_a_dataframe_and_a_figure_reaches_openai_and_is_recorded(server, upstream):
    upstream.script("vision", Script.reply(["March dipped."]))
    async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
        (await kernel.execute(MAKE_DATA)).raise_for_error()
        # When the user asks with the DataFrame and the figure as context
        started = await kernel.execute(
            "from jupyter_streamchat import chat\n"
            "w = chat('why does the plot dip in March?', model='openai:vision', context=[df, fig])"
        )
        started.raise_for_error()
        result = await settled(kernel, "w")
    assert result["status"] == "completed" and result["recorded"] == "recorded"
    # Then the upstream got the table's columns and dtypes as text, and a valid PNG as an image_url part
    (request,) = upstream.requests_for("vision")
    content = request.body["messages"][-1]["content"]
    assert content[-1] == {"type": "text", "text": "why does the plot dip in March?"}
    assert_table_described(content[0]["text"])
    (image,) = [part for part in content if part["type"] == "image_url"]
    prefix = "data:image/png;base64,"
    assert image["image_url"]["url"].startswith(prefix)
    png = base64.b64decode(image["image_url"]["url"][len(prefix) :])
    assert png.startswith(PNG_SIGNATURE)
    # And the notebook's turn holds what was sent: the table's text verbatim, the image by its facts
    (turn,) = recorded_turns(server)
    kinds = {item["kind"]: item for item in turn["context"]}
    assert kinds["dataframe"]["name"] == "df" and kinds["dataframe"]["text"] == content[0]["text"]
    assert kinds["image"]["name"] == "fig"
    assert kinds["image"]["image"]["sha256"] == hashlib.sha256(png).hexdigest()
    assert kinds["image"]["image"]["mime"] == "image/png"
    # And the widget shows the context it sent
    assert [item["name"] for item in result["context"]] == ["df", "fig"]


async def test_an_at_mention_in_a_chat_cell_reaches_anthropic(server, upstream):
    upstream.script("claude-vision", Script.reply(["Because."]))
    async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
        await kernel.execute(MAKE_DATA + "%load_ext jupyter_streamchat")
        (await kernel.execute("%%chat anthropic:claude-vision\n@df which month sold least?")).raise_for_error()
        (turn,) = await turns_written(server, 1)
    assert turn["reply"]["status"] == "completed"
    (request,) = upstream.requests_for("claude-vision")
    content = request.body["messages"][-1]["content"]
    assert content[-1] == {"type": "text", "text": "@df which month sold least?"}
    assert_table_described(content[0]["text"])
    assert [item["name"] for item in turn["context"]] == ["df"]
    assert turn["context"][0]["text"] == content[0]["text"]


async def test_a_mistyped_mention_is_one_line_and_sends_nothing_while_a_decorator_stays_text(server, upstream):
    upstream.script("vision", Script.reply(["A decorator."]))
    async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
        await kernel.execute(MAKE_DATA + "%load_ext jupyter_streamchat")
        # When a cell mentions @dff while df exists
        typo = await kernel.execute("%%chat openai:vision\n@dff why the dip?")
        # Then it is a one-line usage error naming the close variable, and no run started
        assert typo.error is not None and typo.error["ename"] == "UsageError"
        assert typo.error["evalue"] == "@dff names no variable; did you mean @df?"
        # And "@property" (close to no variable) stays plain text: sent, with no context
        (await kernel.execute("%%chat openai:vision\nwhat does @property do?")).raise_for_error()
        (turn,) = await turns_written(server, 1)
    assert turn["prompt"]["content"] == "what does @property do?" and "context" not in turn
    # (the mistyped cell started no run: the one request is the second cell's)
    (request,) = upstream.requests_for("vision")
    assert request.body["messages"][-1]["content"] == "what does @property do?"


async def test_the_fallback_kernel_sends_the_same_context(upstream):
    upstream.script("vision", Script.reply(["Seen."]))
    env = {"OPENAI_BASE_URL": upstream.openai_base_url, "OPENAI_API_KEY": OPENAI_KEY}
    async with LocalKernel.start(env=env) as kernel:
        (await kernel.execute(MAKE_DATA)).raise_for_error()
        await kernel.execute(
            "from jupyter_streamchat import chat\nw = chat('and now?', model='openai:vision', context=['df', fig])"
        )
        result = await settled(kernel, "w")
    assert result["status"] == "completed"
    (request,) = upstream.requests_for("vision")
    content = request.body["messages"][-1]["content"]
    assert_table_described(content[0]["text"])
    assert any(part["type"] == "image_url" for part in content)
    assert [item["kind"] for item in result["context"]] == ["dataframe", "image"]


async def test_a_wrong_context_name_fails_the_chat_with_one_line_and_sends_nothing(upstream):
    env = {"OPENAI_BASE_URL": upstream.openai_base_url, "OPENAI_API_KEY": OPENAI_KEY}
    async with LocalKernel.start(env=env) as kernel:
        (await kernel.execute(MAKE_DATA)).raise_for_error()
        # When chat() names a variable that does not exist, and another prompt mentions @dff while df exists
        started = await kernel.execute(
            "from jupyter_streamchat import chat\n"
            "missing = chat('hi', model='openai:vision', context=['sales_df'])\n"
            "typo = chat('@dff why?', model='openai:vision')"
        )
        started.raise_for_error()
        missing, typo = await settled(kernel, "missing"), await settled(kernel, "typo")
    # Then each pane failed with one line saying why, and nothing reached the model
    assert missing["status"] == typo["status"] == "failed"
    assert missing["error"]["code"] == typo["error"]["code"] == "bad_context"
    assert missing["error"]["message"] == "context names 'sales_df', which is no variable here (nothing was sent)"
    assert typo["error"]["message"] == "@dff names no variable; did you mean @df? (nothing was sent)"
    assert upstream.requests_for("vision") == []
