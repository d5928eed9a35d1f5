"""Open-document hand-off: a notebook open in JupyterLab takes a finished turn itself.

Protocol (see README): a page subscribes once for all the notebooks it has open, with
``GET streamchat/documents/events?path=P&path=Q…`` (SSE). When a turn for one of its paths is ready, each
subscriber of that path gets a ``turn`` event ``{"offer", "path", "conversation", "turn"}``. A subscriber
claims it with ``POST streamchat/documents/claim {"offer": id}`` and applies the turn to the open document
only if the answer says ``{"accepted": true}``. The first claim within the timeout wins; after the
timeout the server writes the file itself and every later claim is refused. Exactly one of the two ever
happens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .._sse import encode_event

log = logging.getLogger("jupyter_streamchat.handoff")


class DocumentSubscriber:
    """One stream: the paths it was opened for, and the events queued for it."""

    __slots__ = ("number", "paths", "queue")

    def __init__(self, number: int, paths: Iterable[str]) -> None:
        self.number = number
        self.paths = frozenset(paths)
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()


class HandoffHub:
    def __init__(self, timeout: float = 2.0) -> None:
        self.timeout = timeout
        # Indexed by path: an offer goes to the subscribers of its path only, and each gets it once.
        self._subscribers: dict[str, set[DocumentSubscriber]] = defaultdict(set)
        self._offers: dict[str, asyncio.Future[bool]] = {}
        self._seq = 0
        self._streams: set[DocumentSubscriber] = set()
        self._streams_opened = 0
        self.enabled = True  # switched off at shutdown: nobody is left to claim

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

    async def offer(self, path: str, conversation: str, turn: dict[str, Any]) -> bool:
        """True if an open document claimed the turn in time; then the caller must not write it."""
        if not self.enabled or not self.has_subscribers(path):
            return False
        offer_id = secrets.token_urlsafe(12)
        claimed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._offers[offer_id] = claimed
        self._seq += 1
        event = encode_event(
            self._seq, "turn", {"offer": offer_id, "path": path, "conversation": conversation, "turn": turn}
        )
        for subscriber in self._subscribers[path]:
            subscriber.queue.put_nowait(event)
        try:
            return await asyncio.wait_for(asyncio.shield(claimed), self.timeout)
        except TimeoutError:
            return False
        finally:
            # After this point a claim is refused, so the open document and the file never both get it.
            del self._offers[offer_id]

    def claim(self, offer_id: str) -> bool:
        claimed = self._offers.get(offer_id)
        if claimed is None or claimed.done():
            return False
        claimed.set_result(True)
        return True
