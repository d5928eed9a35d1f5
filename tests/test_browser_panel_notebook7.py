"""The "Stream Chat" side panel in Notebook 7 (``jupyter notebook``), found the way a user finds it: the View menu.

Notebook 7 is another JupyterLab-based application (its own shell, no ``ILabShell``); the same server serves it at
``/notebooks/<path>`` when the ``notebook`` package is installed. The panel must open in its right side area and
chat about the notebook of the page like it does in JupyterLab.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from harness.lab import (  # the two jp_ fixtures switch pytest-jupyter's loop handling off here
    CONSOLE,
    DIALOG_RECORDER,
    LabProcess,
    browser_available,
    console_of,
    dialogs_seen,
    jp_asyncio_loop,  # noqa: F401
    jp_server_cleanup,  # noqa: F401
    running,
    screenshot,
    upstream_args,
)
from harness.upstream import FakeUpstream, Script
from harness.waiting import wait_until
from tests.test_browser_panel import (
    PANEL,
    VIEWPORT,
    normalized,
    plain_words,
    replies,
    send_chat,
    set_theme,
    wait_status,
)

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(browser_available() is not None, reason=browser_available() or ""),
]

UPSTREAM_MODELS = ["nb7"]


@pytest.fixture(scope="module")
def upstream_for_lab() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, upstream_for_lab: FakeUpstream) -> Iterator[LabProcess]:
    pytest.importorskip("notebook", minversion="7", reason="Notebook 7 (the notebook package) is not installed")
    process = LabProcess(
        tmp_path_factory.mktemp("lab"), extra_args=upstream_args(upstream_for_lab.openai_base_url, UPSTREAM_MODELS)
    )
    with running(process):
        yield process


def open_notebook7(browser: Any, lab: LabProcess, path: str) -> Any:
    """A page of its own with ``path`` open in Notebook 7 (``/notebooks/<path>``), loaded, its kernel idle."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(60_000)
    page = context.new_page()
    CONSOLE[page] = console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    page.add_init_script(DIALOG_RECORDER)
    page.goto(f"{lab.base_url}notebooks/{quote(path)}?token={lab.token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started")
    page.wait_for_function(
        """path => {
          const w = window.jupyterapp.shell.currentWidget;
          const s = w && w.sessionContext;
          return !!(w && w.context && w.context.path === path && w.context.isReady && s && s.isReady
                    && s.session?.kernel?.connectionStatus === 'connected' && s.kernelDisplayStatus === 'idle');
        }""",
        arg=path,
    )
    return page


def test_notebook7_opens_the_panel_from_the_view_menu_and_chats(
    lab: LabProcess, upstream_for_lab: FakeUpstream, browser: Any
) -> None:
    words = plain_words(8, "n")
    upstream_for_lab.script("nb7", Script.reply(words, pace=0.05))
    nb = "notebook7.ipynb"
    lab.write_notebook(nb, "x = 1")
    page = open_notebook7(browser, lab, nb)
    try:
        # Given a notebook page of Notebook 7 (its own application, not JupyterLab)
        assert page.evaluate("() => window.jupyterapp.name") == "Jupyter Notebook"
        panel = page.locator(PANEL)
        assert not panel.is_visible()

        # When the user opens View and picks "Open Stream Chat"
        page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
        page.get_by_role("menuitem", name="Open Stream Chat").click()

        # Then the panel shows in Notebook 7's right side area, with its models
        panel.wait_for(state="visible")
        in_right = page.evaluate(
            "id => Array.from(window.jupyterapp.shell.widgets('right')).some(w => w.id === id && w.isVisible)",
            PANEL.removeprefix("#"),
        )
        assert in_right, "the panel is not a visible widget of the right area"
        page.wait_for_function(
            "sel => (document.querySelector(sel)?.options.length ?? 0) > 0", arg=f"{PANEL} select[aria-label=Model]"
        )
        assert page.locator(f"{PANEL} .jp-StreamChat-where").text_content() == f"Notebook: {nb}"

        # And a message sent there gets a completed reply, recorded in the page's notebook
        run_id = send_chat(page, "Hello from Notebook 7", "openai:nb7")
        reply = wait_status(page, run_id, "completed")
        assert normalized(reply["text"]) == normalized("".join(words))
        record = lab.wait_run_finished(run_id)
        assert record["notebook"] == nb and record["status"] == "completed"
        assert [r["run"] for r in replies(page)] == [run_id]

        # And "@" lists the variables of the page's kernel (asked through Notebook 7's kernel connection)
        page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-cell'); }")
        page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget.context.model.cells.get(0).sharedModel.execution_count != null"
        )
        panel.get_by_label("Message", exact=True).click()
        page.keyboard.type("@")
        panel.get_by_role("listbox", name="Variables", exact=True).get_by_role(
            "option", name="x", exact=True
        ).wait_for()
        page.keyboard.press("Escape")
        panel.get_by_label("Message", exact=True).fill("")
        assert dialogs_seen(page) == []

        shots = []
        try:
            for theme, suffix in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
                set_theme(page, theme)
                shots.append(screenshot(page, f"panel-notebook7-{suffix}.png"))
            page.set_viewport_size({"width": 900, "height": 800})
            wait_until(lambda: panel.is_visible(), 10, what="the panel in a narrow Notebook 7 page")
            shots.append(screenshot(page, "panel-notebook7-narrow-dark.png"))
        finally:
            set_theme(page, "JupyterLab Light")  # the theme is a user setting: later pages would open dark
        for shot in shots:
            assert shot.stat().st_size > 20_000, f"{shot} looks empty"
    except AssertionError:
        print(console_of(page)[-4000:])
        raise
    finally:
        page.context.close()
        lab.shutdown_kernels()
