"""The "Stream Chat" side panel as a user meets it: a real JupyterLab, a real browser, a real loopback upstream.

Every control is found by its accessible name (SPEC section 8); state is read from ``data-run-id`` /
``data-status``. The upstream is ``harness/upstream.py``'s FakeUpstream (OpenAI wire format on 127.0.0.1), so
"the upstream call ended" is what the upstream's socket saw, not what the product says. Each test opens its own
notebook in its own browser context; the Lab server, the upstream and the browser are shared by the module.
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
    console_of,
    dialogs_seen,
    document_state,
    jp_asyncio_loop,  # noqa: F401
    jp_server_cleanup,  # noqa: F401
    notebook_json,
    open_lab,
    running,
    screenshot,
    upstream_args,
)
from harness.upstream import FakeUpstream, Script, Stall, Text
from harness.waiting import wait_until

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(browser_available() is not None, reason=browser_available() or ""),
]

PANEL = "#jp-StreamChat-panel"
VIEWPORT = {"width": 1400, "height": 900}

# Upstream model names (each test scripts its own, so records of one test never answer another's waits).
# They are listed by the server, so the panel's "Model" select offers them as ``openai:<name>``.
UPSTREAM_MODELS = [
    "grow",
    "stall-stop",
    "reload-words",
    "reattach-stall",
    "cmp-stall",
    "cmp-paced",
    "code",
    "listed",
    "ctx",
    "cell-run",
    "esc-stall",
    "saved",
    "gone-stall",
    "rename-stall",
]
# Panel settings under test (test_palette_shortcut_and_settings): neither is what the panel would pick anyway
# (the server's default is openai:grow, the first option is demo:chat).
DEFAULT_MODEL_SETTING = "demo:thinker"
COMPARE_MODELS_SETTING = ["demo:fast", "demo:long"]

# A click on Stop must end the upstream call during its stall: the upstream stalls for STALL seconds and records a
# hang-up only while the response is in progress, so a product that waits for the stall (or for its idle timeout)
# cannot pass. How fast it ends is benchmarks/bench_stop.py's to measure.
STALL = 60.0
PARTIAL = ["Partial ", "answer ", "so far"]


def plain_words(count: int, seed: str) -> list[str]:
    """``count`` plain words as text deltas ("alpha0 bravo1 ..."): rendered Markdown text == source text."""
    names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    return [f"{'' if i == 0 else ' '}{seed}{names[i % len(names)]}{i}" for i in range(count)]


def normalized(text: str) -> str:
    return " ".join(text.split())


# ----- fixtures --------------------------------------------------------------------------------------------------


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
    settings = (
        process.workdir / "config" / "lab" / "user-settings" / "jupyter-streamchat" / "plugin.jupyterlab-settings"
    )
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"defaultModel": DEFAULT_MODEL_SETTING, "compareModels": COMPARE_MODELS_SETTING}))
    with running(process):
        yield process


@pytest.fixture
def page_for(lab: LabProcess, browser: Any) -> Iterator[Any]:
    """``page_for(path)``: a 1400x900 Lab page of its own with that notebook open; closed after the test."""
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


def write_notebook(lab: LabProcess, path: str, sources: list[str]) -> None:
    """A notebook with one code cell per source."""
    notebook = notebook_json(sources[0])
    for source in sources[1:]:
        cell = dict(notebook["cells"][0], source=source, id=f"cell{len(notebook['cells'])}")
        notebook["cells"].append(cell)
    (lab.root / path).write_text(json.dumps(notebook, indent=1) + "\n")


def open_panel(page: Any) -> Any:
    """Run ``streamchat:open``; the panel locator once it shows and its models are loaded."""
    page.evaluate("() => window.jupyterapp.commands.execute('streamchat:open')")
    panel = page.locator(PANEL)
    panel.wait_for(state="visible")
    page.wait_for_function(
        "sel => (document.querySelector(sel)?.options.length ?? 0) > 0", arg=f"{PANEL} select[aria-label=Model]"
    )
    return panel


REPLIES = """
() => Array.from(document.querySelectorAll('#jp-StreamChat-panel article.jp-StreamChat-reply')).map(a => ({
  run: a.dataset.runId ?? null,
  status: a.dataset.status ?? null,
  pane: a.classList.contains('jp-StreamChat-pane'),
  text: a.querySelector('.jp-StreamChat-replyBody')?.textContent ?? '',
  error: a.querySelector('.jp-StreamChat-replyError')?.textContent ?? '',
}))
"""


def replies(page: Any) -> list[dict[str, Any]]:
    """Every reply element the panel shows: run id, status, rendered text."""
    return list(page.evaluate(REPLIES))


def reply_of(page: Any, run_id: str) -> dict[str, Any] | None:
    """The one reply element of ``run_id`` (fails if the run is shown twice), or None."""
    found = [reply for reply in replies(page) if reply["run"] == run_id]
    assert len(found) <= 1, f"run {run_id} is shown {len(found)} times: {found}"
    return found[0] if found else None


def send_chat(page: Any, prompt: str, model: str | None = None) -> str:
    """Pick ``model`` in "Model", type ``prompt`` in "Message", click "Send"; the new reply's run id."""
    panel = page.locator(PANEL)
    before = {reply["run"] for reply in replies(page)}
    if model is not None:
        panel.get_by_label("Model", exact=True).select_option(model)
    panel.get_by_label("Message", exact=True).fill(prompt)
    panel.get_by_role("button", name="Send", exact=True).click()
    return str(
        wait_until(
            lambda: next((r["run"] for r in replies(page) if r["run"] and r["run"] not in before), None),
            30,
            what=lambda: f"a new reply with a run id: {replies(page)}\n{console_of(page)}",
        )
    )


