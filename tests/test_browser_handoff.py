"""The open-document hand-off in a real JupyterLab and a real browser.

A detached run that names a notebook open in JupyterLab must land in the OPEN document (the labextension claims
the server's offer and merges the turn into the document's metadata), never in the file under it: otherwise the
user's next save, or JupyterLab's "File Changed" dialog, would lose it or their edits. A clean document is saved at
once; a document with unsaved edits keeps the turn until the user saves, and then the file has both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests._lab import (
    LabProcess,
    browser_available,
    dialogs_seen,
    document_state,
    launch_browser,
    open_lab,
    screenshot,
    wait_for,
)

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(browser_available() is not None, reason=browser_available() or ""),
]


# pytest-jupyter (loaded by conftest) has autouse fixtures that close "the" event loop and clean up an in-process
# server after each test: with Playwright's sync API running its own loop in this thread, both fail. These tests
# use neither asyncio nor an in-process server, so they are switched off here.
@pytest.fixture
def jp_asyncio_loop() -> None:
    return None


@pytest.fixture
def jp_server_cleanup() -> None:
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProcess]:
    process = LabProcess(tmp_path_factory.mktemp("lab"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = launch_browser(playwright)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def page_for(lab: LabProcess, browser: Any) -> Iterator[Any]:
    """``page_for(path)``: a Lab page with that notebook open (its hand-off subscribed); closed after the test."""
    pages: list[Any] = []

    def open_page(path: str) -> Any:
        page = open_lab(browser, lab, path)
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        page.context.close()


# ----- helpers -------------------------------------------------------------------------------------------------


def turns_of(section: dict[str, Any] | None, conversation: str) -> list[dict[str, Any]]:
    conversations = (section or {}).get("conversations") or {}
    return list((conversations.get(conversation) or {}).get("turns") or [])


def run_ids(section: dict[str, Any] | None, conversation: str) -> list[str]:
    return [turn.get("run") for turn in turns_of(section, conversation)]


def disk_section(lab: LabProcess, path: str) -> dict[str, Any] | None:
    return lab.read_notebook(path)["metadata"].get("streamchat")


def source_on_disk(lab: LabProcess, path: str, index: int = 0) -> str:
    source = lab.read_notebook(path)["cells"][index]["source"]
    return "".join(source) if isinstance(source, list) else source


def model_has_run(page: Any, conversation: str, run_id: str) -> bool:
    return run_id in run_ids(document_state(page)["streamchat"], conversation)


def type_into_first_cell(page: Any, text: str) -> None:
    page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
    page.keyboard.type(text)


def finished_run(lab: LabProcess, notebook: str, conversation: str, prompt: str = "hi") -> tuple[str, dict[str, Any]]:
    """Start a detached run through the HTTP API and wait until the server says it completed."""
    run_id = lab.start_run(notebook, conversation, prompt)
    record = lab.wait_run_finished(run_id)
    assert record["status"] == "completed", record
    assert record["notebook"] == notebook and record["text"], record
    return run_id, record


def wait_recorded(lab: LabProcess, run_id: str) -> str:
    """Until the server logs how it recorded the run; returns how (open-document, file, ...)."""
    return wait_for(lambda: lab.recorded_how(run_id), 15, message=lambda: f"run {run_id} recorded\n{lab.log_tail()}")


# ----- tests -----------------------------------------------------------------------------------------------------


def test_clean_open_notebook_takes_the_turn_and_saves_it(lab: LabProcess, page_for: Any) -> None:
    """When a run ends for a notebook open without unsaved changes, then the open document gets the turn exactly
    once and is saved right away (the file has it too, once), and no dialog appears."""
    nb = "clean.ipynb"
    lab.write_notebook(nb, "print('clean')")
    page = page_for(nb)
    assert document_state(page)["dirty"] is False

    run_id, record = finished_run(lab, nb, "c1")

    wait_for(lambda: model_has_run(page, "c1", run_id), 15, message="the turn in the open document")
    wait_for(lambda: run_id in run_ids(disk_section(lab, nb), "c1"), 15, message="the saved turn in the file")
    state = wait_for(lambda: (s := document_state(page))["dirty"] is False and s, 10, message="a clean document")

    turns = turns_of(state["streamchat"], "c1")
    assert [t["run"] for t in turns] == [run_id]
    assert turns[0]["reply"]["content"] == record["text"]
    assert turns[0]["reply"]["status"] == "completed"
    assert turns[0]["prompt"] == {"role": "user", "content": "hi"}
    assert state["streamchat"]["version"] == 1
    on_disk = disk_section(lab, nb)
    assert run_ids(on_disk, "c1") == [run_id]
    assert on_disk == state["streamchat"]
    assert source_on_disk(lab, nb) == "print('clean')"
    assert wait_recorded(lab, run_id) == "open-document"
    assert dialogs_seen(page) == []

    shot = screenshot(page, "handoff-clean-notebook.png")
    assert shot.stat().st_size > 10_000


def test_dirty_open_notebook_keeps_the_turn_until_the_user_saves(lab: LabProcess, page_for: Any) -> None:
    """When a run ends for a notebook open with unsaved edits, then the turn is in the open document but not on
    disk, the edit is still there; when the user saves, then the file has both, the turn exactly once, and no
    "File Changed" (or any other) dialog appeared."""
    nb = "dirty.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)
    type_into_first_cell(page, "x = 42")
    wait_for(lambda: document_state(page)["dirty"], 10, message="unsaved edits")

    run_id, _ = finished_run(lab, nb, "c1")

    wait_for(lambda: model_has_run(page, "c1", run_id), 15, message="the turn in the open document")
    assert wait_recorded(lab, run_id) == "open-document"
    state = document_state(page)
    assert state["dirty"] is True, "the document must stay dirty: the turn goes out with the user's save"
    assert state["cells"] == ["x = 42"], "the user's unsaved edit must still be in the document"
    on_disk = lab.read_notebook(nb)
    assert on_disk["metadata"].get("streamchat") is None, "the server must not write the file under a dirty document"
    assert source_on_disk(lab, nb) == ""

    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")

    saved = wait_for(
        lambda: run_id in run_ids(disk_section(lab, nb), "c1") and lab.read_notebook(nb), 15, message="the save"
    )
    assert source_on_disk(lab, nb) == "x = 42"
    assert run_ids(saved["metadata"]["streamchat"], "c1") == [run_id]
    wait_for(lambda: document_state(page)["dirty"] is False, 10, message="a clean document after the save")
    assert dialogs_seen(page) == []


def test_server_does_not_touch_the_file_under_a_dirty_open_document(lab: LabProcess, page_for: Any) -> None:
    """When a run ends for a notebook open with unsaved edits, then the server reports the run completed, its
    recorder went through the open document, and the file stays byte for byte (and mtime) what it was, well past
    the hand-off timeout after which the server would have written it itself."""
    nb = "sub/untouched.ipynb"
    path = lab.write_notebook(nb, "before")
    page = page_for(nb)
    type_into_first_cell(page, "# edited ")
    wait_for(lambda: document_state(page)["dirty"], 10, message="unsaved edits")
    before = (path.read_bytes(), path.stat().st_mtime_ns)

    run_id, _ = finished_run(lab, nb, "c2", prompt="second")

    assert lab.run_record(run_id)["status"] == "completed"
    wait_for(lambda: model_has_run(page, "c2", run_id), 15, message="the turn in the open document")
    assert wait_recorded(lab, run_id) == "open-document"
    time.sleep(2.5)  # longer than the server's hand-off timeout (2 s)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert document_state(page)["dirty"] is True
    assert dialogs_seen(page) == []


def test_concurrent_runs_land_once_each_in_order(lab: LabProcess, page_for: Any) -> None:
    """When several runs end at about the same time for one clean open notebook (turns may arrive while the previous
    turn's save is in flight), then every turn is in the document and the file exactly once, sorted by creation,
    the document ends clean and no dialog appears."""
    nb = "many.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)

    run_ids_started = [lab.start_run(nb, "c3", prompt=f"q{i}") for i in range(4)]
    for run_id in run_ids_started:
        assert lab.wait_run_finished(run_id)["status"] == "completed"
    for run_id in run_ids_started:
        assert wait_recorded(lab, run_id) == "open-document"

    def all_saved() -> dict[str, Any] | None:
        state = document_state(page)
        section = disk_section(lab, nb)
        done = not state["dirty"] and sorted(run_ids(section, "c3")) == sorted(run_ids_started)
        return state if done else None

    state = wait_for(all_saved, 15, message=lambda: f"all turns saved: {document_state(page)}")
    on_disk = disk_section(lab, nb)
    assert on_disk == state["streamchat"]
    turns = turns_of(on_disk, "c3")
    assert len(turns) == len(set(run_ids_started)) == 4
    assert [t["created"] for t in turns] == sorted(t["created"] for t in turns)
    assert dialogs_seen(page) == []
