"""The run journal: an embedded SQLite store so a crash or restart never loses a run, nor a word clients saw.

**Journaled before released.** A run's new events wait until the journal holds them (see ``runs.py``): a
run with unjournaled events queues itself once, and a single committer commits the new text of every
queued run in one transaction, then releases those events to subscribers. While a commit is in flight,
new events accumulate for the next one (group commit): a token waits about one commit, and throughput is
not bounded by the commit rate. A run's final record is committed the same way, before its ``done`` is
released: a run is reported ended (``done``, its status, its notebook turn) only once the journal holds
its end, so no restart can change what a client was told. All SQLite work happens in one worker thread,
so a slow disk or a journal locked by another server never stalls the event loop.

**When the journal cannot be written** (a full disk, an unwritable ``-shm``, a lock held too long), the
committer retries with backoff and events are held meanwhile: clients see keepalives, then everything at
once when the journal takes writes again. New runs are refused (503) while the last commit failed or
while the journal's disk has less than ``reserve_bytes`` free (kept for the runs already streaming). A
journal file removed or replaced under the server is rebuilt at once, with every run this server knows.

Several servers may share a journal (two servers started on the same folder). Each journaled run
names its owner, and each owner holds an exclusive ``flock`` on its own lock file for as long as its
journal is open (``_owners.py``). A server only recovers (marks ``interrupted``, then persists) runs
whose owner is provably gone, and it takes them over in one transaction (``_recovery.py``).

The journal holds prompts and replies: its file, its ``-wal``/``-shm`` companions, the owners' lock
files and any folder it creates are readable by their owner only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ...engine._parts import PromptRecord
from ...engine.contract import RUNNING
from ...engine.runs import REASONING_PART, TEXT_PART, Run
from ._owners import Owners
from ._recovery import JournaledRun, Recovery, recover
from ._store import REASONING, TEXT, ChunkRow, JournalFault, JournalReplaced, ProgressRow, RunRow, Store

__all__ = ["JournalFault", "JournalFull", "JournaledRun", "Recovery", "RunJournal"]

log = logging.getLogger("jupyter_streamchat.journal")

T = TypeVar("T")

DEFAULT_RESERVE_BYTES = 8 * 1024 * 1024
FAILURE_LOG_INTERVAL = 60.0  # while the journal keeps failing, one log line per this many seconds
RETRY_FIRST, RETRY_MAX = 0.05, 1.0  # seconds between attempts to commit held events, doubling
_KINDS = {TEXT_PART: TEXT, REASONING_PART: REASONING}


class JournalFull(JournalFault):
    """The journal's disk has less free space than the reserve kept for runs already streaming."""


@dataclass
class _Progress:
    run: Run
    text_chars: int = 0  # journaled so far
    reasoning_chars: int = 0


@dataclass
class _Taken:
    progress: _Progress
    seq: int
    parts: list[tuple[int, str]]
    text_chars: int
    reasoning_chars: int
    final: bool