def wait_status(page: Any, run_id: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
    """Until the reply of ``run_id`` has ``data-status=status``; returns the reply."""
    return dict(
        wait_until(
            lambda: (reply := reply_of(page, run_id)) is not None and reply["status"] == status and reply,
            timeout,
            what=lambda: f"run {run_id} {status} in the panel: {replies(page)}\n{console_of(page)[-3000:]}",
        )
    )


def wait_text(page: Any, run_id: str, text: str, timeout: float = 30.0) -> dict[str, Any]:
    return dict(
        wait_until(
            lambda: (reply := reply_of(page, run_id)) is not None and text in reply["text"] and reply,
            timeout,
            what=lambda: f"{text!r} in the reply of {run_id}: {replies(page)}",
        )
    )


def turns_by_run(section: dict[str, Any] | None) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """run id -> every (conversation id, turn) that records it (exactly once means a list of one)."""
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for conversation, value in ((section or {}).get("conversations") or {}).items():
        for turn in value.get("turns") or []:
            found.setdefault(turn.get("run"), []).append((conversation, turn))
    return found


def document_turns(page: Any) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    return turns_by_run(document_state(page)["streamchat"])


def disk_turns(lab: LabProcess, path: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    return turns_by_run(lab.read_notebook(path)["metadata"].get("streamchat"))


def wait_recorded_once(page: Any, lab: LabProcess, path: str, run_ids: list[str]) -> dict[str, Any]:
    """Until the open document and the file (the document was clean: saved at once) hold each run's turn; then
    assert each is there exactly once and return run id -> (conversation, turn) from the document."""

    def recorded() -> bool:
        in_document, on_disk = document_turns(page), disk_turns(lab, path)
        return all(run in in_document and run in on_disk for run in run_ids) and not document_state(page)["dirty"]

    wait_until(recorded, 30, what=lambda: f"turns of {run_ids} in the document and the file: {document_state(page)}")
    in_document, on_disk = document_turns(page), disk_turns(lab, path)
    for run in run_ids:
        assert len(in_document[run]) == 1, f"run {run} recorded {len(in_document[run])} times in the document"
        assert len(on_disk[run]) == 1, f"run {run} recorded {len(on_disk[run])} times in the file"
    return {run: in_document[run][0] for run in run_ids}


def shown_stop_button(page: Any, run_id: str, timeout: float = 10.0) -> Any:
    """The composer's "Stop" button, which must show while the reply of ``run_id`` runs."""
    stop = page.locator(PANEL).get_by_role("button", name="Stop", exact=True)
    try:
        stop.wait_for(state="visible", timeout=timeout * 1000)
    except Exception as error:  # playwright's TimeoutError: say what the user sees instead
        buttons = page.evaluate(
            "sel => Array.from(document.querySelectorAll(sel)).map(b => b.textContent + (b.hidden ? ' (hidden)' : ''))",
            f"{PANEL} button",
        )
        raise AssertionError(
            f"no visible Stop button {timeout}s into a running reply ({reply_of(page, run_id)}); buttons: {buttons}"
        ) from error
    return stop


def reload_lab(page: Any, path: str) -> None:
    """``page.reload()`` and wait until Lab is back with ``path`` open and loaded (as ``open_lab`` does)."""
    page.reload()
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=90_000)
    page.wait_for_function(
        """path => {
          const w = window.jupyterapp.shell.currentWidget;
          return !!(w && w.context && w.context.path === path && w.context.isReady && w.content.widgets.length);
        }""",
        arg=path,
        timeout=90_000,
    )


def run_active_cell(page: Any) -> None:
    """Run the active cell without moving on (it stays the active cell)."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-cell')")


THEME_COLOR = "() => getComputedStyle(document.body).getPropertyValue('--jp-layout-color0').trim()"


def set_theme(page: Any, theme: str) -> None:
    if page.evaluate("() => document.body.dataset.jpThemeName") == theme:
        return
    before = page.evaluate(THEME_COLOR)
    page.evaluate("theme => window.jupyterapp.commands.execute('apputils:change-theme', {theme})", theme)
    page.wait_for_function("theme => document.body.dataset.jpThemeName === theme", arg=theme)
    # The theme's stylesheet is in once its CSS variables changed (the name is set before it loads)
    page.wait_for_function(f"before => ({THEME_COLOR})() !== before", arg=before)
    # Lab shows its splash over everything while a theme loads: screenshots and drags wait until it is gone
    page.locator("#jupyterlab-splash").wait_for(state="detached")


def widen_right_sidebar(page: Any, width: int) -> None:
    """Drag the handle between the main area and the right sidebar, as a user would, until it is ``width`` wide."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)").last
    box = handle.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(VIEWPORT["width"] - 40 - width, y, steps=12)
    page.mouse.up()
    wait_until(
        lambda: (page.locator(PANEL).bounding_box() or {"width": 0})["width"] >= width - 30,
        10,
        what=lambda: f"a right sidebar {width}px wide: {page.locator(PANEL).bounding_box()}",
    )


# ----- tests -----------------------------------------------------------------------------------------------------


