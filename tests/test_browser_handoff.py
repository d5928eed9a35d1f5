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

from tests._lab import (  # the two jp_ fixtures switch pytest-jupyter's loop handling off here
    LabProcess,
    browser_available,
    dialogs_seen,
    document_state,
    handoff_states,
    jp_asyncio_loop,  # noqa: F401
    jp_server_cleanup,  # noqa: F401
    launch_browser,
    open_another,
    open_lab,
    screenshot,
    wait_for,
)

# The labextension's limits (labextension/src/handoff.ts HandoffLimits.streams, slots.ts STREAM_SLOTS).
STREAMS_PER_PAGE = 3
STREAM_SLOTS = 4

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(browser_available() is not None, reason=browser_available() or ""),
]


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

    def open_page(path: str, **kwargs: Any) -> Any:
        page = open_lab(browser, lab, path, **kwargs)
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        page.context.close()
    lab.shutdown_kernels()


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


def test_control_without_the_handoff_the_save_asks_file_changed(lab: LabProcess, page_for: Any) -> None:
    """Control for the tests above (the problem the hand-off solves, and proof that the dialog recorder sees
    dialogs): when the page cannot subscribe, the server writes the file under the dirty open document, and the
    user's save then brings up JupyterLab's "File Changed" dialog."""

    def no_stream(page: Any) -> None:
        page.route("**/streamchat/documents/events?*", lambda route: route.abort("connectionrefused"))

    nb = "control.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb, before_goto=no_stream, subscribed=False)
    type_into_first_cell(page, "y = 1")
    wait_for(lambda: document_state(page)["dirty"], 10, message="unsaved edits")

    run_id, _ = finished_run(lab, nb, "c7")
    assert wait_recorded(lab, run_id) == "file"
    assert run_ids(disk_section(lab, nb), "c7") == [run_id]
    assert not model_has_run(page, "c7", run_id)

    page.evaluate("() => { void window.jupyterapp.commands.execute('docmanager:save'); }")
    wait_for(lambda: any("File Changed" in text for text in dialogs_seen(page)), 10, message="the File Changed dialog")


def test_concurrent_runs_land_once_each_in_order(lab: LabProcess, page_for: Any) -> None:
    """When several runs end at about the same time for one clean open notebook (turns may arrive while the previous
    turn's save is in flight), then every turn is in the document and the file exactly once, sorted by creation,
    the document ends clean and no dialog appears."""
    nb = "many.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)

    # ``history=False``: with ``prompt`` the server reads the notebook file for the conversation's history, and
    # a read that catches Jupyter's in-place save of the previous turn half-written answers 500 (a server issue
    # of its own, not what this test is about).
    run_ids_started = [lab.start_run(nb, "c3", prompt=f"q{i}", history=False) for i in range(4)]
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


def test_renamed_notebook_takes_turns_under_its_new_path(lab: LabProcess, page_for: Any) -> None:
    """When an open notebook is renamed, then its hand-off follows the new path: a run for the new path lands in
    the open document (and, the document being clean, in the renamed file)."""
    lab.write_notebook("before-rename.ipynb")
    page = page_for("before-rename.ipynb")

    page.evaluate("() => window.jupyterapp.shell.currentWidget.context.rename('after-rename.ipynb')")
    wait_for(
        lambda: handoff_states(page).get("after-rename.ipynb") == {"state": "ready", "path": "after-rename.ipynb"},
        15,
        message=lambda: f"a subscription for the new path: {handoff_states(page)}",
    )
    run_id, _ = finished_run(lab, "after-rename.ipynb", "c4")

    assert wait_recorded(lab, run_id) == "open-document"
    wait_for(lambda: model_has_run(page, "c4", run_id), 15, message="the turn in the open document")
    wait_for(
        lambda: run_id in run_ids(disk_section(lab, "after-rename.ipynb"), "c4"), 15, message="the turn in the file"
    )
    assert not (lab.root / "before-rename.ipynb").exists()
    assert dialogs_seen(page) == []


