"""Recovery: runs of servers that are gone become ``interrupted`` and are claimed, in one transaction."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ...engine._parts import PromptRecord
from ._owners import Owners
from ._store import REASONING, TEXT, Store, stored_text

log = logging.getLogger("jupyter_streamchat.journal")


@dataclass
class JournaledRun:
    record: dict[str, Any]  # with its journaled text and reasoning
    prompt: PromptRecord | None
    persisted: bool


@dataclass
class Recovery:
    """What a recovery found: every journaled run (oldest first) except live servers' running ones,
    and the ids this server took over from servers that are gone (to be persisted by it)."""

    runs: list[JournaledRun] = field(default_factory=list)
    claimed: set[str] = field(default_factory=set)


def recover(store: Store, owners: Owners, now: str, everything: bool) -> Recovery:
    recovery = Recovery()
    gone: list[str | None] = []
    # IMMEDIATE: the write lock is taken before anything is read, so two servers recovering at
    # once are serialized and the second sees the runs already taken over by the first.
    with store.transaction("IMMEDIATE") as db:
        found = db.execute(
            "SELECT DISTINCT owner FROM runs WHERE (status = 'running' OR persisted = 0) AND owner IS NOT ?",
            (owners.owner,),
        ).fetchall()
        gone = [owner for (owner,) in found if owners.gone(owner)]
        for owner in gone:
            stale = db.execute("SELECT id, record FROM runs WHERE owner IS ? AND status = 'running'", (owner,))
            for run_id, raw in stale.fetchall():
                record = json.loads(raw)
                record.update(status="interrupted", finished=now, error=None)
                db.execute(
                    "UPDATE runs SET record = ?, status = 'interrupted' WHERE id = ?", (json.dumps(record), run_id)
                )
            claimed = db.execute("SELECT id FROM runs WHERE owner IS ? AND persisted = 0", (owner,)).fetchall()
            recovery.claimed.update(run_id for (run_id,) in claimed)
            db.execute("UPDATE runs SET owner = ? WHERE owner IS ? AND persisted = 0", (owners.owner, owner))
    for owner in gone:
        if owner is not None:
            owners.forget(owner)
    owners.sweep()
    if recovery.claimed:
        log.warning("streamchat journal: recovered %d runs of servers that are gone", len(recovery.claimed))
    db = store.guard()
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
            parts[kind].append(stored_text(text))
        record["text"] = "".join(parts[TEXT])
        record["reasoning"] = "".join(parts[REASONING])
        recovery.runs.append(JournaledRun(record, json.loads(prompt) if prompt else None, bool(persisted)))
    return recovery
