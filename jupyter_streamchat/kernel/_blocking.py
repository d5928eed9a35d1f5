"""Widgets that nothing renders live: the call runs them to the end before it returns.

Two such cases. No event loop runs between inputs (plain IPython, a script): the reply streams to
stdout from a loop of our own. A kernel runs cells for a client that renders no live view (nbclient,
which ``jupyter nbconvert --execute`` and papermill use): an executed notebook keeps what a cell showed
when it ended, so a live view saved there would stay at "starting" for good. There the cell waits for
the end (and for the server to say whether the run is recorded), then shows the final static output.
Everywhere else the cell returns at once and the widget streams.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import _static

if TYPE_CHECKING:
    from ._stream_widget import _StreamWidget

W = TypeVar("W", bound="_StreamWidget")


def loop_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _kernel() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return getattr(get_ipython(), "kernel", None)


def headless() -> bool:
    """Whether the executing cell's client renders no live view.

    nbclient is the client that cannot answer ``input()``, and it says so in every execute request
    (``allow_stdin`` false); JupyterLab, Notebook 7, VS Code and the consoles all allow input.
    """
    kernel = _kernel()
    return kernel is not None and getattr(kernel, "_allow_stdin", True) is False


def current_cell() -> str | None:
    """The id of the execute request being run, if a kernel runs it: one output per widget and cell."""
    kernel = _kernel()
    if kernel is None:
        return None
    try:
        return str(kernel.get_parent()["header"]["msg_id"])
    except (AttributeError, KeyError, TypeError):
        return None


_background_loop: asyncio.AbstractEventLoop | None = None
_background_lock = threading.Lock()


def _background() -> asyncio.AbstractEventLoop:
    """One loop in a daemon thread for every headless call: the kernel's own loop is busy running the
    cell (a blocking wait on it would starve the run), and one backend then serves every cell."""
    global _background_loop
    with _background_lock:
        if _background_loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="streamchat-headless", daemon=True).start()
            _background_loop = loop
        return _background_loop


def run_headless(make: Callable[[], W]) -> W:
    """Build the widget on the background loop and wait until it has settled; interrupting the cell
    stops the runs (their partial text is kept), as the Stop button does."""
    loop = _background()
    widget = asyncio.run_coroutine_threadsafe(_construct(make), loop).result()
    settled = asyncio.run_coroutine_threadsafe(widget.settled(), loop)
    try:
        settled.result()
    except KeyboardInterrupt:
        loop.call_soon_threadsafe(widget.stop)
        settled.result()
    return widget


_terminal_loop: asyncio.AbstractEventLoop | None = None


def run_in_terminal(make: Callable[[], W]) -> W:
    """No event loop runs between inputs (plain IPython, a script): stream to stdout until the end.

    One loop serves every call, so the in-process engine (and a conversation's history) persists.
    Ctrl+C stops the reply and keeps the partial, as the Stop button does.
    """
    global _terminal_loop
    loop = _terminal_loop = _terminal_loop or asyncio.new_event_loop()
    widget = loop.run_until_complete(_construct(make))
    try:
        loop.run_until_complete(_echo(widget))
    except KeyboardInterrupt:
        widget.stop()
        loop.run_until_complete(_echo(widget))
    loop.run_until_complete(widget.settled())
    results = widget.results
    print(_static.plain_text(results) if len(widget.panes) > 1 else f"\n[{_static.outcome(results[0])}]")
    print(widget.record_note)
    return widget


async def _construct(make: Callable[[], W]) -> W:
    return make()  # widgets need a running loop to start their tasks


async def _echo(widget: _StreamWidget) -> None:
    """Print a single pane's text as it grows; wait for the end."""
    shown = len(widget.panes[0].state.text) if len(widget.panes) == 1 else 0
    while not widget._finished.done():
        await asyncio.wait([widget._finished], timeout=0.1)
        if len(widget.panes) == 1:
            text = widget.panes[0].state.text
            print(text[shown:], end="", flush=True)
            shown = len(text)
