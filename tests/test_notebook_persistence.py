"""Every run that names a notebook lands in its metadata exactly once (file path and hand-off)."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing

import httpx
import nbformat
import pytest

from harness.upstream import Drop, Script, Stall, Text
from harness.waiting import await_until
from tests.helpers import chat, collect, service_of, text_of, wait_finished


def turns(root, path: str, conversation: str = "default") -> list[dict]:
    notebook = nbformat.read(root / path, as_version=4)
    nbformat.validate(notebook)
    conversations = notebook.metadata.get("streamchat", {}).get("conversations", {})
    return conversations.get(conversation, {}).get("turns", [])


async def wait_turns(root, path: str, count: int, conversation: str = "default") -> list[dict]:
    """The run's `done` event goes out before the turn is written: the turns once there are ``count``."""

    def recorded() -> list[dict] | None:
        try:
            found = turns(root, path, conversation)
        except (json.JSONDecodeError, nbformat.reader.NotJSONError):
            return None  # written in place, as Jupyter's own save writes: caught mid-write, read again
        return found if len(found) >= count else None

    return await await_until(recorded, what=f"{count} turns in {path}")


@pytest.fixture
def notebook(jp_root_dir) -> str:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), jp_root_dir / "nb.ipynb")
    return "nb.ipynb"


async def test_stopped_run_is_one_partial_turn(streamchat_client, upstream, jp_root_dir, notebook):
    upstream.script("stall", Script([Text("Hal"), Text("f"), Stall(30)]))
    started = await streamchat_client.start_run(chat("openai:stall", "question?", notebook=notebook))
    seen = await collect(streamchat_client.events(started["id"]), limit=2)
    # When Stop is pressed twice, racing itself
    first, second = await asyncio.gather(streamchat_client.stop(started["id"]), streamchat_client.stop(started["id"]))
    # Then exactly one stop took effect, and the partial was recorded before Stop answered
    assert sorted([first["stopped"], second["stopped"]]) == [False, True]
    (turn,) = turns(jp_root_dir, notebook)
    assert turn["run"] == started["id"] and turn["mode"] == "detached" and turn["model"] == "openai:stall"
    assert turn["prompt"] == {"role": "user", "content": "question?"}
    reply = turn["reply"]
    assert reply["status"] == "stopped" and reply["partial"] is True
    assert reply["content"] == text_of(seen) == "Half"
    # And the user's cell is untouched
    assert nbformat.read(jp_root_dir / notebook, as_version=4).cells[0].source == "1 + 1"


async def test_completed_runs_append_in_order(streamchat_client, upstream, jp_root_dir, notebook):
    ids = []
    for index in range(3):
        upstream.script(f"m{index}", Script.reply([f"answer {index}"]))
        started = await streamchat_client.start_run(chat(f"openai:m{index}", f"q{index}", notebook=notebook))
        await collect(streamchat_client.events(started["id"]))
        ids.append(started["id"])
    recorded = await wait_turns(jp_root_dir, notebook, 3)
    assert [t["run"] for t in recorded] == ids
    assert [t["reply"]["content"] for t in recorded] == ["answer 0", "answer 1", "answer 2"]
    assert all(t["reply"]["partial"] is False and t["reply"]["status"] == "completed" for t in recorded)


async def test_failed_run_keeps_partial_and_error(streamchat_client, upstream, jp_root_dir, notebook):
    upstream.script("drop", Script([Text("some"), Drop()]))
    started = await streamchat_client.start_run(chat("openai:drop", notebook=notebook, conversation="c"))
    await collect(streamchat_client.events(started["id"]))
    (turn,) = await wait_turns(jp_root_dir, notebook, 1, "c")
    assert turn["reply"]["status"] == "failed" and turn["reply"]["content"] == "some"
    assert turn["reply"]["error"]["code"] == "upstream_connection_lost"


async def test_direct_stream_disconnect_and_stop_race_records_once(streamchat_client, upstream, jp_root_dir, notebook):
    upstream.script("pane", Script([Text("p"), Stall(30)]))
    seen = []
    async with aclosing(streamchat_client.stream(chat("openai:pane", notebook=notebook, conversation="cmp"))) as events:
        async for message in events:
            seen.append(message)
            if message.event == "delta":
                # Stop via the route and hang up at the same moment
                stop = asyncio.ensure_future(streamchat_client.stop(seen[0].json()["id"]))
                break
    await stop
    record = await wait_finished(streamchat_client, seen[0].json()["id"])
    (turn,) = turns(jp_root_dir, notebook, "cmp")
    assert turn["mode"] == "direct" and turn["reply"]["status"] == "stopped" == record["status"]
    assert turn["reply"]["content"] == "p"


