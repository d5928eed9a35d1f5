"""The one way tests wait: until something the system emits is there, with a deadline that only guards a hang.

A deadline here is a failure guard, not a claim about speed: on a loaded machine a slow pass still passes, and a
missing event fails with ``what`` in the message instead of hanging the suite. Timings belong to ``benchmarks/``.
The short poll interval is the only pause, and it runs while the condition is still false.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")

Description = str | Callable[[], object]

DEFAULT_TIMEOUT = 30.0
POLL_INTERVAL = 0.02


def _describe(what: Description, probe: object) -> str:
    text = what() if callable(what) else what
    return str(text) if text else repr(probe)


def wait_until(
    probe: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, *, what: Description = "", interval: float = POLL_INTERVAL
) -> T:
    """Call ``probe`` until it returns something truthy and return that; fail after ``timeout`` seconds.

    Blocking: for threads and sync tests (Playwright's sync API, subprocesses). In a coroutine use ``await_until``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {_describe(what, probe)}")
        time.sleep(interval)


async def await_until(
    probe: Callable[[], T | Awaitable[T]],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    what: Description = "",
    interval: float = POLL_INTERVAL,
) -> T:
    """``wait_until`` for coroutines: ``probe`` may be sync or async; the loop keeps running between calls."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return cast(T, value)
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {_describe(what, probe)}")
        await asyncio.sleep(interval)
