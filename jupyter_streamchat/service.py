"""The chat service: turns a validated request into a run, and records every run once it ends."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ._errors import Conflict
from ._paths import confine
from ._validation import BodyLimits, ChatBody
from .persistence import NotebookRecorder, RunJournal, history_messages, make_turn
from .persistence._schema import DEFAULT_CONVERSATION
from .providers import ProviderRegistry
from .runs import TERMINAL_STATUSES, Run, RunManager, RunRequest, utc_now

log = logging.getLogger("jupyter_streamchat")


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
        run = self.runs.start(request, provider, model, mode)
        if self.journal is not None:
            self.journal.started(run, run.prompt)
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
            if run.status in TERMINAL_STATUSES and run.notebook == notebook and run.id not in turns:
                turns[run.id] = make_turn(run.record(), run.prompt)
        return history_messages(list(turns.values()))

    async def _record_finished(self, run: Run) -> None:
        """Finish hook: journal the final record, then land the turn in its notebook exactly once."""
        if self.journal is not None:
            self.journal.finished(run)
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
            self.journal.mark_persisted(record["id"])

    async def recover(self) -> None:
        """After a crash or restart: unfinished runs become interrupted and are persisted once."""
        if self.journal is None:
            return
        self.journal.forget_before(time.time() - self.runs.limits.finished_run_retention)
        for record, prompt, persisted in self.journal.recover(utc_now()):
            if self.runs.get(record["id"]) is None:
                self.runs.adopt(record, prompt)
            if not persisted:
                await self.record_in_notebook(record, prompt)

    async def aclose(self, timeout: float) -> None:
        if self.notebooks is not None:
            self.notebooks.handoff.enabled = False
        await self.runs.shutdown(timeout)
        await self.registry.aclose()
        if self.journal is not None:
            await self.journal.close()
