"""Never lost, safe with open documents (SPEC 6; issue 15 items 1 and 4), as a user meets it in a real browser.

A run that names a notebook must end up in that notebook's FILE, whatever the browser does with the page that had
the notebook open (reload before saving, close it with "Discard", a browser crash), and one notebook open in two
pages (JupyterLab + Notebook 7, two Notebook 7 tabs) must never bring up "File Changed" nor lose a turn or an
unsaved edit. These tests look only at what a user can see and keep: the notebook file on disk (turns counted by
run id), the open documents and the dialogs; never at how the server and the pages hand turns over.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
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
)
from harness.waiting import wait_until
from tests.test_browser_panel import open_panel, reload_lab, send_chat, wait_status, write_notebook

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(browser_available() is not None, reason=browser_available() or ""),
]

# How long the file may take to hold a turn nobody saves (the server writes it): generous, never a fixed sleep.
FILE_BOUND = 30.0
CHAT_CELLS = 3


# ----- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProcess]:
    """JupyterLab as ``pip install jupyterlab`` gives it: collaboration off. Also serves Notebook 7."""
    process = LabProcess(tmp_path_factory.mktemp("lab"))
    with running(process):
        yield process


@pytest.fixture(scope="module")
def collaborative_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProcess]:
    """JupyterLab with jupyter-collaboration's shared documents on."""
    process = LabProcess(tmp_path_factory.mktemp("lab-rtc"), collaborative=True)
    with running(process):
        yield process


