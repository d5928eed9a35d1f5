"""Runs and the detached-run manager.

A ``Run`` owns its upstream task, its sequenced event log and its status. Every way a run can end
(completion, stop, client disconnect, shutdown, time limit, upstream failure) goes through
``Run._conclude`` so the SPEC's status order and "ends exactly once" each have one home.

Per-token work is kept to: parse (in the provider), append the encoded event, wake waiters.
Subscribers read the log by sequence number and get whatever accumulated as one joined chunk,
so a slow client costs one write per wake-up rather than one per token.

Journaled before released: a run started by the server has a journal ``sink``. New events then wait in
the log (and their text in ``_unjournaled``) until the journal's committer has committed them, and only
then are they ``_release``d to subscribers, so whatever any client was sent survives a ``kill -9``. The
run hands itself to the sink once per commit round (``_queued``), not once per token. Without a sink
(the in-kernel engine) events are released as they come. ``record()`` shows what was released:
a run is reported ended (status, ``done``) only once its final record is journaled.

A finished run is kept (for ``GET runs`` and late re-attaches) for up to ``finished_run_retention``,
so it collapses to its text, reasoning and ``done`` event once no reader is left in its log: a
replay is then ``snapshot`` + ``done``, which the SPEC's resume rule already covers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

from ..context._types import ContextRecord
from ..providers import Delta, Finish, Provider, Reasoning, UpstreamError, Usage
from ..providers._parts import ChatMessage, prompt_text
from ._errors import TooManyRuns
from ._parts import PromptRecord
from ._sse import encode_event, encode_text_event

log = logging.getLogger("jupyter_streamchat.runs")

RUNNING, COMPLETED, STOPPED, FAILED, INTERRUPTED = "running", "completed", "stopped", "failed", "interrupted"
TERMINAL_STATUSES = (COMPLETED, STOPPED, FAILED, INTERRUPTED)

# Why a run was asked to end early. "stop" and "disconnect" mean stopped; "shutdown" interrupted.
STOP, DISCONNECT, SHUTDOWN, TIME_LIMIT = "stop", "disconnect", "shutdown", "time_limit"

_OTHER, _DELTA, _REASONING = 0, 1, 2
TEXT_PART, REASONING_PART = _DELTA, _REASONING  # the kinds of ``take_unjournaled``'s parts
_COMPACT_AFTER = 1024


def joined(parts: list[str]) -> str:
    """Streamed pieces as one string; the join is kept, so the next call only joins what came since."""
    if len(parts) > 1:
        parts[:] = ["".join(parts)]
    return parts[0] if parts else ""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class RunLimits:
    max_concurrent_runs: int = 32
    replay_buffer_events: int = 10_000
    finished_run_retention: float = 3600.0
    max_retained_runs: int = 1000
    run_time_limit: float = 1800.0
    max_reply_chars: int = 1_000_000


@dataclass(slots=True)
class RunRequest:
    model: str
    messages: list[ChatMessage]
    options: dict[str, Any] = field(default_factory=dict)
    notebook: str | None = None
    conversation: str | None = None
    owner: str | None = None  # the Jupyter username of who started it (see handlers.py)
    #: what the last user message carries besides its prompt, as a turn records it (SPEC 10)
    context: list[ContextRecord] = field(default_factory=list)


FinishHook = Callable[["Run"], Awaitable[None]]
JournalSink = Callable[["Run"], None]


class ReplyTooLarge(Exception):
    """Raised from the event path when a reply's text (or its reasoning) goes past ``max_reply_chars``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the reply is longer than {limit} characters (max_reply_chars); it was cut there")
        self.error = {"code": "reply_too_large", "message": str(self)}


