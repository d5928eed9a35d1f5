"""A run's event log and its readers: the sequenced, encoded events, the bounded replay buffer, and
``Subscription`` (replay, then live, never lost or repeated).

Per-token work is kept to: append the encoded event, wake waiters. Subscribers read the log by
sequence number and get whatever accumulated as one joined chunk, so a slow client costs one write
per wake-up rather than one per token.

Events are appended as they come and ``release``d to subscribers when the run's journal holds them
(at once without a journal; see ``_run.py``). Only released events are evicted from the bounded
buffer; evicted text is replayed as a ``snapshot``. Once the run's end is released and no reader is
left, the log collapses to its text, reasoning and ``done`` (``collapse``).
"""

from __future__ import annotations

import asyncio

from ._sse import encode_event, encode_text_event
from .contract import EVENT_SNAPSHOT

# The kinds of entries: text and reasoning count towards a snapshot, other events do not.
OTHER, TEXT, REASONING = 0, 1, 2
_COMPACT_AFTER = 1024


def joined(parts: list[str]) -> str:
    """Streamed pieces as one string; the join is kept, so the next call only joins what came since."""
    if len(parts) > 1:
        parts[:] = ["".join(parts)]
    return parts[0] if parts else ""


class EventLog:
    """The events of one run, numbered from 1 (``run``, kept apart so it can always be replayed first)."""

    __slots__ = (
        "_collapsed",
        "_entries",
        "_evictable",
        "_evicted_reasoning",
        "_evicted_text",
        "_final",
        "_head",
        "_limit",
        "_readers",
        "_released",
        "_waiters",
        "reasoning_chars",
        "reasoning_parts",
        "released_reasoning",
        "released_text",
        "run_event",
        "seq",
        "text_chars",
        "text_parts",
    )

    def __init__(self, run_event: bytes, replay_limit: int, last_seq: int = 1) -> None:
        self.run_event = run_event
        self.seq = last_seq  # the last event id issued
        self.text_parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.text_chars = 0  # characters streamed so far (one addition per event)
        self.reasoning_chars = 0
        self._entries: list[tuple[int, int, int, bytes]] = []  # (seq, kind, text chars, encoded)
        self._head = 0
        self._limit = max(16, replay_limit)
        # Characters of text/reasoning whose events were evicted: a snapshot is a prefix this long.
        self._evicted_text = 0
        self._evicted_reasoning = 0
        self._released = 1  # events up to this one may be sent
        self._evictable = 0  # ``_released`` before the latest release
        self.released_text = 0
        self.released_reasoning = 0
        self._final = False  # ``done`` is in the log
        self._waiters: list[asyncio.Future[bool]] = []
        self._readers = 0  # open subscriptions: the full log is kept for them until they leave
        self._collapsed = False

    @property
    def text(self) -> str:
        return joined(self.text_parts)

    @property
    def reasoning(self) -> str:
        return joined(self.reasoning_parts)

    @property
    def released(self) -> int:
        return self._released

    @property
    def ended(self) -> bool:
        """``done`` has been released: the run's end may be reported."""
        return self._final and self._released == self.seq

    def retained(self) -> tuple[int, int]:
        """How many encoded events the buffer holds, and their bytes (``run`` aside)."""
        kept = self._entries[self._head :]
        return len(kept), sum(len(entry[3]) for entry in kept)

    # ----- appending (hot path) --------------------------------------------------------------------
    def add_text(self, kind: int, name: str, text: str) -> None:
        """A ``delta`` (kind TEXT) or ``reasoning`` (kind REASONING) event, its text kept for snapshots."""
        if kind == TEXT:
            self.text_parts.append(text)
            self.text_chars += len(text)
        else:
            self.reasoning_parts.append(text)
            self.reasoning_chars += len(text)
        self.seq += 1
        self._append(kind, len(text), encode_text_event(self.seq, name, text))

    def add(self, name: str, data: object, final: bool = False) -> None:
        """Any other event; ``final`` for ``done``, the last one."""
        self.seq += 1
        self._final = self._final or final
        self._append(OTHER, 0, encode_event(self.seq, name, data))

    def _append(self, kind: int, chars: int, data: bytes) -> None:
        entries = self._entries
        # Only events released before the latest release are evicted: a reader that keeps up has taken
        # those (it was woken by that release), so a slow commit, then a burst, never costs it a snapshot.
        while len(entries) - self._head >= self._limit and entries[self._head][0] <= self._evictable:
            _, evicted_kind, evicted_chars, _ = entries[self._head]
            if evicted_kind == TEXT:
                self._evicted_text += evicted_chars
            elif evicted_kind == REASONING:
                self._evicted_reasoning += evicted_chars
            self._head += 1
            if self._head >= _COMPACT_AFTER and self._head * 2 >= len(entries):
                del entries[: self._head]
                self._head = 0
        entries.append((self.seq, kind, chars, data))

    def release(self, seq: int, text_chars: int, reasoning_chars: int) -> None:
        """Let subscribers have the events up to ``seq`` (holding that much text and reasoning)."""
        if seq <= self._released:
            return
        self._evictable = self._released
        self._released, self.released_text, self.released_reasoning = seq, text_chars, reasoning_chars
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)
        if not self._readers and self.ended:
            self.collapse()

    def release_all(self) -> None:
        self.release(self.seq, self.text_chars, self.reasoning_chars)

    # ----- reading ---------------------------------------------------------------------------------
    def events_after(self, cursor: int) -> tuple[list[bytes], int]:
        """Encoded events after ``cursor`` (a snapshot stands in for evicted ones) and the new cursor."""
        parts: list[bytes] = []
        if cursor < 1:
            parts.append(self.run_event)
            cursor = 1
        released = self._released
        if cursor >= released:
            return parts, cursor
        first = self._entries[self._head][0]
        if released < first - 1:
            return parts, cursor  # the oldest buffered event is not released yet
        if cursor < first - 1:
            snapshot = {"text": self.text[: self._evicted_text], "reasoning": self.reasoning[: self._evicted_reasoning]}
            parts.append(encode_event(first - 1, EVENT_SNAPSHOT, snapshot))
            cursor = first - 1
        start = self._head + (cursor + 1 - first)
        end = self._head + (released + 1 - first)
        parts.extend(entry[3] for entry in self._entries[start:end])
        return parts, released

    def subscribe(self, after: int = 0) -> Subscription:
        return Subscription(self, after)

    def collapse(self) -> None:
        """Keep only what a finished run needs: text, reasoning, ``done`` (and ``run``, kept apart).

        Every streamed event is folded into a snapshot by ``events_after``, as evicted events are,
        so a replay is ``run`` + ``snapshot`` + ``done`` and a resume from any id before the end is
        ``snapshot`` + ``done``. Up to ``replay_buffer_events`` encoded events (hundreds of KB) per
        run would otherwise stay for the whole retention time, for up to ``max_retained_runs`` runs.
        """
        if not self.ended or self._collapsed:
            return
        self._collapsed = True
        self._evicted_text = len(self.text)
        self._evicted_reasoning = len(self.reasoning)
        self._entries = [self._entries[-1]]
        self._head = 0