def test_send_reply_grows_then_completes_and_is_recorded_once(
    lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any
) -> None:
    words = plain_words(20, "g")
    upstream_for_lab.script("grow", Script.reply(words, pace=0.2))
    nb = "grow.ipynb"
    lab.write_notebook(nb, "print('hello')")
    page = page_for(nb)
    panel = open_panel(page)

    # When the user sends a prompt from the panel
    run_id = send_chat(page, "Tell me twenty words", "openai:grow")

    # Then the reply grows while it streams: several distinct lengths are seen with data-status=running
    lengths: set[int] = set()

    def sample() -> dict[str, Any] | None:
        reply = reply_of(page, run_id)
        if reply is not None and reply["status"] == "running":
            lengths.add(len(reply["text"]))
        return reply if reply is not None and reply["status"] != "running" else None

    final = wait_until(sample, 60, interval=0.03, what=lambda: f"the reply to end: {replies(page)}")
    assert len(lengths - {0}) >= 3, f"the reply did not visibly grow while running: lengths {sorted(lengths)}"
    # And it completes with the whole text, and the prompt shows above it
    assert final["status"] == "completed"
    assert normalized(final["text"]) == normalized("".join(words))
    assert panel.locator(".jp-StreamChat-prompt").last.text_content() == "Tell me twenty words"
    assert "first token" in (panel.locator(".jp-StreamChat-replyStats").last.text_content() or "")
    # And the Stop button is gone once nothing runs
    assert panel.get_by_role("button", name="Stop", exact=True).count() == 0

    # And the turn is in the notebook's metadata (the open document, and the file: it was clean) exactly once
    (conversation, turn) = wait_recorded_once(page, lab, nb, [run_id])[run_id]
    assert turn["reply"]["status"] == "completed"
    assert turn["reply"]["content"] == "".join(words) == lab.run_record(run_id)["text"]
    assert turn["prompt"] == {"role": "user", "content": "Tell me twenty words"}
    assert turn["model"] == "openai:grow"
    assert panel.get_by_label("Conversation", exact=True).input_value() == conversation
    assert dialogs_seen(page) == []


def test_stop_while_upstream_stalls_keeps_the_partial(
    lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any
) -> None:
    upstream_for_lab.script("stall-stop", Script([*(Text(chunk) for chunk in PARTIAL), Stall(STALL)]))
    nb = "stop.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)
    panel = open_panel(page)

    # Given a reply that streamed a partial answer and whose upstream is now silent
    run_id = send_chat(page, "Start and stall", "openai:stall-stop")
    stalled = upstream_for_lab.wait_for_request("stall-stop", timeout=30)
    wait_text(page, run_id, "".join(PARTIAL))
    assert reply_of(page, run_id)["status"] == "running"  # type: ignore[index]

    # Then the panel offers "Stop" while the reply runs
    stop = shown_stop_button(page, run_id)

    # When the user clicks Stop
    clicked_at = time.monotonic()
    stop.click()

    # Then the upstream sees its connection close at once, although it was silent
    closed_at = stalled.wait_closed(STALL + 30)
    assert closed_at is not None, "the upstream connection stayed open after Stop"
    assert closed_at is not None and closed_at >= clicked_at
    # And the partial stays, marked stopped
    reply = wait_status(page, run_id, "stopped", 30)
    assert normalized(reply["text"]) == normalized("".join(PARTIAL))
    assert "stopped" in (
        panel.locator(f"article[data-run-id='{run_id}'] .jp-StreamChat-replyStatus").text_content() or ""
    )
    assert panel.get_by_role("button", name="Stop", exact=True).count() == 0
    # And the notebook records the partial once, as stopped
    (_, turn) = wait_recorded_once(page, lab, nb, [run_id])[run_id]
    assert turn["reply"]["status"] == "stopped" and turn["reply"]["partial"] is True
    assert turn["reply"]["content"] == "".join(PARTIAL)


def test_reload_mid_run_reattaches_continues_and_completes(
    lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any
) -> None:
    words = plain_words(80, "r")
    upstream_for_lab.script("reload-words", Script.reply(words, pace=0.3))  # ~24 s: outlives a reload
    nb = "reload.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)
    open_panel(page)

    # Given a reply streaming in the panel
    run_id = send_chat(page, "Many words please", "openai:reload-words")
    wait_until(lambda: len((reply_of(page, run_id) or {"text": ""})["text"]) > 0, 30, what="the first words")

    # When the user reloads the page and opens the panel again
    reload_lab(page, nb)
    panel = open_panel(page)

    # Then the same run's reply re-appears (once), still running, and goes on growing
    reply = wait_until(lambda: reply_of(page, run_id), 30, what=lambda: f"run {run_id} after reload: {replies(page)}")
    assert reply["status"] == "running", f"the run ended before the page came back: {reply}"
    lengths: set[int] = set()

    def sample() -> dict[str, Any] | None:
        current = reply_of(page, run_id)
        if current is not None and current["status"] == "running":
            lengths.add(len(current["text"]))
        return current if current is not None and current["status"] != "running" else None

    final = wait_until(sample, 90, interval=0.05, what=lambda: f"the re-attached reply to end: {replies(page)}")
    assert len(lengths - {0}) >= 2, f"the re-attached reply did not grow: {sorted(lengths)}"
    # And it completes with exactly the run's text
    assert final["status"] == "completed"
    record = lab.run_record(run_id)
    assert record["status"] == "completed"
    assert normalized(final["text"]) == normalized(record["text"]) == normalized("".join(words))
    assert panel.locator(".jp-StreamChat-prompt").last.text_content() == "Many words please"
    # And the turn is recorded once
    (_, turn) = wait_recorded_once(page, lab, nb, [run_id])[run_id]
    assert turn["reply"]["content"] == record["text"]
    assert dialogs_seen(page) == []


