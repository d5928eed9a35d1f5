"""Strings and any other object: type and a bounded repr.

A repr can cost anything: a container of ten million items, an object whose ``__repr__`` computes, loops or
raises. Builtin containers are summarised by ``reprlib`` (a few items per level, never the whole); everything else
gets its own ``repr`` with a timer when we are on the main thread (a ``SIGALRM`` interrupts Python code that runs
too long), and its result is cut.
"""

from __future__ import annotations

import reprlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ._text import count, cut, one_line, plural, type_name
from ._types import ContextLimits

SIZED_BUILTINS = (list, tuple, dict, set, frozenset, bytes, bytearray, str)


class ReprTimeout(BaseException):
    """A repr that ran out of time. A BaseException, so that ``except Exception`` in reprlib and in user code
    (which would print "<X instance at ...>" or carry on looping) cannot swallow it."""


def describe_text(value: str, name: str | None, limits: ContextLimits) -> str:
    """A string verbatim (a named one under a header line), cut at the item limit."""
    header = f"{name} (str, {count(len(value))} chars):\n" if name else ""
    return header + cut(value, limits.item_chars - len(header), f"{count(len(value))} chars, the first part shown")


def describe_object(obj: Any, name: str | None, limits: ContextLimits) -> str:
    label = type_name(obj)
    if isinstance(obj, SIZED_BUILTINS):
        label += f", {plural(len(obj), unit_of(obj))}"
    header = f"{name}: {label}" if name else label
    body = bounded_repr(obj, limits)
    return header + "\n" + cut(body, limits.item_chars - len(header) - 1, "repr too long")


def unit_of(obj: Any) -> str:
    if isinstance(obj, str):
        return "char"
    return "byte" if isinstance(obj, bytes | bytearray) else "item"


def bounded_repr(obj: Any, limits: ContextLimits) -> str:
    """``repr(obj)`` at a bounded cost; an error or a timeout becomes a one-line note."""
    shortener = reprlib.Repr()
    shortener.maxlevel = 3
    shortener.maxlist = shortener.maxtuple = shortener.maxset = shortener.maxfrozenset = 20
    shortener.maxdeque = shortener.maxarray = 20
    shortener.maxdict = 12
    shortener.maxstring = limits.item_chars
    shortener.maxlong = 200
    shortener.maxother = limits.item_chars
    summarised = hasattr(shortener, "repr_" + "_".join(type(obj).__name__.split()))
    try:
        with time_limit(limits.repr_seconds):
            # reprlib summarises the builtin containers it knows; any other object gets its own repr, whose
            # error (reprlib would hide it behind "<X instance at 0x...>") is worth a note.
            return shortener.repr(obj) if summarised else cut(repr(obj), limits.item_chars, "repr too long")
    except ReprTimeout:
        return f"(repr did not finish within {limits.repr_seconds:g} s; not shown)"
    except Exception as error:
        return "(repr raised " + one_line(f"{type(error).__name__}: {error}", 200) + ")"


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the body with ``ReprTimeout`` after ``seconds`` (main thread only; elsewhere it just runs).

    A timer the program had set already is put back, less the time we took.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    armed = True

    def expire(signum: int, frame: Any) -> None:
        if armed:
            raise ReprTimeout

    previous: Callable[..., Any] | int | None = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    earlier, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        if earlier:
            left = max(earlier - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, interval)
