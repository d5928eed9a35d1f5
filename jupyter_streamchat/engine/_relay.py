"""The encoded events a subscriber is sent, as one async iterator: what the SSE handlers write and what the
in-process backend decodes, so both deliver the same bytes with the same batching and keepalives.

An iterator ends when there is nothing more to send (the run's ``done`` was taken, or the subscription was
closed: a client that hung up); closing it early (``aclosing``) closes the subscription.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from ._eventlog import Subscription
from ._sse import PING


async def run_events(subscription: Subscription, keepalive: float, batch: float = 0.0) -> AsyncGenerator[bytes]:
    """A run's events from the subscription's cursor on: each chunk is everything released since the last one.

    ``batch`` (seconds, 0 for none): pause that long after each chunk, so events arrive several per chunk. A
    kernel rendering at 20 Hz takes events this way: one HTTP chunk per token would cost it far more CPU in
    HTTP parsing than the tokens themselves. ``PING`` after ``keepalive`` seconds with nothing to send.
    """
    try:
        while True:
            chunk = subscription.take()
            if chunk:
                yield chunk
                if batch and not subscription.exhausted:
                    await asyncio.sleep(batch)
            elif subscription.exhausted:
                return
            elif not await subscription.wait(keepalive):
                yield PING
    finally:
        subscription.close()


async def queued_events(queue: asyncio.Queue[bytes], keepalive: float) -> AsyncGenerator[bytes]:
    """Encoded events put on ``queue`` by their producer, until it puts ``b""`` (the end); ``PING`` while idle."""
    while True:
        try:
            chunk = await asyncio.wait_for(queue.get(), keepalive)
        except TimeoutError:
            chunk = PING
        if not chunk:
            return
        yield chunk