class RunJournal:
    def __init__(self, path: str | Path, reserve_bytes: int = DEFAULT_RESERVE_BYTES) -> None:
        self.path = Path(path)
        self.reserve_bytes = reserve_bytes
        # This server's identity in the journal: random, so a pid reused after a reboot or in another
        # container can never pass for it. Liveness is the flock on ``owners/<owner>.lock``.
        self.owner = secrets.token_hex(12)
        self.owners_dir = self.path.with_name(self.path.name + ".owners")
        self._owners = Owners(self.owners_dir, self.owner)
        self._store = Store(self.path)
        self._executor: ThreadPoolExecutor | None = None
        self._progress: dict[str, _Progress] = {}  # runs journaled here whose final record is not committed
        self._finals: dict[str, asyncio.Future[None]] = {}  # waiters for a run's final record
        self._pending: list[Run] = []  # runs with events to commit (each once: see Run._queued)
        self._wake: asyncio.Event | None = None
        self._committer: asyncio.Task[None] | None = None
        self._known: Callable[[], Iterable[Run]] = lambda: ()
        self._failing_since: float | None = None
        self._failure_logged = 0.0
        self._fault: str | None = None  # why the last commit failed, while it keeps failing
        self._room = True

    # ----- lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        """Open (creating privately) the journal and take this server's owner lock. Called once at start-up,
        before the event loop serves anything, so doing it synchronously stalls nobody. A journal that
        cannot be used right now (an unwritable ``-shm``) is logged, and tried again at each use."""
        self._owners.take()
        try:
            self._store.connect()
        except JournalFault as fault:
            log.error("streamchat journal: %s; new runs are refused until it can be used", fault)
        except BaseException:
            self._owners.release()
            raise
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamchat-journal")

    def start(self, known: Callable[[], Iterable[Run]] = lambda: ()) -> None:
        """Start the committer. ``known``: every run in memory, written into a rebuilt journal."""
        self._known = known
        self._wake = asyncio.Event()
        if self._pending:
            self._wake.set()
        self._committer = asyncio.get_running_loop().create_task(self._commit_loop(), name="streamchat-journal")

    async def close(self) -> None:
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._committer
            self._committer = None
        if self._pending and self._executor is not None:
            try:  # a last chance for what is still held (interrupted runs' ends, at shutdown)
                await self._commit_round()
            except Exception as exc:
                log.error("streamchat journal: %d runs' last events could not be written: %s", len(self._pending), exc)
        for waiter in self._finals.values():
            if not waiter.done():
                waiter.set_exception(JournalFault("the journal closed before the run's end was written"))
        self._finals.clear()
        if self._executor is not None:
            await self._call(self._store.close, guarded=False)
            self._executor.shutdown(wait=False)
            self._executor = None
        # Only now: once the lock is gone, another server may recover what is still marked running here.
        self._owners.release()

    @property
    def db(self) -> Any:
        assert self._store.db is not None, "journal is not open"
        return self._store.db

    @property
    def transactions(self) -> int:
        return self._store.transactions

    async def _call(self, work: Callable[..., T], *args: Any, guarded: bool = True) -> T:
        """Run SQLite work in the journal's one worker thread (which also keeps it in submission order).

        A journal removed or replaced under the server is rebuilt first, then the work is done in it.
        """
        assert self._executor is not None, "journal is not open"
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, work, *args)
        except JournalReplaced as replaced:
            if not guarded:
                raise
            await self._rebuild(str(replaced))
            return await loop.run_in_executor(self._executor, work, *args)

    # ----- starting and ending runs ----------------------------------------------------------------
    async def started(self, run: Run, prompt: PromptRecord | None) -> None:
        """Journal a run before it starts, and journal its events from now on; raises ``JournalFault``
        (or an SQLite error) if the journal cannot take it: the caller then does not start it."""
        if self._fault is not None:
            raise JournalFault(f"the journal cannot be written at the moment ({self._fault})")
        self._check_room()
        row = (run.id, json.dumps(run.journal_record()), json.dumps(prompt), run.status, 0, time.time(), self.owner)
        await self._call(self._store.insert, row)
        self._progress[run.id] = _Progress(run)
        run.journal_with(self.enqueue)

    async def finished(self, run: Run) -> None:
        """Wait until the run's final record is journaled (and its ``done`` released); ``JournalFault`` if the
        journal closes first (the run is then left for the next start's recovery)."""
        if run.id not in self._progress or run.ended_for_clients:
            return
        waiter = self._finals.get(run.id)
        if waiter is None:
            waiter = self._finals[run.id] = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    def check_room(self) -> bool:
        """For periodic upkeep: note (and log) when the journal's disk runs out of room or has it again."""
        try:
            self._check_room()
        except JournalFull:
            return False
        return True

    def _check_room(self) -> None:
        if self.reserve_bytes <= 0:
            return
        try:
            stat = os.statvfs(self.path.parent)
        except OSError:
            return  # a missing folder is the store's business (it rebuilds)
        free = stat.f_bavail * stat.f_frsize
        room = free >= self.reserve_bytes
        if room != self._room:
            self._room = room
            if room:
                log.warning(
                    "streamchat journal: %s has room again (%d bytes free); new runs are accepted",
                    self.path.parent,
                    free,
                )
            else:
                log.error(
                    "streamchat journal: %s has %d bytes free, under journal_reserve_bytes (%d): new runs are refused "
                    "(503) until there is room; running runs go on",
                    self.path.parent,
                    free,
                    self.reserve_bytes,
                )
        if not room:
            raise JournalFull(f"the journal's disk is nearly full ({free} bytes free)")

    # ----- the committer ---------------------------------------------------------------------------
    def enqueue(self, run: Run) -> None:
        """A run has events to journal (called once per commit round per run, from the event loop)."""
        self._pending.append(run)
        if self._wake is not None:
            self._wake.set()

    async def flush(self) -> None:
        """Commit what is pending now (tests, and close)."""
        await self._commit_round()

    async def _commit_loop(self) -> None:
        assert self._wake is not None
        delay = 0.0
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            try:
                await self._commit_round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever it is, held events are retried: never stop journaling
                self._failed(exc)
                delay = min(max(delay * 2, RETRY_FIRST), RETRY_MAX)
                await asyncio.sleep(delay)
            else:
                delay = 0.0
                self._succeeded()

    async def _commit_round(self) -> None:
        batch, self._pending = self._pending, []
        chunks: list[ChunkRow] = []
        finals: list[tuple[str, str, str]] = []
        taken: list[_Taken] = []
        for run in batch:
            seq, parts, text_chars, reasoning_chars = run.take_unjournaled()
            progress = self._progress.get(run.id)
            final = run.status != RUNNING
            if progress is None or (not parts and not final):
                run.release(seq, text_chars, reasoning_chars)  # nothing to write: its text is journaled
                continue
            _group(run.id, parts, chunks)
            if final:
                finals.append((json.dumps(run.journal_record()), run.status, run.id))
            taken.append(_Taken(progress, seq, parts, text_chars, reasoning_chars, final))
        if not taken:
            return
        events = [_progress_row(item.seq, item.progress.run) for item in taken if not item.final]
        write = asyncio.ensure_future(self._call(self._store.write, chunks, finals, events))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            # The worker writes on: learn how it ended, or the next round would write the same text again.
            await asyncio.wait([write])
            self._committed(taken) if write.exception() is None else self._requeue(taken)
            raise
        except BaseException:
            self._requeue(taken)
            raise
        self._committed(taken)

    def _committed(self, taken: list[_Taken]) -> None:
        for item in taken:
            progress, run = item.progress, item.progress.run
            progress.text_chars, progress.reasoning_chars = item.text_chars, item.reasoning_chars
            run.release(item.seq, item.text_chars, item.reasoning_chars)
            if item.final:
                self._progress.pop(run.id, None)
                waiter = self._finals.pop(run.id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    def _requeue(self, taken: list[_Taken]) -> None:
        for item in taken:
            run = item.progress.run
            run.untake(item.parts)  # queues the run again (through ``enqueue``)

    # ----- rebuilding a removed or replaced journal ------------------------------------------------
    async def _rebuild(self, why: str) -> None:
        if self._failing_since is None:  # while rebuilding keeps failing, the committer's failure log speaks
            log.error("streamchat journal: %s; rebuilding it with the runs this server knows", why)
        runs, chunks = self._rebuild_rows()  # on the event loop: run texts are only read here
        assert self._executor is not None
        await asyncio.get_running_loop().run_in_executor(self._executor, self._store.rebuild, runs, chunks)
        log.warning("streamchat journal: %s rebuilt with %d runs", self.path, len(runs))

    def _rebuild_rows(self) -> tuple[list[RunRow], list[ChunkRow]]:
        known = {run.id: run for run in self._known()}
        known.update((run_id, progress.run) for run_id, progress in self._progress.items())
        runs: list[RunRow] = []
        chunks: list[ChunkRow] = []
        for run in known.values():
            progress = self._progress.get(run.id)
            record = run.journal_record()
            if progress is not None:  # its end (if any) is not journaled yet: as far as it is
                record["status"], text, reasoning = (
                    RUNNING,
                    run.text[: progress.text_chars],
                    run.reasoning[: progress.reasoning_chars],
                )
                persisted = 0
            elif run.is_running:
                continue  # not journaled by this server
            else:
                text, reasoning, persisted = run.text, run.reasoning, int(run.recorded.is_set())
            prompt = json.dumps(run.prompt)
            runs.append(
                (run.id, json.dumps(record), prompt, record["status"], persisted, _epoch(run.created), self.owner)
            )
            if reasoning:
                chunks.append((run.id, REASONING, reasoning))
            if text:
                chunks.append((run.id, TEXT, text))
        return runs, chunks

    # ----- failures ----------------------------------------------------------------------------
    def _failed(self, exc: BaseException) -> None:
        """Log a failing journal once, then once a minute while it keeps failing (not at each retry)."""
        now = time.monotonic()
        self._fault = str(exc) or type(exc).__name__
        if self._failing_since is None:
            self._failing_since = now
            self._failure_logged = now
            log.error(
                "streamchat journal: write failed (%s: %s); streamed events are held until it is written, "
                "and new runs are refused (503) meanwhile",
                type(exc).__name__,
                exc,
                exc_info=not isinstance(exc, (JournalFault, sqlite3.OperationalError)),  # the disk's, not ours
            )
        elif now - self._failure_logged >= FAILURE_LOG_INTERVAL:
            self._failure_logged = now
            log.error("streamchat journal: still failing for %.0f s (%s)", now - self._failing_since, exc)

    def _succeeded(self) -> None:
        if self._failing_since is not None:
            log.warning("streamchat journal: writes work again after %.0f s", time.monotonic() - self._failing_since)
            self._failing_since = None
            self._fault = None

    # ----- persistence marks, recovery, retention -------------------------------------------------
    async def mark_persisted(self, run_id: str) -> None:
        await self._call(self._store.mark_persisted, run_id)

    async def follow_notebook(self, run_id: str, notebook: str, recorded: str | None = None) -> None:
        """Where a run's notebook is now (renamed since it started), and, once it is final, whether the run
        was recorded there: a recovery after a crash then writes into the renamed file, and a run whose
        notebook was deleted still says so after a restart."""
        await self._call(self._store.follow_notebook, run_id, notebook, recorded)

    async def recover(self, now: str, everything: bool = True) -> Recovery:
        """Take over the runs of servers that are gone: those left running become interrupted (they keep
        their text), and unpersisted ones are returned as ``claimed`` for this server to persist.

        ``everything``: also return every other journaled run except live servers' running ones (at
        start-up, so finished runs stay listed across restarts); else only the claimed runs.
        """
        return await self._call(recover, self._store, self._owners, now, everything)

    async def forget_before(self, cutoff: float) -> int:
        """Drop persisted runs older than ``cutoff`` (epoch seconds): retention of the journal."""
        return await self._call(self._store.forget_before, cutoff)


def _progress_row(seq: int, run: Run) -> ProgressRow:
    """What a running run has learnt besides its text, journaled with it: after a kill -9 the recovered turn
    still says when its first token came, which model answered and what was used so far."""
    return (seq, run.first_token, run.response_model, run.system_fingerprint, json.dumps(run.usage), run.id)


def _group(run_id: str, parts: list[tuple[int, str]], chunks: list[ChunkRow]) -> None:
    """Consecutive parts of one kind become one chunk row."""
    for kind, run in itertools.groupby(parts, key=lambda part: part[0]):
        chunks.append((run_id, _KINDS[kind], "".join(text for _, text in run)))


def _epoch(created: str) -> float:
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()
