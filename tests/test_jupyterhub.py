"""jupyter_streamchat behind a real JupyterHub: configurable-http-proxy, /user/<name>/ prefixes, hub tokens.

One hub for the module (``harness/hub.py``): ``jupyterhub`` from PyPI, ``configurable-http-proxy`` from npm,
``SimpleLocalProcessSpawner`` running ``jupyterhub-singleuser`` with the extension, on 127.0.0.1, stdin not a
terminal. Users authenticate with API tokens made through the hub's REST API, as a user makes them on the
hub's token page. Every bound is checked at the loopback upstream (``harness/upstream.py``), which records when
the server hung up on it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest

from harness.hub import Hub, missing_requirements
from harness.kernels import ServerKernel
from harness.upstream import FakeUpstream, Script, Stall, Text
from harness.waiting import await_until
from jupyter_streamchat.client import StreamChatAPIError, StreamChatClient
from jupyter_streamchat.engine._sse import SSEMessage, iter_sse
from tests.helpers import chat, collect, ids_of, text_of, wait_finished

_MISSING = missing_requirements()
# Skipped where the hub's pieces are missing, but never in CI (CI=true), where ./dev installs them.
pytestmark = pytest.mark.skipif(
    _MISSING is not None and not os.environ.get("CI"), reason=f"no real JupyterHub here: {_MISSING}"
)

KEEPALIVE = 0.5
CULL_IDLE = 5
CULL_MAX_AGE = 30


@pytest.fixture(scope="module")
def hub_upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, hub_upstream: FakeUpstream) -> Iterator[Hub]:
    if _MISSING is not None:
        pytest.fail(f"CI must run the JupyterHub tests: {_MISSING}")
    workdir = tmp_path_factory.mktemp("hub")
    instance = Hub(
        workdir,
        hub_upstream.openai_base_url,
        users=("alice", "bob", "carol", "dave"),
        streamchat={"keepalive_interval": KEEPALIVE, "activity_interval": 0.5},
        # jupyterhub-singleuser reports the server's last activity to the hub every N seconds (default 300).
        user_env={"JUPYTERHUB_ACTIVITY_INTERVAL": "1"},
        # The idle culler, for dave only: idle for CULL_IDLE s, or older than CULL_MAX_AGE s, and he is culled.
        # It runs from the moment its test starts it (Hub.start_culler).
        culler=("dave", [f"--timeout={CULL_IDLE}", "--cull-every=1", f"--max-age={CULL_MAX_AGE}"]),
    )
    try:
        instance.start()
        for user in ("alice", "bob"):
            instance.api("POST", f"users/{user}/server")  # both spawn at once; start_server waits for each
        for user in ("alice", "bob"):
            instance.start_server(user)
        yield instance
    except BaseException:
        print(instance.log_tail(20_000))
        raise
    finally:
        instance.close()


@pytest.fixture(scope="module")
def tokens(hub: Hub) -> dict[str, str]:
    return {user: hub.user_token(user) for user in hub.users}


def client(hub: Hub, tokens: dict[str, str], user: str, as_user: str | None = None) -> StreamChatClient:
    """A streamchat client for ``user``'s server through the proxy, authenticated as ``as_user``."""
    return StreamChatClient(hub.user_url(user), tokens[as_user or user], timeout=30)


def new_notebook(path: Path) -> None:
    nbformat.write(nbformat.v4.new_notebook(), path)


def turns_in(path: Path, run_id: str) -> list[dict[str, Any]]:
    metadata = nbformat.read(path, as_version=4).metadata
    conversations = (metadata.get("streamchat") or {}).get("conversations") or {}
    return [turn for conv in conversations.values() for turn in conv.get("turns", []) if turn.get("run") == run_id]


# ----- streaming through the proxy ---------------------------------------------------------------