def test_stop_works_on_a_reattached_run(lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any) -> None:
    upstream_for_lab.script("reattach-stall", Script([*(Text(chunk) for chunk in PARTIAL), Stall(STALL)]))
    nb = "reattach-stop.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)
    open_panel(page)

    # Given a stalled reply, and the page reloaded: the panel re-attached to the run it no longer started
    run_id = send_chat(page, "Stall, then reload", "openai:reattach-stall")
    stalled = upstream_for_lab.wait_for_request("reattach-stall", timeout=30)
    wait_text(page, run_id, "".join(PARTIAL))
    reload_lab(page, nb)
    open_panel(page)
    wait_text(page, run_id, "".join(PARTIAL), 30)
    assert reply_of(page, run_id)["status"] == "running"  # type: ignore[index]
    assert stalled.client_closed_at is None, "the reload must not stop a detached run"

    # When the user clicks Stop on the re-attached reply
    stop = shown_stop_button(page, run_id)
    clicked_at = time.monotonic()
    stop.click()

    # Then the upstream call ends at once and the partial stays, marked stopped
    closed_at = stalled.wait_closed(STALL + 30)
    assert closed_at is not None and closed_at >= clicked_at
    reply = wait_status(page, run_id, "stopped", 30)
    assert normalized(reply["text"]) == normalized("".join(PARTIAL))
    assert lab.run_record(run_id)["status"] == "stopped"
    (_, turn) = wait_recorded_once(page, lab, nb, [run_id])[run_id]
    assert turn["reply"]["status"] == "stopped" and turn["reply"]["content"] == "".join(PARTIAL)


def test_compare_stop_one_pane_other_completes(lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any) -> None:
    upstream_for_lab.script("cmp-stall", Script([*(Text(chunk) for chunk in PARTIAL), Stall(STALL)]))
    paced = plain_words(30, "c")
    upstream_for_lab.script("cmp-paced", Script.reply(paced, pace=0.25))  # ~7.5 s: still running at the stop
    nb = "compare.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)
    panel = open_panel(page)

    # When the user switches to Compare, picks a stalling model and a paced one, and sends
    panel.get_by_role("button", name="Compare", exact=True).click()
    assert panel.get_by_role("button", name="Compare", exact=True).get_attribute("aria-pressed") == "true"
    assert panel.get_by_label("Model", exact=True).count() == 0, "only the active mode's controls are shown"
    panel.get_by_label("Model 1", exact=True).select_option("openai:cmp-stall")
    panel.get_by_label("Model 2", exact=True).select_option("openai:cmp-paced")
    panel.get_by_label("Message", exact=True).fill("Compare yourselves")
    panel.get_by_role("button", name="Send", exact=True).click()

    # Then two panes stream, each with its own Stop, plus one Stop all
    panes = panel.locator("article.jp-StreamChat-pane")
    wait_until(
        lambda: len([r for r in replies(page) if r["pane"] and r["run"]]) == 2,
        30,
        what=lambda: f"two panes with run ids: {replies(page)}\n{console_of(page)}",
    )
    stall_run, paced_run = panes.nth(0).get_attribute("data-run-id"), panes.nth(1).get_attribute("data-run-id")
    assert stall_run and paced_run and stall_run != paced_run
    stalled = upstream_for_lab.wait_for_request("cmp-stall", timeout=30)
    wait_text(page, stall_run, "".join(PARTIAL))
    assert panel.get_by_role("button", name="Stop all", exact=True).is_visible()
    assert panes.nth(0).get_by_role("button", name="Stop", exact=True).is_visible()
    assert panes.nth(1).get_by_role("button", name="Stop", exact=True).is_visible()
    assert reply_of(page, paced_run)["status"] == "running"  # type: ignore[index]

    # When the user clicks the stalled pane's Stop
    clicked_at = time.monotonic()
    panes.nth(0).get_by_role("button", name="Stop", exact=True).click()

    # Then that model's upstream connection closes at once, although it was silent
    closed_at = stalled.wait_closed(STALL + 30)
    assert closed_at is not None and closed_at >= clicked_at
    stopped = wait_status(page, stall_run, "stopped", 30)
    assert normalized(stopped["text"]) == normalized("".join(PARTIAL))
    # And the other pane goes on and completes
    assert reply_of(page, paced_run)["status"] == "running"  # type: ignore[index]
    completed = wait_status(page, paced_run, "completed", 60)
    assert normalized(completed["text"]) == normalized("".join(paced))
    paced_request = upstream_for_lab.wait_for_request("cmp-paced", timeout=5)
    assert paced_request.client_closed_at is None

    # And the summary shows both runs
    summary = panel.locator("table[aria-label=Summary]")
    summary.wait_for(state="visible")
    rows = summary.locator("tbody tr")
    assert {rows.nth(i).get_attribute("data-run-id") for i in range(rows.count())} == {stall_run, paced_run}
    statuses = {rows.nth(i).get_attribute("data-run-id"): rows.nth(i).inner_text() for i in range(rows.count())}
    assert "stopped" in statuses[stall_run] and "completed" in statuses[paced_run]
    # And each finished pane offers "Insert"; the Stop buttons and Stop all are gone
    assert panes.nth(0).get_by_role("button", name="Insert", exact=True).is_visible()
    assert panel.get_by_role("button", name="Stop all", exact=True).count() == 0

    # And both turns are in the notebook once each, under one conversation id
    turns = wait_recorded_once(page, lab, nb, [stall_run, paced_run])
    (conversation_a, stall_turn), (conversation_b, paced_turn) = turns[stall_run], turns[paced_run]
    assert conversation_a == conversation_b
    assert stall_turn["reply"]["status"] == "stopped" and stall_turn["reply"]["content"] == "".join(PARTIAL)
    assert paced_turn["reply"]["status"] == "completed" and paced_turn["reply"]["content"] == "".join(paced)
    assert {stall_turn["mode"], paced_turn["mode"]} == {"direct"}
    assert dialogs_seen(page) == []