class Run:
    def __init__(self, request: RunRequest, mode: str, replay_limit: int, max_reply_chars: int = 0) -> None:
        self.id = secrets.token_urlsafe(18)
        self.request = request
        self.model = request.model
        self.mode = mode
        self.notebook = request.notebook
        self.conversation = request.conversation
        self.owner = request.owner
        self.status = RUNNING
        self.created = utc_now()
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

        self._text: list[str] = []
        self._reasoning: list[str] = []
        # The cap on reply (and reasoning) characters, checked against _text_chars / _reasoning_chars below.
        self._reply_cap = max_reply_chars if max_reply_chars > 0 else sys.maxsize
        self._terminal_seen = False
        self._task: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[bool]] = []
        self._readers = 0  # open subscriptions: the full log is kept for them until they leave
        self._collapsed = False
        # Event 1 (``run``) is kept outside the bounded log so it can always be replayed first.
        self._seq = 1
        self._run_event = encode_event(
            1, "run", {"id": self.id, "model": self.model, "mode": mode, "created": self.created}
        )
        self._log: list[tuple[int, int, int, bytes]] = []  # (seq, kind, text chars, encoded)
        self._head = 0
        self._limit = max(16, replay_limit)
        # Characters of text/reasoning whose events were evicted: a snapshot is a prefix this long.
        self._evicted_text = 0
        self._evicted_reasoning = 0
        # Release to subscribers (see the module docstring): events up to ``_released`` may be sent.
        self._released = 1
        self._evictable = 0  # ``_released`` before the latest release
        self._released_text = 0
        self._released_reasoning = 0
        self._text_chars = 0  # characters streamed so far (one addition per event)
        self._reasoning_chars = 0
        self._sink: JournalSink | None = None
        self._queued = False
        self._unjournaled: list[tuple[int, str]] = []  # (kind, text) not committed to the journal yet

    # ----- state -------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        return joined(self._text)

    @property
    def reasoning(self) -> str:
        return joined(self._reasoning)

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
        return self._seq

    @property
    def is_running(self) -> bool:
        return self.status == RUNNING

    @property
    def released_seq(self) -> int:
        """The last event subscribers may be sent (journaled, when the run has a journal)."""
        return self._released

    @property
    def ended_for_clients(self) -> bool:
        """The ``done`` event has been released: the run's end is journaled and may be reported."""
        return self.status != RUNNING and self._released == self._seq

    @property
    def reported_status(self) -> str:
        """The status clients are told: ``running`` until the ``done`` event is released."""
        return self.status if self.ended_for_clients else RUNNING

    def record(self) -> dict[str, Any]:
        """The run as clients may know it: only released text, and ``running`` until ``done`` is released."""
        if self.ended_for_clients:
            return self._record(self.status, self.text, self.reasoning)
        record = self._record(RUNNING, self.text[: self._released_text], self.reasoning[: self._released_reasoning])
        record.update(finish_reason=None, error=None, finished=None)
        return record

    def journal_record(self) -> dict[str, Any]:
        """Everything but the text (journaled apart, as chunks), whether released or not, and the last event
        id so far: after a restart the run's ids go on from there, so a client's ``Last-Event-ID`` stays valid."""
        record = self._record(self.status, "", "")
        del record["text"], record["reasoning"]
        record["events"] = self._seq
        return record

    def _record(self, status: str, text: str, reasoning: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "mode": self.mode,
            "status": status,
            "text": text,
            "reasoning": reasoning,
            "usage": dict(self.usage),
            "finish_reason": self.finish_reason,
            "error": self.error,
            "notebook": self.notebook,
            "conversation": self.conversation,
            "owner": self.owner,
            "created": self.created,
            "first_token": self.first_token,
            "finished": self.finished,
        }

    # ----- event log (hot path) ------------------------------------------------------------------
    def _append(self, kind: int, chars: int, data: bytes) -> None:
        log_ = self._log
        # Only events released before the latest release are evicted: a reader that keeps up has taken
        # those (it was woken by that release), so a slow commit, then a burst, never costs it a snapshot.
        while len(log_) - self._head >= self._limit and log_[self._head][0] <= self._evictable:
            _, evicted_kind, evicted_chars, _ = log_[self._head]
            if evicted_kind == _DELTA:
                self._evicted_text += evicted_chars
            elif evicted_kind == _REASONING:
                self._evicted_reasoning += evicted_chars
            self._head += 1
            if self._head >= _COMPACT_AFTER and self._head * 2 >= len(log_):
                del log_[: self._head]
                self._head = 0
        log_.append((self._seq, kind, chars, data))
        if self._sink is None:
            self._release(self._seq, self._text_chars, self._reasoning_chars)
        elif not self._queued:
            self._queued = True
            self._sink(self)

    def _release(self, seq: int, text_chars: int, reasoning_chars: int) -> None:
        """Let subscribers have the events up to ``seq`` (holding that much text and reasoning)."""
        if seq <= self._released:
            return
        self._evictable = self._released
        self._released, self._released_text, self._released_reasoning = seq, text_chars, reasoning_chars
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)
        if not self._readers and self.ended_for_clients:
            self._collapse()

    # ----- the journal's side (once per commit round, not per token) -------------------------------
    def journal_with(self, sink: JournalSink) -> None:
        """From now on, events are released only once ``sink``'s committer has journaled them."""
        self._sink = sink

    def take_unjournaled(self) -> tuple[int, list[tuple[int, str]], int, int]:
        """For the committer: the last event so far, the text not journaled yet, and the text lengths."""
        self._queued = False
        parts, self._unjournaled = self._unjournaled, []
        return self._seq, parts, self._text_chars, self._reasoning_chars

    def untake(self, parts: list[tuple[int, str]]) -> None:
        """A commit failed: its text goes back in front of what came since, to be committed next time."""
        self._unjournaled[:0] = parts

    def _emit_text(self, kind: int, name: str, text: str) -> None:
        self._seq += 1
        self._append(kind, len(text), encode_text_event(self._seq, name, text))

    def _emit(self, name: str, data: Any) -> None:
        self._seq += 1
        self._append(_OTHER, 0, encode_event(self._seq, name, data))

    def _events_after(self, cursor: int) -> tuple[list[bytes], int]:
        """Encoded events after ``cursor`` (a snapshot stands in for evicted ones) and the new cursor."""
        parts: list[bytes] = []
        if cursor < 1:
            parts.append(self._run_event)
            cursor = 1
        released = self._released
        if cursor >= released:
            return parts, cursor
        first = self._log[self._head][0]
        if released < first - 1:
            return parts, cursor  # the oldest buffered event is not released yet
        if cursor < first - 1:
            snapshot = {
                "text": self.text[: self._evicted_text],
                "reasoning": self.reasoning[: self._evicted_reasoning],
            }
            parts.append(encode_event(first - 1, "snapshot", snapshot))
            cursor = first - 1
        start = self._head + (cursor + 1 - first)
        end = self._head + (released + 1 - first)
        parts.extend(entry[3] for entry in self._log[start:end])
        return parts, released

    def subscribe(self, after: int = 0) -> Subscription:
        return Subscription(self, after)

    # ----- driving the upstream ------------------------------------------------------------------
    def start(self, provider: Provider, model: str, time_limit: float, hooks: list[FinishHook]) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._drive(provider, model, hooks), name=f"streamchat-run-{self.id}")
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
            if self._terminal_seen:
                outcome = (COMPLETED, None)
            else:
                outcome = (
                    FAILED,
                    {"code": "upstream_truncated", "message": "the stream ended before the model finished"},
                )
        except asyncio.CancelledError:
            outcome = (self._status_after_cancel(), None)
            if outcome[0] == FAILED:
                outcome = (FAILED, {"code": "time_limit", "message": "the run exceeded its time limit"})
        except UpstreamError as exc:
            outcome = (COMPLETED, None) if self._terminal_seen else (FAILED, exc.as_dict())
        except ReplyTooLarge as exc:
            outcome = (FAILED, exc.error)
        except Exception as exc:
            log.exception("run %s: unexpected error", self.id)
            outcome = (FAILED, {"code": "internal_error", "message": f"internal error: {type(exc).__name__}"})
        self._conclude(*outcome)
        await _close_stream(self.id, stream)
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

    def _on_event(self, event: object) -> None:
        kind = type(event)
        if kind is Delta:
            text = event.text  # type: ignore[attr-defined]
            if self.first_token is None:
                self.first_token = utc_now()
            if self._text_chars + len(text) > self._reply_cap:
                self._too_large(_DELTA, "delta", text[: self._reply_cap - self._text_chars])
            self._text.append(text)
            self._text_chars += len(text)
            if self._sink is not None:
                self._unjournaled.append((_DELTA, text))
            self._emit_text(_DELTA, "delta", text)
        elif kind is Reasoning:
            text = event.text  # type: ignore[attr-defined]
            if self.first_token is None:
                self.first_token = utc_now()
            if self._reasoning_chars + len(text) > self._reply_cap:
                self._too_large(_REASONING, "reasoning", text[: self._reply_cap - self._reasoning_chars])
            self._reasoning.append(text)
            self._reasoning_chars += len(text)
            if self._sink is not None:
                self._unjournaled.append((_REASONING, text))
            self._emit_text(_REASONING, "reasoning", text)
        elif kind is Usage:
            for key in ("input_tokens", "output_tokens"):
                value = getattr(event, key)
                if isinstance(value, int):
                    self.usage[key] = value
            if event.final:  # type: ignore[attr-defined]
                self._terminal_seen = True
            self._emit("usage", dict(self.usage))
        elif kind is Finish:
            self._terminal_seen = True
            if event.reason is not None or self.finish_reason is None:  # type: ignore[attr-defined]
                self.finish_reason = event.reason or self.finish_reason  # type: ignore[attr-defined]

    def _too_large(self, kind: int, name: str, kept: str) -> NoReturn:
        """Keep and send the part of a text event that fits under the cap (what is recorded is what was
        streamed), then end the run: ``_drive`` concludes it as failed and hangs up on the provider."""
        if kept:
            self._on_event(Delta(kept) if kind == _DELTA else Reasoning(kept))
        raise ReplyTooLarge(self._reply_cap)

    def _conclude(self, status: str, error: dict[str, Any] | None) -> None:
        """The single place a run ends: status, timestamps, and the final ``done`` event."""
        if self.status != RUNNING:
            return
        if self._deadline is not None:
            self._deadline.cancel()
        self.status = status
        self.error = error
        self.finished = utc_now()
        self.finished_monotonic = time.monotonic()
        done: dict[str, Any] = {
            "status": status,
            "finish_reason": self.finish_reason,
            "usage": dict(self.usage),
        }
        if error is not None:
            done["error"] = error
        self._emit("done", done)  # released (and the run collapsed) once journaled

    def _collapse(self) -> None:
        """Keep only what a finished run needs: text, reasoning, ``done`` (and ``run``, kept apart).

        Every streamed event is folded into a snapshot by ``_events_after``, as evicted events are,
        so a replay is ``run`` + ``snapshot`` + ``done`` and a resume from any id before the end is
        ``snapshot`` + ``done``. Up to ``replay_buffer_events`` encoded events (hundreds of KB) per
        run would otherwise stay for the whole retention time, for up to ``max_retained_runs`` runs.
        """
        if not self.ended_for_clients or self._collapsed:
            return
        self._collapsed = True
        self._evicted_text = len(self.text)
        self._evicted_reasoning = len(self.reasoning)
        self._log = [self._log[-1]]
        self._head = 0

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

    def ensure_concluded(self) -> None:
        """Safety net for a task cancelled before it ever ran its body."""
        if self.status == RUNNING:
            self._conclude(self._status_after_cancel(), None)
            self.recorded.set()


