"""The chat service: turns a validated request into a run, and records every run once it ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ._errors import Conflict, StreamChatError
from ._paths import confine
from ._validation import BodyLimits, ChatBody
from .persistence import NotebookRecorder, RunJournal, history_messages, make_turn
from .persistence._schema import DEFAULT_CONVERSATION
from .persistence.journal import JournalFault, JournalFull
from .providers import ProviderRegistry
from .runs import Run, RunManager, RunRequest, utc_now

log = logging.getLogger("jupyter_streamchat")


class JournalUnavailable(StreamChatError):
    """The run could not be journaled, so it was not started: a run is never streamed without its crash record."""

    status = 503


@dataclass
class ChatService:
    registry: ProviderRegistry
    runs: RunManager
    body_limits: BodyLimits
    root_dir: str
    keepalive_interval: float = 15.0
    journal: RunJournal | None = None
    notebooks: NotebookRecorder | None = None
    recorded_via: dict[str, str] = field(default_factory=dict)  # run id -> how it reached its notebook
    _maintenance: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.runs.add_finish_hook(self._record_finished)

    async def start_run(self, body: ChatBody, mode: str, owner: str | None = None) -> Run:
        """Start a run for ``owner`` (a Jupyter username); a named notebook must exist and be a notebook."""
        model_id, provider, model = await self.registry.resolve(body.model)
        notebook = confine(self.root_dir, body.notebook) if body.notebook is not None else None
        if notebook is not None and self.notebooks is not None:
            await self.notebooks.require_notebook(notebook)
        if body.messages is not None:
            messages = body.messages
        else:
            history = await self.history(notebook, body.conversation) if body.conversation else []
            messages = [*history, {"role": "user", "content": body.prompt or ""}]
        request = RunRequest(model_id, messages, body.options, notebook, body.conversation, owner)
        run = self.runs.create(request, mode)
        if self.journal is not None:
            # Journaled before it starts: a run that could not be recorded after a crash is not started
            # at all, and its slot is given back (it would otherwise be an unrecorded orphan).
            try:
                await self.journal.started(run, run.prompt)
            except Exception as exc:
                self.runs.abandon(run)
                log.error(
                    "streamchat: run not started, the journal could not be written: %s",
                    exc,
                    exc_info=not isinstance(exc, JournalFault),
                )
                if isinstance(exc, JournalFull):
                    reason = "the disk it is on is nearly full"
                else:
                    reason = f"it could not be written: {type(exc).__name__}"
                raise JournalUnavailable(
                    f"the run journal cannot take a new run ({reason}); nothing was started"
                ) from exc
        self.runs.launch(run, provider, model)
        log.info("streamchat run %s started: %s (%s)", run.id, model_id, mode)
        return run

    async def history(self, notebook: str | None, conversation: str) -> list[dict[str, str]]:
        """The conversation so far: turns recorded in the notebook plus finished runs not yet there."""
        turns: dict[str, dict[str, Any]] = {}
        if notebook is not None and self.notebooks is not None:
            try:
                recorded = await self.notebooks.conversation_turns(notebook, conversation or DEFAULT_CONVERSATION)
            except ValueError:
                raise Conflict(f"{notebook} could not be read as a notebook; nothing was started") from None
            for turn in recorded:
                turns[turn["run"]] = turn
        for run in self.runs.list({"conversation": conversation}):
            if run.ended_for_clients and run.notebook == notebook and run.id not in turns:
                turns[run.id] = make_turn(run.record(), run.prompt)
        return history_messages(list(turns.values()))

    async def _record_finished(self, run: Run) -> None:
        """Finish hook: wait until the final record is journaled (and ``done`` released), then land the
        turn in its notebook exactly once.

        While the journal cannot be written, this waits with the run's clients: the run has not ended for
        anyone yet. If the journal closes first (shutdown), the notebook is left to the next start's
        recovery, which records the run as the journal holds it: as far as any client saw it.
        """
        if self.journal is not None:
            try:
                await self.journal.finished(run)
            except JournalFault:
                log.warning(
                    "streamchat run %s: its end was not journaled before shutdown; the next start recovers it", run.id
                )
                return
        await self.record_in_notebook(run.record(), run.prompt)

    async def record_in_notebook(self, record: dict[str, Any], prompt: dict[str, str] | None) -> None:
        if record.get("notebook") and self.notebooks is not None:
            try:
                how = await self.notebooks.record(record, prompt)
            except Exception:
                # The journal still holds the run; it is retried at the next start.
                log.exception("streamchat: could not record run %s in %s", record["id"], record["notebook"])
                return
            self.recorded_via[record["id"]] = how
            log.info("streamchat run %s recorded in %s (%s)", record["id"], record["notebook"], how)
        if self.journal is not None:
            try:
                await self.journal.mark_persisted(record["id"])
            except Exception:
                # Recorded in its notebook, but the journal still says not: a later recovery writes it
                # again, which the notebook merge (idempotent by run id) turns into nothing.
                log.exception("streamchat run %s: could not note in the journal that it is recorded", record["id"])

    async def recover(self, everything: bool = True) -> None:
        """Runs of servers that are gone (this one before a crash or restart, or another server on the same
        journal) become interrupted and are persisted once; runs of live servers are never touched.

        ``everything`` (at start-up): also list every finished journaled run again, as before the restart.
        """
        if self.journal is None:
            return
        if everything:
            await self.journal.forget_before(time.time() - self.runs.limits.finished_run_retention)
        recovery = await self.journal.recover(utc_now(), everything)
        for journaled in recovery.runs:
            record = journaled.record
            if self.runs.get(record["id"]) is None:
                self.runs.adopt(record, journaled.prompt)
            if record["id"] in recovery.claimed:
                await self.record_in_notebook(record, journaled.prompt)

    async def maintain(self) -> None:
        """Periodic upkeep: retention of the journal and of finished runs in memory, and recovery of the
        runs of servers on the same journal that went away since."""
        self.runs.prune()
        if self.journal is not None:
            self.journal.check_room()  # logs when the disk fills up or has room again
            forgotten = await self.journal.forget_before(time.time() - self.runs.limits.finished_run_retention)
            if forgotten:
                log.debug("streamchat journal: %d runs past their retention forgotten", forgotten)
            await self.recover(everything=False)

    def start_maintenance(self, interval: float) -> None:
        """Recover at start-up, then keep the journal (and memory) in shape every ``interval`` seconds."""

        async def loop() -> None:
            recovered = False
            while True:
                try:
                    if recovered:
                        await self.maintain()
                    else:
                        await self.recover()
                        recovered = True
                except JournalFault as fault:  # the journal's file or disk, already logged where it is seen
                    log.warning("streamchat: journal upkeep skipped (%s); retried in %.0f s", fault, interval)
                except Exception:
                    log.exception("streamchat: journal upkeep failed; retried in %.0f s", interval)
                await asyncio.sleep(interval)

        self._maintenance = asyncio.get_running_loop().create_task(loop(), name="streamchat-maintenance")

    async def aclose(self, timeout: float) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
            self._maintenance = None
        if self.notebooks is not None:
            self.notebooks.handoff.enabled = False
        await self.runs.shutdown(timeout)
        await self.registry.aclose()
        if self.journal is not None:
            await self.journal.close()