def test_turn_into_a_notebook_with_unsaved_edits(lab: LabProcess, page_for: Any) -> None:
    nb = "dirty.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)
    # Given unsaved edits in the notebook
    page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
    page.keyboard.type("x = 42")
    wait_until(lambda: document_state(page)["dirty"], 10, what="unsaved edits")
    open_panel(page)

    # When a reply from the panel completes
    run_id = send_chat(page, "A quick one", "demo:fast")
    wait_status(page, run_id, "completed", 60)

    # Then the turn is in the file at once (a reload now would lose nothing) and in the open document, with the
    # user's edit, the document still dirty and the edit not on disk
    wait_until(lambda: run_id in document_turns(page), 30, what="the turn in the open document")
    state = document_state(page)
    assert state["dirty"] is True and state["cells"] == ["x = 42"]
    assert len(disk_turns(lab, nb)[run_id]) == 1
    assert "x = 42" not in json.dumps(lab.read_notebook(nb)["cells"])

    # When the user saves
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")

    # Then the file holds the user's edit and the turn exactly once, and no "File Changed" (or other) dialog came
    wait_until(lambda: run_id in disk_turns(lab, nb), 20, what="the turn in the saved file")
    saved = lab.read_notebook(nb)
    source = saved["cells"][0]["source"]
    assert ("".join(source) if isinstance(source, list) else source) == "x = 42"
    assert len(disk_turns(lab, nb)[run_id]) == 1
    assert disk_turns(lab, nb)[run_id][0][1]["reply"]["content"] == lab.run_record(run_id)["text"]
    assert dialogs_seen(page) == []


