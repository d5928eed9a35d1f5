"""Where a finished turn goes: the shared (collaborative) document, or the file, which open pages then learn.

One turn per run id, whatever raced: the merge is idempotent by run id and each path is serialized. For a
while after a turn is written (``guard_period``), a save of its notebook that dropped it (a page that saved a
copy serialized before it learned the turn) gets it written back: the file, not a page, is the record.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..engine._errors import BadRequest, Conflict, Forbidden, NotFound
from ._follow import NotebookFollower
from ._handoff import DocumentSubscriber, HandoffHub
from ._schema import FinishedRun, Turn, conversation_key, has_turn, make_turn
from ._section import Conversation, UnreadableSection, read_conversation, read_conversations
from ._writers import (
    NOTEBOOK_SUFFIX,
    FileWrite,
    NotANotebook,
    check_notebook,
    notebook_exists,
    read_metadata,
    write_file,
    write_shared_document,
)

if TYPE_CHECKING:
    from jupyter_events import EventLogger
    from jupyter_server.serverapp import ServerApp

log = logging.getLogger("jupyter_streamchat.persistence")

CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"
# Whether a run is in its notebook (SPEC 6, ``recorded`` in a run record). Gone: the notebook was deleted,
# nothing was written and nothing ever will be. Refused: its ``metadata.streamchat`` cannot be read safely (a
# newer version, or malformed), so nothing was written; the journal keeps the run, and the next start tries again.
PENDING, RECORDED, GONE, REFUSED = "pending", "recorded", "gone", "refused"
RETRY_FIRST_DELAY = 0.1  # seconds before the first retry of a notebook that could not be written
RETRY_MAX_DELAY = 5.0
MISSING_GRACE = 2.0  # seconds a notebook may be missing before it counts as deleted (see ``retry``)
RECORD_RETRY_TIMEOUT = 30.0  # default of ``c.StreamChat.record_retry_timeout``


@dataclass(slots=True)
class _Guarded:
    """A turn written lately: how, and until when a save that drops it gets it back."""

    conversation: str
    turn: Turn
    written: FileWrite
    until: float


class NotRecordedYet(Exception):
    """The notebook could not be written just now: unreadable (torn by another writer), or not where it was."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class NotebookRecorder:
    def __init__(
        self,
        serverapp: ServerApp,
        handoff: HandoffHub,
        follower: NotebookFollower | None = None,
        retry_timeout: float = RECORD_RETRY_TIMEOUT,
        guard_period: float = 600.0,
    ) -> None:
        self._serverapp = serverapp
        self.handoff = handoff
        self.follower = follower if follower is not None else NotebookFollower(serverapp)
        self.retry_timeout = retry_timeout
        self.guard_period = guard_period
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.writes: dict[str, int] = defaultdict(int)  # path -> file writes (observability, benchmarks)
        # path -> run id -> turns written lately: put back if a save drops them, told to pages that subscribe
        self._guarded: dict[str, dict[str, _Guarded]] = {}
        self._repairs: set[asyncio.Task[None]] = set()
        self._listening_to: EventLogger | None = None

    def listen(self) -> None:
        """Watch the contents manager's saves (jupyter_server's contents events), to put back dropped turns."""
        event_logger = getattr(self._serverapp, "event_logger", None)
        if event_logger is None or self._listening_to is not None:
            return
        event_logger.add_listener(schema_id=CONTENTS_EVENTS, listener=self._on_contents_event)
        self._listening_to = event_logger

    def close(self) -> None:
        if self._listening_to is not None:
            self._listening_to.remove_listener(schema_id=CONTENTS_EVENTS, listener=self._on_contents_event)
            self._listening_to = None
        for task in self._repairs:
            task.cancel()

    @property
    def contents_manager(self) -> Any:
        return self._serverapp.contents_manager

    async def require_notebook(self, path: str) -> None:
        """Refuse, before a run starts, a path that is not an existing notebook (SPEC 4).

        Without the path's lock: that is held while a finished turn is written, and a request need not wait
        for it. A read that meets a turn being written is retried like one that meets a save.
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

    async def record(self, record: FinishedRun, prompt: Mapping[str, Any] | None) -> str:
        """Land one finished run in its notebook, where that notebook is now; returns how: shared, file,
        duplicate, or gone (deleted: nothing was written, and nothing ever will be).

        Raises ``NotRecordedYet`` when the notebook cannot be written just now (see ``retry``), and
        ``UnreadableSection`` when its ``metadata.streamchat`` may not be written (nothing was).
        """
        run_id, notebook = record["id"], record["notebook"]
        if notebook is None:  # the engine records only runs that name one
            raise NotANotebook(f"run {run_id} names no notebook")
        conversation = conversation_key(record)
        turn = make_turn(record, prompt)
        while True:
            if self.follower.is_gone(run_id):
                return GONE
            path = self.follower.path_of(run_id, notebook)
            if not path.endswith(NOTEBOOK_SUFFIX):  # adopted from an old journal, or renamed to a non-notebook
                raise NotANotebook(f"{path} is not named like a notebook")
            try:
                # Before the shared room: it may still hold a notebook whose file is gone.
                if not await notebook_exists(self.contents_manager, path):
                    raise FileNotFoundError(errno.ENOENT, "no such notebook", path)
                return await self._record_at(path, conversation, turn)
            except FileNotFoundError as error:
                if await self.follower.relocate(run_id):
                    continue  # moved outside Jupyter, and the file ID service knows where to
                raise NotRecordedYet(f"{path} is not there", missing=True) from error
            except NotANotebook:
                raise
            except ValueError as error:  # torn by another writer: never written over, tried again
                raise NotRecordedYet(str(error)) from error

    async def _record_at(self, path: str, conversation: str, turn: Turn) -> str:
        async with self._locks[path]:
            if await write_shared_document(self._serverapp, path, conversation, turn):
                return "shared"
            written = await self._write_and_tell(path, conversation, turn)
        if self.guard_period > 0:
            for guarded_path in list(self._guarded):  # expired entries go, also of notebooks never saved again
                self._guarded_turns(guarded_path)
            until = time.monotonic() + self.guard_period
            self._guarded.setdefault(path, {})[turn["run"]] = _Guarded(conversation, turn, written, until)
        return "file" if written.changed else "duplicate"

    def tell_recent(self, subscriber: DocumentSubscriber) -> None:
        """A page opened a stream: tell it the turns written lately into its notebooks (it may have missed them)."""
        for path in subscriber.paths:
            for guarded in self._guarded_turns(path).values():
                written = guarded.written
                self.handoff.tell(subscriber, path, guarded.conversation, guarded.turn, written.before, written.after)

    async def _write_and_tell(self, path: str, conversation: str, turn: Turn) -> FileWrite:
        """Write the turn into the file (lock held), then tell the pages that have it open.

        The file's versions around the write are kept also when no page has it open now: a page that opens
        a stream for it soon after (a rename, a reload) is told them (``tell_recent``).
        """
        written = await write_file(self.contents_manager, path, conversation, turn, versions=True)
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

    def _guarded_turns(self, path: str) -> dict[str, _Guarded]:
        guarded = self._guarded.get(path)
        if not guarded:
            return {}
        now = time.monotonic()
        for run_id in [run_id for run_id, entry in guarded.items() if entry.until < now]:
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
                for run_id, guarded in list(self._guarded_turns(path).items()):
                    if not has_turn(metadata, run_id):
                        log.info("streamchat: a save of %s dropped run %s; writing it back", path, run_id)
                        guarded.written = await self._write_and_tell(path, guarded.conversation, guarded.turn)
        except UnreadableSection as refused:
            log.warning("streamchat: a save of %s dropped recorded turns; not written back: %s", path, refused.reason)
        except Exception:
            log.exception("streamchat: could not check the turns of %s after a save", path)

    async def retry(self, record: FinishedRun, prompt: Mapping[str, Any] | None, failed: NotRecordedYet) -> str | None:
        """After ``record`` raised ``failed``: try again with backoff (0.1 s doubling to 5 s) for up to
        ``retry_timeout`` seconds; how it landed, or None if it still could not be written.

        A notebook that stays missing for ``MISSING_GRACE`` seconds with no rename heard of (a rename's event
        comes within milliseconds of the move) is taken as deleted: ``gone``.
        """
        loop = asyncio.get_running_loop()
        first_failure = loop.time()
        delay = RETRY_FIRST_DELAY
        while True:
            waited = loop.time() - first_failure
            if failed.missing and waited >= MISSING_GRACE:
                return GONE
            if waited + delay > self.retry_timeout:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)
            try:
                return await self.record(record, prompt)
            except NotRecordedYet as error:
                failed = error

    async def conversation(self, path: str, conversation: str) -> Conversation:
        """The conversation's tree as the notebook file holds it; ``UnreadableSection`` if it cannot be read."""
        async with self._locks[path]:
            metadata = await read_metadata(self.contents_manager, path)
        return read_conversation(metadata or {}, conversation)

    async def conversations(self, path: str) -> dict[str, Conversation]:
        """Every conversation's tree as the notebook file holds it; ``UnreadableSection`` if it cannot be read."""
        async with self._locks[path]:
            metadata = await read_metadata(self.contents_manager, path)
        return read_conversations(metadata or {})
