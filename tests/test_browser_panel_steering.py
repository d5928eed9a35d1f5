"""Steering a conversation in the side panel (SPEC 11, issue 18), as a user walks it: a real JupyterLab, a real
browser, the real loopback upstream, prices configured on the server.

What reached the upstream is read from the upstream's own record of each request (``requests_for``), what the
notebook holds from the file (after the user's save) and the open document; the panel's state from its DOM
(``data-run-id``, the accessible names of its controls).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
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
from jupyter_streamchat.kernel._history import History
from tests.test_browser_panel import PANEL, VIEWPORT, document_turns, open_panel, reload_lab, replies, shoot_panel

pytestmark = [
    pytest.mark.timeout(400),
    pytest.mark.skipif(browser_available() is not None, reason=browser_available() or ""),
]

MODELS = ["steer", "steer-cmp"]
NO_VALUE = "\u2013"  # the summary's en dash for "not known"
# USD per million tokens: each reply below is 3 deltas (3 output tokens) after a usage of 5 input tokens, so it
# costs (5 * 2000 + 3 * 10000) / 1e6 = 0.04 USD, shown "$0.0400".
PRICES = {"openai:steer": {"input": 2000, "output": 10000}}
INPUT_TOKENS, OUTPUT_TOKENS = 5, 3
REPLY_COST = (INPUT_TOKENS * 2000 + OUTPUT_TOKENS * 10000) / 1_000_000
SYSTEM = "Answer in one line."


def cost_text(usd: float) -> str:
    """A cost as replies show it: three significant digits, at least cents (the widgets' rule, written out)."""
    decimals = max(2, 2 - math.floor(math.log10(usd)))
    return "$" + format(Decimal(usd).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP), "f")


def numbered_replies(prefix: str, count: int, **answered: Any) -> list[Script]:
    """One script per request, each reply its own words ("Reply a1 ." ...), paced so tokens/s can be told."""
    return [Script.reply([f"Reply {prefix}{i} ", "in three ", "words."], pace=0.1, **answered) for i in range(count)]


@pytest.fixture(scope="module")
def upstream_for_lab() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, upstream_for_lab: FakeUpstream) -> Iterator[LabProcess]:
    process = LabProcess(
        tmp_path_factory.mktemp("lab"), extra_args=upstream_args(upstream_for_lab.openai_base_url, MODELS)
    )
    config = process.workdir / "config" / "jupyter_server_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "StreamChat": {"prices": PRICES}}))
    with running(process):
        yield process


@pytest.fixture
def page_for(lab: LabProcess, browser: Any) -> Iterator[Any]:
    pages: list[Any] = []

    def open_page(path: str) -> Any:
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        context.set_default_timeout(60_000)
        page = open_lab(browser, lab, path, context=context)
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        page.context.close()
    lab.shutdown_kernels()


# ----- what the panel shows --------------------------------------------------------------------------------------

THREAD = """
() => Array.from(document.querySelectorAll('#jp-StreamChat-panel .jp-StreamChat-thread > .jp-StreamChat-turn'))
.map(t => {
  const nav = t.querySelector('.jp-StreamChat-alternatives');
  const reply = t.querySelector('article.jp-StreamChat-reply');
  return {
    run: reply?.dataset.runId ?? null,
    status: reply?.dataset.status ?? null,
    prompt: t.querySelector('.jp-StreamChat-prompt')?.textContent ?? '',
    position: nav && !nav.hidden ? t.querySelector('.jp-StreamChat-position').textContent : null,
    stats: t.querySelector('.jp-StreamChat-replyStats')?.textContent ?? '',
    params: t.querySelector('.jp-StreamChat-turnParams')?.textContent ?? '',
    note: t.querySelector('.jp-StreamChat-replayNote:not([hidden])')?.textContent ?? '',
  };
})
"""


def thread(page: Any) -> list[dict[str, Any]]:
    """The turns of the shown branch, first first."""
    return list(page.evaluate(THREAD))