async def test_ten_concurrent_runs_into_one_notebook(streamchat_client, upstream, jp_root_dir, notebook):
    for index in range(10):
        upstream.script(f"c{index}", Script.reply([f"r{index}-", "x"], pace=0.01 * (index % 3)))
    started = await asyncio.gather(
        *(streamchat_client.start_run(chat(f"openai:c{i}", notebook=notebook)) for i in range(10))
    )
    await asyncio.gather(*(collect(streamchat_client.events(s["id"])) for s in started))
    # Each run's record settles once its turn is in the notebook: after the last, nothing more can arrive
    for s in started:
        assert (await streamchat_client.get_run(s["id"], wait="recorded"))["recorded"] == "recorded"
    recorded = turns(jp_root_dir, notebook)
    assert sorted(t["run"] for t in recorded) == sorted(s["id"] for s in started)


async def test_prompt_mode_history_includes_partial_and_excludes_failed(
    streamchat_client, upstream, jp_root_dir, notebook
):
    conv = {"notebook": notebook, "conversation": "h"}
    upstream.script("ok", Script.reply(["first answer"]))
    upstream.script("bad", Script([Text("broken words"), Drop()]))
    upstream.script("cut", Script([Text("half answer"), Stall(30)]))
    upstream.script("next", Script.reply(["fine"]))
    for model, prompt in [("ok", "one"), ("bad", "two")]:
        run = await streamchat_client.start_run({"model": f"openai:{model}", "prompt": prompt, **conv})
        await collect(streamchat_client.events(run["id"]))
    run = await streamchat_client.start_run({"model": "openai:cut", "prompt": "three", **conv})
    await collect(streamchat_client.events(run["id"]), limit=1)
    await streamchat_client.stop(run["id"])
    # When the next prompt is sent by conversation id
    run = await streamchat_client.start_run({"model": "openai:next", "prompt": "four", **conv})
    await collect(streamchat_client.events(run["id"]))
    # Then the model saw the completed and the partial turns, not the failed one, and no reasoning
    sent = (await upstream.wait_for_request_async("next")).body["messages"]
    assert sent == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "three"},
        {"role": "assistant", "content": "half answer"},
        {"role": "user", "content": "four"},
    ]
    recorded = await wait_turns(jp_root_dir, notebook, 4, "h")
    assert [t["prompt"]["content"] for t in recorded] == ["one", "two", "three", "four"]


# ----- open-document hand-off ------------------------------------------------------------------


async def open_document(
    streamchat_url: str,
    token: str,
    paths: str | list[str],
    got: list,
    ready: asyncio.Event,
    ready_data: list | None = None,
    arrived: asyncio.Queue | None = None,
) -> None:
    """A page speaking the hand-off protocol: one stream for ``paths``, collecting the turns it is told of
    (in ``got``, and in ``arrived`` as they come)."""
    headers = {"Authorization": f"token {token}"}
    params = [("path", path) for path in ([paths] if isinstance(paths, str) else paths)]
    async with httpx.AsyncClient(base_url=streamchat_url + "streamchat/", headers=headers, timeout=None) as http:
        async with http.stream("GET", "documents/events", params=params) as response:
            assert response.status_code == 200
            event = None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "ready":
                    if ready_data is not None:
                        ready_data.append(json.loads(line[6:]))
                    ready.set()
                elif line.startswith("data: ") and event == "turn":
                    got.append(json.loads(line[6:]))
                    if arrived is not None:
                        arrived.put_nowait(got[-1])


async def contents_version(jp_fetch, path: str) -> dict:
    """The file's version as JupyterLab's save checks it: ``GET /api/contents`` without content, with its hash."""
    answer = await jp_fetch("api", "contents", path, params={"content": "0", "hash": "1"})
    model = json.loads(answer.body)
    return {"hash": model["hash"], "hash_algorithm": model["hash_algorithm"], "last_modified": model["last_modified"]}


def same_version(told: dict, api: dict) -> bool:
    """Equal as JupyterLab compares them: the hash, and the modification time to the millisecond."""
    from datetime import datetime

    def millis(stamp: str) -> int:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)

    return (told["hash"], told["hash_algorithm"], millis(told["last_modified"])) == (
        api["hash"],
        api["hash_algorithm"],
        millis(api["last_modified"]),
    )