def test_insert_cell_from_a_code_block(lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any) -> None:
    code = "x = 6 * 7\nprint(x)"
    upstream_for_lab.script("code", Script.reply(["Try this:\n\n", "```python\n", f"{code}\n", "```\n\n", "Done."]))
    nb = "insert.ipynb"
    write_notebook(lab, nb, ["a = 1", "b = 2"])
    page = page_for(nb)
    panel = open_panel(page)

    # Given the first cell is active and a reply with a code block
    page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputPrompt").click()
    wait_until(lambda: page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex") == 0, 10)
    run_id = send_chat(page, "Show me code", "openai:code")
    wait_status(page, run_id, "completed", 60)
    block = panel.locator(f"article[data-run-id='{run_id}'] .jp-StreamChat-code")
    block.wait_for()
    assert block.count() == 1
    assert block.get_by_role("button", name="Copy", exact=True).is_visible()

    # When the user clicks the block's "Insert cell"
    block.get_by_role("button", name="Insert cell", exact=True).click()

    # Then a code cell with exactly that code is below the active cell (between the two cells)
    wait_until(lambda: len(document_state(page)["cells"]) == 3, 10, what=lambda: f"{document_state(page)}")
    assert document_state(page)["cells"] == ["a = 1", code, "b = 2"]
    types = page.evaluate(
        """() => { const m = window.jupyterapp.shell.currentWidget.context.model;
                   return Array.from({length: m.cells.length}, (_, i) => m.cells.get(i).type); }"""
    )
    assert types == ["code", "code", "code"]


def test_a_code_block_in_a_list_item_stays_in_the_item(
    lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any
) -> None:
    # Given a reply (streamed in pieces) whose code block is indented into a numbered list item, as LLMs write them
    pieces = ["1. Install it:\n\n", "   ```python\n", "   import math\n", "   print(math.pi)\n", "   ```\n\n"]
    upstream_for_lab.script("listed", Script.reply([*pieces, "2. Run ", "it.\n"]))
    nb = "listed.ipynb"
    write_notebook(lab, nb, ["a = 1"])
    page = page_for(nb)
    panel = open_panel(page)
    page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputPrompt").click()

    # When it completes
    run_id = send_chat(page, "How do I install it?", "openai:listed")
    wait_status(page, run_id, "completed", 60)

    # Then the code block is inside the first list item, with its toolbar, and the second item is numbered 2
    reply = panel.locator(f"article[data-run-id='{run_id}']")
    assert reply.locator("ol > li .jp-StreamChat-code pre").count() == 1
    assert reply.locator("ol > li").first.inner_text().startswith("Install it:")
    assert reply.locator("ol").last.evaluate("ol => ol.start") == 2
    screenshot(page, "panel-code-in-list.png")
    # And "Insert cell" inserts the code without the list's indentation
    reply.locator(".jp-StreamChat-code").get_by_role("button", name="Insert cell", exact=True).click()
    wait_until(lambda: len(document_state(page)["cells"]) == 2, 10, what=lambda: f"{document_state(page)}")
    assert document_state(page)["cells"] == ["a = 1", "import math\nprint(math.pi)"]


def test_context_of_a_failed_cell_reaches_the_upstream(
    lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any
) -> None:
    upstream_for_lab.script("ctx", Script.reply(["You ", "divided ", "by ", "zero."]))
    nb = "context.ipynb"
    lab.write_notebook(nb, "value = 1/0")
    page = page_for(nb)
    # Given a cell that raised an error (it is the active cell)
    run_active_cell(page)
    wait_until(
        lambda: page.evaluate(
            """() => { const cell = window.jupyterapp.shell.currentWidget.context.model.cells.get(0);
                       return cell.outputs.length > 0 && cell.outputs.get(0).type === 'error'; }"""
        ),
        60,
        what="the cell's error output",
    )
    panel = open_panel(page)

    # When the user turns "Include active cell" on
    toggle = panel.get_by_role("button", name="Include active cell", exact=True)
    assert toggle.get_attribute("aria-pressed") == "false"
    assert panel.get_by_label("Context", exact=True).is_hidden()
    toggle.click()

    # Then the cell is a chip, and the Context view shows the cell's source and its error as they will be sent
    assert toggle.get_attribute("aria-pressed") == "true"
    panel.get_by_role("button", name="Remove cell 1", exact=True).wait_for()
    view = panel.get_by_label("Context", exact=True)
    view.wait_for(state="visible")
    context = view.locator("section[aria-label='cell 1'] pre").evaluate("node => node.textContent")
    assert "value = 1/0" in context and "ZeroDivisionError" in context
    assert "\x1b[" not in context, "terminal colour codes must not reach the model"

    # When the user sends a question
    run_id = send_chat(page, "Why does this fail?", "openai:ctx")
    wait_status(page, run_id, "completed", 60)

    # Then the upstream got the cell as a context item (a text part) before the question
    request = upstream_for_lab.wait_for_request("ctx", timeout=10)
    user_messages = [m["content"] for m in request.body["messages"] if m["role"] == "user"]
    assert user_messages[-1] == [{"type": "text", "text": context}, {"type": "text", "text": "Why does this fail?"}]
    # And the panel shows the user's words above the reply, with the cell as the context sent
    turn = panel.locator(".jp-StreamChat-turn").last
    assert turn.locator(".jp-StreamChat-prompt").text_content() == "Why does this fail?"
    assert turn.get_by_role("group", name="Context sent", exact=True).locator(
        ".jp-StreamChat-sentChip"
    ).all_text_contents() == ["cell 1cell"]


def test_run_started_from_a_cell_shows_live_in_the_panel(
    lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any
) -> None:
    words = plain_words(30, "k")
    upstream_for_lab.script("cell-run", Script.reply(words, pace=0.3))  # ~9 s: seen live by a 2 s poll
    nb = "cell-run.ipynb"
    lab.write_notebook(
        nb, "from jupyter_streamchat import chat\nw = chat('Hello from a cell', model='openai:cell-run')"
    )
    page = page_for(nb)
    page_posts: list[str] = []
    page.on("request", lambda r: r.method == "POST" and "/streamchat/" in r.url and page_posts.append(r.url))
    open_panel(page)

    # When the user runs the cell (the kernel starts the run, not the panel)
    run_active_cell(page)

    # Then the panel shows that run live (running, growing), with the run id the server knows for the notebook
    reply = wait_until(
        lambda: next((r for r in replies(page) if r["run"] and r["status"] == "running" and r["text"]), None),
        60,
        what=lambda: f"the cell's run live in the panel: {replies(page)}\n{console_of(page)[-2000:]}",
    )
    runs = lab.api("GET", "streamchat/runs", params={"notebook": nb}).json()["runs"]
    assert [run["id"] for run in runs] == [reply["run"]], "one run, two views"
    run_id = reply["run"]
    assert not any(url.endswith("/streamchat/runs") for url in page_posts), f"the panel started a run: {page_posts}"
    final = wait_status(page, run_id, "completed", 60)
    assert normalized(final["text"]) == normalized(lab.run_record(run_id)["text"]) == normalized("".join(words))
    assert page.locator(PANEL).locator(".jp-StreamChat-prompt").last.text_content() == "Hello from a cell"
    # And the cell's own widget shows the same reply
    page.locator(".jp-Cell .jp-OutputArea").first.get_by_text(words[-1].strip()).wait_for(timeout=30_000)
    # And the notebook records the run once (running the cell left the document dirty: the turn goes out with
    # the user's save)
    wait_until(lambda: run_id in document_turns(page), 30, what="the turn in the open document")
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    wait_until(lambda: run_id in disk_turns(lab, nb), 20, what="the turn in the saved file")
    assert len(document_turns(page)[run_id]) == len(disk_turns(lab, nb)[run_id]) == 1
    assert disk_turns(lab, nb)[run_id][0][1]["reply"]["content"] == "".join(words)
    assert dialogs_seen(page) == []


def test_escape_stops_the_running_reply(lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any) -> None:
    upstream_for_lab.script("esc-stall", Script([*(Text(chunk) for chunk in PARTIAL), Stall(STALL)]))
    nb = "escape.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)
    panel = open_panel(page)
    run_id = send_chat(page, "Go on until I press Escape", "openai:esc-stall")
    stalled = upstream_for_lab.wait_for_request("esc-stall", timeout=30)
    wait_text(page, run_id, "".join(PARTIAL))

    # When the user presses Escape in the panel (in the message box)
    pressed_at = time.monotonic()
    panel.get_by_label("Message", exact=True).press("Escape")

    # Then the reply stops, its partial kept, and the upstream call ends
    closed_at = stalled.wait_closed(STALL + 30)
    assert closed_at is not None and closed_at >= pressed_at
    reply = wait_status(page, run_id, "stopped", 30)
    assert normalized(reply["text"]) == normalized("".join(PARTIAL))


# ----- "Saved in <notebook>": only once the server confirms the record (SPEC section 6) ------------------------------


RECORD_NOTE = """
run => {
  const article = document.querySelector(`#jp-StreamChat-panel article[data-run-id="${run}"]`);
  const note = article?.querySelector('.jp-StreamChat-replyRecord');
  return article ? {state: article.dataset.recorded ?? null, text: note && !note.hidden ? note.textContent : ''} : null;
}
"""


def record_note(page: Any, run_id: str) -> dict[str, Any]:
    """What the reply of ``run_id`` says about its record: ``data-recorded`` and the visible note."""
    return dict(page.evaluate(RECORD_NOTE, run_id) or {})


def wait_record_note(page: Any, run_id: str, state: str, timeout: float = 60.0) -> dict[str, Any]:
    return dict(
        wait_until(
            lambda: (note := record_note(page, run_id)).get("state") == state and note,
            timeout,
            what=lambda: f"data-recorded={state} on {run_id}: {record_note(page, run_id)}\n{console_of(page)[-2000:]}",
        )
    )


def test_the_reply_says_saved_once_the_server_confirms_the_record(
    lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any
) -> None:
    upstream_for_lab.script("saved", Script.reply(plain_words(6, "s"), pace=0.05))
    nb = "saved.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)
    panel = open_panel(page)

    # When a reply completes in a notebook
    run_id = send_chat(page, "Save me", "openai:saved")
    wait_status(page, run_id, "completed")

    # Then it says "Saved in saved.ipynb" once the server says the notebook holds the turn
    note = wait_record_note(page, run_id, "recorded")
    assert note["text"] == f"Saved in {nb}"
    record = lab.run_record(run_id)
    assert record["recorded"] == "recorded" and record["notebook"] == nb
    # And the note is a status line (read by screen readers), and the turn is in the file once
    assert panel.get_by_role("status").filter(has_text=f"Saved in {nb}").count() == 1
    wait_recorded_once(page, lab, nb, [run_id])
    shoot_panel(page, "panel-saved-note")


def test_a_refused_request_shows_the_server_message_and_no_saved_note(lab: LabProcess, page_for: Any) -> None:
    nb = "refused.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)
    panel = open_panel(page)
    # Given the notebook's file was deleted under the open document: the server refuses runs that name it
    (lab.root / nb).unlink()

    # When the user sends a message
    panel.get_by_label("Model", exact=True).select_option("demo:fast")
    panel.get_by_label("Message", exact=True).fill("Will this be saved?")
    panel.get_by_role("button", name="Send", exact=True).click()

    # Then the reply fails with the server's one-line message, and says nothing about being saved
    failed = wait_until(
        lambda: next((r for r in replies(page) if r["status"] == "failed"), None),
        30,
        what=lambda: f"a failed reply: {replies(page)}",
    )
    assert failed["run"] is None, "a refused request started no run"
    assert failed["error"].startswith("http_404: ") and "\n" not in failed["error"].strip(), failed["error"]
    assert nb in failed["error"], failed["error"]
    notes = page.evaluate(
        "() => Array.from(document.querySelectorAll('#jp-StreamChat-panel .jp-StreamChat-replyRecord'))"
        ".filter(n => !n.hidden).map(n => n.textContent)"
    )
    assert notes == []
    assert "Saved" not in (panel.text_content() or "")
    assert not (lab.root / nb).exists(), "a refused request recreated the notebook"


def test_a_notebook_deleted_mid_run_says_the_notebook_is_gone(
    lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any
) -> None:
    upstream_for_lab.script("gone-stall", Script([*(Text(chunk) for chunk in PARTIAL), Stall(STALL)]))
    nb = "gone.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)
    panel = open_panel(page)

    # Given a reply streaming into a notebook
    run_id = send_chat(page, "Start and stall", "openai:gone-stall")
    wait_text(page, run_id, "".join(PARTIAL))

    # When the notebook is deleted (through Jupyter's contents API) and the user stops the reply
    lab.api("DELETE", f"api/contents/{nb}")
    shown_stop_button(page, run_id).click()
    wait_status(page, run_id, "stopped")

    # Then the reply says it was not saved because the notebook is gone, and the file is not recreated
    note = wait_record_note(page, run_id, "gone")
    assert note["text"] == f"Not saved: the notebook {nb} was deleted"
    assert "Saved in" not in (panel.text_content() or "")
    assert not (lab.root / nb).exists(), "the deleted notebook was recreated"
    # And the run stays readable from the server
    record = lab.run_record(run_id)
    assert record["recorded"] == "gone" and record["text"] == "".join(PARTIAL)
    shoot_panel(page, "panel-gone-note")


def test_a_notebook_renamed_mid_run_gets_the_turn_under_its_new_name(
    lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any
) -> None:
    upstream_for_lab.script("rename-stall", Script([*(Text(chunk) for chunk in PARTIAL), Stall(STALL)]))
    nb, renamed = "before-rename-mid-run.ipynb", "after-rename-mid-run.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)
    open_panel(page)

    # Given a reply streaming into a notebook
    run_id = send_chat(page, "Start and stall", "openai:rename-stall")
    wait_text(page, run_id, "".join(PARTIAL))

    # When the user renames the open notebook (JupyterLab's rename, as the file browser and the title do it)
    page.evaluate(f"() => window.jupyterapp.shell.currentWidget.context.rename({renamed!r})")
    wait_until(lambda: (lab.root / renamed).exists(), 15, what="the renamed file")
    # And then stops the reply
    shown_stop_button(page, run_id).click()
    wait_status(page, run_id, "stopped")

    # Then the turn lands in the renamed file once, the old name is not recreated, and the reply says where
    note = wait_record_note(page, run_id, "recorded")
    assert renamed in note["text"]
    assert len(disk_turns(lab, renamed)[run_id]) == 1
    assert not (lab.root / nb).exists(), "the old name was recreated"
    assert lab.run_record(run_id)["notebook"] == renamed
    # And the open document (now under the new name) holds it too
    wait_until(lambda: run_id in document_turns(page), 15, what="the turn in the renamed open document")


def shoot_panel(page: Any, name: str) -> None:
    """Screenshots of the panel as it is: light and dark, the sidebar as it opens and widened."""
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    shots = []
    try:
        for size in ("narrow", "wide"):
            if size == "wide":
                widen_right_sidebar(page, 760)
            for theme, suffix in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
                set_theme(page, theme)
                shots.append(screenshot(page, f"{name}-{size}-{suffix}.png"))
    finally:
        set_theme(page, "JupyterLab Light")  # the theme is a user setting: later pages would open dark
    for shot in shots:
        assert shot.stat().st_size > 20_000, f"{shot} looks empty"


def test_palette_shortcut_and_settings(lab: LabProcess, page_for: Any) -> None:
    nb = "palette.ipynb"
    lab.write_notebook(nb)
    page = page_for(nb)
    panel = page.locator(PANEL)
    assert page.evaluate("() => window.jupyterapp.commands.label('streamchat:open')") == "Open Stream Chat"
    assert not panel.is_visible(), "a new workspace starts with the panel closed"

    # When the user finds "Open Stream Chat" in the command palette and picks it
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:activate-command-palette')")
    search = page.locator(".lm-CommandPalette-input")
    search.wait_for(state="visible")
    search.fill("Stream Chat")
    item = page.locator(".lm-CommandPalette-item", has_text="Open Stream Chat")
    item.wait_for(state="visible")
    item.click()

    # Then the panel shows, with its tab titled "Stream Chat"
    panel.wait_for(state="visible")
    titles = page.evaluate("() => Array.from(window.jupyterapp.shell.widgets('right')).map(w => w.title.label)")
    assert "Stream Chat" in titles

    # When the sidebar is closed and the user presses Alt+Shift+C
    page.evaluate("() => window.jupyterapp.shell.collapseRight()")
    panel.wait_for(state="hidden")
    page.locator(".jp-Notebook").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Alt+Shift+KeyC")
    # Then it shows again
    panel.wait_for(state="visible", timeout=10_000)

    # And the settings pick the models: defaultModel in "Model" (not the server's default), compareModels in compare
    open_panel(page)
    server_default = lab.api("GET", "streamchat/models").json()["default"]
    assert server_default != DEFAULT_MODEL_SETTING
    model = panel.get_by_label("Model", exact=True)
    wait_until(
        lambda: model.input_value() == DEFAULT_MODEL_SETTING,
        10,
        what=lambda: f"{DEFAULT_MODEL_SETTING} selected, not {model.input_value()}",
    )
    panel.get_by_role("button", name="Compare", exact=True).click()
    assert panel.get_by_label("Model 1", exact=True).input_value() == COMPARE_MODELS_SETTING[0]
    assert panel.get_by_label("Model 2", exact=True).input_value() == COMPARE_MODELS_SETTING[1]


def test_screenshots_chat_and_compare_light_and_dark(lab: LabProcess, page_for: Any) -> None:
    nb = "screenshots.ipynb"
    lab.write_notebook(nb, "import math\nprint(math.pi)")
    page = page_for(nb)
    panel = open_panel(page)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    widen_right_sidebar(page, 760)
    try:
        # Chat: a finished reply with Markdown, a list and a code block (with its toolbar)
        run_id = send_chat(page, "Show me what you can do", "demo:chat")
        wait_status(page, run_id, "completed", 60)
        panel.locator(f"article[data-run-id='{run_id}'] .jp-StreamChat-code").first.wait_for()
        set_theme(page, "JupyterLab Light")
        shots = [screenshot(page, "panel-chat-light.png")]
        set_theme(page, "JupyterLab Dark")
        shots.append(screenshot(page, "panel-chat-dark.png"))

        # Compare: two finished panes and the summary
        panel.get_by_role("button", name="Compare", exact=True).click()
        panel.get_by_label("Model 1", exact=True).select_option("demo:chat")
        panel.get_by_label("Model 2", exact=True).select_option("demo:fast")
        panel.get_by_label("Message", exact=True).fill("Compare yourselves")
        panel.get_by_role("button", name="Send", exact=True).click()
        panel.locator("table[aria-label=Summary]").wait_for(state="visible", timeout=60_000)
        assert {r["status"] for r in replies(page) if r["pane"]} == {"completed"}
        shots.append(screenshot(page, "panel-compare-dark.png"))
        set_theme(page, "JupyterLab Light")
        shots.append(screenshot(page, "panel-compare-light.png"))
    finally:
        set_theme(page, "JupyterLab Light")  # the theme is a user setting: later pages would open dark
    for shot in shots:
        assert shot.stat().st_size > 20_000, f"{shot} looks empty"
    assert dialogs_seen(page) == []