def wait_thread(page: Any, runs: list[str], what: str) -> list[dict[str, Any]]:
    """Until the shown branch is ``runs`` (in order), every reply ended; returns the turns."""
    return list(
        wait_until(
            lambda: (
                (shown := thread(page))
                and [t["run"] for t in shown] == runs
                and all(t["status"] != "running" for t in shown)
                and shown
            ),
            60,
            what=lambda: f"{what}: the branch {runs}, shown: {thread(page)}\n{console_of(page)[-2000:]}",
        )
    )


def turn(page: Any, run: str) -> Any:
    return page.locator(PANEL).locator(f".jp-StreamChat-turn:has(article[data-run-id='{run}'])")


def new_run(page: Any, act: Any, what: str) -> str:
    """Do ``act`` (a click); the run id of the reply it added, once that reply completed and the open document
    holds its turn (a turn recorded later would become the active leaf again, SPEC 11, under the user's next
    switch)."""
    before = {r["run"] for r in replies(page)}
    act()
    run = str(
        wait_until(
            lambda: next((r["run"] for r in replies(page) if r["run"] and r["run"] not in before), None),
            30,
            what=lambda: f"{what}: a new reply: {replies(page)}\n{console_of(page)[-2000:]}",
        )
    )
    wait_until(
        lambda: any(r["run"] == run and r["status"] == "completed" for r in replies(page)),
        60,
        what=lambda: f"{what}: {run} completed: {replies(page)}",
    )
    wait_until(lambda: run in document_turns(page), 30, what=lambda: f"{what}: {run} in the open document")
    return run


def sent_messages(upstream: FakeUpstream, count: int) -> list[Any]:
    """The messages of the upstream's ``count``-th request for ``steer`` (1-based), as it received them."""
    requests = wait_until(
        lambda: len(found := upstream.requests_for("steer")) >= count and found,
        30,
        what=lambda: f"{count} requests for steer: {len(upstream.requests_for('steer'))}",
    )
    return list(requests[count - 1].body["messages"])


def texts(page: Any, runs: list[str]) -> dict[str, str]:
    """The replies of ``runs`` as the open document records them (exactly what was streamed)."""
    recorded = document_turns(page)
    return {run: recorded[run][0][1]["reply"]["content"] for run in runs}


def file_section(lab: LabProcess, path: str) -> dict[str, Any]:
    return dict(lab.read_notebook(path)["metadata"].get("streamchat") or {})


def active_branch(section: dict[str, Any], conversation: str) -> list[dict[str, Any]]:
    """The turns from the first to the conversation's active leaf, as docs/metadata.md reads them."""
    entry = section["conversations"][conversation]
    by_run = {t["run"]: t for t in entry["turns"]}
    branch, current = [], entry["active"]
    while current in by_run:
        branch.append(by_run[current])
        current = by_run[current]["parent"]
    return branch[::-1]


def turn_markdown(t: dict[str, Any], stats: str) -> str:
    """One turn as the panel inserts it as a cell, as ``history().to_markdown()`` writes it; ``stats``: the reply's
    stats line as the panel shows it."""
    model_line = f"**{t['model']}** ({t['reply']['status']} · {stats})"
    return f"**You**\n\n{t['prompt']['content']}\n\n{model_line}\n\n{t['reply']['content']}"


def save(page: Any, lab: LabProcess, path: str, check: Any) -> dict[str, Any]:
    """The user saves the notebook; the file's section once ``check(section)`` holds."""
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    return dict(
        wait_until(
            lambda: not document_state(page)["dirty"] and check(section := file_section(lab, path)) and section,
            30,
            what=lambda: f"the saved file: {file_section(lab, path)}",
        )
    )


def export_as(page: Any, file_format: str) -> tuple[str, str]:
    """Pick ``file_format`` under "Export format", press Export: the downloaded file's text and name."""
    panel = page.locator(PANEL)
    panel.get_by_label("Export format", exact=True).select_option(file_format)
    with page.expect_download() as download_info:
        panel.get_by_role("button", name="Export", exact=True).click()
    download = download_info.value
    with open(download.path(), encoding="utf-8") as file:
        return file.read(), download.suggested_filename


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# ----- the user story --------------------------------------------------------------------------------------------


