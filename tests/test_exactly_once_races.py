"""Property: whatever races (completion, stop, disconnect, re-attach, shutdown), one turn per run."""

from __future__ import annotations

import asyncio
import itertools
from contextlib import aclosing

import nbformat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.upstream import Done, Finish, Script, Stall, Text, Usage
from jupyter_streamchat.engine.runs import SHUTDOWN
from tests.helpers import chat, service_of, text_of, wait_finished

ACTIONS = st.lists(
    st.tuples(st.sampled_from(["stop", "disconnect", "reattach", "shutdown"]), st.floats(0, 0.08)),
    min_size=1,
    max_size=4,
)
CASES = st.tuples(
    st.sampled_from(["detached", "direct"]),
    st.integers(0, 6),  # chunks before the ending
    st.floats(0, 0.02),  # pace
    st.booleans(),  # does the upstream finish (True) or stall (False)?
    ACTIONS,
    st.booleans(),  # a regenerate: the run is a sibling of a turn a version-1 notebook already holds
)
counter = itertools.count()


def turns_for(root, path: str) -> list[dict]:
    notebook = nbformat.read(root / path, as_version=4)
    nbformat.validate(notebook)
    conversations = notebook.metadata.get("streamchat", {}).get("conversations", {})
    return [turn for conv in conversations.values() for turn in conv["turns"]]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=CASES)
def test_exactly_one_turn_per_run_whatever_races(case, streamchat_client, upstream, jp_root_dir, jp_serverapp):
    asyncio.get_event_loop().run_until_complete(
        race(case, streamchat_client, upstream, jp_root_dir, service_of(jp_serverapp))
    )


async def race(case, client, upstream, root, service) -> None:
    mode, chunks, pace, finishes, actions, regenerate = case
    n = next(counter)
    model, path = f"race{n}", f"race{n}.ipynb"
    # A run may only name a notebook that exists; a regenerate's notebook holds the turn it is an alternative to.
    seed = {"run": f"seed{n}", "created": "2024-01-01T00:00:00Z", "prompt": {"role": "user", "content": "hi"}}
    metadata = {"streamchat": {"version": 1, "conversations": {"race": {"turns": [seed]}}}} if regenerate else {}
    nbformat.write(nbformat.v4.new_notebook(metadata=metadata), root / path)
    steps = [Text(f"c{i} ") for i in range(chunks)]
    steps += [Finish(), Usage(2), Done()] if finishes else [Stall(30)]
    upstream.script(model, Script(steps, pace=pace))
    body = chat(f"openai:{model}", notebook=path, conversation="race", parent=None)
    seen_by_clients: list[list] = []
    run_id: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def watch(events) -> None:
        seen: list = []
        seen_by_clients.append(seen)
        async with aclosing(events) as stream:
            async for message in stream:
                seen.append(message)
                if message.event == "run" and not run_id.done():
                    run_id.set_result(message.json()["id"])
        return None

    primary: asyncio.Task
    if mode == "direct":
        primary = asyncio.ensure_future(watch(client.stream(body)))
    else:
        started = await client.start_run(body)
        run_id.set_result(started["id"])
        primary = asyncio.ensure_future(watch(client.events(started["id"])))
    rid = await asyncio.wait_for(run_id, 5)
    run = service.runs.get(rid)
    ended_early = False
    extra: list[asyncio.Task] = []
    for action, delay in actions:
        await asyncio.sleep(delay)  # the subject: hypothesis draws when each action lands in the stream
        if action == "stop":
            extra.append(asyncio.ensure_future(client.stop(rid)))
            ended_early = True
        elif action == "disconnect":
            # The client hangs up mid-stream. Once: a task cancelled twice interrupts httpx's own
            # close, and a leaked open socket is not a hang-up any server could see.
            if not primary.cancelling():
                primary.cancel()
            ended_early = ended_early or mode == "direct"
        elif action == "reattach":
            extra.append(asyncio.ensure_future(watch(client.events(rid, after=0))))
        elif action == "shutdown":
            run.request_end(SHUTDOWN)  # the path stop_extension takes for every running run
            ended_early = True
    if not finishes and not ended_early:
        await client.stop(rid)  # a stalled upstream otherwise waits for the idle timeout
        ended_early = True
    record = await wait_finished(client, rid)
    await run.wait_recorded()
    await asyncio.gather(*extra, return_exceptions=True)
    primary.cancel()

    # Then exactly one turn for the run, matching the run's final record (besides the one it regenerates)
    (turn,) = [t for t in turns_for(root, path) if t["run"] == rid]
    assert len(turns_for(root, path)) == 1 + regenerate
    assert turn["parent"] is None  # an alternative first turn: the seed's sibling
    reply = turn["reply"]
    assert reply["status"] == record["status"] and reply["content"] == record["text"]
    assert reply["partial"] == (record["status"] != "completed" and bool(record["text"]))
    assert record["status"] in {"completed", "stopped", "interrupted"}
    if not finishes:
        assert record["status"] != "completed"
    if record["status"] == "completed":
        assert finishes and record["text"] == "".join(f"c{i} " for i in range(chunks))
    if not ended_early:
        assert record["status"] == "completed"
    # And every client that saw the end saw exactly the recorded text
    for seen in seen_by_clients:
        if seen and seen[-1].event == "done":
            assert text_of(seen) == record["text"]
            assert seen[-1].json()["status"] == record["status"]
