"""What the chat and compare widgets share: panes, the display and its final static form, results, ``done``,
``settled()``, and confirming each run's record with the server.

The footer says "Recorded in <notebook>" only once the server confirms that the notebook holds the
turn (``GET runs/{id}?wait=recorded``), and otherwise what happened: refused, deleted, still pending.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Coroutine, Generator, Sequence
from typing import Any

import httpx
import ipywidgets as widgets
from IPython.display import DisplayHandle, display

from . import _slim as slim
from . import _static
from ._backends import Backend
from ._blocking import current_cell
from ._context import PreparedContext
from ._panes import Pane
from ._results import SERVER_RECORD_STATES, PaneResult
from .client import StreamChatAPIError

log = logging.getLogger("jupyter_streamchat.widgets")

RECORD_WAIT_SECONDS = 5.0

_STATUS_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    429: "too_many_runs",
}


class _Done:
    """``await widget.done``: waits for every pane, then returns ``widget.results``.

    The wait is shielded, so an interrupted cell cancels only its own wait, never the runs. After
    the wait the final rendering is published again from the awaiting cell, because headless
    runners (nbclient, papermill) only listen to the cell that is executing.
    """

    def __init__(self, widget: _StreamWidget) -> None:
        self._widget = widget

    def __await__(self) -> Generator[Any, None, list[PaneResult]]:
        return self._wait().__await__()

    async def _wait(self) -> list[PaneResult]:
        await self._widget._all_ended()
        self._widget._publish_final()
        return self._widget.results


class _StreamWidget(slim.VBox):
    """What chat and compare widgets share: panes, display, results, done."""

    def __init__(
        self, panes: Sequence[Pane], backend: Backend, controls: Sequence[widgets.Widget], context: PreparedContext
    ) -> None:
        self.panes = list(panes)
        self.backend = backend
        self.context = context
        self._finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tasks: set[asyncio.Task[None]] = set()
        self._over: set[int] = set()  # the panes (by id) whose task has ended
        self._record_known: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._handle: DisplayHandle | None = None
        self._shown_in: str | None = None  # the cell whose output shows this widget
        self._final_published = False
        self._static_cache: tuple[tuple[object, ...], dict[str, str]] | None = None
        for pane in self.panes:
            pane.state.notebook = backend.notebook
            pane.state.recorded = "pending" if backend.notebook else None
            pane.state.context = context.records
        layout, html_style = slim.Layout(), slim.HTMLStyleSlim()
        self.note = slim.HTML(self._note_html(), layout=layout, style=html_style)
        style = slim.HTML(_static.STYLE_TAG, layout=layout, style=html_style)
        style.add_class("jsc-style")
        chips = [slim.HTML(_static.context_html(context.records), layout=layout, style=html_style)]
        super().__init__([style, *(chips if context.records else ()), *controls, self.note], layout=layout)
        self.add_class("jsc-root")

    # ----- public ------------------------------------------------------------------------------------
    @property
    def results(self) -> list[PaneResult]:
        """One dict per pane: ``run``, ``model``, ``status``, ``text``, and the rest; final after ``done``."""
        return [pane.state.result() for pane in self.panes]

    @property
    def done(self) -> Awaitable[list[PaneResult]]:
        """``await widget.done``: every pane has ended; ``results`` then (the wait alone is cancellable)."""
        return _Done(self)

    @property
    def record_note(self) -> str:
        """The footer: where the runs are recorded, said only once the server confirmed it."""
        return _static.record_note(self.results, self.backend.note)

    async def settled(self) -> str:
        """Every pane has ended and the server has said whether each run is recorded; the footer then."""
        await self._all_ended()
        while True:
            known = self._record_known
            await asyncio.shield(known)
            if known is self._record_known:
                break
        return self.record_note

    def stop(self, model: str | int | None = None) -> None:
        """Stop one pane (by model id or index) or, with no argument, every pane still running."""
        for index, pane in enumerate(self.panes):
            if model is None or model == index or model == pane.state.model:
                self._stop_pane(pane)

    # ----- display -----------------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        cell = current_cell()
        if self._handle is not None and (not self._final_published or cell == self._shown_in):
            return  # already on screen, e.g. chat() displayed it and the cell also returned it
        self._shown_in = cell
        if self._final_published:
            display(self._static_bundle(), raw=True)
            return
        self._handle = display(self._widget_bundle(), raw=True, display_id=True)

    def _show_final(self) -> None:
        """Display the final static output in the executing cell (nothing showed a live view)."""
        self._final_published = True
        self._shown_in = current_cell()
        self._handle = display(self._static_bundle(), raw=True, display_id=True)

    def _widget_bundle(self) -> dict[str, Any]:
        bundle = dict(super()._repr_mimebundle_() or {})
        bundle["text/plain"] = _static.plain_text(self.results)
        return bundle

    def _static_bundle(self) -> dict[str, str]:
        results = self.results
        key = tuple((r["run"], r["status"], len(r["text"]), len(r["reasoning"]), r["recorded"]) for r in results)
        if self._static_cache is None or self._static_cache[0] != key:  # rendering a reply is not free
            self._static_cache = (key, {"text/html": self._static_html(), "text/plain": _static.plain_text(results)})
        return self._static_cache[1]

    def _static_html(self) -> str:
        raise NotImplementedError

    def _publish_final(self) -> None:
        self._final_published = True
        if self._handle is not None:
            self._handle.update(self._static_bundle(), raw=True)

    # ----- lifecycle ---------------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _all_ended(self) -> None:
        """Until every pane has ended, also panes added while this waited (a chat's regenerated alternatives)."""
        while True:
            finished = self._finished
            await asyncio.shield(finished)
            if finished is self._finished:
                return

    def _every_pane(self) -> list[Pane]:
        """Every pane this widget streams, shown or not (a chat's alternatives)."""
        return self.panes

    def _reopen(self) -> None:
        """A new pane is streaming after all had ended: ``done`` waits again, and the live view comes back."""
        if not self._finished.done():
            return
        loop = asyncio.get_running_loop()
        self._finished, self._record_known = loop.create_future(), loop.create_future()
        self._final_published = False
        if self._handle is not None:
            self._handle.update(self._widget_bundle(), raw=True)

    def _pane_ended(self, pane: Pane) -> None:
        # Ended = its task is over, not only its status final: a pane still asks the server for its record (its
        # cost) after the last event, and the summary and the static output must have it.
        self._over.add(id(pane))
        if self._finished.done() or not all(id(other) in self._over for other in self._every_pane()):
            return
        self._on_all_ended()
        self._finished.set_result(None)
        self.note.value = self._note_html()
        self._publish_final()
        self._spawn(self._confirm_records())

    def _note_html(self) -> str:
        return f'<div class="jsc-note">{html.escape(self.record_note)}</div>'  # it names a notebook: not markup

    async def _confirm_records(self) -> None:
        """Ask the server whether each run's notebook holds it (it answers once that is settled)."""
        known = self._record_known
        try:
            await asyncio.gather(*(self._confirm_record(pane) for pane in self._every_pane()))
        finally:
            self.note.value = self._note_html()
            known.set_result(None)
            if self._final_published:
                self._publish_final()

    async def _confirm_record(self, pane: Pane) -> None:
        state = pane.state
        if state.recorded not in ("pending", None):
            return  # settled already (an earlier alternative of a chat)
        if state.recorded is None:
            return  # no notebook: nothing to confirm
        if state.run is None:
            state.recorded = "refused"  # the server refused the request, or it was never sent
            return
        try:
            record = await self.backend.wait_recorded(state.run)
        except (StreamChatAPIError, httpx.TransportError) as exc:
            log.info("streamchat: could not ask whether run %s is recorded: %s", state.run, exc)
            state.recorded = "unknown"
            return
        state.notebook = record.get("notebook") or state.notebook  # it follows a rename
        recorded = record.get("recorded")
        state.recorded = recorded if recorded in SERVER_RECORD_STATES else "unknown"

    def _on_all_ended(self) -> None:
        return None

    def _stop_pane(self, pane: Pane) -> None:
        raise NotImplementedError

    async def _guarded(self, pane: Pane, coro: Awaitable[None]) -> None:
        """Whatever happens in one pane ends as a status in that pane, never as a traceback."""
        try:
            await coro
        except asyncio.CancelledError:
            if not pane.state.finished:
                pane.state.finish("stopped")
                pane.render_final()
        except StreamChatAPIError as exc:
            pane.fail(_STATUS_CODES.get(exc.status, "server_error"), exc.message)
        except httpx.TransportError as exc:
            pane.fail("server_unreachable", f"lost the connection to the Jupyter server ({type(exc).__name__})")
        except Exception as exc:
            log.exception("streamchat pane for %s failed", pane.state.model)
            pane.fail("internal_error", f"{type(exc).__name__}: {exc}")
        finally:
            if not pane.state.finished:
                pane.fail("incomplete", "the stream ended without a final status")
            self._pane_ended(pane)
