"""Open documents: every page that has a notebook open learns each turn the server wrote into its file.

The server always writes a finished turn into the notebook file itself (``_writers``): a turn counts as
recorded once the FILE holds it, whatever the browser does next (reload, "Discard", a crash). What an open
document must not suffer is the write: its next save would drop the turn and, first, JupyterLab would ask
"File Changed" because the file is newer than the copy it loaded. So each page subscribes once for all the
notebooks it has open (``GET streamchat/documents/events?path=P&path=Q…``, SSE) and, for every turn written,
every subscriber of that path gets ``event: turn``::

    {"path", "conversation", "turn", "before": version | null, "after": version | null}

where a version is ``{"hash", "hash_algorithm", "last_modified"}`` as Jupyter's contents API reports the file.
The page merges the turn into its open document (idempotent by run id) and, if the file version it knows is
``before``, takes ``after`` as the version it knows: only our turn changed the file since the page last saw
it, and the page now holds that turn too, so its next save neither asks nor loses anything. Every page takes
every turn, so whichever page saves keeps it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..engine._sse import encode_event

if TYPE_CHECKING:
    from ._schema import Turn
    from ._writers import FileVersion

log = logging.getLogger("jupyter_streamchat.handoff")


class DocumentSubscriber:
    """One stream: the paths it was opened for, and the events queued for it."""

    __slots__ = ("number", "paths", "queue")

    def __init__(self, number: int, paths: Iterable[str]) -> None:
        self.number = number
        self.paths = frozenset(paths)
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()


class HandoffHub:
    def __init__(self) -> None:
        # Indexed by path: a turn goes to the subscribers of its path only, and each gets it once.
        self._subscribers: dict[str, set[DocumentSubscriber]] = defaultdict(set)
        self._seq = 0
        self._streams: set[DocumentSubscriber] = set()
        self._streams_opened = 0

    def subscribe(self, paths: Iterable[str]) -> DocumentSubscriber:
        self._streams_opened += 1
        subscriber = DocumentSubscriber(self._streams_opened, paths)
        for path in subscriber.paths:
            self._subscribers[path].add(subscriber)
        self._streams.add(subscriber)
        # What a browser really holds open (its own tools may report an aborted stream as open).
        log.debug(
            "streamchat document stream %d opened for %s (%d open)",
            subscriber.number,
            json.dumps(sorted(subscriber.paths)),
            len(self._streams),
        )
        return subscriber

    def unsubscribe(self, subscriber: DocumentSubscriber) -> None:
        """Idempotent: the handler calls it when the client goes away and when its loop ends."""
        if subscriber in self._streams:
            self._streams.remove(subscriber)
            log.debug("streamchat document stream %d closed (%d open)", subscriber.number, len(self._streams))
        for path in subscriber.paths:
            subscribers = self._subscribers.get(path)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._subscribers[path]

    def has_subscribers(self, path: str) -> bool:
        return bool(self._subscribers.get(path))

    def publish(
        self,
        path: str,
        conversation: str,
        turn: Turn,
        before: FileVersion | None,
        after: FileVersion | None,
    ) -> int:
        """Tell every page that has ``path`` open about a turn now in its file; returns how many streams."""
        subscribers = self._subscribers.get(path)
        if not subscribers:
            return 0
        event = self._turn_event(path, conversation, turn, before, after)
        for subscriber in subscribers:
            subscriber.queue.put_nowait(event)
        return len(subscribers)

    def tell(
        self,
        subscriber: DocumentSubscriber,
        path: str,
        conversation: str,
        turn: Turn,
        before: FileVersion | None,
        after: FileVersion | None,
    ) -> None:
        """Tell one new stream about a turn written lately: its page may have missed it while it had no stream
        for ``path`` (a rename, a reload); a page that holds the turn already ignores it."""
        subscriber.queue.put_nowait(self._turn_event(path, conversation, turn, before, after))

    def _turn_event(
        self,
        path: str,
        conversation: str,
        turn: Turn,
        before: FileVersion | None,
        after: FileVersion | None,
    ) -> bytes:
        self._seq += 1
        return encode_event(
            self._seq,
            "turn",
            {"path": path, "conversation": conversation, "turn": turn, "before": before, "after": after},
        )