async def test_detached_run_streams_progressively_through_the_proxy_and_reattaches(
    hub: Hub, tokens: dict[str, str], hub_upstream: FakeUpstream
) -> None:
    # Given an upstream that produces 30 words over about 3 seconds
    words = [f"w{i} " for i in range(30)]
    hub_upstream.script("hub-paced", Script.reply(words, pace=0.1))
    async with client(hub, tokens, "alice") as alice:
        # When alice starts a detached run through the hub's proxy
        started = await alice.start_run(chat("openai:hub-paced", "count"))
        # Then the run's events URL is under her prefix
        assert started["events_url"] == f"/user/alice/streamchat/runs/{started['id']}/events"

        # When she reads its events through the proxy, then hangs up after 15 words
        request = await hub_upstream.wait_for_request_async("hub-paced")
        first: list[SSEMessage] = []
        produced: list[int] = []  # how many words the model had sent when each word reached alice
        async with alice._http.stream("GET", f"runs/{started['id']}/events") as response:
            assert response.status_code == 200
            # Then the proxy passed the headers that keep intermediaries from buffering
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "no-cache" in response.headers["cache-control"]
            assert response.headers["x-accel-buffering"] == "no"
            async for message in iter_sse(response.aiter_text()):
                first.append(message)
                if message.event == "delta":
                    produced.append(request.tokens_sent)
                    if len(produced) == 15:
                        break

        # And the words arrived while the model was still producing them, not in one buffered lump at its end
        assert produced[0] < len(words) // 2 and produced[-1] < len(words), produced

        # When she re-attaches with Last-Event-ID
        last_seen = int(first[-1].id or 0)
        rest = await collect(alice.events(started["id"], after=last_seen))
        record = await wait_finished(alice, started["id"])

    # Then she gets exactly the rest: no event lost, repeated or reordered
    assert record["status"] == "completed"
    assert ids_of(rest) == list(range(last_seen + 1, last_seen + 1 + len(rest)))
    assert text_of(first) + text_of(rest) == record["text"] == "".join(words)


async def test_keepalive_comments_and_detached_stop_pass_the_proxy(
    hub: Hub, tokens: dict[str, str], hub_upstream: FakeUpstream
) -> None:
    # Given a run whose upstream says one word and then nothing
    hub_upstream.script("hub-stall", Script([Text("Hel"), Stall(60)]))
    async with client(hub, tokens, "alice") as alice:
        started = await alice.start_run(chat("openai:hub-stall", "wait"))
        request = await hub_upstream.wait_for_request_async("hub-stall")
        lines: list[tuple[float, str]] = []
        async with alice._http.stream("GET", f"runs/{started['id']}/events") as response:

            async def read() -> None:
                async for line in response.aiter_lines():
                    lines.append((time.monotonic(), line))

            reader = asyncio.create_task(read())
            # When nothing happens upstream for a while
            await await_until(
                lambda: any(line == ": ping" for _, line in lines), KEEPALIVE * 8, what="a keepalive comment"
            )
            # Then the keepalive comments reach the client through the proxy, after the word, while the run is silent
            texts = [line for _, line in lines]
            assert "event: delta" in texts and texts.index("event: delta") < texts.index(": ping")

            # When she presses Stop (through the proxy)
            answer = await alice.stop(started["id"])
            # Then the stop answers once the run is stopped, and the upstream saw the hang-up during its stall
            assert answer["stopped"] is True and answer["status"] == "stopped"
            assert await request.wait_closed_async(90) is not None
            # And the stream through the proxy ends with `done`
            await asyncio.wait_for(reader, 10)
    done = [line for _, line in lines if line.startswith("data: ") and '"status"' in line]
    assert done and json.loads(done[-1][6:])["status"] == "stopped"


async def test_compare_stream_closed_at_the_proxy_closes_the_upstream(
    hub: Hub, tokens: dict[str, str], hub_upstream: FakeUpstream
) -> None:
    # Given a compare pane's direct stream through the proxy, the model stalled after one word
    hub_upstream.script("hub-direct", Script([Text("Hel"), Stall(60)]))
    async with client(hub, tokens, "alice") as alice:
        events: list[SSEMessage] = []
        async for message in alice.stream(chat("openai:hub-direct", "compare")):
            events.append(message)
            if message.event == "delta":
                break  # When the pane hangs up (leaving the iteration closes the connection to the proxy)
        request = await hub_upstream.wait_for_request_async("hub-direct")
        # Then the proxy closed its connection to the server and the server its call to the model, during its stall
        assert await request.wait_closed_async(90) is not None
        # And the run ended as stopped with the word that was streamed
        run_id = events[0].json()["id"]
        record = await wait_finished(alice, run_id)
    assert record["status"] == "stopped" and record["text"] == "Hel" and record["mode"] == "direct"


