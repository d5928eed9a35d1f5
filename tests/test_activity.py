"""Running runs count as server activity (so idle culling does not stop a server mid-run), within bounds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness.upstream import Script, Stall, Text
from jupyter_streamchat.server._lifecycle import ACTIVITY_SETTING, mark_activity, runs_activity
from tests.helpers import chat, collect

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_run_counts_as_activity_until_its_cap() -> None:
    young, old = iso(NOW - timedelta(seconds=10)), iso(NOW - timedelta(seconds=100))
    # No running run: nothing to report
    assert runs_activity([], NOW, 60) is None
    # A run younger than the cap keeps the server active now
    assert runs_activity([young], NOW, 60) == NOW
    # An older one only until it reached the cap: it cannot keep a server alive forever
    assert runs_activity([old], NOW, 60) == NOW - timedelta(seconds=40)
    # Several: the latest moment wins
    assert runs_activity([old, young], NOW, 60) == NOW


def test_activity_only_moves_forward() -> None:
    settings: dict[str, Any] = {}
    mark_activity(settings, NOW)
    mark_activity(settings, NOW - timedelta(seconds=5))
    assert settings[ACTIVITY_SETTING] == NOW


@pytest.fixture
def streamchat_settings(streamchat_settings: dict[str, Any]) -> dict[str, Any]:
    return {**streamchat_settings, "activity_interval": 0.1}


async def test_a_streaming_run_keeps_the_server_active_and_stops_when_it_ends(
    jp_serverapp: Any, streamchat_client: Any, upstream: Any
) -> None:
    web_app = jp_serverapp.web_app
    # Given a detached run whose upstream streams a little and then stays silent, and no client attached
    upstream.script("stall", Script([Text("Hel"), Text("lo"), Stall(30)]))
    started = await streamchat_client.start_run(chat("openai:stall"))
    await collect(streamchat_client.events(started["id"]), limit=2)
    after_requests = web_app.last_activity()

    # When nothing but the run happens for a second
    await asyncio.sleep(1.0)

    # Then the server's last activity (what jupyterhub-singleuser reports to the hub) kept moving
    assert web_app.last_activity() > after_requests + timedelta(seconds=0.5)

    # When the run ends
    await streamchat_client.stop(started["id"])
    ended = datetime.now(UTC)
    await asyncio.sleep(0.5)
    settled = web_app.last_activity()
    await asyncio.sleep(0.5)

    # Then the run no longer counts: activity stays where the stop request left it
    assert settled <= ended + timedelta(seconds=0.3)
    assert web_app.last_activity() == settled


async def test_runs_older_than_the_time_limit_do_not_count(
    jp_serverapp: Any, streamchat_client: Any, upstream: Any
) -> None:
    # Given a run that has streamed for longer than the activity cap (here: the run started "long ago")
    upstream.script("stall", Script([Text("Hel"), Stall(30)]))
    started = await streamchat_client.start_run(chat("openai:stall"))
    await collect(streamchat_client.events(started["id"]), limit=1)
    (app,) = jp_serverapp.extension_manager.extension_apps["jupyter_streamchat"]
    run = app.service.runs.get(started["id"])
    run.created = iso(datetime.now(UTC) - timedelta(seconds=app.run_time_limit + 60))
    jp_serverapp.web_app.settings.pop(ACTIVITY_SETTING, None)
    await asyncio.sleep(0.5)
    # Then it no longer moves the server's activity forward
    moment = jp_serverapp.web_app.settings.get(ACTIVITY_SETTING)
    assert moment is not None and moment < datetime.now(UTC) - timedelta(seconds=59)
    await streamchat_client.stop(started["id"])
