"""The side panel's context (SPEC 10) as a user meets it in a real JupyterLab with a real kernel: ``@`` lists the
kernel's variables, choosing one adds a chip, the Context view shows what will be sent with token estimates, Send
delivers it to the loopback upstream, and the kernel is read without disturbing the notebook.

Controls are found by accessible name: the "Message" box, the "Variables" listbox and its options (named by the
variable), "Remove <name>" chips, the "Context" disclosure.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.lab import (  # the two jp_ fixtures switch pytest-jupyter's loop handling off here
    LabProcess,
    browser_available,
    console_of,
    dialogs_seen,
    document_state,
    jp_asyncio_loop,  # noqa: F401
    jp_server_cleanup,  # noqa: F401
    open_lab,
    running,
    screenshot,
    upstream_args,
)
from harness.upstream import FakeUpstream, Script
from harness.waiting import wait_until
from tests.test_browser_panel import (
    VIEWPORT,
    open_panel,
    reload_lab,
    replies,
    set_theme,
    wait_status,
    widen_right_sidebar,
    write_notebook,
)

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(browser_available() is not None, reason=browser_available() or ""),
]

UPSTREAM_MODELS = ["ctx-df", "ctx-images", "ctx-gone"]
MAKE_DF = (
    "import pandas as pd\n"
    "df = pd.DataFrame({'month': ['Jan', 'Feb', 'Mar'], 'sales': [120.5, 130.0, 80.25], 'units': [12, 13, 8]})"
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The cells' execution counts in the open document, and whether the kernel is idle.
CELLS = """
() => {
  const widget = window.jupyterapp.shell.currentWidget;
  const cells = widget.context.model.cells;
  const counts = [];
  for (let i = 0; i < cells.length; i++) counts.push(cells.get(i).sharedModel.execution_count ?? null);
  return {counts, idle: widget.sessionContext.kernelDisplayStatus === 'idle'};
}
"""


@pytest.fixture(scope="module")
def upstream_for_lab() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, upstream_for_lab: FakeUpstream) -> Iterator[LabProcess]:
    process = LabProcess(
        tmp_path_factory.mktemp("lab"), extra_args=upstream_args(upstream_for_lab.openai_base_url, UPSTREAM_MODELS)
    )
    with running(process):
        yield process


@pytest.fixture
def page_for(lab: LabProcess, browser: Any) -> Iterator[Any]:
    pages: list[Any] = []

    def open_page(path: str) -> Any:
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(60_000)
        page = open_lab(browser, lab, path, context=context)
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        page.context.close()
    lab.shutdown_kernels()


# ----- helpers ---------------------------------------------------------------------------------------------------


def cells(page: Any) -> dict[str, Any]:
    return dict(page.evaluate(CELLS))


def run_all(page: Any, count: int) -> list[int]:
    """Run every cell; the execution counts once the first ``count`` cells ran and the kernel is idle."""
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    state = wait_until(
        lambda: (s := cells(page))["idle"] and all(c is not None for c in s["counts"][:count]) and s,
        60,
        what=lambda: f"{count} cells run: {cells(page)}\n{console_of(page)[-2000:]}",
    )
    return list(state["counts"])


def activate_cell(page: Any, index: int) -> None:
    page.evaluate("i => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = i; }", index)


def message_box(panel: Any) -> Any:
    return panel.get_by_label("Message", exact=True)


def variables(panel: Any) -> Any:
    return panel.get_by_role("listbox", name="Variables", exact=True)


def option_names(panel: Any) -> list[str]:
    return [o.get_attribute("aria-label") for o in variables(panel).get_by_role("option").all()]


def list_note(panel: Any) -> str:
    return str(panel.locator(".jp-StreamChat-mentionsNote").text_content() or "")


def context_view(panel: Any) -> Any:
    return panel.get_by_label("Context", exact=True)


def context_item(panel: Any, name: str, state: str = "ready") -> Any:
    """The Context view's section of item ``name`` once it is in ``state``."""
    item = context_view(panel).locator(f"section[aria-label='{name}'][data-state='{state}']")
    item.wait_for(state="attached", timeout=60_000)
    return item


def tokens_shown(item: Any) -> int:
    return int(item.locator(".jp-StreamChat-contextItemTokens").get_attribute("data-tokens"))


def user_content(upstream: FakeUpstream, model: str) -> list[dict[str, Any]]:
    (request,) = upstream.requests_for(model)
    content = [m["content"] for m in request.body["messages"] if m["role"] == "user"][-1]
    assert isinstance(content, list), content
    return list(content)


def shoot(page: Any, name: str) -> Path:
    """Light and dark screenshots of the page as it is; the light one's path."""
    paths = []
    for theme, suffix in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
        set_theme(page, theme)
        paths.append(screenshot(page, f"{name}-{suffix}.png"))
    set_theme(page, "JupyterLab Light")  # the theme is a user setting: later pages would open dark
    for path in paths:
        assert path.stat().st_size > 20_000, f"{path} looks empty"
    return paths[0]


