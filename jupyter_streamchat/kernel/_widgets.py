"""The chat and compare-models widgets.

A chat widget follows a detached run: the run belongs to the server, so re-running the cell or
interrupting the kernel does not end it, and Stop asks the server to stop it. A compare widget
holds one direct stream per pane: a pane's Stop closes its stream, which ends that upstream call.

Streaming runs as tasks on the kernel's event loop (the cell returns at once). When every pane has
ended, the cell's output is replaced by a static rendering of the final state, so a saved notebook
reads well without a kernel. Where nothing renders a live view (nbclient, a terminal) the call waits
for the end instead (see ``_blocking``). What both share is ``_stream_widget``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, TypeVar

import httpx
from IPython.display import display

from ..engine.contract import DEFAULT_CONVERSATION
from . import _slim as slim
from . import _static
from ._backends import Backend, current_backend
from ._blocking import headless, loop_is_running, run_headless, run_in_terminal
from ._chat import ChatWidget
from ._context import ContextLimits, PreparedContext, user_namespace
from ._panes import Pane
from ._steering import Steering
from ._stream_widget import RECORD_WAIT_SECONDS, _StreamWidget
from .client import StreamChatAPIError

log = logging.getLogger("jupyter_streamchat.widgets")

MIN_PANES, MAX_PANES = 2, 4
W = TypeVar("W", bound=_StreamWidget)


class CompareWidget(_StreamWidget):
    """One prompt to 2-4 models side by side, one direct stream per pane."""

    def __init__(
        self,
        prompt: str,
        models: Sequence[str],
        backend: Backend,
        context: PreparedContext,
        steering: Steering | None = None,
    ) -> None:
        self.prompt = prompt
        self.steering = steering or Steering()
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
        body: dict[str, Any] = self.steering.apply(
            {"prompt": self.prompt, "conversation": self.conversation, "model": pane.state.model, "parent": None}
        )
        if self.backend.notebook:
            body["notebook"] = self.backend.notebook
        if self.context.wire:
            body["context"] = self.context.wire
        async with aclosing(self.backend.stream(body)) as events:
            async for message in events:
                pane.apply(message)
        if pane.state.run is not None:  # what the reply cost, and the rest of its record (SPEC 11)
            with contextlib.suppress(StreamChatAPIError, httpx.TransportError):
                pane.state.adopt_details(await self.backend.get_run(pane.state.run))
                pane.refresh_stats()

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
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> ChatWidget:
    """Ask ``model`` (default: the server's default model) and stream the reply into a widget.

    Successive calls in one notebook continue one conversation (the server builds the history from
    the notebook's record) unless ``conversation`` names another. ``context`` (objects, or names of
    variables) and ``@name`` mentions in the prompt are sent along, summarised within ``context_limits``.
    ``system``, ``temperature``, ``max_tokens``, ``seed``: sent where the provider takes them, recorded with
    the turn; a bad value is a ``ValueError`` and nothing is sent.
    """
    steering = Steering.build(system, temperature, max_tokens, seed)
    conversation = conversation or DEFAULT_CONVERSATION
    prepared = PreparedContext.build(prompt, context, user_namespace(), context_limits)
    return shown(lambda: ChatWidget(prompt, model, conversation, current_backend(), prepared, steering))


def compare(
    prompt: str,
    models: Sequence[str],
    *,
    context: Sequence[Any] | None = None,
    context_limits: ContextLimits | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> CompareWidget:
    """Send one prompt to 2-4 models side by side; each pane has its own Stop, plus Stop all. The same
    ``system`` prompt and options go to every model."""
    if isinstance(models, str) or not MIN_PANES <= len(models) <= MAX_PANES:
        raise ValueError(f"compare needs {MIN_PANES} to {MAX_PANES} model ids, e.g. ['demo:chat', 'demo:fast']")
    steering = Steering.build(system, temperature, max_tokens, seed)
    prepared = PreparedContext.build(prompt, context, user_namespace(), context_limits)
    return shown(lambda: CompareWidget(prompt, list(models), current_backend(), prepared, steering))


def shown(make: Callable[[], W]) -> W:
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
