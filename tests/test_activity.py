"""Running runs count as server activity (so idle culling does not stop a server mid-run), within bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness.upstream import Script, Stall, Text
from harness.waiting import await_until
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

    # When nothing but the run happens
    # Then the server's last activity (what jupyterhub-singleuser reports to the hub) keeps moving, tick by tick
    moved = await await_until(lambda: (moment := web_app.last_activity()) > after_requests and moment)
    await await_until(lambda: web_app.last_activity() > moved, what="a second tick to move activity again")

    # When the run ends
    await streamchat_client.stop(started["id"])
    settled = web_app.last_activity()
    # Then the run no longer counts: the next activity tick (the periodic callback's own) leaves it where it was
    (app,) = jp_serverapp.extension_manager.extension_apps["jupyter_streamchat"]
    app._mark_activity()
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
    # Then the next activity tick marks only the moment the cap ended, not now
    moment = await await_until(lambda: jp_serverapp.web_app.settings.get(ACTIVITY_SETTING), what="an activity tick")
    assert moment < datetime.now(UTC) - timedelta(seconds=59)
    await streamchat_client.stop(started["id"])