# ----- tests -----------------------------------------------------------------------------------------------------


def test_at_df_lists_chips_previews_and_sends_the_schema_without_touching_the_cells(
    lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any
) -> None:
    upstream_for_lab.script("ctx-df", Script.reply(["March ", "sold ", "least."]))
    nb = "sales.ipynb"
    write_notebook(lab, nb, [MAKE_DF, "notes = 'March was cold'"])
    page = page_for(nb)
    counts_before = run_all(page, 2)
    panel = open_panel(page)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")

    # When the user types "@" in the Message box
    box = message_box(panel)
    box.click()
    page.keyboard.type("Why does @")
    # Then the Variables list shows the kernel's variables, each named by its name, with type and shape
    variables(panel).get_by_role("option", name="df", exact=True).wait_for()
    assert option_names(panel) == ["df", "notes"]
    df_option = variables(panel).get_by_role("option", name="df", exact=True)
    assert "pandas.DataFrame" in df_option.inner_text() and "3 x 3" in df_option.inner_text()
    assert box.get_attribute("aria-expanded") == "true"
    shoot(page, "panel-context-list-narrow")

    # When the user types "d" (the list filters) and presses Enter
    page.keyboard.type("d")
    wait_until(lambda: option_names(panel) == ["df"], 10, what=lambda: f"only df listed: {option_names(panel)}")
    page.keyboard.press("Enter")
    # Then the word is completed, a "Remove df" chip shows, the list closes and nothing was sent
    panel.get_by_role("button", name="Remove df", exact=True).wait_for()
    assert box.input_value() == "Why does @df "
    assert variables(panel).count() == 0 or not variables(panel).is_visible()
    assert upstream_for_lab.requests_for("ctx-df") == []
    page.keyboard.type("dip in March?")

    # And the Context view shows the schema as it will be sent, with its token estimate and the total
    item = context_item(panel, "df")
    text = str(item.locator("pre").text_content())
    for row in ("| sales | float64 |", "| units | int64 |", "month"):
        assert row in text, (row, text)
    assert tokens_shown(item) == math.ceil(len(text) / 4)
    assert context_view(panel).get_attribute("data-tokens") == str(tokens_shown(item))
    assert f"about {tokens_shown(item)} tokens" in str(context_view(panel).locator("summary").text_content())
    shoot(page, "panel-context-view-narrow")

    # (wide: the list open again, then the Context view)
    widen_right_sidebar(page, 760)
    page.keyboard.type(" @")
    variables(panel).get_by_role("option", name="notes", exact=True).wait_for()
    shoot(page, "panel-context-list-wide")
    page.keyboard.press("Escape")
    assert variables(panel).count() == 0 or not variables(panel).is_visible()
    box.fill("Why does @df dip in March?")
    shoot(page, "panel-context-view-wide")

    # When the user sends
    panel.get_by_label("Model", exact=True).select_option("openai:ctx-df")
    panel.get_by_role("button", name="Send", exact=True).click()
    run_id = wait_until(
        lambda: next((r["run"] for r in replies(page) if r["run"]), None), 30, what=lambda: f"{replies(page)}"
    )
    wait_status(page, run_id, "completed", 60)

    # Then the upstream got the item's text exactly as shown, then the user's words
    content = user_content(upstream_for_lab, "ctx-df")
    assert content == [{"type": "text", "text": text}, {"type": "text", "text": "Why does @df dip in March?"}]
    # And the chips cleared; the turn shows the context it sent
    panel.get_by_role("button", name="Remove df", exact=True).wait_for(state="detached")
    sent = panel.locator(".jp-StreamChat-turn").last.get_by_role("group", name="Context sent", exact=True)
    assert sent.locator(".jp-StreamChat-sentChip").all_text_contents() == ["dfdataframe"]
    # And reading the kernel consumed no execution count: the cells' counts are as they were, the next is next
    assert cells(page)["counts"] == counts_before
    activate_cell(page, 1)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-cell')")
    wait_until(
        lambda: cells(page)["counts"][1] == max(counts_before) + 1,
        30,
        what=lambda: f"cell 2 run again as the next count: {cells(page)}",
    )

    # And after a reload the recorded turn still shows its context
    wait_until(lambda: run_id in json.dumps(document_state(page)["streamchat"]), 30, what="the turn in the document")
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    wait_until(
        lambda: run_id in json.dumps(lab.read_notebook(nb)["metadata"].get("streamchat")), 30, what="the saved turn"
    )
    reload_lab(page, nb)
    panel = open_panel(page)
    recorded = panel.locator(f".jp-StreamChat-turn:has(article[data-run-id='{run_id}'])")
    recorded.get_by_role("group", name="Context sent", exact=True).wait_for()
    assert recorded.locator(".jp-StreamChat-sentChip").all_text_contents() == ["dfdataframe"]
    assert dialogs_seen(page) == []


