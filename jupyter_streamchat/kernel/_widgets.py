"""The chat and compare-models widgets.

A chat widget follows a detached run: the run belongs to the server, so re-running the cell or
interrupting the kernel does not end it, and Stop asks the server to stop it. A compare widget
holds one direct stream per pane: a pane's Stop closes its stream, which ends that upstream call.

Streaming runs as tasks on the kernel's event loop (the cell returns at once). When every pane has
ended, the cell's output is replaced by a static rendering of the final state, so a saved notebook
reads well without a kernel. Where nothing renders a live view (nbclient, a terminal) the call waits
for the end instead (see ``_blocking``).

The footer says "Recorded in <notebook>" only once the server confirms that the notebook holds the
turn (``GET runs/{id}?wait=recorded``), and otherwise what happened: refused, deleted, still pending.
"""

from __future__ import annotations

import asyncio
import html
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

import httpx
import ipywidgets as widgets
from IPython.display import DisplayHandle, display

from ..engine.contract import DEFAULT_CONVERSATION
from . import _slim as slim
from . import _static
from ._backends import Backend, current_backend
from ._blocking import current_cell, headless, loop_is_running, run_headless, run_in_terminal
from ._context import ContextLimits, PreparedContext, user_namespace
from ._panes import Pane
from ._results import SERVER_RECORD_STATES, PaneResult
from .client import StreamChatAPIError

log = logging.getLogger("jupyter_streamchat.widgets")

MIN_PANES, MAX_PANES = 2, 4
REATTACH_SECONDS = 10.0  # a detached run is followed across server hiccups this long
RECORD_WAIT_SECONDS = 5.0

W = TypeVar("W", bound="_StreamWidget")

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
        await asyncio.shield(self._widget._finished)
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
        await asyncio.shield(self._finished)
        await asyncio.shield(self._record_known)
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

    def _pane_ended(self) -> None:
        if self._finished.done() or not all(pane.state.finished for pane in self.panes):
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
        try:
            await asyncio.gather(*(self._confirm_record(pane) for pane in self.panes))
        finally:
            self.note.value = self._note_html()
            self._record_known.set_result(None)
            if self._final_published:
                self._publish_final()

    async def _confirm_record(self, pane: Pane) -> None:
        state = pane.state
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
            self._pane_ended()


class ChatWidget(_StreamWidget):
    """One prompt, one detached run: Stop asks the server to stop it; nothing else ends it early."""

    def __init__(
        self, prompt: str, model: str | None, conversation: str, backend: Backend, context: PreparedContext
    ) -> None:
        pane = Pane(model, on_stop=self._stop_pane)
        pane.state.conversation = conversation
        super().__init__([pane], backend, [pane.box], context)
        self.prompt = prompt
        self._stop_requested = False
        self._spawn(self._guarded(pane, self._run(pane)))

    def _static_html(self) -> str:
        return _static.chat_html(self.results[0], self.record_note)

    async def _run(self, pane: Pane) -> None:
        if not self.prompt.strip():
            pane.fail("empty_prompt", "the prompt is empty: nothing was sent")
            return
        if self.context.error:
            pane.fail("bad_context", f"{self.context.error} (nothing was sent)")
            return
        body: dict[str, Any] = {"prompt": self.prompt, "conversation": pane.state.conversation}
        if pane.state.model:
            body["model"] = pane.state.model
        if self.backend.notebook:
            body["notebook"] = self.backend.notebook
        if self.context.wire:
            body["context"] = self.context.wire
        started = await self.backend.start_run(body)
        pane.state.run = started["id"]
        if self._stop_requested:
            self._spawn(self._request_stop(pane))
        await self._follow(pane)

    async def _follow(self, pane: Pane) -> None:
        """Events of the run from the last one seen; across a dropped connection, re-attach."""
        assert pane.state.run is not None
        deadline = None
        while not pane.state.finished:
            try:
                async with aclosing(self.backend.events(pane.state.run, pane.state.last_event_id)) as events:
                    async for message in events:
                        pane.apply(message)
                        deadline = None
            except (httpx.TransportError, StreamChatAPIError) as exc:
                if isinstance(exc, StreamChatAPIError) and exc.status < 500:
                    raise
                deadline = deadline or time.monotonic() + REATTACH_SECONDS
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    def _stop_pane(self, pane: Pane) -> None:
        if pane.state.finished:
            return
        if pane.state.run is None:
            self._stop_requested = True  # stopped as soon as the server names the run
            return
        self._spawn(self._request_stop(pane))

    async def _request_stop(self, pane: Pane) -> None:
        try:
            assert pane.state.run is not None
            await self.backend.stop(pane.state.run)
        except (StreamChatAPIError, httpx.TransportError) as exc:
            pane.error.value = _static.error_line({"code": "stop_failed", "message": str(exc)})