# ----- users are isolated ----------------------------------------------------------------------


async def test_another_users_token_cannot_list_read_or_stop_runs(
    hub: Hub, tokens: dict[str, str], hub_upstream: FakeUpstream
) -> None:
    # Given a run of alice's that is still running
    hub_upstream.script("hub-private", Script([Text("secret "), Stall(60)]))
    async with client(hub, tokens, "alice") as alice:
        started = await alice.start_run(chat("openai:hub-private", "my private question"))
        run_id = started["id"]
        await collect(alice.events(run_id), limit=1)

        # When bob uses his own hub token on alice's server
        async with client(hub, tokens, "alice", as_user="bob") as bob:
            attempts = {
                "list": bob.list_runs(),
                "read": bob.get_run(run_id),
                "events": collect(bob.events(run_id)),
                "stop": bob.stop(run_id),
                "start": bob.start_run(chat("openai:hub-private", "hi")),
                "models": bob.models(),
            }
            for what, attempt in attempts.items():
                # Then every route refuses him
                with pytest.raises(StreamChatAPIError) as refused:
                    await attempt
                assert refused.value.status == 403, (what, refused.value)

        # And on his own server he sees none of alice's runs
        async with client(hub, tokens, "bob") as bob_own:
            assert run_id not in {run["id"] for run in await bob_own.list_runs()}
            with pytest.raises(StreamChatAPIError) as missing:
                await bob_own.get_run(run_id)
            assert missing.value.status == 404

        # And alice's run was untouched by all of that
        record = await alice.get_run(run_id)
        assert record["status"] == "running"
        assert (await alice.stop(run_id))["stopped"] is True


# ----- activity --------------------------------------------------------------------------------


async def test_a_detached_run_keeps_the_server_active_at_the_hub_until_it_ends(
    hub: Hub, tokens: dict[str, str], hub_upstream: FakeUpstream
) -> None:
    def hub_last_activity() -> datetime:
        model = hub.server_model("bob")
        assert model is not None
        return datetime.fromisoformat(model["last_activity"].replace("Z", "+00:00"))

    # Given a detached run streaming for bob, who closed his tab (no client, no request)
    hub_upstream.script("hub-activity", Script([Text("thinking "), Stall(60)]))
    async with client(hub, tokens, "bob") as bob:
        started = await bob.start_run(chat("openai:hub-activity", "take your time"))
        await collect(bob.events(started["id"]), limit=1)
        left = await await_until(lambda: hub_last_activity(), what="bob's last activity")

        # When a few seconds pass
        # Then the hub hears that the server is active (what idle culling looks at), later than his last request
        later = await await_until(
            lambda: (moment := hub_last_activity()) > left and (moment - left).total_seconds() >= 2.0,
            what="the hub to see activity from the running run",
        )
        assert later

        # When the run ends
        reports_before = activity_reports(hub, "bob")
        await bob.stop(started["id"])
        stop_answered = datetime.now(UTC)
    # Then once the server has reported its activity twice more (the hub logs each report it receives)...
    await await_until(
        lambda: activity_reports(hub, "bob") >= reports_before + 2, 30, what="two more activity reports from bob"
    )
    # ...the last activity the hub knows is no later than the stop request: the ended run reports nothing
    assert hub_last_activity() <= stop_answered, (hub_last_activity(), stop_answered)


def activity_reports(hub: Hub, user: str) -> int:
    """How many activity reports the hub has received from ``user``'s server (one log line each)."""
    return hub.log_path.read_text(errors="replace").count(f"POST /hub/api/users/{user}/activity")


# ----- the hub stops a server ------------------------------------------------------------------