@pytest.fixture
def new_context(browser: Any) -> Iterator[Callable[[], Any]]:
    """``new_context()``: a browser context (a browser window: its pages are tabs); closed after the test."""
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(60_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()  # a no-op for a context the test closed itself


@pytest.fixture(autouse=True)
def _kernels_shut_down(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name in ("lab", "collaborative_lab"):
        if name in request.fixturenames:
            request.getfixturevalue(name).shutdown_kernels()


# ----- helpers ---------------------------------------------------------------------------------------------------


def run_counts(section: dict[str, Any] | None) -> Counter[str]:
    """run id -> how many turns record it (metadata.streamchat.conversations[*].turns[*].run)."""
    conversations = (section or {}).get("conversations") or {}
    return Counter(turn.get("run") for value in conversations.values() for turn in value.get("turns") or [])


def file_counts(lab: LabProcess, path: str) -> Counter[str]:
    return run_counts(lab.read_notebook(path)["metadata"].get("streamchat"))


def document_counts(page: Any) -> Counter[str]:
    return run_counts(document_state(page)["streamchat"])


def wait_file_holds(lab: LabProcess, path: str, run_ids: list[str], timeout: float = 20.0) -> Counter[str]:
    """Until the notebook file holds a turn for each run; then each exactly once. Returns the file's counts."""
    wait_until(
        lambda: all(file_counts(lab, path)[run] for run in run_ids),
        timeout,
        what=lambda: f"turns {run_ids} in the file {path}; it holds {dict(file_counts(lab, path))}",
    )
    counts = file_counts(lab, path)
    assert {run: counts[run] for run in run_ids} == dict.fromkeys(run_ids, 1), f"not once each: {dict(counts)}"
    return counts


def type_into_cell(page: Any, text: str, index: int = 0) -> None:
    """Type at the end of a cell's editor, as a user does (the document becomes dirty)."""
    page.locator(".jp-Notebook .jp-Cell .cm-content").nth(index).click()
    page.keyboard.press("Control+End")
    page.keyboard.type(text)
    wait_until(lambda: document_state(page)["dirty"], 10, what="unsaved edits")


def accept_leaving(page: Any) -> None:
    """Answer "Leave" when the page asks before unloading with unsaved changes (Lab does, once typed into)."""
    page.on("dialog", lambda dialog: dialog.accept() if dialog.type == "beforeunload" else dialog.dismiss())


def two_panel_turns(page: Any) -> list[str]:
    """Chat twice in the side panel (demo:fast); the two run ids, once both completed and in the open document."""
    open_panel(page)
    run_ids = []
    for prompt in ("First question", "Second question"):
        run_id = send_chat(page, prompt, "demo:fast")
        wait_status(page, run_id, "completed", 60)
        run_ids.append(run_id)
    # The page has taken both turns: what a reload or a discard then throws away is the open document's copy.
    wait_until(
        lambda: all(document_counts(page)[run] for run in run_ids),
        20,
        what=lambda: f"both turns in the open document: {dict(document_counts(page))}\n{console_of(page)[-2000:]}",
    )
    return run_ids


WATCH_SAVES = """
() => {
  const w = window.jupyterapp.shell.currentWidget;
  window.__saveStates = [];
  if (!w.__streamchatTestSaves) {
    w.__streamchatTestSaves = true;
    w.context.saveState.connect((_, state) => window.__saveStates.push(state));
  }
}
"""


def save_in(page: Any, timeout: float = 30.0) -> list[str]:
    """Save the current document as Ctrl+S does, and wait until the save ended or a dialog came up instead.

    Returns the save states seen (``started``, then ``completed`` or ``failed``); a "File Changed" dialog holds
    the save at ``started``, so it shows as a dialog and no ``completed``."""
    page.evaluate(WATCH_SAVES)
    page.evaluate("() => { void window.jupyterapp.commands.execute('docmanager:save'); }")
    wait_until(
        lambda: (
            {"completed", "failed"} & set(page.evaluate("() => window.__saveStates"))
            or page.locator(".jp-Dialog").count()
        ),
        timeout,
        what=lambda: f"the save to end: {page.evaluate('() => window.__saveStates')}",
    )
    return list(page.evaluate("() => window.__saveStates"))


def assert_no_dialog(*pages: Any) -> None:
    for page in pages:
        assert page.locator(".jp-Dialog").count() == 0, f"a dialog is on screen: {dialogs_seen(page)}"
        assert dialogs_seen(page) == [], f"the page showed dialogs: {dialogs_seen(page)}"


def runs_of(lab: LabProcess, path: str) -> list[dict[str, Any]]:
    return list(lab.api("GET", "streamchat/runs", params={"notebook": path}).json()["runs"])


def wait_runs_ended(lab: LabProcess, path: str, count: int, timeout: float = 60.0) -> list[str]:
    """Until ``count`` runs name the notebook and none is running; their ids (each must have completed)."""
    runs = wait_until(
        lambda: len(found := runs_of(lab, path)) == count and all(r["status"] != "running" for r in found) and found,
        timeout,
        what=lambda: f"{count} ended runs for {path}: {runs_of(lab, path)}\n{lab.log_tail(2000)}",
    )
    assert [r["status"] for r in runs] == ["completed"] * count, runs
    return [r["id"] for r in runs]


def chat_notebook(lab: LabProcess, path: str) -> None:
    """A notebook whose Run All starts ``CHAT_CELLS`` chat runs (``%%chat demo:fast``) for itself."""
    cells = ["%load_ext jupyter_streamchat"] + [f"%%chat demo:fast\nQuestion {i}" for i in range(CHAT_CELLS)]
    write_notebook(lab, path, cells)


# Every chat cell of the current document shows its reply's final, static output (its live view is gone; the
# Regenerate controls under it stay a live widget, which changes no output): the page changes the document no more
# after this, so a save that follows is the last.
OUTPUTS_FINAL = """
() => {
  const model = window.jupyterapp.shell.currentWidget.context.model;
  for (let i = 0; i < model.cells.length; i++) {
    const cell = model.cells.get(i);
    if (!cell.sharedModel.getSource().startsWith('%%chat')) continue;
    const reply = cell.outputs.toJSON()[0];
    if (!reply || !reply.data || !('text/html' in reply.data)) return false;
    if ('application/vnd.jupyter.widget-view+json' in reply.data) return false;
  }
  return true;
}
"""


def collaborative(page: Any) -> bool:
    """Whether the page edits shared documents (jupyter-collaboration on), from the page's own configuration."""
    return not page.evaluate(
        "() => JSON.parse(document.getElementById('jupyter-config-data').textContent).disableRTC ?? false"
    )


def open_page(browser: Any, lab: LabProcess, path: str, context: Any, kind: str) -> Any:
    """``kind`` "lab": a JupyterLab page with ``path`` open; "nb7": Notebook 7's page of the notebook."""
    url = lab.notebook7_url(path) if kind == "nb7" else None
    return open_lab(browser, lab, path, context=context, url=url)


# ----- 1. collaboration off: the page that took the turns goes away before saving ------------------------------


def test_reload_before_save_then_save_keeps_both_panel_turns(
    lab: LabProcess, browser: Any, new_context: Callable[[], Any]
) -> None:
    """Given a notebook Lab marks modified and two panel turns, when the page reloads before any save and the user
    then saves, then the file holds both turns exactly once, with the runs' text, and no dialog came up."""
    nb = "reload-before-save.ipynb"
    lab.write_notebook(nb, "x = 1")
    page = open_lab(browser, lab, nb, context=new_context())
    assert not collaborative(page)
    type_into_cell(page, "  # unsaved")
    run_ids = two_panel_turns(page)

    accept_leaving(page)
    reload_lab(page, nb)
    states = save_in(page)

    assert "completed" in states, f"the save did not complete: {states}; dialogs {dialogs_seen(page)}"
    assert_no_dialog(page)
    wait_file_holds(lab, nb, run_ids)
    saved = run_counts(lab.read_notebook(nb)["metadata"]["streamchat"])
    assert sorted(saved) == sorted(run_ids), f"other turns in the file: {dict(saved)}"
    conversations = lab.read_notebook(nb)["metadata"]["streamchat"]["conversations"]
    replies = {turn["run"]: turn["reply"]["content"] for conv in conversations.values() for turn in conv["turns"]}
    assert replies == {run: lab.run_record(run)["text"] for run in run_ids}


def test_close_with_discard_keeps_both_panel_turns_in_the_file(
    lab: LabProcess, browser: Any, new_context: Callable[[], Any]
) -> None:
    """Given a notebook with unsaved edits and two panel turns, when the user closes it and answers "Discard",
    then the file holds both turns exactly once (the user discarded their edits, not the chat)."""
    nb = "close-discard.ipynb"
    lab.write_notebook(nb, "x = 1")
    page = open_lab(browser, lab, nb, context=new_context())
    type_into_cell(page, "  # discarded")
    run_ids = two_panel_turns(page)

    page.evaluate("() => { void window.jupyterapp.commands.execute('application:close'); }")
    page.locator(".jp-Dialog").get_by_role("button", name="Discard").click()
    wait_until(
        lambda: page.evaluate(
            "path => !Array.from(window.jupyterapp.shell.widgets('main')).some(w => w.context?.path === path)", nb
        ),
        10,
        what="the notebook closed",
    )

    wait_file_holds(lab, nb, run_ids, FILE_BOUND)
    source = lab.read_notebook(nb)["cells"][0]["source"]
    assert ("".join(source) if isinstance(source, list) else source) == "x = 1", "the discarded edit was saved"


def test_browser_gone_without_saving_the_server_writes_both_panel_turns(
    lab: LabProcess, browser: Any, new_context: Callable[[], Any]
) -> None:
    """Given a notebook with unsaved edits and two panel turns, when the browser goes away at once (its context
    closed: no page left, nothing saved), then the file comes to hold both turns exactly once."""
    nb = "browser-gone.ipynb"
    lab.write_notebook(nb, "x = 1")
    context = new_context()
    page = open_lab(browser, lab, nb, context=context)
    type_into_cell(page, "  # lost with the browser")
    run_ids = two_panel_turns(page)

    context.close()

    wait_file_holds(lab, nb, run_ids, FILE_BOUND)


# ----- 2. one notebook open in two pages -------------------------------------------------------------------------


@pytest.mark.parametrize("other_dirty", [False, True], ids=["other-clean", "other-unsaved"])
@pytest.mark.parametrize("kinds", [("lab", "nb7"), ("nb7", "nb7")], ids=["lab+nb7", "nb7+nb7"])
def test_run_all_in_one_of_two_pages_then_save_no_file_changed_every_turn_once(
    lab: LabProcess, browser: Any, new_context: Callable[[], Any], kinds: tuple[str, str], other_dirty: bool
) -> None:
    """Given one notebook open in two tabs (JupyterLab + Notebook 7, or two Notebook 7 tabs), the other tab clean or
    holding unsaved edits, when Run All in the first tab starts several chat runs, they all end and the user saves
    there, then the save completes with no "File Changed" (or any) dialog in either tab, the file holds every turn
    exactly once, and the other tab still has its unsaved edits (or, clean, stays clean with every turn)."""
    nb = f"two-pages-{'-'.join(kinds)}-{'dirty' if other_dirty else 'clean'}.ipynb"
    chat_notebook(lab, nb)
    context = new_context()
    runner = open_page(browser, lab, nb, context, kinds[0])
    other = open_page(browser, lab, nb, context, kinds[1])
    assert [page.evaluate("() => window.jupyterapp.name") for page in (runner, other)] == [
        {"lab": "JupyterLab", "nb7": "Jupyter Notebook"}[kind] for kind in kinds
    ]
    edit = "  # unsaved in the other tab"
    if other_dirty:
        type_into_cell(other, edit)

    runner.evaluate("() => { void window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    run_ids = wait_runs_ended(lab, nb, CHAT_CELLS)
    runner.wait_for_function(OUTPUTS_FINAL, timeout=60_000)
    states = save_in(runner)

    assert "completed" in states, f"the save did not complete: {states}; dialogs {dialogs_seen(runner)}"
    assert_no_dialog(runner, other)
    wait_file_holds(lab, nb, run_ids)
    assert document_state(runner)["dirty"] is False
    other_state = document_state(other)
    if other_dirty:
        assert other_state["dirty"] is True
        assert other_state["cells"][0] == "%load_ext jupyter_streamchat" + edit, "the other tab lost its edit"
    else:
        wait_until(
            lambda: all(document_counts(other)[run] == 1 for run in run_ids),
            20,
            what=lambda: f"every turn once in the other tab: {dict(document_counts(other))}",
        )
        assert document_state(other)["dirty"] is False, "the other tab's clean document became dirty"
    assert_no_dialog(runner, other)


# ----- 3. collaboration on: the shared document -----------------------------------------------------------------


def test_collaborative_reload_before_save_then_save_keeps_both_panel_turns(
    collaborative_lab: LabProcess, browser: Any, new_context: Callable[[], Any]
) -> None:
    """With jupyter-collaboration: given a notebook with unsaved edits and two panel turns, when the page reloads
    before any save and the user then saves, then the file holds both turns exactly once."""
    lab = collaborative_lab
    nb = "rtc-reload-before-save.ipynb"
    lab.write_notebook(nb, "x = 1")
    page = open_lab(browser, lab, nb, context=new_context(), subscribed=False)
    assert collaborative(page)
    type_into_cell(page, "  # unsaved")
    run_ids = two_panel_turns(page)

    accept_leaving(page)
    reload_lab(page, nb)
    states = save_in(page)

    assert "completed" in states, f"the save did not complete: {states}; dialogs {dialogs_seen(page)}"
    assert_no_dialog(page)
    wait_file_holds(lab, nb, run_ids)