class Subscription:
    """A reader of one run's events from a cursor on: replay, then live, never lost or repeated.

    Keepalives use one timer per subscription, moved forward lazily when it fires, rather than a
    ``wait_for`` (a timer plus two futures) for every wake-up: the wake-up is the per-token path.
    """

    __slots__ = ("_closed", "_idle_since", "_keepalive", "_log", "_timer", "_waiter", "cursor")

    def __init__(self, log: EventLog, after: int) -> None:
        self._log = log
        log._readers += 1
        self.cursor = max(0, after)
        self._closed = False
        self._waiter: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._keepalive = 0.0
        self._idle_since = 0.0

    @property
    def exhausted(self) -> bool:
        log = self._log
        return self._closed or (log.ended and self.cursor >= log._released)

    def take(self) -> bytes:
        """Everything released since the last call, as one chunk (empty when nothing is new)."""
        if self.cursor >= self._log._released and self.cursor >= 1:
            return b""
        parts, self.cursor = self._log.events_after(self.cursor)
        return b"".join(parts)

    async def wait(self, keepalive: float) -> bool:
        """Wait for new events or close; False when nothing happened for ``keepalive`` seconds."""
        log = self._log
        loop = asyncio.get_running_loop()
        if self._closed or self.cursor < log._released or log.ended:
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
        log._waiters.append(waiter)
        try:
            woken = await waiter
        finally:
            self._waiter = None
            if waiter in log._waiters:  # woken by the timer or close, not by the run
                log._waiters.remove(waiter)
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
            log = self._log
            log._readers -= 1
            if not log._readers:
                log.collapse()  # the last reader of a finished run has left (no-op while it runs)
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(True)
