"""The compare widget as a user meets it: a notebook in a real JupyterLab, in a real browser.

Two panes stream; the user clicks one pane's Stop (found by its accessible name); that model's
upstream connection closes while it was silent, the other pane completes, the summary appears; after
saving, both turns are in the notebook's metadata once, and the saved outputs read well with no kernel.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.lab import (  # the two jp_ fixtures switch pytest-jupyter's loop handling off here
    LabProcess,
    browser_available,
    dialogs_seen,
    jp_asyncio_loop,  # noqa: F401
    jp_server_cleanup,  # noqa: F401
    launch_browser,
    open_lab,
    screenshot,
)
from harness.upstream import FakeUpstream, Script, Stall, Text
from harness.waiting import wait_until

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(browser_available() is not None, reason=browser_available() or ""),
]

CHUNKS = ["Partial ", "answer ", "so far"]
NOTEBOOK = "compare.ipynb"


@pytest.fixture
def upstream_for_lab() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def lab(tmp_path, upstream_for_lab: FakeUpstream) -> Iterator[LabProcess]:
    process = LabProcess(
        tmp_path / "lab",
        extra_args=[
            f"--StreamChat.openai_base_url={upstream_for_lab.openai_base_url}",
            "--StreamChat.openai_api_key=test-key",
        ],
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def cell_source(models: list[str]) -> str:
    return f"from jupyter_streamchat import compare\ncmp = compare('Which is faster?', models={models!r})"


def test_stop_one_pane_in_the_browser_then_save(lab: LabProcess, upstream_for_lab: FakeUpstream):
    from playwright.sync_api import sync_playwright

    upstream_for_lab.script("stall", Script([*(Text(chunk) for chunk in CHUNKS), Stall(60)]))
    lab.write_notebook(NOTEBOOK, cell_source(["openai:stall", "demo:chat"]))
    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        try:
            page = open_lab(browser, lab, NOTEBOOK)
            # The side panel's contract (SPEC 8): a right-sidebar tab "Stream Chat", command streamchat:open
            titles = page.evaluate("() => Array.from(window.jupyterapp.shell.widgets('right')).map(w => w.title.label)")
            assert "Stream Chat" in titles
            assert page.evaluate("() => window.jupyterapp.commands.label('streamchat:open')") == "Open Stream Chat"
            # When the user runs the cell: two panes stream side by side
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            stops = page.get_by_role("button", name="Stop", exact=True)
            stops.first.wait_for()
            assert stops.count() == 2 and page.get_by_role("button", name="Stop all").count() == 1
            stalled = upstream_for_lab.wait_for_request("stall", timeout=30)
            page.get_by_text("".join(CHUNKS)).wait_for()

            # And clicks the stalled pane's Stop
            clicked_at = time.monotonic()
            stops.first.click()

            # Then that model's upstream connection closes, although it was silent
            closed_at = stalled.wait_closed(90)  # a guard past the 60 s stall: only a close during it passes
            assert closed_at is not None and closed_at >= clicked_at
            # And the other pane completes, and the summary (a static rendering) replaces the widget
            page.get_by_text("output tokens").wait_for(timeout=60_000)
            summary = page.locator(".jsc-summary").inner_text()
            assert "stopped" in summary and "completed" in summary
            screenshot(page, "compare-widget-stopped.png")

            # When the user saves, Then both turns are in the file, once each, and no dialog came up
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            notebook = wait_until(lambda: saved_with_turns(lab, 2), 20, what="two turns in the saved notebook")
            assert dialogs_seen(page) == []
        finally:
            browser.close()

    (conversation,) = notebook["metadata"]["streamchat"]["conversations"].values()
    turns = {turn["model"]: turn for turn in conversation["turns"]}
    assert len(conversation["turns"]) == 2 and set(turns) == {"openai:stall", "demo:chat"}
    assert turns["openai:stall"]["reply"]["status"] == "stopped"
    assert turns["openai:stall"]["reply"]["content"] == "".join(CHUNKS)
    assert turns["demo:chat"]["reply"]["status"] == "completed"
    # And the saved output reads well with no kernel: static HTML with both replies, no widget view
    (output,) = notebook["cells"][0]["outputs"]
    assert "application/vnd.jupyter.widget-view+json" not in output["data"]
    html = "".join(output["data"]["text/html"])
    assert "".join(CHUNKS) in html and "offline demo model" in html
    assert "test-key" not in json.dumps(notebook)


def saved_with_turns(lab: LabProcess, count: int) -> dict[str, Any] | None:
    notebook = lab.read_notebook(NOTEBOOK)
    conversations = (notebook["metadata"].get("streamchat") or {}).get("conversations") or {}
    turns = [turn for conversation in conversations.values() for turn in conversation["turns"]]
    outputs = notebook["cells"][0].get("outputs") or []
    finished = any("text/html" in output.get("data", {}) for output in outputs)
    return notebook if len(turns) >= count and finished else None