def test_a_busy_kernel_says_kernel_busy_then_lists_the_variables(lab: LabProcess, page_for: Any) -> None:
    nb = "busy.ipynb"
    gate = lab.root / "gate"
    os.mkfifo(gate)
    # A cell that runs until the test opens the gate (reading a FIFO blocks until a writer comes)
    write_notebook(lab, nb, ["x = 1", "released = open('gate').read()"])
    page = page_for(nb)
    panel = open_panel(page)
    page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.kernelDisplayStatus === 'busy'")

    # When the user types "@" while the cell runs
    message_box(panel).click()
    page.keyboard.type("@")
    # Then the list says the kernel is busy (the panel does not wait on it) and the Message box still takes text
    wait_until(lambda: "kernel busy" in list_note(panel), 30, what=lambda: f"'kernel busy': {list_note(panel)!r}")
    page.keyboard.type("x")
    assert message_box(panel).input_value() == "@x"
    screenshot(page, "panel-context-kernel-busy.png")

    # When the cell ends
    writer = threading.Thread(target=gate.write_text, args=("go",))
    writer.start()
    # Then the list follows: the variables of the kernel matching "x"
    variables(panel).get_by_role("option", name="x", exact=True).wait_for(timeout=60_000)
    writer.join()
    assert option_names(panel) == ["x"]
    assert "kernel busy" not in list_note(panel)


def test_outputs_and_the_active_cell_go_as_items_and_a_deleted_variable_holds_send_back(
    lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any
) -> None:
    upstream_for_lab.script("ctx-images", Script.reply(["A ", "line."]))
    nb = "plot.ipynb"
    plot = "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)\nax.plot([3, 1, 2])"
    write_notebook(lab, nb, [plot, "sales = [1, 2, 3]"])
    page = page_for(nb)
    run_all(page, 2)
    panel = open_panel(page)
    activate_cell(page, 0)

    # When the user includes the active cell's outputs and the cell itself
    panel.get_by_role("button", name="Include outputs", exact=True).click()
    panel.get_by_role("button", name="Include active cell", exact=True).click()
    # Then each is a chip, and the Context view shows the image's size and the cell's source
    panel.get_by_role("button", name="Remove cell 1 image 1", exact=True).wait_for()
    panel.get_by_role("button", name="Remove cell 1", exact=True).wait_for()
    image = context_item(panel, "cell 1 image 1")
    size = re.match(r"(\d+)\u00d7(\d+) PNG", str(image.locator(".jp-StreamChat-contextImageSize").text_content()))
    assert size is not None, image.inner_text()
    assert "ax.plot([3, 1, 2])" in str(context_item(panel, "cell 1").locator("pre").text_content())
    screenshot(page, "panel-context-outputs.png")

    # When a picked variable is deleted before Send
    message_box(panel).click()
    page.keyboard.type("@sal")
    variables(panel).get_by_role("option", name="sales", exact=True).wait_for()
    page.keyboard.press("Enter")
    context_item(panel, "sales")
    activate_cell(page, 1)
    page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.activeCell.model.sharedModel.setSource('del sales')"
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-cell')")
    # Then its chip says so in one line, and Send sends nothing
    gone = context_item(panel, "sales", "error")
    assert "no variable 'sales'" in str(gone.text_content())
    message_box(panel).click()
    page.keyboard.press("End")
    page.keyboard.type("what is this?")
    activate_cell(page, 0)
    panel.get_by_label("Model", exact=True).select_option("openai:ctx-images")
    panel.get_by_role("button", name="Send", exact=True).click()
    alert = panel.locator(".jp-StreamChat-status[role=alert]")
    wait_until(lambda: "Not sent" in str(alert.text_content()), 10, what="the one-line reason")
    assert "\n" not in str(alert.text_content())
    assert message_box(panel).input_value() == "@sales what is this?", "the message is kept"
    assert upstream_for_lab.requests_for("ctx-images") == []

    # When the user removes that chip and sends
    panel.get_by_role("button", name="Remove sales", exact=True).click()
    message_box(panel).fill("what is this?")
    panel.get_by_role("button", name="Send", exact=True).click()
    run_id = wait_until(lambda: next((r["run"] for r in replies(page) if r["run"]), None), 30, what="a run")
    wait_status(page, run_id, "completed", 60)

    # Then the upstream got the image as a PNG part and the cell as text, before the words
    content = user_content(upstream_for_lab, "ctx-images")
    kinds = [part["type"] for part in content]
    assert kinds == ["text", "image_url", "text", "text"], kinds
    assert content[0]["text"] == f"cell 1 image 1: {size.group(0)}"
    url = content[1]["image_url"]["url"]
    assert base64.b64decode(url.partition(",")[2]).startswith(PNG_SIGNATURE)
    assert "ax.plot([3, 1, 2])" in content[2]["text"]
    assert content[3] == {"type": "text", "text": "what is this?"}
    # And the image chip cleared while the active cell stays included
    panel.get_by_role("button", name="Remove cell 1 image 1", exact=True).wait_for(state="detached")
    assert panel.get_by_role("button", name="Remove cell 1", exact=True).is_visible()