async def test_a_turn_lands_in_the_file_and_every_open_page_learns_it(
    streamchat_client, streamchat_url, jp_serverapp, jp_fetch, upstream, jp_root_dir, notebook
):
    # Given two pages that have the notebook open
    token = jp_serverapp.identity_provider.token
    version_before = await contents_version(jp_fetch, notebook)
    pages: list[list] = [[], []]
    ready = [asyncio.Event(), asyncio.Event()]
    clients = [
        asyncio.ensure_future(open_document(streamchat_url, token, notebook, got, event))
        for got, event in zip(pages, ready, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ready)), 5)
    # When a run for that notebook ends
    upstream.script("doc", Script.reply(["for the open doc"]))
    started = await streamchat_client.start_run(chat("openai:doc", notebook=notebook))
    await collect(streamchat_client.events(started["id"]))
    await streamchat_client.stop(started["id"])  # returns once the run is recorded
    for client in clients:
        client.cancel()
    # Then the FILE holds the turn once, whatever the pages do next (reload, discard, crash)
    assert [t["run"] for t in turns(jp_root_dir, notebook)] == [started["id"]]
    assert service_of(jp_serverapp).recorded_via[started["id"]] == "file"
    # And every page was told, with the file versions around the write as the contents API reports them, so a
    # page that knew the old version takes the new one and its next save asks nothing
    version_after = await contents_version(jp_fetch, notebook)
    for got in pages:
        assert [(t["path"], t["turn"]["run"]) for t in got] == [(notebook, started["id"])]
        assert got[0]["turn"]["reply"]["content"] == "for the open doc"
        assert same_version(got[0]["before"], version_before)
        assert same_version(got[0]["after"], version_after)


async def test_a_save_that_drops_a_turn_gets_it_back(
    streamchat_client, streamchat_url, jp_serverapp, jp_fetch, upstream, jp_root_dir, notebook
):
    # Given a page that has the notebook open, and a copy of the notebook taken before a run ended
    stale = json.loads((jp_root_dir / notebook).read_text())
    token = jp_serverapp.identity_provider.token
    got: list = []
    ready = asyncio.Event()
    arrived: asyncio.Queue = asyncio.Queue()
    page = asyncio.ensure_future(open_document(streamchat_url, token, notebook, got, ready, arrived=arrived))
    await asyncio.wait_for(ready.wait(), 5)
    upstream.script("dropped", Script.reply(["keep me"]))
    started = await streamchat_client.start_run(chat("openai:dropped", notebook=notebook))
    await streamchat_client.stop(started["id"])
    assert [t["run"] for t in turns(jp_root_dir, notebook)] == [started["id"]]
    # When a page saves the stale copy through the contents API (it serialized before it learned the turn)
    body = json.dumps({"type": "notebook", "format": "json", "content": stale})
    await jp_fetch("api", "contents", notebook, method="PUT", body=body)
    # Then the server writes the turn back into the file, once, and tells the page the new version
    recorded = await wait_turns(jp_root_dir, notebook, 1)
    assert [t["run"] for t in recorded] == [started["id"]]
    for _ in range(2):
        await asyncio.wait_for(arrived.get(), 10)
    page.cancel()
    assert [t["turn"]["run"] for t in got] == [started["id"], started["id"]]
    assert same_version(got[1]["after"], await contents_version(jp_fetch, notebook))


async def test_a_page_that_subscribes_after_a_turn_was_written_is_told_it(
    streamchat_client, streamchat_url, jp_serverapp, jp_fetch, upstream, jp_root_dir, notebook
):
    # Given a turn written while no page had the notebook open (a page renaming or reloading it, say)
    version_before = await contents_version(jp_fetch, notebook)
    upstream.script("early", Script.reply(["written before the page came"]))
    started = await streamchat_client.start_run(chat("openai:early", notebook=notebook))
    await streamchat_client.stop(started["id"])
    assert [t["run"] for t in turns(jp_root_dir, notebook)] == [started["id"]]
    # When a page opens its stream for the notebook
    token = jp_serverapp.identity_provider.token
    got: list = []
    ready = asyncio.Event()
    arrived: asyncio.Queue = asyncio.Queue()
    page = asyncio.ensure_future(open_document(streamchat_url, token, notebook, got, ready, arrived=arrived))
    told = await asyncio.wait_for(arrived.get(), 10)
    page.cancel()
    # Then it is told the turn at once, with the file versions around its write
    assert (told["path"], told["turn"]["run"]) == (notebook, started["id"])
    assert same_version(told["before"], version_before)
    assert same_version(told["after"], await contents_version(jp_fetch, notebook))


