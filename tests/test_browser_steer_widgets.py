"""Steering from notebook cells as a user meets it in a real JupyterLab and browser (SPEC 11): Regenerate and the
alternatives under a chat reply, the reply's cost, the compare summary's cost column and ``history()``'s
rendering; screenshots in the light and dark themes, wide and narrow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from harness.lab import (  # the two jp_ fixtures switch pytest-jupyter's loop handling off here
    LabProcess,
    browser_available,
    jp_asyncio_loop,  # noqa: F401
    jp_server_cleanup,  # noqa: F401
    launch_browser,
    notebook_json,
    open_lab,
    screenshot,
    upstream_args,
)
from harness.upstream import FakeUpstream, Script
from tests.test_browser_panel import set_theme

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(browser_available() is not None, reason=browser_available() or ""),
]

NOTEBOOK = "steer.ipynb"
CELLS = [
    "from jupyter_streamchat import chat, compare, history\nb = chat('Why is the sky blue?', model='openai:m', "
    "temperature=0.3)",
    "cmp = compare('Hi', models=['openai:m2', 'demo:fast'])",
    "history()",
]
FIRST = "Rayleigh scattering: **short wavelengths** scatter more."
SECOND = "Because blue light is scattered by the air's molecules."


@pytest.fixture
def upstream_for_lab() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def lab(tmp_path, upstream_for_lab: FakeUpstream) -> Iterator[LabProcess]:
    process = LabProcess(tmp_path / "lab", extra_args=upstream_args(upstream_for_lab.openai_base_url, ["m", "m2"]))
    config_file = process.workdir / "config" / "jupyter_server_config.json"
    config = json.loads(config_file.read_text())
    prices = {"openai:m": {"input": 2.5, "output": 10}, "openai:m2": {"input": 0.15, "output": 0.6}}
    config["StreamChat"] = {**config.get("StreamChat", {}), "prices": prices}
    config_file.write_text(json.dumps(config))
    process.start()
    try:
        yield process
    finally:
        process.stop()


def write_notebook(lab: LabProcess) -> None:
    notebook = notebook_json(CELLS[0])
    first = notebook["cells"][0]
    notebook["cells"] = [{**first, "id": f"cell{i}", "source": source} for i, source in enumerate(CELLS)]
    (lab.root / NOTEBOOK).write_text(json.dumps(notebook))


def run_cell(page: Any, index: int) -> None:
    page.evaluate(
        """index => {
          window.jupyterapp.shell.currentWidget.content.activeCellIndex = index;
          return window.jupyterapp.commands.execute('notebook:run-cell');
        }""",
        index,
    )


def shoot(page: Any, name: str) -> None:
    """Light and dark, wide and narrow: ``steer-<name>-<theme>-<width>.png``."""
    for width in (1280, 640):
        page.set_viewport_size({"width": width, "height": 900})
        for theme in ("JupyterLab Light", "JupyterLab Dark"):
            set_theme(page, theme)
            screenshot(page, f"steer-{name}-{theme.split()[-1].lower()}-{width}.png")
    set_theme(page, "JupyterLab Light")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_regenerate_switch_alternatives_costs_and_history_in_jupyterlab(lab: LabProcess, upstream_for_lab):
    from playwright.sync_api import expect, sync_playwright

    upstream_for_lab.script("m", [Script.reply([FIRST[:20], FIRST[20:]]), Script.reply([SECOND])])
    upstream_for_lab.script("m2", Script.reply(["Hello", " there."]))
    write_notebook(lab)
    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        try:
            page = open_lab(browser, lab, NOTEBOOK)
            chat_cell = page.locator(".jp-Notebook .jp-Cell").nth(0)
            # Given a chat reply that has ended, with its cost in the stats line
            run_cell(page, 0)
            regenerate = chat_cell.get_by_role("button", name="Regenerate")
            expect(regenerate).to_be_enabled(timeout=60_000)
            expect(chat_cell.locator(".jsc-reply")).to_contain_text("short wavelengths")
            expect(chat_cell.locator(".jsc-stats")).to_contain_text("$0.0000")
            # When the user clicks Regenerate
            regenerate.click()
            # Then a second alternative streams in place, and the reply shows "2 / 2"
            expect(chat_cell.locator(".jsc-reply")).to_contain_text("scattered by the air", timeout=60_000)
            expect(chat_cell.locator(".jsc-controls")).to_contain_text("2 / 2")
            expect(regenerate).to_be_enabled()
            # And Previous alternative switches back to the first in place, the static output included
            chat_cell.get_by_role("button", name="Previous alternative").click()
            expect(chat_cell.locator(".jsc-alt")).to_contain_text("alternative 1 / 2")
            expect(chat_cell.locator(".jsc-reply")).to_contain_text("short wavelengths")
            expect(chat_cell.locator(".jsc-reply")).not_to_contain_text("scattered by the air")
            expect(chat_cell.get_by_role("button", name="Next alternative")).to_be_enabled()
            # And a comparison's summary has a cost column; history() renders the active branch as the widgets do
            run_cell(page, 1)
            summary = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jsc-summary")
            expect(summary).to_contain_text("cost", timeout=60_000)
            expect(summary).to_contain_text("$0.000")
            run_cell(page, 2)
            shown = page.locator(".jp-Notebook .jp-Cell").nth(2).locator(".jsc-history")
            expect(shown).to_contain_text("Why is the sky blue?")
            expect(shown).to_contain_text("short wavelengths")
            expect(shown).not_to_contain_text("scattered by the air")
            page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex = 0")
            page.evaluate("() => window.jupyterapp.shell.currentWidget.content.scrollToItem(0)")
            shoot(page, "notebook")
            page.evaluate("() => window.jupyterapp.shell.currentWidget.content.scrollToItem(2, 'start')")
            shoot(page, "history")
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
        finally:
            browser.close()

    # And both alternatives were asked with the same messages and temperature
    first, second = upstream_for_lab.requests_for("m")
    assert second.body["messages"] == first.body["messages"] and second.body["temperature"] == 0.3
    # And the saved reply is static HTML showing the alternative shown; the controls are a live display of their own
    reply, controls = lab.read_notebook(NOTEBOOK)["cells"][0]["outputs"]
    assert "application/vnd.jupyter.widget-view+json" not in reply["data"]
    assert "alternative 1 / 2" in "".join(reply["data"]["text/html"]) and "short wavelengths" in "".join(
        reply["data"]["text/html"]
    )
    # (and where no widget can show, as on GitHub, the saved controls show nothing rather than a widget's repr)
    assert "application/vnd.jupyter.widget-view+json" in controls["data"]
    assert "".join(controls["data"]["text/plain"]) == ""
