"""The run journal: an embedded SQLite store so a crash or restart never loses a run.

Writes are batched: a flusher appends each running run's new text every ``flush_interval`` seconds in
one transaction for all runs (never a write per token); a run's final record is written once when it
ends. All SQLite work happens in one worker thread, so a slow disk or a journal locked by another
server never stalls the event loop (and every stream on it).

Several servers may share a journal (two servers started on the same folder). Each journaled run
names its owner, and each owner holds an exclusive ``flock`` on its own lock file for as long as its
journal is open; the kernel drops that lock when the process dies, however it dies. A server only
recovers (marks ``interrupted``, then persists) runs whose owner is provably gone, and it takes them
over in one transaction, so two recovering servers never both persist a run.

The journal holds prompts and replies: its file, its ``-wal``/``-shm`` companions, the owners' lock
files and any folder it creates are readable by their owner only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("jupyter_streamchat.journal")

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    prompt TEXT,
    status TEXT NOT NULL,
    persisted INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    kind INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_run ON chunks (run_id, seq);
"""

TEXT, REASONING = 0, 1
PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700
BUSY_TIMEOUT = 10.0  # seconds a write waits for another server's transaction on the same journal
MAX_UNFINISHED = 1000  # final records kept for retry while the journal cannot be written
FAILURE_LOG_INTERVAL = 60.0  # while the journal keeps failing, one log line per this many seconds
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)  # flock is not supported by the file system


@dataclass
class _Progress:
    text_chars: int = 0
    reasoning_chars: int = 0


@dataclass
class JournaledRun:
    record: dict[str, Any]  # with its journaled text and reasoning
    prompt: dict[str, str] | None
    persisted: bool


@dataclass
class Recovery:
    """What a recovery found: every journaled run (oldest first) except live servers' running ones,
    and the ids this server took over from servers that are gone (to be persisted by it)."""

    runs: list[JournaledRun] = field(default_factory=list)
    claimed: set[str] = field(default_factory=set)


