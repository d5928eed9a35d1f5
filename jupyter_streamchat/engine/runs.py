"""The detached-run manager: every run of a server (or of an in-process engine), from creation under the
concurrency cap to retention, stop and shutdown.

A run itself is in ``_run.py`` (its task, status and records) and its events in ``_eventlog.py`` (the replay
buffer and subscriptions); the names other modules import from here are re-exported below.

A finished run is kept (for ``GET runs`` and late re-attaches) for up to ``finished_run_retention``,
so it collapses to its text, reasoning and ``done`` event once no reader is left in its log: a
replay is then ``snapshot`` + ``done``, which the SPEC's resume rule already covers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..providers import Provider
from ._errors import TooManyRuns
from ._eventlog import REASONING as REASONING_PART
from ._eventlog import TEXT as TEXT_PART
from ._eventlog import Subscription, joined
from ._parts import PromptRecord
from ._request import RunRequest, utc_now
from ._run import (
    DISCONNECT,
    SHUTDOWN,
    STOP,
    TIME_LIMIT,
    FinishHook,
    JournalSink,
    ReplyTooLarge,
    Run,
)
from .contract import COMPLETED, DETACHED, FAILED, INTERRUPTED, RUNNING, STOPPED, TERMINAL_STATUSES

__all__ = [
    "COMPLETED",
    "DISCONNECT",
    "FAILED",
    "INTERRUPTED",
    "REASONING_PART",
    "RUNNING",
    "SHUTDOWN",
    "STOP",
    "STOPPED",
    "TERMINAL_STATUSES",
    "TEXT_PART",
    "TIME_LIMIT",
    "FinishHook",
    "JournalSink",
    "ReplyTooLarge",
    "Run",
    "RunLimits",
    "RunManager",
    "RunRequest",
    "Subscription",
    "joined",
    "utc_now",
]

log = logging.getLogger("jupyter_streamchat.runs")

# What each listing filter (``contract.LISTING_FILTERS``) compares. A status filter matches the status
# clients are told (``running`` until the end is journaled).
_FILTERED: dict[str, Callable[[Run], str | None]] = {
    "status": lambda run: run.reported_status,
    "notebook": lambda run: run.notebook,
    "conversation": lambda run: run.conversation,
}


@dataclass(frozen=True, slots=True)
class RunLimits:
    max_concurrent_runs: int = 32
    replay_buffer_events: int = 10_000
    finished_run_retention: float = 3600.0
    max_retained_runs: int = 1000
    run_time_limit: float = 1800.0
    max_reply_chars: int = 1_000_000


class RunManager:
    """Owns every run: creation under the concurrency cap, lookup, retention, stop, shutdown."""

    def __init__(self, limits: RunLimits | None = None) -> None:
        self.limits = limits or RunLimits()
        self._runs: dict[str, Run] = {}
        self._running: set[str] = set()
        self._finish_hooks: list[FinishHook] = [self._release]

    def add_finish_hook(self, hook: FinishHook) -> None:
        """Hooks run in order after a run concludes and before ``stop`` answers (e.g. persistence)."""
        self._finish_hooks.append(hook)

    async def _release(self, run: Run) -> None:
        self._running.discard(run.id)

    def start(self, request: RunRequest, provider: Provider, model: str, mode: str = DETACHED) -> Run:
        run = self.create(request, mode)
        self.launch(run, provider, model)
        return run

    def create(self, request: RunRequest, mode: str = DETACHED) -> Run:
        """A run that holds a slot under the concurrency cap but is not started nor visible yet.

        Between ``create`` and ``launch`` the caller can do what must succeed before any upstream
        call is made (journal the run); if that fails, ``abandon`` gives the slot back.
        """
        if len(self._running) >= self.limits.max_concurrent_runs:
            raise TooManyRuns(f"too many concurrent runs (limit {self.limits.max_concurrent_runs})")
        self._prune()
        run = Run(request, mode, self.limits.replay_buffer_events, self.limits.max_reply_chars)
        self._running.add(run.id)
        return run

    def launch(self, run: Run, provider: Provider, model: str) -> None:
        self._runs[run.id] = run
        run.start(provider, model, self.limits.run_time_limit, self._finish_hooks)

    def abandon(self, run: Run) -> None:
        """Give back the slot of a run that was created but will never be launched."""
        self._running.discard(run.id)

    def adopt(self, record: Mapping[str, Any], prompt: PromptRecord | None) -> Run:
        """Re-create a finished run from its journaled record (after a restart), replayable like any other."""
        run = Run.adopted(record, prompt, self.limits.replay_buffer_events)
        self._runs[run.id] = run
        return run

    def running(self) -> list[Run]:
        return [self._runs[run_id] for run_id in self._running if run_id in self._runs]

    def get(self, run_id: str) -> Run | None:
        return self._runs.get(run_id)

    def list(self, filters: Mapping[str, str] | None = None) -> list[Run]:
        self._prune()
        runs = reversed(self._runs.values())  # insertion order is creation order: newest first
        wanted = [(_FILTERED[key], value) for key, value in (filters or {}).items() if value]
        return [run for run in runs if all(field(run) == value for field, value in wanted)]

    @property
    def running_count(self) -> int:
        return len(self._running)

    def prune(self) -> None:
        """Forget finished runs past their retention (also done on each start and listing)."""
        self._prune()

    def _prune(self) -> None:
        cutoff = time.monotonic() - self.limits.finished_run_retention
        finished = [(r.id, r.finished_monotonic) for r in self._runs.values() if r.finished_monotonic is not None]
        excess = len(finished) - self.limits.max_retained_runs
        for index, (run_id, finished_at) in enumerate(finished):
            if index < excess or finished_at < cutoff:
                del self._runs[run_id]

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Interrupt every running run and wait (bounded) until each is recorded."""
        running = [run for run in self._runs.values() if run.is_running]
        for run in running:
            run.request_end(SHUTDOWN)
        if running:
            _, pending = await asyncio.wait(
                [asyncio.ensure_future(r.wait_recorded()) for r in running], timeout=timeout
            )
            if pending:
                log.warning("%d runs were not recorded within %.1fs of shutdown", len(pending), timeout)
