"""Branching conversations (SPEC 11): regenerate and edit make a tree in the notebook (metadata version 2), the
next prompt sends exactly the active branch, version-1 notebooks upgrade on their first write, and a section this
version cannot read safely (a newer version, or malformed) is never written."""

from __future__ import annotations

import nbformat
import pytest

from harness.upstream import Script, Stall, Text
from harness.waiting import await_until
from jupyter_streamchat.kernel.client import StreamChatAPIError
from tests.helpers import collect, service_of

NOTEBOOK = "tree.ipynb"


def section(root) -> dict:
    return nbformat.read(root / NOTEBOOK, as_version=4).metadata.get("streamchat", {})


async def recorded(client, run_id: str) -> dict:
    record = await client.get_run(run_id, wait="recorded")
    assert record["recorded"] == "recorded", record
    return record


@pytest.fixture
def notebook(jp_root_dir) -> str:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), jp_root_dir / NOTEBOOK)
    return NOTEBOOK


async def ask(client, upstream, model: str, prompt: str, answer: str, **extra) -> str:
    """One prompt in conversation "t" of the notebook, answered with ``answer``; its run id once recorded."""
    upstream.script(model, Script.reply([answer]))
    body = {"model": f"openai:{model}", "prompt": prompt, "notebook": NOTEBOOK, "conversation": "t", **extra}
    started = await client.start_run(body)
    await collect(client.events(started["id"]))
    await recorded(client, started["id"])
    return started["id"]


async def sent_to(upstream, model: str) -> list[dict]:
    return (await upstream.wait_for_request_async(model)).body["messages"]


async def test_regenerate_and_edit_make_the_tree_and_the_next_prompt_sends_the_active_branch(
    streamchat_client, upstream, jp_root_dir, notebook
):
    client = streamchat_client
    # Given a conversation of two turns
    a = await ask(client, upstream, "a", "one", "answer one")
    b = await ask(client, upstream, "b", "two", "answer two")
    # When the second reply is regenerated (same prompt, the regenerated turn's parent)
    b2 = await ask(client, upstream, "b2", "two", "answer two again", parent=a)
    # Then the regenerated run was sent the same history as the first
    assert await sent_to(upstream, "b2") == await sent_to(upstream, "b")
    # When the first prompt is edited (the new prompt, the edited turn's parent: none)
    a2 = await ask(client, upstream, "a2", "one, edited", "answer one edited", parent=None)
    assert await sent_to(upstream, "a2") == [{"role": "user", "content": "one, edited"}]
    # And the next prompt names no parent
    c = await ask(client, upstream, "c", "three", "answer three")
    # Then it follows the active leaf (the edit), and the model received exactly that branch
    assert await sent_to(upstream, "c") == [
        {"role": "user", "content": "one, edited"},
        {"role": "assistant", "content": "answer one edited"},
        {"role": "user", "content": "three"},
    ]
    # When a prompt continues the regenerated branch
    d = await ask(client, upstream, "d", "four", "answer four", parent=b2)
    # Then the model received that branch, the regenerated reply and not the first one
    assert await sent_to(upstream, "d") == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "answer one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "answer two again"},
        {"role": "user", "content": "four"},
    ]
    # And the notebook holds the tree SPEC 11 describes: every turn once, its parent, the last one active
    recorded_section = section(jp_root_dir)
    assert recorded_section["version"] == 2
    conversation = recorded_section["conversations"]["t"]
    parents = {turn["run"]: turn["parent"] for turn in conversation["turns"]}
    assert parents == {a: None, b: a, b2: a, a2: None, c: a2, d: b2}
    assert [turn["run"] for turn in conversation["turns"]] == [a, b, b2, a2, c, d]
    assert conversation["active"] == d
    # And each run's record names the turn it follows
    assert (await client.get_run(b2))["parent"] == a and (await client.get_run(c))["parent"] == a2