async def test_one_stream_takes_the_turns_of_all_its_paths(
    streamchat_client, streamchat_url, jp_serverapp, upstream, jp_root_dir, notebook
):
    # Given one page with two notebooks open on one stream (one path spelled loosely), and another page with only
    # the second notebook
    (jp_root_dir / "sub").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / "sub" / "two.ipynb")
    token = jp_serverapp.identity_provider.token
    got: list = []
    ready = asyncio.Event()
    ready_data: list = []
    page = asyncio.ensure_future(
        open_document(streamchat_url, token, [notebook, "./sub//two.ipynb"], got, ready, ready_data)
    )
    other_got: list = []
    other_ready = asyncio.Event()
    other = asyncio.ensure_future(open_document(streamchat_url, token, "sub/two.ipynb", other_got, other_ready))
    await asyncio.wait_for(asyncio.gather(ready.wait(), other_ready.wait()), 5)
    # Then the stream says which (confined) paths it serves
    assert ready_data == [{"paths": [notebook, "sub/two.ipynb"]}]
    # When a run ends for each notebook
    started = {}
    for index, path in enumerate((notebook, "sub/two.ipynb")):
        upstream.script(f"multi{index}", Script.reply([f"for {path}"]))
        started[path] = (await streamchat_client.start_run(chat(f"openai:multi{index}", notebook=path)))["id"]
        await collect(streamchat_client.events(started[path]))
        await streamchat_client.stop(started[path])  # returns once the run is recorded
    page.cancel()
    other.cancel()
    # Then both turns were told on the one stream, each with its path
    assert [(t["path"], t["turn"]["run"]) for t in got] == [
        (notebook, started[notebook]),
        ("sub/two.ipynb", started["sub/two.ipynb"]),
    ]
    assert got[1]["turn"]["reply"]["content"] == "for sub/two.ipynb"
    # And the page that has only the second notebook open was told its turn only
    assert [(t["path"], t["turn"]["run"]) for t in other_got] == [("sub/two.ipynb", started["sub/two.ipynb"])]
    # And each file holds its turn once
    for path in (notebook, "sub/two.ipynb"):
        assert [t["run"] for t in turns(jp_root_dir, path)] == [started[path]]


async def test_a_closed_stream_is_offered_nothing(
    streamchat_client, streamchat_url, jp_serverapp, upstream, jp_root_dir
):
    # Given a page that subscribed to two notebooks, then went away
    for name in ("a.ipynb", "b.ipynb"):
        nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / name)
    got: list = []
    ready = asyncio.Event()
    token = jp_serverapp.identity_provider.token
    page = asyncio.ensure_future(open_document(streamchat_url, token, ["a.ipynb", "b.ipynb"], got, ready))
    await asyncio.wait_for(ready.wait(), 5)
    page.cancel()
    hub = service_of(jp_serverapp).notebooks.handoff
    await await_until(
        lambda: not (hub.has_subscribers("a.ipynb") or hub.has_subscribers("b.ipynb")),
        what="the hub to let go of the closed stream",
    )
    # When a run ends for one of them, then the server writes the file at once (nobody to wait for)
    upstream.script("gone", Script.reply(["x"]))
    started = await streamchat_client.start_run(chat("openai:gone", notebook="b.ipynb"))
    await streamchat_client.stop(started["id"])
    assert service_of(jp_serverapp).recorded_via[started["id"]] == "file"
    assert [t["run"] for t in turns(jp_root_dir, "b.ipynb")] == [started["id"]]


@pytest.mark.parametrize("count", [0, 65])
async def test_documents_events_wants_1_to_64_paths(streamchat_client, jp_root_dir, count):
    params = [("path", f"nb-{index}.ipynb") for index in range(count)]
    answer = await streamchat_client._http.get("documents/events", params=params)
    assert answer.status_code == 400
    assert "1 to 64" in answer.json()["message"]


async def test_documents_events_takes_64_paths(streamchat_client, streamchat_url, jp_serverapp):
    paths = [f"dir-{index}/nb-{index}.ipynb" for index in range(64)]
    ready = asyncio.Event()
    ready_data: list = []
    token = jp_serverapp.identity_provider.token
    page = asyncio.ensure_future(open_document(streamchat_url, token, paths, [], ready, ready_data))
    await asyncio.wait_for(ready.wait(), 5)
    page.cancel()
    assert ready_data == [{"paths": paths}]


