"""Inputs that are refused, never half-taken (SPEC 4): a JSON error, nothing started, nothing written.

Each case goes to a real server with a real upstream behind it, and checks three things besides the answer:
no run exists (``GET runs``), the upstream got no chat request (its record), and no notebook file changed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from traitlets.config import Config

from harness.upstream import FakeUpstream, Script, Stall, Text, Think
from tests.helpers import chat, collect, ids_of, service_of, text_of, wait_finished
from tests.test_notebook_persistence import turns, wait_turns

ROUTES = ["runs", "stream"]


def new_notebook(root: Path, path: str) -> Path:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), target)
    return target


def fingerprint(file: Path) -> tuple[bytes, int, int]:
    """What a write would change: the bytes, the modification time and the inode."""
    stat = file.stat()
    return file.read_bytes(), stat.st_mtime_ns, stat.st_ino


def chat_requests(upstream: FakeUpstream) -> list[Any]:
    """Requests that would have started a generation (model listings do not count)."""
    return [record for record in upstream.requests if record.api is not None]


async def post(client: Any, route: str, body: dict[str, Any] | bytes) -> httpx.Response:
    if isinstance(body, bytes):
        return await client._http.post(route, content=body)
    return await client._http.post(route, content=json.dumps(body).encode())


async def assert_refused(client: Any, upstream: FakeUpstream, response: httpx.Response, status: int, fragment: str):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["message"]
    assert fragment in message, message
    assert await client.list_runs() == []
    assert chat_requests(upstream) == []
    return message


@pytest.fixture
def notebook(jp_root_dir) -> str:
    new_notebook(jp_root_dir, "nb.ipynb")
    return "nb.ipynb"


# ----- conversation ids --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conversation", "fragment"),
    [
        ("", "non-empty"),
        ("x" * 129, "longer than 128"),
        ("line\nbreak", "control character"),
        ("tab\there", "control character"),
        ("nul\x00", "control character"),
        ("del\x7f", "control character"),
        ("c1\x85", "control character"),
        ("__proto__", "'__'"),
        ("__x", "'__'"),
        (5, "string"),
    ],
)
@pytest.mark.parametrize("route", ROUTES)
async def test_a_bad_conversation_id_is_400_and_starts_nothing(
    streamchat_client, upstream, jp_root_dir, notebook, route, conversation, fragment
):
    before = fingerprint(jp_root_dir / notebook)
    # When a run names the conversation, with messages or with a prompt the server builds history for
    for body in (
        chat("openai:any", notebook=notebook, conversation=conversation),
        {"model": "openai:any", "prompt": "hi", "notebook": notebook, "conversation": conversation},
    ):
        response = await post(streamchat_client, route, body)
        # Then it is refused, saying why, and nothing started or was written
        message = await assert_refused(streamchat_client, upstream, response, 400, fragment)
        assert "conversation" in message
    assert fingerprint(jp_root_dir / notebook) == before


async def test_conversation_ids_users_choose_are_accepted_and_recorded(
    streamchat_client, upstream, jp_root_dir, notebook
):
    names = ["Sales analysis", "constructor", "toString", "hasOwnProperty", "_one", "a__b", "Ünïcode 会话", "x" * 128]
    upstream.script("named", Script.reply(["fine"]))
    for name in names:
        # When a run names an ordinary (if unusual) conversation id
        started = await streamchat_client.start_run(chat("openai:named", name, notebook=notebook, conversation=name))
        record = await wait_finished(streamchat_client, started["id"])
        # Then it runs, and its turn lands under that very key
        assert record["status"] == "completed" and record["conversation"] == name
        (turn,) = await wait_turns(jp_root_dir, notebook, 1, name)
        assert turn["run"] == started["id"] and turn["prompt"]["content"] == name
    conversations = nbformat.read(jp_root_dir / notebook, as_version=4).metadata["streamchat"]["conversations"]
    assert sorted(conversations) == sorted(names)


async def test_the_conversation_filter_takes_anything_and_never_fails(streamchat_client, upstream):
    upstream.script("named", Script.reply(["fine"]))
    started = await streamchat_client.start_run(chat("openai:named", conversation="constructor"))
    await wait_finished(streamchat_client, started["id"])
    # When runs are listed with filters no run could have
    for odd in ["__proto__", "a\nb", "x" * 5000, "toString"]:
        assert await streamchat_client.list_runs(conversation=odd) == []
    # Then they match nothing; a real name still matches its run
    assert [run["id"] for run in await streamchat_client.list_runs(conversation="constructor")] == [started["id"]]
    # And a filter that is not even UTF-8 is a JSON 400, not a 500
    response = await streamchat_client._http.get("runs?conversation=%ED%A0%80")
    assert response.status_code == 400 and "message" in response.json()


# ----- hidden notebook paths ---------------------------------------------------------------------

HIDDEN = [".hidden/x.ipynb", ".ipynb_checkpoints/x-checkpoint.ipynb", ".dot.ipynb", "sub/.deep/y.ipynb"]


@pytest.mark.parametrize("route", ROUTES)
async def test_a_notebook_the_contents_api_hides_is_404_as_there(
    streamchat_client, streamchat_url, upstream, jp_root_dir, jp_serverapp, route
):
    # Given hidden notebooks that exist on disk (the contents API hides them: allow_hidden is False)
    assert jp_serverapp.contents_manager.allow_hidden is False
    files = {path: new_notebook(jp_root_dir, path) for path in HIDDEN}
    before = {path: fingerprint(file) for path, file in files.items()}
    token = jp_serverapp.identity_provider.token
    async with httpx.AsyncClient(base_url=streamchat_url, headers={"Authorization": f"token {token}"}) as jupyter:
        contents_answers = {path: await jupyter.get(f"api/contents/{path}") for path in [*HIDDEN, ".hidden/no.ipynb"]}
    for path, contents in contents_answers.items():
        assert contents.status_code == 404
        # When a run names one
        response = await post(streamchat_client, route, chat("openai:any", notebook=path))
        # Then it is not there for streamchat either: 404, in the words of the contents API, and nothing starts
        message = await assert_refused(streamchat_client, upstream, response, 404, "does not exist")
        assert message == f"file or directory {path!r} does not exist"
        assert contents.text == f"file or directory {'/' + path!r} does not exist"
    # And no hidden file was touched
    assert {path: fingerprint(file) for path, file in files.items()} == before


async def test_a_hidden_notebook_gets_no_document_stream(streamchat_client, jp_root_dir):
    new_notebook(jp_root_dir, ".hidden/x.ipynb")
    new_notebook(jp_root_dir, "visible.ipynb")
    # When a page asks for turns of a hidden notebook (next to a visible one)
    response = await streamchat_client._http.get("documents/events?path=visible.ipynb&path=.hidden/x.ipynb")
    # Then it is refused as the contents API refuses it, naming the path
    assert response.status_code == 404
    assert response.json() == {
        "message": "file or directory '.hidden/x.ipynb' does not exist",
        "path": ".hidden/x.ipynb",
    }


class TestWhenTheContentsAPIShowsHiddenFiles:
    @pytest.fixture
    def jp_server_config(self, streamchat_server_config):
        return Config({**streamchat_server_config, "ContentsManager": {"allow_hidden": True}})

    async def test_a_hidden_notebook_is_recorded_like_any_other(self, streamchat_client, upstream, jp_root_dir):
        new_notebook(jp_root_dir, ".hidden/x.ipynb")
        upstream.script("shown", Script.reply(["kept"]))
        # When a run names a hidden notebook and allow_hidden is on
        started = await streamchat_client.start_run(chat("openai:shown", notebook=".hidden/x.ipynb"))
        # Then it runs and lands in that notebook, as the contents API would show it
        assert (await wait_finished(streamchat_client, started["id"]))["status"] == "completed"
        (turn,) = await wait_turns(jp_root_dir, ".hidden/x.ipynb", 1)
        assert turn["run"] == started["id"] and turn["reply"]["content"] == "kept"


# ----- bodies nested too deep --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"messages": [{"role": "user", "content": "hi"}], "options": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001,
        # Not deep enough for a recursion error, far deeper than any request needs
        json.dumps({**chat("openai:any"), "extra": json.loads("[" * 100 + "]" * 100)}).encode(),
    ],
    ids=["open-brackets", "balanced-brackets", "in-messages", "objects-in-options", "100-levels"],
)
@pytest.mark.parametrize("route", ROUTES)
async def test_a_body_nested_too_deep_is_400_not_a_recursion_error(streamchat_client, upstream, route, body):
    response = await post(streamchat_client, route, body)
    await assert_refused(streamchat_client, upstream, response, 400, "nested deeper than")
    # And the server still serves
    assert (await streamchat_client.models())["models"]


async def test_a_request_as_deep_as_real_ones_is_accepted(streamchat_client, upstream):
    upstream.script("ok", Script.reply(["fine"]))
    # A message, inside the list, inside the body, with options: the shape every client sends
    body = {**chat("openai:ok"), "options": {"temperature": 0.5}}
    started = await streamchat_client.start_run(body)
    assert (await wait_finished(streamchat_client, started["id"]))["status"] == "completed"


# ----- text that is not UTF-8 --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"model": "openai:any", "prompt": "a\ud800b", "notebook": "nb.ipynb"}, "prompt"),
        (chat("openai:any", "a\udfffb"), "messages[0].content"),
        ({**chat("openai:any"), "conversation": "c\ud800"}, "conversation"),
        ({**chat("openai:any"), "notebook": "n\ud800.ipynb"}, "notebook"),
        ({**chat("openai:any"), "system": "be \ud800 brief"}, "system"),
        ({**chat("openai:any"), "model": "openai:\ud800"}, "model"),
        ({**chat("openai:any"), "\ud800": 1}, "key"),
    ],
    ids=["prompt", "message", "conversation", "notebook", "system", "model", "key"],
)
@pytest.mark.parametrize("route", ROUTES)
async def test_a_lone_surrogate_anywhere_in_a_body_is_400(
    streamchat_client, upstream, jp_root_dir, notebook, route, body, where
):
    before = fingerprint(jp_root_dir / notebook)
    # json.dumps escapes it as "\ud800": valid JSON, text that no UTF-8 file can hold
    response = await post(streamchat_client, route, body)
    message = await assert_refused(streamchat_client, upstream, response, 400, "cannot be stored as UTF-8")
    assert where in message
    assert fingerprint(jp_root_dir / notebook) == before


@pytest.mark.parametrize("route", ROUTES)
async def test_raw_surrogate_bytes_are_400_too(streamchat_client, upstream, route):
    # CESU-style bytes for U+D800 (json.loads would take them with 'surrogatepass')
    body = b'{"model": "openai:any", "messages": [{"role": "user", "content": "a\xed\xa0\x80b"}]}'
    response = await post(streamchat_client, route, body)
    await assert_refused(streamchat_client, upstream, response, 400, "messages[0].content")


async def test_a_surrogate_pair_is_ordinary_text(streamchat_client, upstream, jp_root_dir, notebook):
    upstream.script("emoji", Script.reply(["ok"]))
    # "\ud83d\ude00" is how an ASCII-only JSON encoder writes 😀: a pair, not a lone surrogate
    started = await streamchat_client.start_run(chat("openai:emoji", "smile \U0001f600", notebook=notebook))
    assert (await wait_finished(streamchat_client, started["id"]))["status"] == "completed"
    (turn,) = await wait_turns(jp_root_dir, notebook, 1)
    assert turn["prompt"]["content"] == "smile \U0001f600"


# ----- resume points beyond the end ----------------------------------------------------------------


async def test_a_resume_point_beyond_a_finished_run_is_400(streamchat_client, upstream):
    upstream.script("done", Script.reply(["a", "b"]))
    started = await streamchat_client.start_run(chat("openai:done"))
    last = ids_of(await collect(streamchat_client.events(started["id"])))[-1]
    events_url = f"runs/{started['id']}/events"
    # When a client resumes after an event the run never had, by header or by query
    for request in ({"headers": {"Last-Event-ID": str(last + 1)}}, {"params": {"after": 1000}}):
        response = await streamchat_client._http.get(events_url, **request)
        # Then it is told so, instead of an empty stream with no `done`
        assert response.status_code == 400
        assert f"beyond the run's last event ({last})" in response.json()["message"]
    # And resuming from its very last event is an (empty) ending stream, as before
    assert (await streamchat_client._http.get(events_url, headers={"Last-Event-ID": str(last)})).status_code == 200


async def test_a_resume_point_beyond_a_running_run_is_400_at_once(streamchat_client, upstream):
    upstream.script("slow", Script([Text("first"), Stall(30)]))
    started = await streamchat_client.start_run(chat("openai:slow"))
    seen = await collect(streamchat_client.events(started["id"]), limit=1)
    last = ids_of(seen)[-1]
    # When a client resumes after an id not issued yet, while the run waits on its upstream
    response = await streamchat_client._http.get(
        f"runs/{started['id']}/events", headers={"Last-Event-ID": str(last + 1)}
    )
    # Then it gets a 400 now (it used to hang until the run ended, then end without `done`)
    assert response.status_code == 400
    assert f"beyond the run's last event ({last})" in response.json()["message"]
    assert (await streamchat_client.get_run(started["id"]))["status"] == "running"
    # And resuming from the last id issued still follows the run to its end
    rest = asyncio.ensure_future(collect(streamchat_client.events(started["id"], after=last)))
    await streamchat_client.stop(started["id"])
    events = await rest
    assert [event.event for event in events] == ["done"] and events[0].json()["status"] == "stopped"
    assert text_of(seen) == "first"


# ----- replies longer than max_reply_chars -------------------------------------------------------

LIMIT = 100


class TestMaxReplyChars:
    @pytest.fixture
    def streamchat_settings(self, streamchat_settings):
        return {**streamchat_settings, "max_reply_chars": LIMIT}

    async def test_a_reply_past_the_limit_fails_keeping_what_was_streamed(
        self, streamchat_client, upstream, jp_root_dir, notebook
    ):
        # Given an upstream that would go on (and then waits, so only a hang-up ends its call)
        upstream.script("long", Script([Text("a" * 40), Text("b" * 40), Text("c" * 40), Text("d" * 40), Stall(30)]))
        started = await streamchat_client.start_run(chat("openai:long", notebook=notebook))
        events = await collect(streamchat_client.events(started["id"]))
        # Then the run failed as too large, with exactly the limit's worth of text: what clients were sent
        done = events[-1].json()
        assert done["status"] == "failed" and done["error"]["code"] == "reply_too_large"
        assert str(LIMIT) in done["error"]["message"]
        record = await streamchat_client.get_run(started["id"])
        assert record["status"] == "failed" and record["error"]["code"] == "reply_too_large"
        assert record["text"] == text_of(events) == "a" * 40 + "b" * 40 + "c" * 20
        # And the upstream call was hung up on, not left to run
        request = await upstream.wait_for_request_async("long")
        assert await request.wait_closed_async() is not None
        # And the notebook holds the turn once, with that same text
        (turn,) = await wait_turns(jp_root_dir, notebook, 1)
        # (a stop after the end changes nothing, and answers once the run's record is written)
        assert (await streamchat_client.stop(started["id"]))["stopped"] is False
        assert len(turns(jp_root_dir, notebook)) == 1
        assert turn["run"] == started["id"] and turn["reply"]["content"] == record["text"]
        assert turn["reply"]["status"] == "failed" and turn["reply"]["partial"] is True
        assert turn["reply"]["error"]["code"] == "reply_too_large"

    async def test_a_direct_stream_past_the_limit_fails_the_same_way(self, streamchat_client, upstream):
        upstream.script("pane", Script([Text("x" * 60), Text("y" * 60), Stall(30)]))
        events = await collect(streamchat_client.stream(chat("openai:pane")))
        assert text_of(events) == "x" * 60 + "y" * 40
        assert events[-1].json()["error"]["code"] == "reply_too_large"
        request = await upstream.wait_for_request_async("pane")
        assert await request.wait_closed_async() is not None

    async def test_reasoning_past_the_limit_fails_too(self, streamchat_client, upstream):
        upstream.script("thinker", Script([Think("t" * 70), Think("u" * 70), Text("never"), Stall(30)]))
        started = await streamchat_client.start_run(chat("openai:thinker"))
        events = await collect(streamchat_client.events(started["id"]))
        record = await streamchat_client.get_run(started["id"])
        assert record["status"] == "failed" and record["error"]["code"] == "reply_too_large"
        assert record["reasoning"] == "t" * 70 + "u" * 30 and record["text"] == ""
        assert "".join(e.json()["text"] for e in events if e.event == "reasoning") == record["reasoning"]

    async def test_a_reply_of_exactly_the_limit_completes(self, streamchat_client, upstream):
        upstream.script("exact", Script.reply(["a" * 50, "b" * 50]))
        started = await streamchat_client.start_run(chat("openai:exact"))
        record = await wait_finished(streamchat_client, started["id"])
        assert record["status"] == "completed" and len(record["text"]) == LIMIT


def test_max_reply_chars_is_a_documented_option(jp_serverapp):
    (app,) = jp_serverapp.extension_manager.extension_apps["jupyter_streamchat"]
    trait = app.traits()["max_reply_chars"]
    assert trait.metadata.get("config") is True and trait.help
    assert app.max_reply_chars == service_of(jp_serverapp).runs.limits.max_reply_chars == 1_000_000