async def test_a_version_1_notebook_reads_as_one_branch_and_upgrades_with_every_turn_kept(
    streamchat_client, upstream, jp_root_dir
):
    # Given a notebook recorded by version 1: three turns in one conversation, one in another, an unknown key
    def v1_turn(run: str, prompt: str, reply: str, created: str) -> dict:
        return {
            "run": run,
            "model": "openai:old",
            "mode": "detached",
            "prompt": {"role": "user", "content": prompt},
            "reply": {
                "role": "assistant",
                "content": reply,
                "reasoning": "",
                "status": "completed",
                "partial": False,
                "finish_reason": "stop",
                "usage": {},
                "error": None,
            },
            "created": created,
            "finished": created,
        }

    old_turns = [
        v1_turn("old-1", "one", "answer one", "2024-01-01T00:00:00.000Z"),
        v1_turn("old-2", "two", "answer two", "2024-01-02T00:00:00.000Z"),
        v1_turn("old-3", "three", "answer three", "2024-01-03T00:00:00.000Z"),
    ]
    other = [v1_turn("other-1", "x", "y", "2024-01-01T00:00:00.000Z")]
    v1 = {"version": 1, "note": "kept", "conversations": {"t": {"turns": old_turns}, "o": {"turns": other}}}
    nbformat.write(nbformat.v4.new_notebook(metadata={"streamchat": v1}), jp_root_dir / NOTEBOOK)
    # When the next prompt is sent without a parent
    new = await ask(streamchat_client, upstream, "next", "four", "answer four")
    # Then the model received the three turns in their order
    assert await sent_to(upstream, "next") == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "answer one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "answer two"},
        {"role": "user", "content": "three"},
        {"role": "assistant", "content": "answer three"},
        {"role": "user", "content": "four"},
    ]
    # And the section is version 2: every turn kept as it was, in its order, with the turn before it as parent
    upgraded = section(jp_root_dir)
    assert upgraded["version"] == 2 and upgraded["note"] == "kept"
    turns = upgraded["conversations"]["t"]["turns"]
    assert [{k: v for k, v in turn.items() if k != "parent"} for turn in turns[:3]] == old_turns
    assert [turn["parent"] for turn in turns] == [None, "old-1", "old-2", "old-3"]
    assert turns[3]["run"] == new and upgraded["conversations"]["t"]["active"] == new
    # And the other conversation is upgraded the same way, nothing lost
    assert upgraded["conversations"]["o"] == {"turns": [{**other[0], "parent": None}], "active": "other-1"}


@pytest.mark.parametrize(
    ("streamchat", "reason"),
    [
        ({"version": 3, "conversations": {"t": {"turns": [], "branches": {}}}}, "has version 3, newer than"),
        ({"version": 2, "conversations": []}, "conversations is a list, not an object"),
        ({"version": 2, "conversations": {"t": {"turns": [{"run": 5}]}}}, 'conversations["t"].turns[0] is not a turn'),
        ("hand-edited", "metadata.streamchat is a string, not an object"),
    ],
    ids=["future_version", "conversations_list", "turn_without_run", "section_text"],
)
async def test_a_section_that_cannot_be_read_safely_is_never_written_and_the_request_says_why(
    streamchat_client, upstream, jp_root_dir, streamchat, reason
):
    # Given a notebook whose streamchat section this version cannot read safely
    nbformat.write(nbformat.v4.new_notebook(metadata={"streamchat": streamchat}), jp_root_dir / NOTEBOOK)
    before = (jp_root_dir / NOTEBOOK).read_bytes()
    upstream.script("never", Script.reply(["no"]))
    for body in (
        {"model": "openai:never", "prompt": "hi", "notebook": NOTEBOOK, "conversation": "t"},
        {"model": "openai:never", "messages": [{"role": "user", "content": "hi"}], "notebook": NOTEBOOK},
    ):
        # When a run is asked for in it
        with pytest.raises(StreamChatAPIError) as refused:
            await streamchat_client.start_run(body)
        # Then it is refused with 409 and the reason, in one line
        assert refused.value.status == 409
        assert reason in str(refused.value) and "\n" not in str(refused.value)
    # And nothing started, and the file is untouched
    assert upstream.requests_for("never") == [] and await streamchat_client.list_runs() == []
    assert (jp_root_dir / NOTEBOOK).read_bytes() == before


async def test_a_run_whose_notebook_turned_unreadable_while_it_streamed_is_not_written_and_says_why(
    streamchat_client, upstream, jp_root_dir, notebook, caplog
):
    # Given a run streaming into a notebook
    upstream.script("slow", Script([Text("partial"), Stall(30)]))
    started = await streamchat_client.start_run(
        {"model": "openai:slow", "prompt": "hi", "notebook": NOTEBOOK, "conversation": "t"}
    )
    await collect(streamchat_client.events(started["id"]), limit=1)
    # When a newer version of the extension writes its section meanwhile, and the run is stopped
    future = nbformat.v4.new_notebook(metadata={"streamchat": {"version": 7, "conversations": {}}})
    nbformat.write(future, jp_root_dir / NOTEBOOK)
    before = (jp_root_dir / NOTEBOOK).read_bytes()
    await streamchat_client.stop(started["id"])
    # Then the run's record says it was refused, and why
    record = await streamchat_client.get_run(started["id"], wait="recorded")
    assert record["recorded"] == "refused" and "has version 7" in record["record_error"]
    assert record["text"] == "partial"
    # And the file is untouched
    assert (jp_root_dir / NOTEBOOK).read_bytes() == before
    # And the log says so
    await await_until(
        lambda: any("not recorded in" in r.getMessage() and "has version 7" in r.getMessage() for r in caplog.records),
        what="the refusal in the log",
    )