class RunJournal:
    def __init__(self, path: str | Path, flush_interval: float = 0.5) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        # This server's identity in the journal: random, so a pid reused after a reboot or in another
        # container can never pass for it. Liveness is the flock on ``owners/<owner>.lock``.
        self.owner = secrets.token_hex(12)
        self.owners_dir = self.path.with_name(self.path.name + ".owners")
        self.transactions = 0  # observability: journal write transactions so far
        self._db: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock_fd: int | None = None
        self._progress: dict[str, _Progress] = {}
        self._unfinished: dict[str, Any] = {}  # runs whose final record is not written yet (retried)
        self._write_lock: asyncio.Lock | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._failing_since: float | None = None
        self._failure_logged = 0.0

    # ----- lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        """Open (creating privately) the journal and take this server's owner lock. Called once at start-up,
        before the event loop serves anything, so doing it synchronously stalls nobody."""
        _make_private_dirs(self.path.parent)
        # Create the file ourselves: SQLite would create it with the umask's mode (often 0644), and it
        # gives the -wal and -shm files the mode of the database file.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
        for suffix in ("", "-wal", "-shm", "-journal"):
            _tighten(Path(f"{self.path}{suffix}"))
        self._take_owner_lock()
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
            if "owner" not in columns:  # a journal written before runs had owners
                db.execute("ALTER TABLE runs ADD COLUMN owner TEXT")
        except BaseException:
            db.close()
            self._release_owner_lock()
            raise
        self._db = db
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamchat-journal")

    def _take_owner_lock(self) -> None:
        _make_private_dirs(self.owners_dir)
        # Locked under a temporary name, then renamed into place (the lock follows the inode): a lock
        # file that others can see is always held, so nobody can take a starting server for a gone one.
        tmp = self.owners_dir / f".{self.owner}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in _NO_LOCKS:
                    raise
                log.warning(
                    "streamchat journal: %s has no file locks; other servers will judge this one by its pid",
                    self.owners_dir,
                )
            os.write(fd, json.dumps(_this_process()).encode())
            os.replace(tmp, self._lock_path(self.owner))
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._lock_fd = fd

    def _release_owner_lock(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            self._lock_path(self.owner).unlink()
        os.close(self._lock_fd)
        self._lock_fd = None

    def _lock_path(self, owner: str) -> Path:
        return self.owners_dir / f"{owner}.lock"

    def start_flusher(self, running: Callable[[], Iterable[Any]]) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(self.flush_interval)
                try:
                    await self.flush(running())
                except asyncio.CancelledError:
                    raise
                except Exception:  # whatever it is, the next flush tries again: never stop journaling
                    self._failed("journal flush")
                else:
                    self._succeeded()

        self._flusher = asyncio.get_running_loop().create_task(loop(), name="streamchat-journal")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher
            self._flusher = None
        if self._unfinished:
            try:  # a last chance for final records that could not be written so far
                await self.flush(())
            except Exception:
                log.exception("streamchat journal: %d final run records could not be written", len(self._unfinished))
        if self._db is not None:
            db, self._db = self._db, None
            await self._call(db.close)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        # Only now: once the lock is gone, another server may recover what is still marked running here.
        self._release_owner_lock()

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "journal is not open"
        return self._db

    async def _call(self, work: Callable[..., T], *args: Any) -> T:
        """Run SQLite work in the journal's one worker thread (which also keeps it in submission order)."""
        assert self._executor is not None, "journal is not open"
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    def _lock(self) -> asyncio.Lock:
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    # ----- writing -----------------------------------------------------------------------------
    async def started(self, run: Any, prompt: dict[str, str] | None) -> None:
        """Journal a run before it starts; raises if that fails (the caller then does not start it)."""
        row = (run.id, json.dumps(_bare(run.record())), json.dumps(prompt), run.status, time.time(), self.owner)
        await self._call(self._insert, row)
        self._progress[run.id] = _Progress()

    def _insert(self, row: tuple[Any, ...]) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs (id, record, prompt, status, created, owner) VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )

    async def flush(self, runs: Iterable[Any]) -> None:
        """Append what each run streamed since the last flush, and any final record still to write:
        one transaction for all. What fails is kept and written by the next flush."""
        async with self._lock():
            unfinished = list(self._unfinished.values())
            seen: set[str] = set()
            rows: list[tuple[str, int, str]] = []
            marks: list[tuple[_Progress, int, int]] = []
            for run in [*runs, *unfinished]:
                if run.id not in seen:
                    seen.add(run.id)
                    self._new_chunks(run, rows, marks)
            finals = [(json.dumps(_bare(run.record())), run.status, run.id) for run in unfinished]
            if not rows and not finals:
                return
            write = asyncio.ensure_future(self._call(self._write, rows, finals))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                # The worker writes on: learn how it ended before letting go of the lock, or the next
                # flush would write the same text again.
                await asyncio.wait([write])
                if write.exception() is None:
                    self._written(marks, unfinished)
                raise
            self._written(marks, unfinished)

    def _written(self, marks: list[tuple[_Progress, int, int]], unfinished: list[Any]) -> None:
        # Only after the commit: a failed write is retried from the same point, with no gap.
        for progress, text_chars, reasoning_chars in marks:
            progress.text_chars, progress.reasoning_chars = text_chars, reasoning_chars
        for run in unfinished:
            self._unfinished.pop(run.id, None)
            self._progress.pop(run.id, None)

    async def finished(self, run: Any) -> None:
        """Write a run's last text and its final record; if that fails, it raises and the flusher retries."""
        self._unfinished[run.id] = run
        while len(self._unfinished) > MAX_UNFINISHED:
            dropped = next(iter(self._unfinished))
            self._unfinished.pop(dropped)
            self._progress.pop(dropped, None)
            log.error("streamchat journal: gave up writing the final record of run %s", dropped)
        await self.flush(())

    def _write(self, rows: list[tuple[str, int, str]], finals: list[tuple[str, str, str]]) -> None:
        with self._transaction() as db:
            if rows:
                db.executemany(
                    "INSERT INTO chunks (run_id, kind, text) VALUES (?, ?, ?)",
                    [(run_id, kind, _storable(text)) for run_id, kind, text in rows],
                )
            if finals:
                db.executemany("UPDATE runs SET record = ?, status = ? WHERE id = ?", finals)

    async def mark_persisted(self, run_id: str) -> None:
        await self._call(self._mark_persisted, run_id)

    def _mark_persisted(self, run_id: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET persisted = 1 WHERE id = ?", (run_id,))

    async def follow_notebook(self, run_id: str, notebook: str, recorded: str | None = None) -> None:
        """Where a run's notebook is now (renamed since it started), and, once it is final, whether the run
        was recorded there: a recovery after a crash then writes into the renamed file, and a run whose
        notebook was deleted still says so after a restart."""
        await self._call(self._follow_notebook, run_id, notebook, recorded)

    def _follow_notebook(self, run_id: str, notebook: str, recorded: str | None) -> None:
        with self._transaction() as db:
            if recorded is None:
                db.execute(
                    "UPDATE runs SET record = json_set(record, '$.notebook', ?) WHERE id = ?", (notebook, run_id)
                )
            else:
                db.execute(
                    "UPDATE runs SET record = json_set(record, '$.notebook', ?, '$.recorded', ?) WHERE id = ?",
                    (notebook, recorded, run_id),
                )

    def _new_chunks(self, run: Any, rows: list[tuple[str, int, str]], marks: list[tuple[_Progress, int, int]]) -> None:
        progress = self._progress.get(run.id)
        if progress is None:
            return
        text, reasoning = run.text, run.reasoning
        if len(text) > progress.text_chars:
            rows.append((run.id, TEXT, text[progress.text_chars :]))
        if len(reasoning) > progress.reasoning_chars:
            rows.append((run.id, REASONING, reasoning[progress.reasoning_chars :]))
        marks.append((progress, len(text), len(reasoning)))

    def _transaction(self, mode: str = "") -> _Transaction:
        self.transactions += 1
        return _Transaction(self.db, mode)

    # ----- failures ----------------------------------------------------------------------------
    def _failed(self, what: str) -> None:
        """Log a failing journal once, then once a minute while it keeps failing (not twice a second)."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            self._failure_logged = now
            log.exception("streamchat journal: %s failed; it is retried (runs go on, notebooks are written)", what)
        elif now - self._failure_logged >= FAILURE_LOG_INTERVAL:
            self._failure_logged = now
            log.error("streamchat journal: still failing for %.0f s", now - self._failing_since, exc_info=True)

    def _succeeded(self) -> None:
        if self._failing_since is not None:
            log.warning("streamchat journal: writes work again after %.0f s", time.monotonic() - self._failing_since)
            self._failing_since = None

    # ----- recovery ----------------------------------------------------------------------------
    async def recover(self, now: str, everything: bool = True) -> Recovery:
        """Take over the runs of servers that are gone: those left running become interrupted (they keep
        their text), and unpersisted ones are returned as ``claimed`` for this server to persist.

        ``everything``: also return every other journaled run except live servers' running ones (at
        start-up, so finished runs stay listed across restarts); else only the claimed runs.
        """
        return await self._call(self._recover, now, everything)

    def _recover(self, now: str, everything: bool) -> Recovery:
        db = self.db
        recovery = Recovery()
        gone: list[str | None] = []
        # IMMEDIATE: the write lock is taken before anything is read, so two servers recovering at
        # once are serialized and the second sees the runs already taken over by the first.
        with self._transaction("IMMEDIATE"):
            owners = db.execute(
                "SELECT DISTINCT owner FROM runs WHERE (status = 'running' OR persisted = 0) AND owner IS NOT ?",
                (self.owner,),
            ).fetchall()
            for (owner,) in owners:
                if self._owner_gone(owner):
                    gone.append(owner)
            for owner in gone:
                stale = db.execute(
                    "SELECT id, record FROM runs WHERE owner IS ? AND status = 'running'", (owner,)
                ).fetchall()
                for run_id, raw in stale:
                    record = json.loads(raw)
                    record.update(status="interrupted", finished=now, error=None)
                    db.execute(
                        "UPDATE runs SET record = ?, status = 'interrupted' WHERE id = ?", (json.dumps(record), run_id)
                    )
                claimed = db.execute("SELECT id FROM runs WHERE owner IS ? AND persisted = 0", (owner,)).fetchall()
                recovery.claimed.update(run_id for (run_id,) in claimed)
                db.execute("UPDATE runs SET owner = ? WHERE owner IS ? AND persisted = 0", (self.owner, owner))
        for owner in gone:
            if owner is not None:
                with contextlib.suppress(OSError):
                    self._lock_path(owner).unlink()
        self._sweep_lock_files()
        if recovery.claimed:
            log.warning("streamchat journal: recovered %d runs of servers that are gone", len(recovery.claimed))
        if everything:
            rows = db.execute(
                "SELECT id, record, prompt, persisted FROM runs WHERE status != 'running' ORDER BY created"
            ).fetchall()
        elif not recovery.claimed:
            rows = []  # the usual periodic case: nobody went away
        else:
            marks = ",".join("?" * len(recovery.claimed))
            rows = db.execute(
                f"SELECT id, record, prompt, persisted FROM runs WHERE id IN ({marks}) ORDER BY created",
                sorted(recovery.claimed),
            ).fetchall()
        for run_id, raw, prompt, persisted in rows:
            record = json.loads(raw)
            parts: dict[int, list[str]] = {TEXT: [], REASONING: []}
            for kind, text in db.execute("SELECT kind, text FROM chunks WHERE run_id = ? ORDER BY seq", (run_id,)):
                parts[kind].append(text if isinstance(text, str) else text.decode("utf-8", "surrogatepass"))
            record["text"] = "".join(parts[TEXT])
            record["reasoning"] = "".join(parts[REASONING])
            recovery.runs.append(JournaledRun(record, json.loads(prompt) if prompt else None, bool(persisted)))
        return recovery

    def _sweep_lock_files(self) -> None:
        """Remove the lock files of servers that died with no run left to recover (they would pile up)."""
        try:
            names = os.listdir(self.owners_dir)
        except OSError:
            return
        for name in names:
            # Temporary ``.*.tmp`` files are left alone: one may belong to a server starting right now.
            if name.endswith(".lock") and name != f"{self.owner}.lock" and self._owner_gone(name[: -len(".lock")]):
                with contextlib.suppress(OSError):
                    (self.owners_dir / name).unlink()

    def _owner_gone(self, owner: str | None) -> bool:
        """True only if the server that journaled these runs provably is not running any more."""
        if owner is None:
            return True  # journaled before runs had owners: the old rule, recover them
        path = self._lock_path(owner)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return True  # an owner removes its lock file only after closing its journal
        except OSError:
            log.warning("streamchat journal: cannot check owner %s (%s); its runs are left alone", owner, path)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # held: the owner is alive
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                raise
            # A file system without working locks: fall back to the process identity it wrote.
            return _process_gone(_read_json(fd))
        finally:
            os.close(fd)  # also releases the probe's lock, if it got one
        return True

    async def forget_before(self, cutoff: float) -> int:
        """Drop persisted runs older than ``cutoff`` (epoch seconds): retention of the journal."""
        return await self._call(self._forget_before, cutoff)

    def _forget_before(self, cutoff: float) -> int:
        with self._transaction() as db:
            old = [r for (r,) in db.execute("SELECT id FROM runs WHERE persisted = 1 AND created < ?", (cutoff,))]
            db.executemany("DELETE FROM chunks WHERE run_id = ?", [(r,) for r in old])
            db.executemany("DELETE FROM runs WHERE id = ?", [(r,) for r in old])
        return len(old)


class _Transaction:
    def __init__(self, db: sqlite3.Connection, mode: str = "") -> None:
        self._db = db
        self._mode = mode

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute(f"BEGIN {self._mode}")
        return self._db

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()  # a failed COMMIT leaves the transaction open: the next BEGIN would fail
                raise
        else:
            self._rollback()

    def _rollback(self) -> None:
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")


def _bare(record: dict[str, Any]) -> dict[str, Any]:
    """The record without its (large, separately journaled) text."""
    return {k: v for k, v in record.items() if k not in ("text", "reasoning")}


def _storable(text: str) -> str | bytes:
    """Text as SQLite can take it. A model's JSON may hold a lone surrogate (``"\\ud800"``), which
    clients get escaped, but which is no UTF-8: such a chunk is kept as bytes, exactly, instead."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")
    return text


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and missing parents as 0700; folders that exist are left as they are."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, PRIVATE_DIR)
            os.chmod(path, PRIVATE_DIR)  # whatever the umask


def _tighten(path: Path) -> None:
    """Make an existing journal file (e.g. from an older version) owner-only."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, PRIVATE_FILE)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("streamchat journal: could not make %s private: %s", path, exc)


def _this_process() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid())}


def _process_start(pid: int) -> str | None:
    """Boot id + start time of a process (together unique on a host), or None without /proc."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    # Field 22 (starttime); the command name in field 2 may hold spaces, so count from its ')'.
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"


def _process_gone(info: dict[str, Any]) -> bool:
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False  # another machine's process cannot be checked from here
    recorded, current = info.get("start"), _process_start(pid)
    if recorded is not None and current is not None:
        return current != recorded  # a different start time: the pid was reused
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, but belongs to someone else
        return False
    return False


def _read_json(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
