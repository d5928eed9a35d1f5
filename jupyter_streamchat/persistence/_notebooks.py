"""Where a finished turn goes: the shared (collaborative) document, or the file, which open pages then learn.

One turn per run id, whatever raced: the merge is idempotent by run id and each path is serialized. For a
while after a turn is written (``guard_period``), a save of its notebook that dropped it (a page that saved a
copy serialized before it learned the turn) gets it written back: the file, not a page, is the record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from .._errors import BadRequest, Conflict, Forbidden, NotFound
from ._handoff import HandoffHub
from ._schema import conversation_key, has_turn, make_turn, turns_of
from ._writers import (
    NOTEBOOK_SUFFIX,
    FileWrite,
    NotANotebook,
    check_notebook,
    read_metadata,
    write_file,
    write_shared_document,
)

log = logging.getLogger("jupyter_streamchat.persistence")

CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"


class NotebookRecorder:
    def __init__(self, serverapp: Any, handoff: HandoffHub, guard_period: float = 600.0) -> None:
        self._serverapp = serverapp
        self.handoff = handoff
        self.guard_period = guard_period
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.writes: dict[str, int] = defaultdict(int)  # path -> file writes (observability, benchmarks)
        # path -> run id -> (conversation, turn, until): turns written lately, put back if a save drops them
        self._guarded: dict[str, dict[str, tuple[str, dict[str, Any], float]]] = {}
        self._repairs: set[asyncio.Task[None]] = set()
        self._listening = False

    def listen(self) -> None:
        """Watch the contents manager's saves (jupyter_server's contents events), to put back dropped turns."""
        event_logger = getattr(self._serverapp, "event_logger", None)
        if event_logger is None or self._listening:
            return
        event_logger.add_listener(schema_id=CONTENTS_EVENTS, listener=self._on_contents_event)
        self._listening = True

    def close(self) -> None:
        if self._listening:
            self._serverapp.event_logger.remove_listener(schema_id=CONTENTS_EVENTS, listener=self._on_contents_event)
            self._listening = False
        for task in self._repairs:
            task.cancel()

    @property
    def contents_manager(self) -> Any:
        return self._serverapp.contents_manager

    async def require_notebook(self, path: str) -> None:
        """Refuse, before a run starts, a path that is not an existing notebook (SPEC 4).

        Without the path's lock: that is held while a finished turn is offered to an open document (up to
        ``handoff_timeout``), and a request must not wait for it. A read that meets a turn being written
        is retried like one that meets a save.
        """
        try:
            await check_notebook(self.contents_manager, path)
        except FileNotFoundError:
            raise NotFound(f"no notebook {path!r}") from None
        except NotANotebook:
            raise BadRequest(f"{path!r} is not a notebook") from None
        except PermissionError:
            raise Forbidden(f"the server may not read or write {path!r}") from None
        except ValueError:
            raise Conflict(f"{path} could not be read as a notebook; nothing was started") from None

    async def record(self, record: dict[str, Any], prompt: dict[str, str] | None) -> str:
        """Land one finished run in its notebook; returns how: shared, file or duplicate."""
        path = record["notebook"]
        if not path.endswith(NOTEBOOK_SUFFIX):  # a run adopted from an old journal: not a notebook, never written
            raise NotANotebook(f"{path} is not named like a notebook")
        conversation = conversation_key(record)
        turn = make_turn(record, prompt)
        async with self._locks[path]:
            if await write_shared_document(self._serverapp, path, conversation, turn):
                return "shared"
            written = await self._write_and_tell(path, conversation, turn)
        if self.guard_period > 0:
            self._guarded.setdefault(path, {})[turn["run"]] = (conversation, turn, time.monotonic() + self.guard_period)
        return "file" if written.changed else "duplicate"

    async def _write_and_tell(self, path: str, conversation: str, turn: dict[str, Any]) -> FileWrite:
        """Write the turn into the file (lock held), then tell the pages that have it open."""
        watched = self.handoff.has_subscribers(path)
        written = await write_file(self.contents_manager, path, conversation, turn, versions=watched)
        if written.changed:
            self.writes[path] += 1
        # Also when it was there already: a page that missed it (reconnecting) must still take it.
        self.handoff.publish(path, conversation, turn, written.before, written.after)
        return written

    async def _on_contents_event(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        if data.get("action") != "save":
            return
        path = data.get("path")
        if isinstance(path, str) and self._guarded_turns(path):
            task = asyncio.get_running_loop().create_task(self._put_back(path))
            self._repairs.add(task)
            task.add_done_callback(self._repairs.discard)

    def _guarded_turns(self, path: str) -> dict[str, tuple[str, dict[str, Any], float]]:
        guarded = self._guarded.get(path)
        if not guarded:
            return {}
        now = time.monotonic()
        for run_id in [run_id for run_id, (_, _, until) in guarded.items() if until < now]:
            del guarded[run_id]
        if not guarded:
            del self._guarded[path]
        return guarded

    async def _put_back(self, path: str) -> None:
        """A save of ``path`` just landed: write back the guarded turns it dropped."""
        try:
            async with self._locks[path]:
                metadata = await read_metadata(self.contents_manager, path)
                if metadata is None:
                    return
                for run_id, (conversation, turn, _) in list(self._guarded_turns(path).items()):
                    if not has_turn(metadata, run_id):
                        log.info("streamchat: a save of %s dropped run %s; writing it back", path, run_id)
                        await self._write_and_tell(path, conversation, turn)
        except Exception:
            log.exception("streamchat: could not check the turns of %s after a save", path)

    async def conversation_turns(self, path: str, conversation: str) -> list[dict[str, Any]]:
        async with self._locks[path]:
            metadata = await read_metadata(self.contents_manager, path)
        return turns_of(metadata, conversation) if metadata is not None else []