def test_subscription_recovers_after_failed_connections(lab: LabProcess, page_for: Any) -> None:
    """When the document stream cannot connect at first (network errors), then the page retries with backoff,
    subscribes, and a run still lands in the open document."""
    attempts: list[str] = []

    def fail_twice(route: Any) -> None:
        attempts.append(route.request.url)
        if len(attempts) <= 2:
            route.abort("connectionreset")
        else:
            route.continue_()

    def install(page: Any) -> None:
        page.route("**/streamchat/documents/events?*", fail_twice)

    lab.write_notebook("flaky.ipynb")
    page = page_for("flaky.ipynb", before_goto=install)  # returns once subscribed
    assert len(attempts) >= 3

    run_id, _ = finished_run(lab, "flaky.ipynb", "c5")
    assert wait_recorded(lab, run_id) == "open-document"
    wait_for(lambda: model_has_run(page, "c5", run_id), 15, message="the turn in the open document")
    assert dialogs_seen(page) == []


def test_many_open_notebooks_do_not_starve_jupyterlab(lab: LabProcess, page_for: Any) -> None:
    """When more notebooks are open than the browser has connections for streams (6 per host over HTTP/1.1, for
    all tabs), then JupyterLab still answers (contents requests, opening documents), at most 3 notebooks per page
    and 4 per browser hold a stream, the current notebook always takes its turns, and a parked notebook that
    becomes current gets a stream back."""
    names = [f"many-{i}.ipynb" for i in range(5)]
    for name in names:
        lab.write_notebook(name)
    page = page_for(names[0])
    for name in names[1:]:
        open_another(page, name)

    def subscribed(states: dict[str, dict[str, str | None]]) -> list[str]:
        return sorted(path for path, s in states.items() if s["state"] == "ready")

    wait_for(lambda: subscribed(handoff_states(page)) == sorted(names[-3:]), 15, message=lambda: handoff_states(page))
    assert {handoff_states(page)[name]["state"] for name in names[:2]} == {"parked"}

    # A second tab of the same browser: the origin's stream slots are shared with the first tab.
    lab.write_notebook("second-tab.ipynb")
    lab.write_notebook("second-tab-2.ipynb")
    other = page_for("second-tab.ipynb", context=page.context)
    open_another(other, "second-tab-2.ipynb")
    wait_for(lambda: handoff_states(other)["second-tab-2.ipynb"]["state"] == "parked", 15)
    total = len(subscribed(handoff_states(page))) + len(subscribed(handoff_states(other)))
    assert total == STREAM_SLOTS

    # JupyterLab still has connections: a contents request answers at once, in both tabs.
    for tab in (page, other):
        answer = tab.evaluate(
            """() => Promise.race([
                 window.jupyterapp.serviceManager.contents.get('', {content: false}).then(() => 'ok'),
                 new Promise(resolve => setTimeout(() => resolve('timeout'), 5000)),
               ])"""
        )
        assert answer == "ok"

    # The current notebook of the first tab takes its turn.
    run_id, _ = finished_run(lab, names[-1], "c6")
    assert wait_recorded(lab, run_id) == "open-document"
    wait_for(lambda: model_has_run(page, "c6", run_id), 15, message="the turn in the current notebook")

    # Closing the second tab frees its slot; making a parked notebook current subscribes it (and parks the least
    # recently active one).
    other.close()
    page.evaluate("path => window.jupyterapp.commands.execute('docmanager:open', {path})", names[0])
    wait_for(
        lambda: subscribed(handoff_states(page)) == sorted([names[0], *names[-2:]]),
        15,
        message=lambda: handoff_states(page),
    )
    run_id, _ = finished_run(lab, names[0], "c6")
    assert wait_recorded(lab, run_id) == "open-document"
    wait_for(lambda: model_has_run(page, "c6", run_id), 15, message="the turn in the notebook made current")
    assert dialogs_seen(page) == []