class Subscription:
    """A reader of one run's events from a cursor on: replay, then live, never lost or repeated.

    Keepalives use one timer per subscription, moved forward lazily when it fires, rather than a
    ``wait_for`` (a timer plus two futures) for every wake-up: the wake-up is the per-token path.
    """

    __slots__ = ("_closed", "_idle_since", "_keepalive", "_run", "_timer", "_waiter", "cursor")

    def __init__(self, run: Run, after: int) -> None:
        self._run = run
        run._readers += 1
        self.cursor = max(0, after)
        self._closed = False
        self._waiter: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._keepalive = 0.0
        self._idle_since = 0.0

    @property
    def exhausted(self) -> bool:
        run = self._run
        return self._closed or (run.ended_for_clients and self.cursor >= run._released)

    def take(self) -> bytes:
        """Everything released since the last call, as one chunk (empty when nothing is new)."""
        if self.cursor >= self._run._released and self.cursor >= 1:
            return b""
        parts, self.cursor = self._run._events_after(self.cursor)
        return b"".join(parts)

    async def wait(self, keepalive: float) -> bool:
        """Wait for new events or close; False when nothing happened for ``keepalive`` seconds."""
        run = self._run
        loop = asyncio.get_running_loop()
        if self._closed or self.cursor < run._released or run.ended_for_clients:
            self._idle_since = loop.time()
            return True
        if self._timer is None or keepalive != self._keepalive:
            if self._timer is not None:
                self._timer.cancel()
            self._keepalive = keepalive
            self._idle_since = self._idle_since or loop.time()
            self._timer = loop.call_at(self._idle_since + keepalive, self._on_timer)
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        run._waiters.append(waiter)
        try:
            woken = await waiter
        finally:
            self._waiter = None
            if waiter in run._waiters:  # woken by the timer or close, not by the run
                run._waiters.remove(waiter)
        self._idle_since = loop.time()
        return woken

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        due = self._idle_since + self._keepalive
        waiter = self._waiter
        if waiter is not None and not waiter.done() and loop.time() >= due:
            waiter.set_result(False)
            due = loop.time() + self._keepalive
        self._timer = loop.call_at(due, self._on_timer)

    def close(self) -> None:
        if not self._closed:
            run = self._run
            run._readers -= 1
            if not run._readers:
                run._collapse()  # the last reader of a finished run has left (no-op while it runs)
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(True)


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

    def start(self, request: RunRequest, provider: Provider, model: str, mode: str = "detached") -> Run:
        run = self.create(request, mode)
        self.launch(run, provider, model)
        return run

    def create(self, request: RunRequest, mode: str = "detached") -> Run:
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
        assert run._task is not None
        run._task.add_done_callback(lambda _task: run.ensure_concluded())

    def abandon(self, run: Run) -> None:
        """Give back the slot of a run that was created but will never be launched."""
        self._running.discard(run.id)

    def adopt(self, record: dict[str, Any], prompt: PromptRecord | None) -> Run:
        """Re-create a finished run from its journaled record (after a restart), replayable like any other."""
        messages: list[ChatMessage] = [{"role": "user", "content": prompt["content"]}] if prompt else []
        request = RunRequest(
            record["model"],
            messages,
            {},
            record.get("notebook"),
            record.get("conversation"),
            record.get("owner"),
            list(prompt.get("context") or []) if prompt else [],
        )
        run = Run(request, record.get("mode") or "detached", self.limits.replay_buffer_events)
        run.id = record["id"]
        # Ids go on after the last one journaled: a client that saw any of them resumes with a snapshot.
        events = record.get("events")
        run._seq = events if isinstance(events, int) and not isinstance(events, bool) and events > 1 else 1
        run._run_event = encode_event(
            1, "run", {"id": run.id, "model": run.model, "mode": run.mode, "created": record["created"]}
        )
        run.created, run.first_token = record["created"], record.get("first_token")
        run.finish_reason, run.usage = record.get("finish_reason"), dict(record.get("usage") or {})
        if record.get("reasoning"):
            run._on_event(Reasoning(record["reasoning"]))
        if record.get("text"):
            run._on_event(Delta(record["text"]))
        run.first_token = record.get("first_token")
        run._conclude(record["status"], record.get("error"))
        run.finished = record.get("finished") or run.finished
        run.recorded.set()
        self._runs[run.id] = run
        return run

    def running(self) -> list[Run]:
        return [self._runs[run_id] for run_id in self._running if run_id in self._runs]

    def get(self, run_id: str) -> Run | None:
        return self._runs.get(run_id)

    def list(self, filters: Mapping[str, str] | None = None) -> list[Run]:
        self._prune()
        runs = reversed(self._runs.values())  # insertion order is creation order: newest first
        # A status filter matches the status clients are told (``running`` until the end is journaled).
        wanted = {("reported_status" if k == "status" else k): v for k, v in (filters or {}).items() if v}
        return [run for run in runs if all(getattr(run, key) == value for key, value in wanted.items())]

    @property
    def running_count(self) -> int:
        return len(self._running)

    def prune(self) -> None:
        """Forget finished runs past their retention (also done on each start and listing)."""
        self._prune()

    def _prune(self) -> None:
        cutoff = time.monotonic() - self.limits.finished_run_retention
        finished = [r for r in self._runs.values() if r.finished_monotonic is not None]
        excess = len(finished) - self.limits.max_retained_runs
        for index, run in enumerate(finished):
            if index < excess or run.finished_monotonic < cutoff:  # type: ignore[operator]
                del self._runs[run.id]

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


async def _close_stream(run_id: str, stream: object) -> None:
    """End the provider's stream with its run: one cut at ``max_reply_chars`` is still suspended mid-reply,
    and closing it hangs up the upstream call now. (A stream that ended or was cancelled is already closed.)"""
    close = getattr(stream, "aclose", None)
    if close is None:
        return
    try:
        await close()
    except Exception:
        log.debug("run %s: closing the provider stream failed", run_id, exc_info=True)