class CompareWidget(_StreamWidget):
    """One prompt to 2-4 models side by side, one direct stream per pane."""

    def __init__(self, prompt: str, models: Sequence[str], backend: Backend, context: PreparedContext) -> None:
        self.prompt = prompt
        self.conversation = f"compare-{secrets.token_hex(4)}"
        panes = [Pane(model, on_stop=self._stop_pane) for model in models]
        for pane in panes:
            pane.state.conversation = self.conversation
        self.stop_all_button = slim.Button(
            description="Stop all", tooltip="Stop every model", style=slim.ButtonStyleSlim()
        )
        self.stop_all_button.on_click(lambda _button: self.stop())
        self.summary = slim.HTML()
        grid = slim.HBox([pane.box for pane in panes], layout=slim.Layout(flex_flow="row wrap", align_items="stretch"))
        grid.add_class("jsc-panes")
        self._pane_tasks: dict[int, asyncio.Task[None]] = {}
        super().__init__(panes, backend, [grid, self.stop_all_button, self.summary], context)
        for pane in panes:
            self._spawn(self._guarded(pane, self._run_pane(pane)))

    def _static_html(self) -> str:
        return _static.compare_html(self.results, self.record_note)

    async def _run_pane(self, pane: Pane) -> None:
        reader = asyncio.get_running_loop().create_task(self._stream(pane))
        self._pane_tasks[id(pane)] = reader
        await asyncio.wait([reader])
        if not reader.cancelled():
            reader.result()  # raises what the stream raised; _guarded turns it into a status
            return
        # Stopped: the reader's connection is closed, so the server ends the upstream call. What the
        # server recorded is the exact final text (it may hold words this reader had not read yet).
        pane.state.finish("stopped")
        record = await self._final_record(pane.state.run)
        if record is not None:
            pane.state.adopt_record(record)
        pane.render_final()

    async def _stream(self, pane: Pane) -> None:
        if not self.prompt.strip():
            pane.fail("empty_prompt", "the prompt is empty: nothing was sent")
            return
        if self.context.error:
            pane.fail("bad_context", f"{self.context.error} (nothing was sent)")
            return
        # The panes are siblings that start the comparison's own conversation (parent null): each would
        # otherwise follow the active leaf, which is the first pane while it streams (SPEC 11).
        body: dict[str, Any] = {
            "prompt": self.prompt,
            "conversation": self.conversation,
            "model": pane.state.model,
            "parent": None,
        }
        if self.backend.notebook:
            body["notebook"] = self.backend.notebook
        if self.context.wire:
            body["context"] = self.context.wire
        async with aclosing(self.backend.stream(body)) as events:
            async for message in events:
                pane.apply(message)

    def _stop_pane(self, pane: Pane) -> None:
        reader = self._pane_tasks.get(id(pane))
        # Once only: a second cancel would interrupt the reader's clean-up (closing its connection).
        if reader is not None and not reader.done() and not reader.cancelling() and not pane.state.finished:
            reader.cancel()  # closes the connection at once, even while it waits for a chunk

    async def _final_record(self, run_id: str | None) -> Mapping[str, Any] | None:
        if run_id is None:
            return None
        deadline = time.monotonic() + RECORD_WAIT_SECONDS
        try:
            while time.monotonic() < deadline:
                record = await self.backend.get_run(run_id)
                if record["status"] != "running":
                    return record
                await asyncio.sleep(0.02)
        except (StreamChatAPIError, httpx.TransportError):
            pass
        return None

    def _on_all_ended(self) -> None:
        self.stop_all_button.disabled = True
        self.summary.value = _static.summary_html(self.results)


def chat(
    prompt: str,
    model: str | None = None,
    conversation: str | None = None,
    *,
    context: Sequence[Any] | None = None,
    context_limits: ContextLimits | None = None,
) -> ChatWidget:
    """Ask ``model`` (default: the server's default model) and stream the reply into a widget.

    Successive calls in one notebook continue one conversation (the server builds the history from
    the notebook's record) unless ``conversation`` names another. ``context`` (objects, or names of
    variables) and ``@name`` mentions in the prompt are sent along, summarised within ``context_limits``.
    """
    conversation = conversation or DEFAULT_CONVERSATION
    prepared = PreparedContext.build(prompt, context, user_namespace(), context_limits)
    return _shown(lambda: ChatWidget(prompt, model, conversation, current_backend(), prepared))


def compare(
    prompt: str,
    models: Sequence[str],
    *,
    context: Sequence[Any] | None = None,
    context_limits: ContextLimits | None = None,
) -> CompareWidget:
    """Send one prompt to 2-4 models side by side; each pane has its own Stop, plus Stop all."""
    if isinstance(models, str) or not MIN_PANES <= len(models) <= MAX_PANES:
        raise ValueError(f"compare needs {MIN_PANES} to {MAX_PANES} model ids, e.g. ['demo:chat', 'demo:fast']")
    prepared = PreparedContext.build(prompt, context, user_namespace(), context_limits)
    return _shown(lambda: CompareWidget(prompt, list(models), current_backend(), prepared))


def _shown(make: Callable[[], W]) -> W:
    """A live widget in the cell, which returns at once; where nothing would render it live, the final
    static output once the runs have ended (see ``_blocking``)."""
    if not loop_is_running():
        return run_in_terminal(make)
    if headless():
        widget = run_headless(make)
        widget._show_final()
        return widget
    widget = make()
    display(widget)
    return widget
