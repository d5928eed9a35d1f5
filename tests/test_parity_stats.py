"""Parity: SSE events -> reply state and stats line, through the kernel pane's own event handling.

The same fixtures (``tests/parity/stats/*.json``) run in node against the panel's ``RunState``
(``labextension/test/parity_stats.test.ts``): a change to either side that breaks parity fails there
or here. Times in the fixtures are milliseconds after the request; the pane's clock is in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_streamchat.engine._sse import SSEMessage
from jupyter_streamchat.kernel import _static
from jupyter_streamchat.kernel._panes import PaneState

FIXTURES = sorted((Path(__file__).parent / "parity" / "stats").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _state_after(fixture: dict[str, Any], count: int) -> PaneState:
    state = PaneState(None, requested_at=0.0)
    for index, event in enumerate(fixture["events"][:count], start=1):
        message = SSEMessage(event=event["event"], data=json.dumps(event["data"]), id=str(index))
        state.apply(message, now=event["at"] / 1000)
    return state


def test_there_are_stats_fixtures() -> None:
    assert len(FIXTURES) >= 5


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_events_give_the_reply_state_and_stats_line_of_the_fixture(path: Path) -> None:
    fixture = _load(path)
    for check in fixture["checks"]:
        # Given the pane has applied the first `after` events, each at its time
        state = _state_after(fixture, check["after"])
        # When its state and numbers are read at `now`
        result = state.result(now=check["now"] / 1000)
        expect = check["expect"]
        where = f"{path.stem}: after {check['after']} events at {check['now']} ms"
        # Then they are the fixture's
        assert result["text"] == expect["text"], where
        assert result["reasoning"] == expect["reasoning"], where
        assert result["status"] == expect["status"], where
        assert state.partial is expect["partial"], where
        assert result["usage"] == expect["usage"], where
        assert (result["output_tokens"] or 0) == expect["output_tokens"], where
        assert result["ttft"] == pytest.approx(expect["ttft"]), where
        assert result["tokens_per_second"] == pytest.approx(expect["tokens_per_second"]), where
        # And the widget's stats line (and the saved notebook's, the same function) says the fixture's words
        line = _static.stats_line(result)
        badge = _static.status_badge(expect["status"])
        assert line == (f"{badge} · {expect['stats']}" if expect["stats"] else badge), where
