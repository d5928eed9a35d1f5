"""The journal's SQLite file, used only from the journal's one worker thread.

Durability: WAL with ``synchronous=NORMAL``. A commit is in the WAL (the operating system's page cache)
when it returns, so it survives the process being killed (``kill -9``, a crash, the OOM killer); the
WAL is synced at checkpoints, so a power loss or a kernel crash may lose the last commits before one.

Before every use, ``guard`` checks two ways the file can fail under a running server:

- the ``-shm`` file (SQLite's memory-mapped WAL index) stops being writable (``chattr +i``, a read-only
  remount): touching its mapping would then kill the process with SIGBUS, so the journal is not touched
  at all until it is writable again (the check costs one ``access`` call; exclusive locking mode would
  avoid the mapping but lock every other server out of a shared journal);
- the path no longer names the file that is open (deleted, or replaced by another file): the caller
  rebuilds it (``JournalReplaced``), writing what it knows into the file now at the path.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("jupyter_streamchat.journal")

SCHEMA = """
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

RunRow = tuple[str, str, str, str, int, float, str]  # id, record, prompt, status, persisted, created, owner
ChunkRow = tuple[str, int, str]  # run id, kind, text
# last event id, first token, response model, system fingerprint, usage (JSON), run id
ProgressRow = tuple[int, str | None, str | None, str | None, str, str]
PROGRESS_UPDATE = (
    "UPDATE runs SET record = json_set(record, '$.events', ?, '$.first_token', ?, '$.response_model', ?,"
    " '$.system_fingerprint', ?, '$.usage', json(?)) WHERE id = ?"
)


class JournalFault(Exception):
    """The journal cannot be used right now; the message says why (a path, never run content)."""


class JournalReplaced(JournalFault):
    """The journal's path names another file than the open one (deleted or replaced)."""


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.shm = f"{path}-shm"
        self.db: sqlite3.Connection | None = None
        self.transactions = 0  # observability: write transactions so far
        self._identity: tuple[int, int] | None = None

    # ----- the file ----------------------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        make_private_dirs(self.path.parent)
        # Create the file ourselves: SQLite would create it with the umask's mode (often 0644), and it
        # gives the -wal and -shm files the mode of the database file.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
        for suffix in ("", "-wal", "-shm", "-journal"):
            _tighten(Path(f"{self.path}{suffix}"))
        self._check_shm()
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
            if "owner" not in columns:  # a journal written before runs had owners
                db.execute("ALTER TABLE runs ADD COLUMN owner TEXT")
        except BaseException:
            db.close()
            raise
        stat = os.stat(self.path)
        self._identity = (stat.st_dev, stat.st_ino)
        self.db = db
        return db

    def guard(self) -> sqlite3.Connection:
        """The connection, once it is safe to use (see the module docstring); raises ``JournalFault`` if not."""
        self._check_shm()
        if self.db is None:
            return self.connect()
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise JournalReplaced(f"{self.path} was removed") from None
        if (stat.st_dev, stat.st_ino) != self._identity:
            raise JournalReplaced(f"{self.path} was replaced by another file")
        return self.db

    def _check_shm(self) -> None:
        if not os.access(self.shm, os.W_OK) and os.path.lexists(self.shm):
            raise JournalFault(f"{self.shm} cannot be written (read-only or immutable)")

    def reopen(self) -> None:
        """Let go of a file that is no longer at the path, and open (or create) the one that is."""
        old, self.db = self.db, None
        if old is not None:
            with contextlib.suppress(sqlite3.Error):
                old.close()
        self.connect()

    def close(self) -> None:
        db, self.db = self.db, None
        if db is None:
            return
        try:
            self._check_shm()
        except JournalFault:
            # Closing checkpoints through the mapped -shm, which would raise SIGBUS now: the connection
            # is left open for good (never finalized), and the next start recovers from the WAL.
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(db))
            log.error(
                "streamchat journal: %s is not writable; the journal is left as it is for the next start", self.shm
            )
            return
        db.close()

    def transaction(self, mode: str = "") -> _Transaction:
        self.transactions += 1
        return _Transaction(self.guard(), mode)

    # ----- writes ------------------------------------------------------------------------------
    def insert(self, row: RunRow) -> None:
        with self.transaction() as db:
            _insert_runs(db, [row])

    def write(
        self, chunks: list[ChunkRow], finals: list[tuple[str, str, str]], progress: Iterable[ProgressRow] = ()
    ) -> None:
        """One group commit: every run's new text, its progress (last event id, first token, who answered,
        usage so far), and the final records of runs that ended."""
        with self.transaction() as db:
            if chunks:
                db.executemany(
                    "INSERT INTO chunks (run_id, kind, text) VALUES (?, ?, ?)",
                    [(run_id, kind, storable(text)) for run_id, kind, text in chunks],
                )
            db.executemany(PROGRESS_UPDATE, progress)
            if finals:
                db.executemany("UPDATE runs SET record = ?, status = ? WHERE id = ?", finals)

    def rebuild(self, runs: list[RunRow], chunks: list[ChunkRow]) -> None:
        """Open the file now at the path and write these runs into it, replacing what it held of them."""
        self.reopen()
        with self.transaction() as db:
            db.executemany("DELETE FROM chunks WHERE run_id = ?", [(row[0],) for row in runs])
            _insert_runs(db, runs)
            db.executemany(
                "INSERT INTO chunks (run_id, kind, text) VALUES (?, ?, ?)",
                [(run_id, kind, storable(text)) for run_id, kind, text in chunks],
            )

    def mark_persisted(self, run_id: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET persisted = 1 WHERE id = ?", (run_id,))

    def follow_notebook(self, run_id: str, notebook: str, recorded: str | None) -> None:
        with self.transaction() as db:
            if recorded is None:
                db.execute(
                    "UPDATE runs SET record = json_set(record, '$.notebook', ?) WHERE id = ?", (notebook, run_id)
                )
            else:
                db.execute(
                    "UPDATE runs SET record = json_set(record, '$.notebook', ?, '$.recorded', ?) WHERE id = ?",
                    (notebook, recorded, run_id),
                )

    def forget_before(self, cutoff: float) -> int:
        with self.transaction() as db:
            old = [r for (r,) in db.execute("SELECT id FROM runs WHERE persisted = 1 AND created < ?", (cutoff,))]
            db.executemany("DELETE FROM chunks WHERE run_id = ?", [(r,) for r in old])
            db.executemany("DELETE FROM runs WHERE id = ?", [(r,) for r in old])
        return len(old)


def _insert_runs(db: sqlite3.Connection, rows: Iterable[RunRow]) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO runs (id, record, prompt, status, persisted, created, owner) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


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


def storable(text: str) -> str | bytes:
    """Text as SQLite can take it. A model's JSON may hold a lone surrogate (``"\\ud800"``), which
    clients get escaped, but which is no UTF-8: such a chunk is kept as bytes, exactly, instead."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")
    return text


def stored_text(value: Any) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "surrogatepass")


def make_private_dirs(directory: Path) -> None:
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