async def test_a_parent_must_be_a_finished_turn_of_the_conversation(streamchat_client, upstream, jp_root_dir, notebook):
    client = streamchat_client
    first = await ask(client, upstream, "first", "one", "answer one")
    upstream.script("elsewhere", Script.reply(["x"]))
    other = await client.start_run(
        {"model": "openai:elsewhere", "prompt": "x", "notebook": NOTEBOOK, "conversation": "other"}
    )
    await collect(client.events(other["id"]))
    upstream.script("never", Script.reply(["no"]))
    body = {"model": "openai:never", "prompt": "two", "notebook": NOTEBOOK, "conversation": "t"}
    # When the parent names no turn at all: 404
    with pytest.raises(StreamChatAPIError) as unknown:
        await client.start_run({**body, "parent": "no-such-run"})
    assert unknown.value.status == 404 and "'no-such-run' names no turn" in str(unknown.value)
    # When it names a turn of another conversation: 409
    with pytest.raises(StreamChatAPIError) as foreign:
        await client.start_run({**body, "parent": other["id"]})
    assert foreign.value.status == 409 and "conversation 'other'" in str(foreign.value)
    # When it names a reply still streaming, or names none while the active leaf streams: 409, one line
    upstream.script("slow", Script([Text("so far"), Stall(30)]))
    slow = await client.start_run({**body, "model": "openai:slow", "parent": first})
    await collect(client.events(slow["id"]), limit=1)
    for extra in ({"parent": slow["id"]}, {}):
        with pytest.raises(StreamChatAPIError) as streaming:
            await client.start_run({**body, **extra})
        assert streaming.value.status == 409
        assert str(streaming.value).endswith("a reply in this conversation is still streaming; wait for it or stop it")
    # Then nothing was started for any of them
    assert upstream.requests_for("never") == []
    # But siblings of a finished parent start at once (compare panes, a regenerate while another streams)
    upstream.script("sibling", Script.reply(["sibling answer"]))
    sibling = await client.start_run({**body, "model": "openai:sibling", "parent": first})
    await collect(client.events(sibling["id"]))
    assert await sent_to(upstream, "sibling") == await sent_to(upstream, "slow")
    await client.stop(slow["id"])
    # And the stopped partial is a turn of the tree like any other
    await recorded(client, slow["id"])
    parents = {t["run"]: t["parent"] for t in section(jp_root_dir)["conversations"]["t"]["turns"]}
    assert parents[slow["id"]] == first and parents[sibling["id"]] == first


async def test_a_messages_request_records_its_parent_as_given_or_the_active_leaf(
    streamchat_client, upstream, jp_root_dir, notebook, jp_serverapp
):
    client = streamchat_client
    first = await ask(client, upstream, "first", "one", "answer one")
    upstream.script("m", Script.reply(["m"]))
    messages = [{"role": "user", "content": "as I say"}]
    # When a messages request names no parent, and another names none explicitly
    follows = await client.start_run(
        {"model": "openai:m", "messages": messages, "notebook": NOTEBOOK, "conversation": "t"}
    )
    await collect(client.events(follows["id"]))
    root = await client.start_run(
        {"model": "openai:m", "messages": messages, "notebook": NOTEBOOK, "conversation": "t", "parent": None}
    )
    await collect(client.events(root["id"]))
    # Then the client's messages are sent as they are, and the parents recorded: the active leaf, and none
    assert [r.body["messages"] for r in upstream.requests_for("m")] == [messages, messages]
    await recorded(client, follows["id"])
    await recorded(client, root["id"])
    turns = {t["run"]: t for t in section(jp_root_dir)["conversations"]["t"]["turns"]}
    assert turns[follows["id"]]["parent"] == first and turns[root["id"]]["parent"] is None
    assert turns[root["id"]]["prompt"] == {"role": "user", "content": "as I say"}
    assert service_of(jp_serverapp).runs.get(root["id"]).parent is None
