"""A run: its upstream task, its status and its events (kept by an ``EventLog``, see ``_eventlog.py``).

Every way a run can end (completion, stop, client disconnect, shutdown, time limit, upstream failure)
goes through ``Run._conclude`` so the SPEC's status order and "ends exactly once" each have one home.

Journaled before released: a run started by the server has a journal ``sink``. New events then wait in
the log (and their text in ``_unjournaled``) until the journal's committer has committed them, and only
then are they ``release``d to subscribers, so whatever any client was sent survives a ``kill -9``. The
run hands itself to the sink once per commit round (``_queued``), not once per token. Without a sink
(the in-kernel engine) events are released as they come. ``record()`` shows what was released:
a run is reported ended (status, ``done``) only once its final record is journaled.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

from ..providers import Answered, Delta, Finish, Provider, Reasoning, StreamEvent, UpstreamError, Usage
from ..providers._parts import ChatMessage, messages_sha256, prompt_text
from ._eventlog import REASONING, TEXT, EventLog, Subscription
from ._parts import PromptRecord
from ._request import RunRequest, close_stream, utc_now
from ._sse import encode_event
from .contract import (
    COMPLETED,
    DETACHED,
    EVENT_DELTA,
    EVENT_DONE,
    EVENT_REASONING,
    EVENT_RUN,
    EVENT_USAGE,
    FAILED,
    INTERRUPTED,
    RUNNING,
    STOPPED,
    JournalRecord,
    RunFields,
    RunRecord,
)

log = logging.getLogger("jupyter_streamchat.runs")

# Why a run was asked to end early. "stop" and "disconnect" mean stopped; "shutdown" interrupted.
STOP, DISCONNECT, SHUTDOWN, TIME_LIMIT = "stop", "disconnect", "shutdown", "time_limit"
_TRUNCATED = {"code": "upstream_truncated", "message": "the stream ended before the model finished"}
_OUT_OF_TIME = {"code": "time_limit", "message": "the run exceeded its time limit"}


FinishHook = Callable[["Run"], Awaitable[None]]
JournalSink = Callable[["Run"], None]


class ReplyTooLarge(Exception):
    """Raised from the event path when a reply's text (or its reasoning) goes past ``max_reply_chars``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the reply is longer than {limit} characters (max_reply_chars); it was cut there")
        self.error = {"code": "reply_too_large", "message": str(self)}