def test_regenerate_edit_switch_continue_replay_export_insert_and_reload(
    lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any
) -> None:
    upstream = upstream_for_lab
    upstream.script("steer", numbered_replies("a", 20))
    nb = "steer.ipynb"
    lab.write_notebook(nb, "print('data')")
    page = page_for(nb)
    panel = open_panel(page)
    panel.get_by_label("Model", exact=True).select_option("openai:steer")

    # Given a system prompt and a temperature out of range: Send refuses in one line and keeps the message
    panel.locator(".jp-StreamChat-params > summary").click()
    panel.get_by_label("System prompt", exact=True).fill(SYSTEM)
    panel.get_by_label("Temperature", exact=True).fill("5")
    panel.get_by_label("Message", exact=True).fill("First question")
    panel.get_by_role("button", name="Send", exact=True).click()
    alert = page.locator(f"{PANEL} .jp-StreamChat-status[role=alert]")
    alert.wait_for()
    assert (alert.text_content() or "").startswith("Temperature must be a number from 0 to 2"), alert.text_content()
    assert panel.get_by_label("Message", exact=True).input_value() == "First question"
    assert upstream.requests_for("steer") == [], "nothing was sent"

    # When the temperature is fixed and the message sent
    panel.get_by_label("Temperature", exact=True).fill("0.3")
    panel.get_by_label("Max tokens", exact=True).fill("64")
    first = new_run(page, lambda: panel.get_by_role("button", name="Send", exact=True).click(), "first question")

    # Then the system prompt and the temperature reach the upstream, and the reply says what it cost
    request = upstream.requests_for("steer")[0].body
    assert request["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "First question"},
    ]
    assert (request["temperature"], request["max_tokens"]) == (0.3, 64)
    shown = wait_until(
        lambda: (t := thread(page)) and t[0]["stats"].endswith(" · $0.0400") and t,
        30,
        what=lambda: f"the cost in the reply's stats: {thread(page)}",
    )
    assert cost_text(REPLY_COST) == "$0.0400"
    assert shown[0]["params"] == "temperature 0.3 · max tokens 64 · system prompt", shown

    # When the user regenerates it twice: alternatives of the first prompt, "2 / 2" then "3 / 3"
    second = new_run(page, lambda: turn(page, first).get_by_role("button", name="Regenerate").click(), "regenerate")
    assert wait_thread(page, [second], "one regenerate")[0]["position"] == "2 / 2"
    third = new_run(page, lambda: turn(page, second).get_by_role("button", name="Regenerate").click(), "again")
    assert wait_thread(page, [third], "two regenerates")[0]["position"] == "3 / 3"
    # each with the same history: the same messages reached the upstream
    assert sent_messages(upstream, 2) == sent_messages(upstream, 3) == sent_messages(upstream, 1)

    # When the user continues: the next prompt follows the shown alternative
    panel.get_by_label("Message", exact=True).fill("Second question")
    follow = new_run(page, lambda: panel.get_by_role("button", name="Send", exact=True).click(), "second question")
    wait_thread(page, [third, follow], "continued")
    reply_text = texts(page, [third])[third]
    assert sent_messages(upstream, 4) == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": reply_text},
        {"role": "user", "content": "Second question"},
    ]

    # When the user edits the first prompt: a new branch from the start, the old one stays
    turn(page, third).get_by_role("button", name="Edit", exact=True).click()
    panel.get_by_label("Edited prompt", exact=True).fill("First question, edited")
    screenshot(page, "panel-steering-edit-light.png")
    edited = new_run(page, lambda: panel.get_by_role("button", name="Send edited prompt", exact=True).click(), "edited")
    assert wait_thread(page, [edited], "edited")[0]["position"] == "4 / 4"
    assert sent_messages(upstream, 5) == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "First question, edited"},
    ]

    # When the user switches back to the first branch: it shows where they were, and the document's active is there
    turn(page, edited).get_by_role("button", name="Previous alternative", exact=True).click()
    shown = wait_thread(page, [third, follow], "switched back")
    assert [t["position"] for t in shown] == ["3 / 4", None]
    conversation = wait_until(
        lambda: next(
            (
                c
                for c, v in (document_state(page)["streamchat"] or {})["conversations"].items()
                if v.get("active") == follow
            ),
            None,
        ),
        30,
        what=lambda: f"active = {follow} in the open document: {document_state(page)['streamchat']}",
    )

    # And continues from it: the history is that branch, verbatim
    panel.get_by_label("Message", exact=True).fill("Third question")
    last = new_run(page, lambda: panel.get_by_role("button", name="Send", exact=True).click(), "third question")
    wait_thread(page, [third, follow, last], "continued the first branch")
    shown_texts = texts(page, [third, follow])
    assert sent_messages(upstream, 6) == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": shown_texts[third]},
        {"role": "user", "content": "Second question"},
        {"role": "assistant", "content": shown_texts[follow]},
        {"role": "user", "content": "Third question"},
    ]

    # When the user replays the second turn (the form now says otherwise), and the provider answers with a newer model
    panel.get_by_label("Temperature", exact=True).fill("1")
    upstream.script("steer", numbered_replies("r", 5, answered_model="steer-0613"))
    replayed = new_run(page, lambda: turn(page, follow).get_by_role("button", name="Replay").click(), "replay")
    shown = wait_until(
        lambda: (t := thread(page)) and [x["run"] for x in t] == [third, replayed] and t[1]["note"] and t,
        30,
        what=lambda: f"the replay's note: {thread(page)}",
    )
    # Then it is a new alternative that sent the same messages, and it says the model changed
    assert shown[1]["position"] == "2 / 2"
    assert "same messages (sha256" in shown[1]["note"] and "matches" in shown[1]["note"], shown[1]["note"]
    assert "response model changed: steer → steer-0613" in shown[1]["note"], shown[1]["note"]
    assert sent_messages(upstream, 7) == sent_messages(upstream, 4)
    screenshot(page, "panel-steering-replay-light.png")
    replay_request = upstream.requests_for("steer")[6].body
    assert (replay_request["temperature"], replay_request["max_tokens"]) == (0.3, 64), "the recorded parameters"

    # When the user goes back to the branch they continued, saves, and exports it as Markdown
    turn(page, replayed).get_by_role("button", name="Previous alternative", exact=True).click()
    wait_thread(page, [third, follow, last], "back to the continued branch")
    section = save(page, lab, nb, lambda s: s["conversations"][conversation].get("active") == last)
    branch = active_branch(section, conversation)
    assert [t["run"] for t in branch] == [third, follow, last]
    assert [t["parent"] for t in branch] == [None, third, follow]
    assert all(t["params"] == {"temperature": 0.3, "max_tokens": 64, "system": SYSTEM} for t in branch), branch
    exported, name = export_as(page, "markdown")

    # Then the file is the active branch as Markdown, exactly as history().to_markdown() writes that branch
    recorded = History([dict(t) for t in branch], conversation, nb)
    assert exported == recorded.to_markdown()
    assert all(t["reply"]["content"] in exported and t["prompt"]["content"] in exported for t in branch)
    assert name == f"steer-{conversation}.md"
    # and as JSON, the branch's turns as the notebook records them; as HTML, a page of its own with no script whose
    # body is the widgets' static output of the branch (history().to_html())
    assert json.loads(export_as(page, "json")[0]) == {"notebook": nb, "conversation": conversation, "turns": branch}
    html = export_as(page, "html")[0]
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
    assert f"<body>{recorded.to_html()}</body>" in html
    stats = {t["run"]: t["stats"] for t in thread(page)}
    sections = [turn_markdown(t, stats[t["run"]]) for t in branch]

    # When the user inserts the branch as cells below the first cell
    page.locator(".jp-Notebook .jp-Cell").first.click()
    panel.get_by_role("button", name="Insert as cells", exact=True).click()
    cells = wait_until(
        lambda: len(c := document_state(page)["cells"]) == 4 and c,
        30,
        what=lambda: f"three cells inserted: {document_state(page)['cells']}",
    )
    # Then there is one Markdown cell per turn, in order, under the cell that was active
    assert cells == ["print('data')", *sections]
    types = page.evaluate(
        "() => { const m = window.jupyterapp.shell.currentWidget.context.model;"
        " return Array.from({length: m.cells.length}, (_, i) => m.cells.get(i).type); }"
    )
    assert types == ["code", "markdown", "markdown", "markdown"]

    # And the conversation's total counts every reply (alternatives too) with its cost
    replies_made = 7
    total = page.locator(f"{PANEL} [aria-label='Conversation total']")
    total_text = wait_until(
        lambda: f"{replies_made} replies" in (t := total.text_content() or "") and t,
        30,
        what=lambda: f"the total: {total.text_content()}",
    )
    assert cost_text(replies_made * REPLY_COST) in total_text, total_text
    assert f"{replies_made * INPUT_TOKENS} tokens in, {replies_made * OUTPUT_TOKENS} out" in total_text, total_text

    # When the page reloads after a save
    save(page, lab, nb, lambda s: True)
    reload_lab(page, nb)
    panel = open_panel(page)

    # Then the same branch shows, with its alternatives, and every reply's statistics from the recorded times
    shown = wait_thread(page, [third, follow, last], "after the reload")
    assert [t["position"] for t in shown] == ["3 / 4", "1 / 2", None]
    for shown_turn, recorded in zip(shown, branch, strict=True):
        created, first_token, finished = (seconds(recorded[k]) for k in ("created", "first_token", "finished"))
        match = re.fullmatch(r"first token (\d+\.\d\d) s · (\d+\.\d) tok/s · 3 tokens · \$0\.0400", shown_turn["stats"])
        assert match, shown_turn
        assert abs(float(match[1]) - (first_token - created)) <= 0.011, (shown_turn, recorded)
        assert abs(float(match[2]) - OUTPUT_TOKENS / (finished - first_token)) <= 0.051 * float(match[2]), shown_turn
    assert cost_text(replies_made * REPLY_COST) in (total.text_content() or "")
    shoot_panel(page, "panel-steering")
    assert dialogs_seen(page) == []


