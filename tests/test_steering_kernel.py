"""Steering a conversation from a notebook's kernel (SPEC 11): parameters, Regenerate and alternatives,
``history()``, ``replay()`` and cost, in a real kernel started by a real server (and in one no server started),
against the real loopback upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from harness.kernels import Kernel, LocalKernel, ServerKernel
from harness.server_process import ServerProcess, serving
from harness.upstream import FakeUpstream, Script
from harness.waiting import await_until
from tests.conftest import OPENAI_KEY

NOTEBOOK = "steer.ipynb"
PRICE = {"input": 2.0, "output": 8.0}  # USD per million tokens
SYSTEM = "Be brief."


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", upstream.openai_base_url, demo_speed=20.0)
    prices = {"openai:first": PRICE, "openai:a": PRICE, "openai:b": {"input": 1.0, "output": 1.0}}
    (process.workdir / "config" / "jupyter_server_config.json").write_text(
        json.dumps({"StreamChat": {"prices": prices}})
    )
    with serving(process, NOTEBOOK):
        yield process


async def value_of(kernel: Kernel, expression: str) -> Any:
    run = await kernel.execute(f"import json\nprint(json.dumps({expression}))", timeout=60)
    return json.loads(run.raise_for_error().stdout)


async def ended(kernel: Kernel, name: str) -> list[dict[str, Any]]:
    """``await <name>.done`` in the kernel (every alternative has ended), as JSON."""
    return await value_of(kernel, f"await {name}.done")


def turns_on_disk(server: ServerProcess) -> dict[str, dict[str, Any]]:
    metadata = nbformat.read(server.root / NOTEBOOK, as_version=4).metadata
    conversation = ((metadata.get("streamchat") or {}).get("conversations") or {}).get("default") or {}
    return {turn["run"]: turn for turn in conversation.get("turns", [])}


async def test_regenerate_twice_switch_back_and_continue_from_the_alternative_shown(server, upstream):
    upstream.script("first", Script.reply(["Paris."]))
    upstream.script("m", [Script.reply(["One."]), Script.reply(["Two."]), Script.reply(["Three."])])
    upstream.script("next", Script.reply(["Lyon."]))
    async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
        await kernel.execute("from jupyter_streamchat import chat, history\na = chat('Capital?', model='openai:first')")
        await ended(kernel, "a")
        # Given a reply asked with a system prompt and parameters
        await kernel.execute(f"b = chat('Why?', model='openai:m', system={SYSTEM!r}, temperature=0.5, seed=3)")
        await ended(kernel, "b")
        # When it is regenerated twice (the button, then the method)
        await kernel.execute("b.regenerate_button.click()")
        await ended(kernel, "b")
        await kernel.execute("b.regenerate()")
        alternatives = await value_of(kernel, "(await b.done) and b.alternative_results")
        shown_last = await value_of(kernel, "[b.shown, b.counter.value, b.results[0]['text']]")
        # And the user goes back to the first alternative
        await kernel.execute("b.previous_button.click()\nb.previous_button.click()")
        shown_first = await value_of(
            kernel, "[b.shown, b.counter.value, b.results[0]['text'], b._static_bundle()['text/html']]"
        )
        # And asks on from there
        await kernel.execute("c = chat('Another city?', model='openai:next')")
        (after,) = await ended(kernel, "c")
        branch = await value_of(kernel, "[turn['run'] for turn in history()]")
        exported = await value_of(kernel, "history().to_markdown()")
        frame = await value_of(kernel, "history().to_dataframe()[['model', 'status', 'output_tokens']].values.tolist()")

    # Then each alternative was asked with exactly the same messages and parameters as the first
    asked = upstream.requests_for("m")
    assert len(asked) == 3 and all(request.body["messages"] == asked[0].body["messages"] for request in asked)
    assert asked[0].body["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Capital?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "Why?"},
    ]
    assert all(request.body["temperature"] == 0.5 and request.body["seed"] == 3 for request in asked)
    # And the widget holds three alternatives and showed the newest as "3 / 3", then switched in place to "1 / 3"
    assert [alt["text"] for alt in alternatives] == ["One.", "Two.", "Three."]
    assert shown_last[0] == 2 and "3 / 3" in shown_last[1] and shown_last[2] == "Three."
    assert shown_first[0] == 0 and "1 / 3" in shown_first[1] and shown_first[2] == "One."
    assert "alternative 1 / 3" in shown_first[3] and "One." in shown_first[3] and "Three." not in shown_first[3]
    # And the next chat followed the alternative shown, not the newest one
    (followed,) = upstream.requests_for("next")
    assert followed.body["messages"][-3:] == [
        {"role": "user", "content": "Why?"},
        {"role": "assistant", "content": "One."},
        {"role": "user", "content": "Another city?"},
    ]
    # And the notebook holds the tree: three siblings after the first turn, the last turn after the first sibling
    turns = await await_until(lambda: turns if len(turns := turns_on_disk(server)) == 5 else None)
    first_run, siblings = branch[0], [alt["run"] for alt in alternatives]
    assert [turns[run]["parent"] for run in siblings] == [first_run] * 3
    assert turns[after["run"]]["parent"] == siblings[0]
    assert all(turns[run]["params"] == {"temperature": 0.5, "seed": 3, "system": SYSTEM} for run in siblings)
    # And history() is the active branch, exported as Markdown and as one DataFrame row per turn
    assert branch == [first_run, siblings[0], after["run"]]
    assert "Paris." in exported and "One." in exported and "Lyon." in exported and "Two." not in exported
    assert frame == [["openai:first", "completed", 1], ["openai:m", "completed", 1], ["openai:next", "completed", 1]]


async def test_a_reply_shows_its_cost_and_the_compare_summary_has_a_cost_column(server, upstream):
    upstream.script("first", Script.reply(["Paris", " is", " the", " capital."]))
    upstream.script("a", Script.reply(["A"]))
    upstream.script("b", Script.reply(["B", "b"]))
    async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
        await kernel.execute(
            "from jupyter_streamchat import chat, compare, history\nc = chat('Capital?', model='openai:first')"
        )
        (reply,) = await ended(kernel, "c")
        stats = await value_of(kernel, "c.panes[0].stats.value")
        await kernel.execute("cmp = compare('Hi', models=['openai:a', 'openai:b', 'demo:fast'])")
        panes = await ended(kernel, "cmp")
        summary = await value_of(kernel, "cmp.summary.value")
        total = await value_of(kernel, "history().cost")

    # Then the reply's cost is its usage at the configured price: 5 input and 4 output tokens
    expected = (5 * PRICE["input"] + 4 * PRICE["output"]) / 1_000_000
    assert reply["cost"] == pytest.approx(expected) and "$0.0000420" in stats and "4 tokens" in stats
    # And the summary shows each priced pane's cost, and none (not zero) for the model without a price
    by_model = {pane["model"]: pane for pane in panes}
    assert by_model["openai:a"]["cost"] == pytest.approx((5 * 2 + 1 * 8) / 1_000_000)
    assert by_model["openai:b"]["cost"] == pytest.approx((5 * 1 + 2 * 1) / 1_000_000)
    assert by_model["demo:fast"]["cost"] is None
    assert "<th>cost</th>" in summary and "$0.0000180" in summary and "$0.00000700" in summary
    assert summary.count("&ndash;") >= 1
    # And the conversation's total is the sum of its priced turns
    assert total == pytest.approx(expected)


async def test_replay_sends_the_same_messages_and_says_the_providers_model_changed(server, upstream):
    upstream.script("m", Script.reply(["Old."], answered_model="m-2025", system_fingerprint="fp_a"))
    async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
        await kernel.execute("from jupyter_streamchat import chat, replay\nq = chat('Why?', model='openai:m', seed=7)")
        (original,) = await ended(kernel, "q")
        # When the provider now answers as another model, and the turn is replayed
        upstream.script("m", Script.reply(["New."], answered_model="m-2026", system_fingerprint="fp_a"))
        await kernel.execute(f"r = replay({original['run']!r})")
        (again,) = await ended(kernel, "r")
        comparison = await value_of(kernel, "r.comparison")
        said = await value_of(kernel, "r.comparison_text()")
        unknown = await kernel.execute("replay('no-such-run')")

    # Then the same messages and parameters were sent, and the replay is a sibling of the original
    first, second = upstream.requests_for("m")
    assert second.body["messages"] == first.body["messages"] and second.body["seed"] == 7
    assert comparison["same_messages"] is True and again["messages_sha256"] == original["messages_sha256"]
    assert comparison["response_model"] == ["m-2025", "m-2026"] and comparison["response_model_changed"] is True
    assert comparison["system_fingerprint_changed"] is False
    assert "the same messages were sent" in said and "m-2025 → m-2026" in said
    turns = await await_until(lambda: turns if len(turns := turns_on_disk(server)) == 2 else None)
    assert turns[again["run"]]["parent"] == turns[original["run"]]["parent"] is None
    # And a run id that is no turn is one line, and nothing is sent
    assert unknown.error is not None and unknown.error["ename"] == "ValueError"
    assert "no turn 'no-such-run' in steer.ipynb" in unknown.error["evalue"] and len(upstream.requests_for("m")) == 2


async def test_bad_parameters_are_one_line_and_send_nothing(server, upstream):
    async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
        await kernel.execute("from jupyter_streamchat import chat\n%load_ext jupyter_streamchat")
        python = await kernel.execute("chat('hi', model='openai:never', temperature=5)")
        zero = await kernel.execute("%%chat openai:never --max-tokens 0\nhi")
        seed = await kernel.execute("%%chat openai:never --seed x\nhi")
        magic = await kernel.execute(f"%%chat openai:fine --system {SYSTEM!r} --temperature 0.2 --max-tokens 9\nhi")
        await await_until(lambda: upstream.requests_for("fine"), what="the magic's request")

    assert python.error is not None and python.error["ename"] == "ValueError"
    assert python.error["evalue"] == "temperature must be a number between 0 and 2"
    assert zero.error is not None and zero.error["ename"] == "UsageError"
    assert zero.error["evalue"].startswith("--max-tokens must be a positive integer; usage:")
    assert seed.error is not None and "argument --seed: invalid int value: 'x'" in seed.error["evalue"]
    assert all("\n" not in run.error["evalue"] for run in (python, zero, seed) if run.error)
    assert upstream.requests_for("never") == []
    assert magic.error is None
    (sent,) = upstream.requests_for("fine")
    assert sent.body["messages"][0] == {"role": "system", "content": SYSTEM}
    assert sent.body["temperature"] == 0.2 and sent.body["max_tokens"] == 9


async def test_in_a_kernel_without_a_server_regenerate_history_and_replay_work_in_process(upstream):
    upstream.script("m", [Script.reply(["One."]), Script.reply(["Two."], answered_model="m-new")])
    env = {"OPENAI_BASE_URL": upstream.openai_base_url, "OPENAI_API_KEY": OPENAI_KEY}
    async with LocalKernel.start(env=env) as kernel:
        # Given a reply with text context, regenerated at once, while it still streams
        await kernel.execute(
            "from jupyter_streamchat import chat, history, replay\n"
            "b = chat('Why?', model='openai:m', temperature=1, context=['Notes: the sky is blue.'])\n"
            "b.regenerate()"
        )
        alternatives = await value_of(kernel, "(await b.done) and b.alternative_results")
        first = alternatives[0]
        branch = await value_of(kernel, "[turn['reply']['content'] for turn in history()]")
        await kernel.execute(f"r = replay({first['run']!r})")
        await ended(kernel, "r")
        comparison = await value_of(kernel, "r.comparison")
        note = await value_of(kernel, "b.note.value")

    # Then the regenerate waited for the reply before it (never two at once), and was asked the same
    assert [alt["text"] for alt in alternatives] == ["One.", "Two."]
    assert alternatives[1]["parent"] == alternatives[0]["parent"] is None
    assert branch == ["Two."]
    asked = upstream.requests_for("m")
    assert asked[1].accepted_at >= asked[0].server_finished_at
    # And the replay sent the same messages, its text context included
    assert "Notes: the sky is blue." in json.dumps(asked[0].body["messages"])
    assert len(asked) == 3 and asked[2].body["messages"] == asked[1].body["messages"] == asked[0].body["messages"]
    assert all(request.body["temperature"] == 1 for request in asked)
    assert comparison["same_messages"] is True and comparison["response_model_changed"] is True
    assert "Notebook persistence is off" in note
