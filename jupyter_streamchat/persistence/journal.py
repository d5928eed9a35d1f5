"""The run journal: an embedded SQLite store so a crash or restart never loses a run.

Writes are batched: a flusher appends each running run's new text every ``flush_interval`` seconds in
one transaction for all runs (never a write per token); a run's final record is written once when it
ends. After a crash, runs still marked running become ``interrupted`` and keep their partial text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("jupyter_streamchat.journal")

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


@dataclass
class _Progress:
    text_chars: int = 0
    reasoning_chars: int = 0


class RunJournal:
    def __init__(self, path: str | Path, flush_interval: float = 0.5) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self._db: sqlite3.Connection | None = None
        self._progress: dict[str, _Progress] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.transactions = 0  # observability: journal write transactions so far

    # ----- lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def start_flusher(self, running: Callable[[], Iterable[Any]]) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(self.flush_interval)
                try:
                    self.flush(running())
                except sqlite3.Error:
                    log.exception("streamchat journal flush failed")

        self._flusher = asyncio.get_running_loop().create_task(loop(), name="streamchat-journal")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "journal is not open"
        return self._db

    # ----- writing -----------------------------------------------------------------------------
    def started(self, run: Any, prompt: dict[str, str] | None) -> None:
        self._progress[run.id] = _Progress()
        with self._transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO runs (id, record, prompt, status, created) VALUES (?, ?, ?, ?, ?)",
                (run.id, json.dumps(_bare(run.record())), json.dumps(prompt), run.status, time.time()),
            )

    def flush(self, runs: Iterable[Any]) -> None:
        """Append what each run streamed since the last flush: one transaction for all runs."""
        rows = [row for run in runs for row in self._new_chunks(run)]
        if rows:
            with self._transaction():
                self.db.executemany("INSERT INTO chunks (run_id, kind, text) VALUES (?, ?, ?)", rows)

    def finished(self, run: Any) -> None:
        rows = self._new_chunks(run)
        self._progress.pop(run.id, None)
        with self._transaction():
            if rows:
                self.db.executemany("INSERT INTO chunks (run_id, kind, text) VALUES (?, ?, ?)", rows)
            self.db.execute(
                "UPDATE runs SET record = ?, status = ? WHERE id = ?",
                (json.dumps(_bare(run.record())), run.status, run.id),
            )

    def mark_persisted(self, run_id: str) -> None:
        with self._transaction():
            self.db.execute("UPDATE runs SET persisted = 1 WHERE id = ?", (run_id,))

    def _new_chunks(self, run: Any) -> list[tuple[str, int, str]]:
        progress = self._progress.get(run.id)
        if progress is None:
            return []
        rows = []
        text, reasoning = run.text, run.reasoning
        if len(text) > progress.text_chars:
            rows.append((run.id, TEXT, text[progress.text_chars :]))
            progress.text_chars = len(text)
        if len(reasoning) > progress.reasoning_chars:
            rows.append((run.id, REASONING, reasoning[progress.reasoning_chars :]))
            progress.reasoning_chars = len(reasoning)
        return rows

    def _transaction(self) -> sqlite3.Connection:
        self.transactions += 1
        return _Transaction(self.db)  # type: ignore[return-value]

    # ----- recovery ----------------------------------------------------------------------------
    def recover(self, now: str) -> list[tuple[dict[str, Any], dict[str, str] | None, bool]]:
        """Mark runs left running by a crash as interrupted; return every journaled run as
        ``(record, prompt, persisted)``, oldest first."""
        with self._transaction():
            for run_id, raw in self.db.execute("SELECT id, record FROM runs WHERE status = 'running'").fetchall():
                record = json.loads(raw)
                record.update(status="interrupted", finished=now)
                record["error"] = None
                self.db.execute(
                    "UPDATE runs SET record = ?, status = 'interrupted' WHERE id = ?", (json.dumps(record), run_id)
                )
        recovered = []
        rows = self.db.execute("SELECT id, record, prompt, persisted FROM runs ORDER BY created").fetchall()
        for run_id, raw, prompt, persisted in rows:
            record = json.loads(raw)
            parts: dict[int, list[str]] = {TEXT: [], REASONING: []}
            for kind, text in self.db.execute("SELECT kind, text FROM chunks WHERE run_id = ? ORDER BY seq", (run_id,)):
                parts[kind].append(text)
            record["text"] = "".join(parts[TEXT])
            record["reasoning"] = "".join(parts[REASONING])
            recovered.append((record, json.loads(prompt) if prompt else None, bool(persisted)))
        return recovered

    def forget_before(self, cutoff: float) -> None:
        """Drop persisted runs older than ``cutoff`` (epoch seconds): retention of the journal."""
        with self._transaction():
            old = [r for (r,) in self.db.execute("SELECT id FROM runs WHERE persisted = 1 AND created < ?", (cutoff,))]
            self.db.executemany("DELETE FROM chunks WHERE run_id = ?", [(r,) for r in old])
            self.db.executemany("DELETE FROM runs WHERE id = ?", [(r,) for r in old])


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN")
        return self._db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _bare(record: dict[str, Any]) -> dict[str, Any]:
    """The record without its (large, separately journaled) text."""
    return {k: v for k, v in record.items() if k not in ("text", "reasoning")}