class Run:
    def __init__(
        self,
        request: RunRequest,
        mode: str,
        replay_limit: int,
        max_reply_chars: int = 0,
        *,
        run_id: str | None = None,
        created: str | None = None,
        last_seq: int = 1,
    ) -> None:
        """A new run; ``run_id``, ``created`` and ``last_seq`` only for one re-created by ``adopted``."""
        self.id = run_id or secrets.token_urlsafe(18)
        self.request = request
        self.model = request.model
        self.mode = mode
        self.notebook = request.notebook
        self.conversation = request.conversation
        self.owner = request.owner
        self.status = RUNNING
        self.created = created or utc_now()
        self.first_token: str | None = None
        self.finished: str | None = None
        self.finished_monotonic: float | None = None
        self.finish_reason: str | None = None
        self.error: dict[str, Any] | None = None
        self.usage: dict[str, int] = {}
        self.end_cause: str | None = None
        self.recorded = asyncio.Event()  # set once the terminal record has been persisted
        # Whether the run is in its notebook: pending, recorded or gone (the service keeps it; None: no notebook).
        self.notebook_state: str | None = None
        self.notebook_settled = asyncio.Event()  # set once notebook_state is no longer pending
        self.record_error: str | None = None  # why it was not recorded, when its notebook refused it
        # The reproducibility record (SPEC 11): what was sent, and who answered.
        self.parent = request.parent
        self.params = request.params
        self.messages_sha256: str | None = messages_sha256(request.messages) if request.messages else None
        self.response_model: str | None = None
        self.system_fingerprint: str | None = None
        self.cost: float | None = None

        # The cap on reply (and reasoning) characters, checked against the log's character counts.
        self._reply_cap = max_reply_chars if max_reply_chars > 0 else sys.maxsize
        self._terminal_seen = False
        self._task: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        run_event = {"id": self.id, "model": self.model, "mode": mode, "created": self.created}
        self._events = EventLog(encode_event(1, EVENT_RUN, run_event), replay_limit, last_seq)
        self._sink: JournalSink | None = None
        self._queued = False
        self._unjournaled: list[tuple[int, str]] = []  # (kind, text) not committed to the journal yet

    @classmethod
    def adopted(cls, record: Mapping[str, Any], prompt: PromptRecord | None, replay_limit: int) -> Run:
        """A finished run re-created from its journaled record (after a restart), replayable like any other.

        Its ids go on after the last one journaled: a client that saw any of them resumes with a snapshot.
        """
        notebook, conversation, owner = record.get("notebook"), record.get("conversation"), record.get("owner")
        messages: list[ChatMessage] = [{"role": "user", "content": prompt["content"]}] if prompt else []
        context = list(prompt.get("context") or []) if prompt else []
        request = RunRequest(record["model"], messages, {}, notebook, conversation, owner, context)
        request.parent = record.get("parent")
        events = record.get("events")
        last_seq = events if isinstance(events, int) and not isinstance(events, bool) and events > 1 else 1
        mode = record.get("mode") or DETACHED
        run = cls(request, mode, replay_limit, run_id=record["id"], created=record["created"], last_seq=last_seq)
        run.finish_reason, run.usage = record.get("finish_reason"), dict(record.get("usage") or {})
        if record.get("reasoning"):
            run._on_event(Reasoning(record["reasoning"]))
        if record.get("text"):
            run._on_event(Delta(record["text"]))
        run.first_token = record.get("first_token")
        run._conclude(record["status"], record.get("error"))
        run.finished = record.get("finished") or run.finished
        # As journaled: the messages of an adopted run are only its prompt, and its price may have changed since.
        params = record.get("params")
        run.params = dict(params) if isinstance(params, dict) else {}
        run.messages_sha256 = record.get("messages_sha256")
        run.response_model = record.get("response_model")
        run.system_fingerprint = record.get("system_fingerprint")
        run.cost = record.get("cost")
        run.recorded.set()
        return run

    # ----- state -------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self._events.text

    @property
    def reasoning(self) -> str:
        return self._events.reasoning

    @property
    def prompt(self) -> PromptRecord | None:
        """The user message this run answers, as a notebook turn records it: its text, and the context sent
        with it (text verbatim, images by their facts: never their bytes)."""
        message = next((m for m in reversed(self.request.messages) if m["role"] == "user"), None)
        if message is None:
            return None
        prompt: PromptRecord = {"role": "user", "content": prompt_text(message["content"])}
        if self.request.context:
            prompt["context"] = list(self.request.context)
        return prompt

    @property
    def last_seq(self) -> int:
        return self._events.seq

    @property
    def is_running(self) -> bool:
        return self.status == RUNNING

    @property
    def released_seq(self) -> int:
        """The last event subscribers may be sent (journaled, when the run has a journal)."""
        return self._events.released

    @property
    def ended_for_clients(self) -> bool:
        """The ``done`` event has been released: the run's end is journaled and may be reported."""
        return self._events.ended

    @property
    def reported_status(self) -> str:
        """The status clients are told: ``running`` until the ``done`` event is released."""
        return self.status if self.ended_for_clients else RUNNING

    def retained_events(self) -> tuple[int, int]:
        """How many encoded events (and bytes) the run keeps for replays."""
        return self._events.retained()

    def record(self) -> RunRecord:
        """The run as clients may know it: only released text, and ``running`` until ``done`` is released."""
        if self.ended_for_clients:
            return RunRecord(**self._fields(self.status), text=self.text, reasoning=self.reasoning)
        events = self._events
        fields = self._fields(RUNNING)
        fields["finish_reason"] = fields["error"] = fields["finished"] = None
        text, reasoning = self.text[: events.released_text], self.reasoning[: events.released_reasoning]
        return RunRecord(**fields, text=text, reasoning=reasoning)

    def journal_record(self) -> JournalRecord:
        """Everything but the text (journaled apart, as chunks), whether released or not, and the last event
        id so far: after a restart the run's ids go on from there, so a client's ``Last-Event-ID`` stays valid."""
        return JournalRecord(**self._fields(self.status), events=self._events.seq)

    def _fields(self, status: str) -> RunFields:
        return RunFields(
            id=self.id,
            model=self.model,
            mode=self.mode,
            status=status,
            usage=dict(self.usage),
            finish_reason=self.finish_reason,
            error=self.error,
            notebook=self.notebook,
            conversation=self.conversation,
            owner=self.owner,
            created=self.created,
            first_token=self.first_token,
            finished=self.finished,
            parent=self.parent,
            params=dict(self.params),
            messages_sha256=self.messages_sha256,
            response_model=self.response_model,
            system_fingerprint=self.system_fingerprint,
            cost=self.cost,
        )

    def subscribe(self, after: int = 0) -> Subscription:
        return self._events.subscribe(after)

    # ----- the journal's side (once per commit round, not per token) -------------------------------
    def journal_with(self, sink: JournalSink) -> None:
        """From now on, events are released only once ``sink``'s committer has journaled them."""
        self._sink = sink

    def take_unjournaled(self) -> tuple[int, list[tuple[int, str]], int, int]:
        """For the committer: the last event so far, the text not journaled yet, and the text lengths.
        The kinds of the parts are ``TEXT`` and ``REASONING``."""
        self._queued = False
        parts, self._unjournaled = self._unjournaled, []
        events = self._events
        return events.seq, parts, events.text_chars, events.reasoning_chars

    def untake(self, parts: list[tuple[int, str]]) -> None:
        """A commit failed: its text goes back in front of what came since, and the run is queued again."""
        self._unjournaled[:0] = parts
        if not self._queued and self._sink is not None:
            self._queued = True
            self._sink(self)

    def release(self, seq: int, text_chars: int, reasoning_chars: int) -> None:
        """The journal holds the events up to ``seq``: subscribers may have them."""
        self._events.release(seq, text_chars, reasoning_chars)

    def _appended(self) -> None:
        if self._sink is None:
            self._events.release_all()
        elif not self._queued:
            self._queued = True
            self._sink(self)

    # ----- driving the upstream ------------------------------------------------------------------
    def start(self, provider: Provider, model: str, time_limit: float, hooks: list[FinishHook]) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._drive(provider, model, hooks), name=f"streamchat-run-{self.id}")
        self._task.add_done_callback(self._task_done)
        if time_limit > 0:
            self._deadline = loop.call_later(time_limit, self.request_end, TIME_LIMIT)

    async def _drive(self, provider: Provider, model: str, hooks: list[FinishHook]) -> None:
        outcome: tuple[str, dict[str, Any] | None]
        stream = provider.stream(model, self.request.messages, self.request.options)
        try:
            on_event = self._on_event
            async for batch in stream:
                for event in batch:
                    on_event(event)
            outcome = (COMPLETED, None) if self._terminal_seen else (FAILED, dict(_TRUNCATED))
        except asyncio.CancelledError:
            outcome = (self._status_after_cancel(), None)
            if outcome[0] == FAILED:
                outcome = (FAILED, dict(_OUT_OF_TIME))
        except UpstreamError as exc:
            outcome = (COMPLETED, None) if self._terminal_seen else (FAILED, exc.as_dict())
        except ReplyTooLarge as exc:
            outcome = (FAILED, exc.error)
        except Exception as exc:
            log.exception("run %s: unexpected error", self.id)
            outcome = (FAILED, {"code": "internal_error", "message": f"internal error: {type(exc).__name__}"})
        self._conclude(*outcome)
        await close_stream(self.id, stream)
        for hook in hooks:
            try:
                await hook(self)
            except Exception:
                log.exception("run %s: finish hook failed", self.id)
        self.recorded.set()

    def _status_after_cancel(self) -> str:
        if self._terminal_seen:
            return COMPLETED
        if self.end_cause in (STOP, DISCONNECT):
            return STOPPED
        if self.end_cause == TIME_LIMIT:
            return FAILED
        return INTERRUPTED

    def _on_event(self, event: StreamEvent) -> None:
        match event:
            case Delta(text=text):
                self._text_event(TEXT, text)
            case Reasoning(text=text):
                self._text_event(REASONING, text)
            case Usage(input_tokens=input_tokens, output_tokens=output_tokens, final=final):
                if isinstance(input_tokens, int):
                    self.usage["input_tokens"] = input_tokens
                if isinstance(output_tokens, int):
                    self.usage["output_tokens"] = output_tokens
                if final:
                    self._terminal_seen = True
                self._events.add(EVENT_USAGE, dict(self.usage))
                self._appended()
            case Finish(reason=reason):
                self._terminal_seen = True
                if reason is not None or self.finish_reason is None:
                    self.finish_reason = reason or self.finish_reason
            case Answered(model=model, system_fingerprint=fingerprint):
                # Not an SSE event: it is in the run's record and its turn.
                self.response_model = model if model is not None else self.response_model
                self.system_fingerprint = fingerprint if fingerprint is not None else self.system_fingerprint

    def _text_event(self, kind: int, text: str) -> None:
        """A ``delta`` or ``reasoning``: the per-token path."""
        if self.first_token is None:
            self.first_token = utc_now()
        events = self._events
        streamed = events.text_chars if kind == TEXT else events.reasoning_chars
        if streamed + len(text) > self._reply_cap:
            self._too_large(kind, text[: self._reply_cap - streamed])
        if self._sink is not None:
            self._unjournaled.append((kind, text))
        events.add_text(kind, EVENT_DELTA if kind == TEXT else EVENT_REASONING, text)
        sink = self._sink  # ``_appended``, inlined on the per-token path
        if sink is None:
            events.release(events.seq, events.text_chars, events.reasoning_chars)
        elif not self._queued:
            self._queued = True
            sink(self)

    def _too_large(self, kind: int, kept: str) -> NoReturn:
        """Keep and send the part of a text event that fits under the cap (what is recorded is what was
        streamed), then end the run: ``_drive`` concludes it as failed and hangs up on the provider."""
        if kept:
            self._text_event(kind, kept)
        raise ReplyTooLarge(self._reply_cap)

    def _conclude(self, status: str, error: dict[str, Any] | None) -> None:
        """The single place a run ends: status, timestamps, and the final ``done`` event."""
        if self.status != RUNNING:
            return
        if self._deadline is not None:
            self._deadline.cancel()
        self.status = status
        self.error = error
        price = self.request.price
        self.cost = price.cost(self.usage) if price is not None else None
        self.finished = utc_now()
        self.finished_monotonic = time.monotonic()
        done: dict[str, Any] = {"status": status, "finish_reason": self.finish_reason, "usage": dict(self.usage)}
        if error is not None:
            done["error"] = error
        self._events.add(EVENT_DONE, done, final=True)  # released (and the log collapsed) once journaled
        self._appended()

    # ----- ending early --------------------------------------------------------------------------
    def request_end(self, cause: str) -> bool:
        """Ask the upstream task to end now (it is cancelled even mid-await). True for the first asker."""
        if self.status != RUNNING or self.end_cause is not None:
            return False
        self.end_cause = cause
        if self._task is not None:
            self._task.cancel()
        return True

    async def stop(self, cause: str = STOP) -> bool:
        """Stop and wait until the partial is recorded; True only if this call stopped the run."""
        first = self.request_end(cause)
        await self.wait_recorded()
        return first and self.status == STOPPED

    async def wait_recorded(self) -> None:
        await asyncio.shield(self.recorded.wait())

    def _task_done(self, _task: asyncio.Task[None]) -> None:
        """Safety net for a task cancelled before it ever ran its body."""
        if self.status == RUNNING:
            self._conclude(self._status_after_cancel(), None)
            self.recorded.set()
