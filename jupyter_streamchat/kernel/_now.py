"""Answers a plain call needs before it returns (``%chat_models``, ``history()``), wherever the kernel runs.

The kernel's loop is busy running the cell (a blocking wait on it would starve it), so a fresh backend answers
on a loop of its own in a worker thread. The in-process engine is the exception: its runs live in the backend
the widgets use (``widget_backend``), and are read from there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from . import _backends, _blocking
from ._backends import Backend, InProcessBackend, discover

ANSWER_TIMEOUT = 20.0
T = TypeVar("T")


def answer_now(ask: Callable[[Backend], Awaitable[T]], timeout: float = ANSWER_TIMEOUT) -> T:
    """``ask`` answered by a fresh backend on a loop of its own in a worker thread (bounded by ``timeout``)."""
    answers: list[T] = []
    errors: list[BaseException] = []

    async def asking() -> None:
        backend = discover()
        try:
            answers.append(await ask(backend))
        finally:
            await backend.aclose()

    def run() -> None:
        try:
            asyncio.run(asking())
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run, name="streamchat-answer", daemon=True)
    worker.start()
    worker.join(timeout)
    if errors:
        raise errors[0]
    if not answers:
        raise TimeoutError(f"no answer within {timeout:.0f} s")
    return answers[0]


def widget_backend() -> InProcessBackend | None:
    """The in-process engine the widgets of this kernel use now, if they use one (and have started it)."""
    if not _blocking.loop_is_running():
        loop = _blocking._terminal_loop
    elif _blocking.headless():
        loop = _blocking._background_loop
    else:
        loop = asyncio.get_event_loop()
    backend = _backends._backends.get(loop) if loop is not None else None
    return backend if isinstance(backend, InProcessBackend) else None