def test_compare_summary_has_a_cost_column(lab: LabProcess, upstream_for_lab: FakeUpstream, page_for: Any) -> None:
    upstream_for_lab.script("steer", numbered_replies("c", 2))
    upstream_for_lab.script("steer-cmp", numbered_replies("d", 2))
    nb = "steer-compare.ipynb"
    lab.write_notebook(nb, "print('compare')")
    page = page_for(nb)
    panel = open_panel(page)

    # When the user compares a priced model with one that has no price
    panel.get_by_role("button", name="Compare", exact=True).click()
    panel.get_by_label("Model 1", exact=True).select_option("openai:steer")
    panel.get_by_label("Model 2", exact=True).select_option("openai:steer-cmp")
    panel.get_by_label("Message", exact=True).fill("Compare the price")
    panel.get_by_role("button", name="Send", exact=True).click()
    table = panel.locator("table[aria-label=Summary]")
    table.wait_for(state="visible", timeout=60_000)

    # Then the summary's Cost column gives the priced pane's cost and a dash for the other; tokens always
    rows = page.evaluate(
        """sel => { const t = document.querySelector(sel);
          const head = Array.from(t.tHead.rows[0].cells).map(c => c.textContent);
          return Array.from(t.tBodies[0].rows).map(r =>
            Object.fromEntries(Array.from(r.cells).map((c, i) => [head[i], c.textContent]))); }""",
        f"{PANEL} table[aria-label=Summary]",
    )
    assert [(r["Cost"], r["Tokens"]) for r in rows] == [(cost_text(REPLY_COST), "3"), (NO_VALUE, "3")], rows
    screenshot(page, "panel-compare-cost-light.png")
    assert dialogs_seen(page) == []