@pytest.mark.timeout(300)
async def test_stopping_the_server_through_the_hub_records_the_run_once(
    hub: Hub, tokens: dict[str, str], hub_upstream: FakeUpstream
) -> None:
    notebook = hub.root("carol") / "chat.ipynb"
    new_notebook(notebook)
    chunks = ["Par", "tial ", "answer"]
    hub_upstream.script("hub-stop", Script([*(Text(chunk) for chunk in chunks), Stall(120)]))
    hub.start_server("carol")
    async with client(hub, tokens, "carol") as carol:
        # Given carol's run streaming into her notebook
        started = await carol.start_run(chat("openai:hub-stop", "tell me", notebook="chat.ipynb", conversation="c1"))
        run_id = started["id"]
        seen = await collect(carol.events(run_id), limit=len(chunks))
        assert text_of(seen) == "".join(chunks)
        request = await hub_upstream.wait_for_request_async("hub-stop")

    # When her server is stopped through the hub's API (as an admin or the idle culler does: SIGINT first)
    # (the harness's hub never escalates to SIGTERM in a test's time: only SIGINT can stop the server here)
    await asyncio.to_thread(hub.stop_server, "carol")

    # Then the server exited on SIGINT, having hung up on the model during its stall
    assert await request.wait_closed_async(30) is not None
    # And the run is in her notebook once, interrupted, with exactly the text that was streamed
    (turn,) = turns_in(notebook, run_id)
    assert turn["reply"]["status"] == "interrupted" and turn["reply"]["partial"] is True
    assert turn["reply"]["content"] == "".join(chunks)
    assert turn["prompt"] == {"role": "user", "content": "tell me"}

    # When her server starts again
    await asyncio.to_thread(hub.start_server, "carol")
    hub_upstream.script("hub-after", Script.reply(["fine"]))
    async with client(hub, tokens, "carol") as carol:
        # Then the run is listed, interrupted, with its text
        listed = {run["id"]: run for run in await carol.list_runs()}
        assert listed[run_id]["status"] == "interrupted" and listed[run_id]["text"] == "".join(chunks)
        # And a new run into the same notebook lands next to it, the first one still there once
        after = await carol.start_run(chat("openai:hub-after", "again", notebook="chat.ipynb", conversation="c1"))
        assert (await wait_finished(carol, after["id"]))["status"] == "completed"
    await await_until(lambda: turns_in(notebook, after["id"]), what="the second turn in the notebook")
    assert turns_in(notebook, run_id) == [turn]


@pytest.mark.timeout(300)
async def test_the_idle_culler_spares_a_streaming_server_and_a_culled_run_is_recorded_once(
    hub: Hub, tokens: dict[str, str], hub_upstream: FakeUpstream
) -> None:
    notebook = hub.root("dave") / "chat.ipynb"
    new_notebook(notebook)
    chunks = ["Long ", "answer ", "coming"]
    hub_upstream.script("hub-cull", Script([*(Text(chunk) for chunk in chunks), Stall(300)]))
    await asyncio.to_thread(hub.start_server, "dave")
    async with client(hub, tokens, "dave") as dave:
        # Given dave's run streaming into his notebook, and dave gone (no tab, no request)
        started = await dave.start_run(chat("openai:hub-cull", "take long", notebook="chat.ipynb"))
        run_id = started["id"]
        await collect(dave.events(run_id), limit=len(chunks))
        request = await hub_upstream.wait_for_request_async("hub-cull")
    idle_since = time.monotonic()

    # When the idle culler (idle timeout CULL_IDLE s, checking every second) starts looking at his running server
    # (a culler that saw the spawn would cull a server whose start took longer than CULL_IDLE: the hub counts a
    # server's activity only once it runs)...
    await asyncio.to_thread(hub.start_culler)
    # ...and looks at him for twice the idle timeout
    await asyncio.sleep(2 * CULL_IDLE + 2)  # the subject: an idle period the culler must look at, not a wait
    # Then it leaves his server alone: the running run is activity
    assert hub.server_model("dave") is not None, f"culled while a run streamed:\n{hub.log_tail()}"
    assert request.client_closed_at is None

    # When the server reaches the culler's max age (what bounds a server kept busy by runs)
    gone = await asyncio.to_thread(hub.wait_server_gone, "dave", CULL_MAX_AGE + 60)
    assert "Culling server dave (age: " in hub.log_tail(200_000)  # the max-age rule, not the idle one
    # Then the culled server recorded the run once, interrupted, with the streamed text, before it exited
    closed = await request.wait_closed_async(1)
    assert closed is not None and idle_since < closed <= gone
    (turn,) = turns_in(notebook, run_id)
    assert turn["reply"]["status"] == "interrupted" and turn["reply"]["content"] == "".join(chunks)


