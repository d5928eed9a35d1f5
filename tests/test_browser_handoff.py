"""The open-document hand-off in a real JupyterLab and a real browser.

A detached run that names a notebook lands in its FILE at once (so nothing a page does can lose it), and every page
that has the notebook open takes the turn into its document and the file's new version as the one it knows: the
user's next save keeps the turn and asks nothing ("File Changed" would be our fault), a clean document stays clean,
and unsaved edits stay.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from harness.lab import (  # the two jp_ fixtures switch pytest-jupyter's loop handling off here
    LabProcess,
    browser_available,
    dialogs_seen,
    document_state,
    handoff_states,
    jp_asyncio_loop,  # noqa: F401
    jp_server_cleanup,  # noqa: F401
    open_another,
    open_lab,
    running,
    screenshot,
)
from harness.waiting import wait_until

# The labextension's stream slots for the whole origin (labextension/src/slots.ts STREAM_SLOTS and lock names).
STREAM_SLOTS = 5
SLOT_LOCK = "jupyter-streamchat:stream-slot-{}"

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(browser_available() is not None, reason=browser_available() or ""),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProcess]:
    process = LabProcess(tmp_path_factory.mktemp("lab"))
    with running(process):
        yield process


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


# Any open notebook of the page (``document_state`` reads the current one only).
DOCUMENT_OF = """
path => {
  let found = null;
  window.jupyterapp.shell.widgets('main').forEach(w => {
    if (!found && w.context && w.context.path === path && w.context.isReady) found = w;
  });
  if (!found) return null;
  const model = found.context.model;
  const cells = [];
  for (let i = 0; i < model.cells.length; i++) cells.push(model.cells.get(i).sharedModel.getSource());
  return {path, dirty: model.dirty, streamchat: model.getMetadata('streamchat') ?? null, cells};
}
"""


def document_of(page: Any, path: str) -> dict[str, Any]:
    state = page.evaluate(DOCUMENT_OF, path)
    assert state is not None, f"{path} is not open in the Lab page"
    return dict(state)


def wait_in_document(page: Any, path: str, conversation: str, run_id: str) -> None:
    wait_until(
        lambda: run_id in run_ids(document_of(page, path)["streamchat"], conversation),
        15,
        what=f"turn {run_id} in the open document {path}",
    )


def edit_document(page: Any, path: str, source: str) -> None:
    """An unsaved edit of the first cell of an open notebook (current or not), as typing would make it."""
    page.evaluate(
        """([path, source]) => {
          window.jupyterapp.shell.widgets('main').forEach(w => {
            if (w.context && w.context.path === path) w.context.model.cells.get(0).sharedModel.setSource(source);
          });
        }""",
        [path, source],
    )


class DocumentStreams:
    """The ``documents/events`` requests a page sent, as the browser reports them to Playwright; ``install`` before
    the page loads. Which streams are open is the server's view (``LabProcess.document_streams``): Playwright has
    reported a stream the page aborted, and the server saw closed at once, as still open for over a minute (1 in
    ~150 resubscriptions on a loaded machine)."""

    def __init__(self) -> None:
        self.sent: list[list[str]] = []

    def install(self, page: Any) -> None:
        page.on("request", self._sent)

    def _sent(self, request: Any) -> None:
        if "/streamchat/documents/events?" in request.url:
            self.sent.append(sorted(parse_qs(urlsplit(request.url).query)["path"]))


def all_ready(page: Any, paths: list[str]) -> bool:
    states = handoff_states(page)
    return all(states.get(path) == {"state": "ready", "path": path} for path in paths)


def wait_recorded(lab: LabProcess, run_id: str) -> str:
    """Until the server logs how it recorded the run; returns how (file, shared, duplicate)."""
    return wait_until(lambda: lab.recorded_how(run_id), 15, what=lambda: f"run {run_id} recorded\n{lab.log_tail()}")


# ----- tests -----------------------------------------------------------------------------------------------------


def test_clean_open_notebook_takes_the_turn_and_stays_clean(lab: LabProcess, page_for: Any) -> None:
    """When a run ends for a notebook open without unsaved changes, then the file has the turn once, the open
    document has it too (the same section as the file) and is still clean, and no dialog appears."""
    nb = "clean.ipynb"
    lab.write_notebook(nb, "print('clean')")
    page = page_for(nb)
    assert document_state(page)["dirty"] is False

    run_id, record = finished_run(lab, nb, "c1")

    assert wait_recorded(lab, run_id) == "file"
    wait_until(lambda: model_has_run(page, "c1", run_id), 15, what="the turn in the open document")
    state = wait_until(lambda: (s := document_state(page))["dirty"] is False and s, 10, what="a clean document")

    turns = turns_of(state["streamchat"], "c1")
    assert [t["run"] for t in turns] == [run_id]
    assert turns[0]["reply"]["content"] == record["text"]
    assert turns[0]["reply"]["status"] == "completed"
    assert turns[0]["prompt"] == {"role": "user", "content": "hi"}
    assert state["streamchat"]["version"] == 2 and state["streamchat"]["conversations"]["c1"]["active"] == run_id
    on_disk = disk_section(lab, nb)
    assert run_ids(on_disk, "c1") == [run_id]
    assert on_disk == state["streamchat"]
    assert source_on_disk(lab, nb) == "print('clean')"

    # And a save now asks nothing: the page knows the version the server wrote
    written = (lab.root / nb).stat().st_mtime_ns
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    wait_until(lambda: (lab.root / nb).stat().st_mtime_ns != written, 15, what="the save")
    assert run_ids(disk_section(lab, nb), "c1") == [run_id]
    assert dialogs_seen(page) == []

    shot = screenshot(page, "handoff-clean-notebook.png")
    assert shot.stat().st_size > 10_000


def test_dirty_open_notebook_gets_the_turn_in_file_and_document_and_saves_without_asking(
    lab: LabProcess, page_for: Any
) -> None:
    """When a run ends for a notebook open with unsaved edits, then the file holds the turn at once, the open
    document holds it too, still dirty, with the user's edit; when the user saves, then the file has both, the turn
    exactly once, and no "File Changed" (or any other) dialog appeared."""
    nb = "dirty.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)
    type_into_first_cell(page, "x = 42")
    wait_until(lambda: document_state(page)["dirty"], 10, what="unsaved edits")

    run_id, _ = finished_run(lab, nb, "c1")

    assert wait_recorded(lab, run_id) == "file"
    assert run_ids(disk_section(lab, nb), "c1") == [run_id]
    assert source_on_disk(lab, nb) == ""
    wait_until(lambda: model_has_run(page, "c1", run_id), 15, what="the turn in the open document")
    state = document_state(page)
    assert state["dirty"] is True, "the user's edit is not saved yet"
    assert state["cells"] == ["x = 42"], "the user's unsaved edit must still be in the document"

    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")

    wait_until(lambda: source_on_disk(lab, nb) == "x = 42", 15, what="the save")
    assert run_ids(disk_section(lab, nb), "c1") == [run_id]
    wait_until(lambda: document_state(page)["dirty"] is False, 10, what="a clean document after the save")
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
    wait_until(lambda: document_state(page)["dirty"], 10, what="unsaved edits")

    run_id, _ = finished_run(lab, nb, "c7")
    assert wait_recorded(lab, run_id) == "file"
    assert run_ids(disk_section(lab, nb), "c7") == [run_id]
    assert not model_has_run(page, "c7", run_id)

    page.evaluate("() => { void window.jupyterapp.commands.execute('docmanager:save'); }")
    wait_until(lambda: any("File Changed" in text for text in dialogs_seen(page)), 10, what="the File Changed dialog")


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
        assert wait_recorded(lab, run_id) == "file"

    def all_saved() -> dict[str, Any] | None:
        state = document_state(page)
        section = disk_section(lab, nb)
        done = not state["dirty"] and sorted(run_ids(section, "c3")) == sorted(run_ids_started)
        return state if done else None

    state = wait_until(all_saved, 15, what=lambda: f"all turns saved: {document_state(page)}")
    on_disk = disk_section(lab, nb)
    assert on_disk == state["streamchat"]
    turns = turns_of(on_disk, "c3")
    assert len(turns) == len(set(run_ids_started)) == 4
    assert [t["created"] for t in turns] == sorted(t["created"] for t in turns)
    assert dialogs_seen(page) == []


def test_renamed_notebook_takes_turns_under_its_new_path(lab: LabProcess, page_for: Any) -> None:
    """When an open notebook is renamed, then its hand-off follows the new path: a run for the new path lands in
    the renamed file and in the open document."""
    lab.write_notebook("before-rename.ipynb")
    page = page_for("before-rename.ipynb")

    page.evaluate("() => window.jupyterapp.shell.currentWidget.context.rename('after-rename.ipynb')")
    wait_until(
        lambda: handoff_states(page).get("after-rename.ipynb") == {"state": "ready", "path": "after-rename.ipynb"},
        15,
        what=lambda: f"a subscription for the new path: {handoff_states(page)}",
    )
    run_id, _ = finished_run(lab, "after-rename.ipynb", "c4")

    assert wait_recorded(lab, run_id) == "file"
    wait_until(lambda: model_has_run(page, "c4", run_id), 15, what="the turn in the open document")
    wait_until(
        lambda: run_id in run_ids(disk_section(lab, "after-rename.ipynb"), "c4"), 15, what="the turn in the file"
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
    assert wait_recorded(lab, run_id) == "file"
    wait_until(lambda: model_has_run(page, "c5", run_id), 15, what="the turn in the open document")
    assert dialogs_seen(page) == []


def test_one_stream_serves_all_notebooks_of_a_page(lab: LabProcess, page_for: Any) -> None:
    """When 6 notebooks are open in one page (one stream each would take every connection the browser has for the
    host: 6 over HTTP/1.1, for all tabs), then the page holds exactly one documents/events stream, for all 6 paths;
    runs that end for all 6 while each has unsaved edits land in the files and in the open documents, with the
    edits; saving them brings up no "File Changed" dialog and writes edits and turns; a second tab holds one stream
    of its own, and JupyterLab still answers in both tabs."""
    names = [f"many-{i}.ipynb" for i in range(6)]
    for name in names:
        lab.write_notebook(name)
    streams = DocumentStreams()
    page = page_for(names[0], before_goto=streams.install)
    for name in names[1:]:
        open_another(page, name)

    wait_until(lambda: all_ready(page, names), 20, what=lambda: f"all subscribed: {handoff_states(page)}")
    wait_until(
        lambda: lab.document_streams() == [sorted(names)],
        10,
        what=lambda: f"one stream on the server: {lab.document_streams()}; the page sent {streams.sent}",
    )

    for name in names:
        edit_document(page, name, f"edit of {name}")
    wait_until(lambda: all(document_of(page, name)["dirty"] for name in names), 10, what="unsaved edits everywhere")

    # All six end at about the same time.
    started = {name: lab.start_run(name, "c6", prompt=f"for {name}", history=False) for name in names}
    for run_id in started.values():
        assert lab.wait_run_finished(run_id)["status"] == "completed"
    for name, run_id in started.items():
        assert wait_recorded(lab, run_id) == "file", name
        assert run_ids(disk_section(lab, name), "c6") == [run_id]
        wait_in_document(page, name, "c6", run_id)
        state = document_of(page, name)
        assert state["dirty"] is True and state["cells"] == [f"edit of {name}"], state
    assert lab.document_streams() == [sorted(names)]

    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save-all')")
    for name, run_id in started.items():
        wait_until(lambda name=name: source_on_disk(lab, name) == f"edit of {name}", 15, what=f"{name} saved")
        assert run_ids(disk_section(lab, name), "c6") == [run_id]
    assert dialogs_seen(page) == []

    # A second tab of the same browser (shared connections and stream slots): one stream of its own.
    lab.write_notebook("second-tab.ipynb")
    lab.write_notebook("second-tab-2.ipynb")
    other_streams = DocumentStreams()
    other = page_for("second-tab.ipynb", context=page.context, before_goto=other_streams.install)
    open_another(other, "second-tab-2.ipynb")
    wait_until(
        lambda: all_ready(other, ["second-tab.ipynb", "second-tab-2.ipynb"]), 15, what=lambda: handoff_states(other)
    )
    both_tabs = [sorted(names), ["second-tab-2.ipynb", "second-tab.ipynb"]]
    wait_until(
        lambda: sorted(lab.document_streams()) == both_tabs,
        10,
        what=lambda: (
            f"one stream per tab on the server: {lab.document_streams()}; the second tab sent {other_streams.sent};"
            f" hand-off states {handoff_states(other)}"
        ),
    )

    # JupyterLab still has connections: a contents request answers at once, in both tabs.
    for tab in (page, other):
        answer = tab.evaluate(
            """() => Promise.race([
                 window.jupyterapp.serviceManager.contents.get('', {content: false}).then(() => 'ok'),
                 new Promise(resolve => setTimeout(() => resolve('timeout'), 5000)),
               ])"""
        )
        assert answer == "ok"

    run_id, _ = finished_run(lab, "second-tab.ipynb", "c6")
    assert wait_recorded(lab, run_id) == "file"
    wait_in_document(other, "second-tab.ipynb", "c6", run_id)
    assert dialogs_seen(other) == []


def test_rename_resubscribes_without_a_gap(lab: LabProcess, page_for: Any) -> None:
    """When one of two notebooks open in a page is renamed, then the page's stream is replaced by one for the new
    set of paths (new name in, old name out) -- the other notebook stays subscribed all along (the old stream is
    closed only once the new one is ready) -- and the next turns land in the renamed document, with its unsaved
    edit, and in the other one."""
    lab.write_notebook("stays.ipynb")
    lab.write_notebook("old-name.ipynb")
    streams = DocumentStreams()
    page = page_for("stays.ipynb", before_goto=streams.install)
    open_another(page, "old-name.ipynb")
    wait_until(lambda: all_ready(page, ["stays.ipynb", "old-name.ipynb"]), 15, what=lambda: handoff_states(page))
    wait_until(lambda: lab.document_streams() == [["old-name.ipynb", "stays.ipynb"]], 10, what=lab.document_streams)
    page.evaluate(
        """() => {
          window.__staysStates = [];
          window.jupyterapp.shell.widgets('main').forEach(w => {
            if (w.context && w.context.path === 'stays.ipynb') {
              new MutationObserver(() => window.__staysStates.push(w.node.dataset.streamchatHandoff))
                .observe(w.node, {attributes: true, attributeFilter: ['data-streamchat-handoff']});
            }
          });
        }"""
    )

    page.evaluate("() => window.jupyterapp.shell.currentWidget.context.rename('new-name.ipynb')")
    wait_until(
        lambda: all_ready(page, ["stays.ipynb", "new-name.ipynb"]),
        15,
        what=lambda: f"a subscription for the new path: {handoff_states(page)}",
    )
    wait_until(lambda: lab.document_streams() == [["new-name.ipynb", "stays.ipynb"]], 10, what=lab.document_streams)
    # the first notebook, both, then both under their new names
    assert streams.sent == [["stays.ipynb"], ["old-name.ipynb", "stays.ipynb"], ["new-name.ipynb", "stays.ipynb"]]
    assert page.evaluate("() => window.__staysStates") == []  # never anything but 'ready'

    edit_document(page, "new-name.ipynb", "renamed = True")
    wait_until(lambda: document_state(page)["dirty"], 10, what="unsaved edits")
    run_id, _ = finished_run(lab, "new-name.ipynb", "c8")
    assert wait_recorded(lab, run_id) == "file"
    wait_until(lambda: model_has_run(page, "c8", run_id), 15, what="the turn in the renamed document")
    assert document_state(page)["cells"] == ["renamed = True"]
    assert run_ids(disk_section(lab, "new-name.ipynb"), "c8") == [run_id]

    other_run, _ = finished_run(lab, "stays.ipynb", "c8")
    assert wait_recorded(lab, other_run) == "file"
    wait_in_document(page, "stays.ipynb", "c8", other_run)
    assert not (lab.root / "old-name.ipynb").exists()
    assert dialogs_seen(page) == []


def test_without_a_free_slot_the_page_parks_then_subscribes(lab: LabProcess, page_for: Any, browser: Any) -> None:
    """When other tabs hold all the origin's stream slots, then a page's notebook is parked and the server writes its
    file; when one slot frees, the page subscribes; when it then opens another notebook while no second slot is free,
    it closes its stream and opens one for both, and both take their turns."""
    context = browser.new_context()
    holder = context.new_page()
    holder.goto(f"{lab.base_url}api/status?token={lab.token}")  # any page of the origin shares its Web Locks
    names = [SLOT_LOCK.format(slot) for slot in range(STREAM_SLOTS)]
    holder.evaluate(
        """names => {
          window.__release = {};
          for (const name of names) {
            navigator.locks.request(name, () => new Promise(resolve => { window.__release[name] = resolve; }));
          }
        }""",
        names,
    )
    holder.wait_for_function("n => Object.keys(window.__release).length === n", arg=len(names))

    lab.write_notebook("parked.ipynb")
    lab.write_notebook("parked-2.ipynb")
    streams = DocumentStreams()
    page = page_for("parked.ipynb", context=context, before_goto=streams.install, subscribed=False)
    wait_until(lambda: handoff_states(page)["parked.ipynb"]["state"] == "parked", 15, what=lambda: handoff_states(page))
    assert streams.sent == []
    run_id, _ = finished_run(lab, "parked.ipynb", "c9")
    assert wait_recorded(lab, run_id) == "file"

    holder.evaluate("name => window.__release[name]()", names[0])
    wait_until(lambda: all_ready(page, ["parked.ipynb"]), 15, what=lambda: handoff_states(page))

    open_another(page, "parked-2.ipynb")
    wait_until(lambda: all_ready(page, ["parked.ipynb", "parked-2.ipynb"]), 15, what=lambda: handoff_states(page))
    wait_until(lambda: lab.document_streams() == [["parked-2.ipynb", "parked.ipynb"]], 10, what=lab.document_streams)
    for name in ("parked.ipynb", "parked-2.ipynb"):
        run_id, _ = finished_run(lab, name, "c9")
        assert wait_recorded(lab, run_id) == "file"
        wait_in_document(page, name, "c9", run_id)
    assert dialogs_seen(page) == []
    holder.close()
