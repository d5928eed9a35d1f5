"""The chat service: turns a validated request into a run, and records every run once it ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from ..context._types import ContextRecord
from ..persistence import (
    GONE,
    PENDING,
    RECORDED,
    REFUSED,
    Conversation,
    NotebookRecorder,
    NotRecordedYet,
    RunJournal,
    UnreadableSection,
    branch,
    history_messages,
)
from ..persistence._follow import Followed
from ..persistence._writers import NotANotebook
from ..persistence.journal import JournalFault, JournalFull
from ..providers import ProviderRegistry
from ..providers._parts import ChatMessage
from ._conversations import ConversationsAnswer, conversations_answer, known_turns, not_of_conversation
from ._errors import BadRequest, Conflict, StreamChatError
from ._parts import inline_context, with_context
from ._paths import confine
from ._prices import Price
from ._validation import BodyLimits, ChatBody
from .contract import DEFAULT_CONVERSATION, STILL_STREAMING
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
    prices: Mapping[str, Price] = field(default_factory=dict)  # model id -> its price (``c.StreamChat.prices``)
    recorded_via: dict[str, str] = field(default_factory=dict)  # run id -> how it reached its notebook
    _maintenance: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _retries: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self.runs.add_finish_hook(self._record_finished)
        if self.notebooks is not None:
            self.notebooks.follower.on_move = self._notebook_moved

    async def start_run(self, body: ChatBody, mode: str, owner: str | None = None) -> Run:
        """Start a run for ``owner`` (a Jupyter username); a named notebook must exist and be a notebook."""
        model_id, provider, model = await self.registry.resolve(body.model)
        notebook = confine(self.root_dir, body.notebook) if body.notebook is not None else None
        # Renames heard from here on apply to the run: its notebook is checked now, and followed once it exists.
        renames_since = self.notebooks.follower.mark() if self.notebooks is not None else None
        if notebook is not None and self.notebooks is not None:
            await self.notebooks.require_notebook(notebook)
        # Reads the notebook's conversation: one whose section may not be written is refused here (409).
        parent, history = await self._branch(body, notebook)
        messages, context = self._messages(body, history)
        request = RunRequest(
            model_id,
            messages,
            body.options,
            notebook,
            body.conversation,
            owner,
            context,
            parent=parent,
            system=body.system,
            price=self.prices.get(model_id),
        )
        run = self.runs.create(request, mode)
        if notebook is not None:
            run.notebook_state = PENDING
            if self.notebooks is not None:
                self.notebooks.follower.follow(run, renames_since)
        if self.journal is not None:
            # Journaled before it starts: a run that could not be recorded after a crash is not started
            # at all, and its slot is given back (it would otherwise be an unrecorded orphan).
            try:
                await self.journal.started(run, run.prompt)
            except Exception as exc:
                self.runs.abandon(run)
                if self.notebooks is not None:
                    self.notebooks.follower.forget(run.id)
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

    def _messages(self, body: ChatBody, history: list[ChatMessage]) -> tuple[list[ChatMessage], list[ContextRecord]]:
        """What goes upstream, and the context a turn records: the system prompt first, then (``prompt``
        requests) the branch's history; ``context`` items go before the last prompt."""
        context = [item.record for item in body.context]
        system: list[ChatMessage] = [{"role": "system", "content": body.system}] if body.system else []
        if body.messages is None:
            prompt: ChatMessage = {"role": "user", "content": with_context(body.prompt or "", body.context)}
            return [*system, *history, prompt], context
        messages = [*system, *body.messages]
        last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
        if last is None:
            return messages, context
        content = messages[last]["content"]
        if isinstance(content, str):
            messages[last] = {"role": "user", "content": with_context(content, body.context)}
            return messages, context
        if body.context:
            raise BadRequest("send 'context' with a plain-text last user message, or put it in that message's parts")
        return messages, inline_context(content)

    async def _branch(self, body: ChatBody, notebook: str | None) -> tuple[str | None, list[ChatMessage]]:
        """The turn a new one follows (SPEC 11) and, for a ``prompt`` request, the history along its branch.

        Known turns: the notebook's, plus this server's runs of the conversation not there yet (finished or
        streaming). Without ``parent`` the new turn follows the active leaf: the newest of those runs, else
        the notebook's ``active``. A ``prompt`` request never follows a reply still streaming (409): its
        history would lack that reply. Siblings (compare panes, a regenerate) name a finished parent.
        """
        key = body.conversation or DEFAULT_CONVERSATION
        known = known_turns(await self._recorded(notebook, key), self.runs.list(), notebook, key)
        streaming = known.streaming
        turns = {run_id: turn for run_id, turn in known.turns.items() if run_id not in streaming}
        if body.parent_given:
            parent = body.parent
            if parent is not None and parent not in turns and parent not in streaming:
                raise not_of_conversation(self.runs.get(parent), parent, notebook, key)
        else:
            parent = known.active
        if body.messages is not None:
            return parent, []  # the client's messages are the history
        if parent in streaming:
            raise Conflict(STILL_STREAMING)
        return parent, history_messages(branch(turns, parent))

    async def conversations(
        self, notebook: str | None, conversation: str | None, visible: Callable[[Run], bool]
    ) -> ConversationsAnswer:
        """``GET conversations``: the notebook's conversations (or ``conversation`` alone) with the runs of this
        server not recorded there yet; the notebook must exist, and a section that cannot be read is a 409."""
        recorded: Mapping[str, Conversation] = {}
        if notebook is not None and self.notebooks is not None:
            await self.notebooks.require_notebook(notebook)
            try:
                recorded = await self.notebooks.conversations(notebook)
            except UnreadableSection as refused:
                raise Conflict(f"{notebook} cannot be read: {refused.reason}") from None
        return conversations_answer(notebook, recorded, self.runs.list(), conversation, visible)

    async def _recorded(self, notebook: str | None, conversation: str) -> Conversation:
        if notebook is None or self.notebooks is None:
            return Conversation([], None)
        try:
            return await self.notebooks.conversation(notebook, conversation)
        except UnreadableSection as refused:
            raise Conflict(f"{notebook} cannot be recorded in: {refused.reason}; nothing was started") from None
        except ValueError:
            raise Conflict(f"{notebook} could not be read as a notebook; nothing was started") from None

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
        await self.record_in_notebook(run)

    async def record_in_notebook(self, run: Run) -> None:
        """One attempt now; a notebook that cannot be written just now is retried in the background."""
        if run.notebook and self.notebooks is not None:
            try:
                how = await self._attempt(run, self.notebooks.record(run.record(), run.prompt))
            except NotRecordedYet as failed:
                log.info("streamchat run %s: not recorded in %s yet (%s); retrying", run.id, run.notebook, failed)
                retry = asyncio.get_running_loop().create_task(
                    self._retry_record(run, failed), name=f"streamchat-record-{run.id}"
                )
                self._retries.add(retry)
                retry.add_done_callback(self._retries.discard)
                return
            if how is not None:
                await self._landed(run, how)
        elif self.journal is not None:
            await self._mark_persisted(run.id)

    async def _retry_record(self, run: Run, failed: NotRecordedYet) -> None:
        notebooks = self.notebooks
        assert notebooks is not None

        async def retried() -> str | None:
            how = await notebooks.retry(run.record(), run.prompt, failed)
            if how is None:
                # Logged once per run: the journal keeps it unpersisted, and its next recovery writes it.
                log.warning(
                    "streamchat run %s: %s could not be written for %g s; left to the journal's next recovery",
                    run.id,
                    run.notebook,
                    notebooks.retry_timeout,
                )
            return how

        how = await self._attempt(run, retried())
        if how is not None:
            await self._landed(run, how)

    async def _attempt(self, run: Run, write: Awaitable[str | None]) -> str | None:
        """How one write of the run's turn ended: how it landed (or GONE), or None when nothing more is to be done
        now (refused, or failed and left to the journal). ``NotRecordedYet`` goes to the caller, which retries."""
        try:
            return await write
        except NotRecordedYet:
            raise
        except NotANotebook as error:
            # Renamed to something that is not a notebook (or journaled by an old version): never written.
            log.warning("streamchat run %s: not recorded, %s", run.id, error)
            return GONE
        except UnreadableSection as refused:
            await self._refused(run, refused)
        except Exception:
            # The journal still holds the run; it is retried at the next start.
            log.exception("streamchat: could not record run %s in %s", run.id, run.notebook)
        return None

    async def _landed(self, run: Run, how: str) -> None:
        """The run is in its notebook (``how`` it got there), or will never be (gone): journal it, then say so
        (the log line is the end marker: once it is written, the journal no longer holds the run as pending)."""
        if how != GONE:
            self.recorded_via[run.id] = how
        if self.journal is not None:
            if how == GONE and run.notebook:
                try:
                    await self.journal.follow_notebook(run.id, run.notebook, GONE)
                except Exception:
                    log.exception("streamchat run %s: could not note in the journal that its notebook is gone", run.id)
            await self._mark_persisted(run.id)
        if how == GONE:
            log.warning("streamchat run %s: its notebook %s is gone; the run stays readable", run.id, run.notebook)
        else:
            log.info("streamchat run %s recorded in %s (%s)", run.id, run.notebook, how)
        if self.notebooks is not None:
            self.notebooks.follower.forget(run.id)
        run.notebook_state = GONE if how == GONE else RECORDED
        run.notebook_settled.set()

    async def _refused(self, run: Run, refused: UnreadableSection) -> None:
        """Its notebook's ``metadata.streamchat`` may not be written: nothing was. The journal keeps the run
        (not persisted), so the next start tries again, once the section has been fixed or understood."""
        log.warning("streamchat run %s: not recorded in %s: %s", run.id, run.notebook, refused.reason)
        if self.notebooks is not None:
            self.notebooks.follower.forget(run.id)
        run.record_error = refused.reason
        run.notebook_state = REFUSED
        run.notebook_settled.set()

    async def _mark_persisted(self, run_id: str) -> None:
        assert self.journal is not None
        try:
            await self.journal.mark_persisted(run_id)
        except Exception:
            # Recorded in its notebook, but the journal still says not: a later recovery writes it
            # again, which the notebook merge (idempotent by run id) turns into nothing.
            log.exception("streamchat run %s: could not note in the journal that it is recorded", run_id)

    async def _notebook_moved(self, run: Followed) -> None:
        """A run's notebook was renamed: its journal row follows, so a recovery writes into the new path."""
        if self.journal is not None and run.notebook:
            await self.journal.follow_notebook(run.id, run.notebook)

    async def wait_notebook_settled(self, run: Run, timeout: float) -> None:
        """Until the run is in its notebook or never will be (at most ``timeout`` seconds); at once without one."""
        if run.notebook_state is None or run.notebook_state != PENDING:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(run.notebook_settled.wait()), timeout)

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
            run = self.runs.get(record["id"])
            if run is None:
                run = self.runs.adopt(record, journaled.prompt)
                if run.notebook:
                    if record.get("recorded") == GONE:
                        run.notebook_state = GONE
                    else:
                        run.notebook_state = RECORDED if journaled.persisted else PENDING
                    if run.notebook_state != PENDING:
                        run.notebook_settled.set()
            if record["id"] in recovery.claimed:
                if self.notebooks is not None:
                    self.notebooks.follower.follow(run)
                await self.record_in_notebook(run)

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
        await self.runs.shutdown(timeout)
        # Records still being retried stay in the journal (not persisted): the next start writes them.
        for retry in list(self._retries):
            retry.cancel()
        if self._retries:
            await asyncio.wait(list(self._retries))
        if self.notebooks is not None:
            self.notebooks.follower.stop()
            self.notebooks.close()
        await self.registry.aclose()
        if self.journal is not None:
            await self.journal.close()