# ----- kernels ---------------------------------------------------------------------------------

KERNEL_CODE = """
import json, os
from jupyter_streamchat import chat
widget = chat("hello from a kernel", model="openai:hub-kernel")
results = await widget.done
print(json.dumps({"results": results, "note": widget.backend.note,
                  "env": {k: os.environ.get(k) for k in ("JUPYTER_STREAMCHAT_URL", "JUPYTER_STREAMCHAT_TOKEN",
                                                          "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_TOKEN")}}))
"""

# The fallback a kernel uses when the extension's variables are absent (e.g. kernel_access off): the hub's.
HUB_TOKEN_CODE = """
import json, os
from jupyter_streamchat.kernel._backends import ServerBackend, discover
env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_STREAMCHAT_")}
backend = discover(env)
assert isinstance(backend, ServerBackend), backend
started = await backend.start_run({"model": "openai:hub-kernel", "messages": [{"role": "user", "content": "hub"}]})
text = ""
for m in [m async for m in backend.events(started["id"])]:
    # A run that ended before this read replays as snapshot + done (its events collapse when it ends)
    if m.event == "snapshot":
        text = m.json()["text"]
    elif m.event == "delta":
        text += m.json()["text"]
await backend.aclose()
print(json.dumps({"text": text}))
"""


@pytest.mark.timeout(300)
async def test_a_kernel_uses_chat_through_the_hub_with_no_configuration(
    hub: Hub, tokens: dict[str, str], hub_upstream: FakeUpstream
) -> None:
    new_notebook(hub.root("alice") / "kernel.ipynb")
    hub_upstream.script("hub-kernel", Script.reply(["Hi ", "from ", "the hub"]))
    # Given a kernel that alice's server started for her notebook, driven through the proxy as JupyterLab does
    async with ServerKernel.start(hub.user_url("alice"), tokens["alice"], "kernel.ipynb") as kernel:
        # When a cell calls chat() with nothing configured
        execution = (await kernel.execute(KERNEL_CODE, timeout=60)).raise_for_error()
        output = json.loads(execution.stdout)
        # Then the reply streamed through alice's server
        (result,) = output["results"]
        assert result["status"] == "completed" and result["text"] == "Hi from the hub"
        assert "persistence is off" not in (output["note"] or "")
        # And the kernel reached the server directly, not through the proxy (works inside the hub's host)
        env = output["env"]
        assert env["JUPYTER_STREAMCHAT_URL"] == hub.direct_url("alice") == env["JUPYTERHUB_SERVICE_URL"]
        assert env["JUPYTERHUB_API_TOKEN"]

        # And the hub's token in the kernel's environment works too, when the extension's variables are absent
        fallback = (await kernel.execute(HUB_TOKEN_CODE, timeout=60)).raise_for_error()
        assert json.loads(fallback.stdout)["text"] == "Hi from the hub"

    # And the run is alice's: listed on her server and recorded in her notebook
    async with client(hub, tokens, "alice") as alice:
        record = await alice.get_run(result["run"])
        assert record["notebook"] == "kernel.ipynb" and record["status"] == "completed"
    await await_until(
        lambda: turns_in(hub.root("alice") / "kernel.ipynb", result["run"]), what="the turn in kernel.ipynb"
    )

    # And the kernel's credential opens alice's streamchat routes only, never bob's server
    credential = {"X-StreamChat-Token": env["JUPYTER_STREAMCHAT_TOKEN"]}
    async with httpx.AsyncClient(timeout=30, headers=credential) as http:
        assert (await http.get(f"{hub.user_url('alice')}streamchat/runs")).status_code == 200
        assert (await http.get(f"{hub.user_url('bob')}streamchat/runs")).status_code == 403
        assert (await http.get(f"{hub.direct_url('bob')}streamchat/runs")).status_code == 403
        stop = await http.post(f"{hub.user_url('bob')}streamchat/runs/{result['run']}/stop")
        assert stop.status_code == 403
        # nor anything but streamchat on alice's own server
        assert (await http.get(f"{hub.user_url('alice')}api/contents")).status_code in (302, 401, 403)