@pytest.mark.parametrize("escaping", ["../outside.ipynb", "/etc/passwd", "link/nb.ipynb"])
async def test_documents_events_refuses_a_path_outside_the_root(
    streamchat_client, jp_root_dir, tmp_path_factory, escaping
):
    outside = tmp_path_factory.mktemp("outside")
    (jp_root_dir / "link").symlink_to(outside, target_is_directory=True)
    params = [("path", "fine.ipynb"), ("path", escaping), ("path", "also-fine.ipynb")]
    answer = await streamchat_client._http.get("documents/events", params=params)
    # Then the whole stream is refused, and the answer names the path (the page subscribes the others without it)
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["path"] == escaping


async def test_only_the_streamchat_metadata_changes_in_the_file(streamchat_client, upstream, jp_root_dir):
    # Given a notebook with multi-line sources, outputs, unicode and metadata of its own
    cell = nbformat.v4.new_code_cell("import math\nprint('π ≈', math.pi)\n", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", text="π ≈ 3.14159\n")]
    original = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell("# Notes ✓")])
    original.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(original, jp_root_dir / "rich.ipynb")
    # When a run is recorded into it
    upstream.script("rich", Script.reply(["ok"]))
    started = await streamchat_client.start_run(chat("openai:rich", notebook="rich.ipynb"))
    await wait_finished(streamchat_client, started["id"])
    (turn,) = await wait_turns(jp_root_dir, "rich.ipynb", 1)
    # Then the file is exactly what nbformat itself would write for the notebook plus our section
    expected = nbformat.read(jp_root_dir / "rich.ipynb", as_version=4)
    original.metadata["streamchat"] = expected.metadata["streamchat"]
    assert (jp_root_dir / "rich.ipynb").read_text(encoding="utf-8") == nbformat.writes(original) + "\n"
    assert turn["run"] == started["id"]


@pytest.mark.parametrize("change", ["unreadable", "not-a-notebook", "deleted", "symlink-out-of-root"])
async def test_a_file_that_changed_after_post_is_never_overwritten(
    streamchat_client, upstream, jp_root_dir, jp_serverapp, tmp_path_factory, change
):
    # Given a run streaming into a notebook (by a symlink in one case)
    nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / "real.ipynb")
    path = jp_root_dir / "later.ipynb"
    path.symlink_to("real.ipynb")
    upstream.script("changing", Script([Text("kept"), Stall(30)]))
    started = await streamchat_client.start_run(chat("openai:changing", notebook="later.ipynb"))
    await collect(streamchat_client.events(started["id"]), limit=1)
    # When the file changes before the run ends: into something that is not a notebook, or gone, or
    # the symlink now leads out of the server root
    outside = tmp_path_factory.mktemp("outside") / "elsewhere.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), outside)
    changed = {
        "unreadable": b'{"cells": [ this is not json',
        "not-a-notebook": b'{"name": "pkg", "metadata": {}}\n',
    }
    path.unlink()
    if change in changed:
        path.write_bytes(changed[change])
    elif change == "symlink-out-of-root":
        path.symlink_to(outside)
    before = {p: p.read_bytes() for p in (jp_root_dir / "real.ipynb", outside)}
    await streamchat_client.stop(started["id"])  # answers once the run's recording is done, one way or another
    # Then nothing was written: not the file, not a new one, not what the symlink points to
    if change in changed:
        assert path.read_bytes() == changed[change]
    elif change == "deleted":
        assert not path.exists()
    assert {p: p.read_bytes() for p in before} == before
    expected = {"real.ipynb"} if change == "deleted" else {"real.ipynb", "later.ipynb"}
    assert {p.name for p in jp_root_dir.iterdir()} == expected  # nothing created, nothing left behind
    # And the run itself is complete and listed, its words kept (in the journal)
    record = await streamchat_client.get_run(started["id"])
    assert record["status"] == "stopped" and record["text"] == "kept"
    assert started["id"] not in service_of(jp_serverapp).recorded_via


async def test_a_notebook_unreadable_at_post_is_a_conflict(streamchat_client, jp_root_dir):
    broken = jp_root_dir / "broken.ipynb"
    broken.write_bytes(b'{"cells": [ this is not json')
    response = await streamchat_client._http.post("runs", json=chat("demo:fast", notebook="broken.ipynb"))
    assert response.status_code == 409 and "broken.ipynb" in response.json()["message"]
    assert await streamchat_client.list_runs() == []
    assert broken.read_bytes() == b'{"cells": [ this is not json'
