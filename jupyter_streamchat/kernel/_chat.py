"""The chat widget: one prompt, one detached run per alternative reply (SPEC 7, 11).

A run belongs to the server, so re-running the cell or interrupting the kernel does not end it, and Stop asks
the server to stop it. "Regenerate" (``widget.regenerate()``) sends the same prompt again after the same history
(the regenerated turn's ``parent``): a new alternative, shown in place; "Previous alternative" / "Next
alternative" switch which one is shown, and the next chat of the conversation from this kernel follows the one
shown. The controls are a small display of their own under the reply, because the reply itself becomes static
HTML when its run ends (what a saved notebook shows).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from contextlib import aclosing
from typing import Any

import httpx
from IPython.display import display

from ..engine.contract import RUNNING, STILL_STREAMING
from . import _slim as slim
from . import _static
from ._backends import Backend
from ._blocking import current_cell
from ._context import PreparedContext
from ._panes import Pane
from ._results import PaneResult
from ._steering import Steering
from ._stream_widget import _StreamWidget
from .client import StreamChatAPIError

REATTACH_SECONDS = 10.0  # a detached run is followed across server hiccups this long
# A parent not known (a regenerated reply whose run never started) or not given: follow the active leaf.
UNKNOWN = object()
# Chats of one conversation from this kernel take turns: "Run All" over several chat cells sends each prompt once
# the reply before it has ended, so each follows the one before (the server refuses to follow a streaming reply).
_last_chat: dict[tuple[str | None, str], ChatWidget] = {}


class ChatWidget(_StreamWidget):
    """One prompt; a detached run per alternative reply. Stop asks the server to stop it; nothing else ends it."""

    def __init__(
        self,
        prompt: str,
        model: str | None,
        conversation: str,
        backend: Backend,
        context: PreparedContext,
        steering: Steering | None = None,
        parent: object = UNKNOWN,
    ) -> None:
        """``parent``: the run id the reply follows (None: it starts the conversation); by default the one
        shown by the chat before this one, else the conversation's active leaf."""
        self.prompt = prompt
        self._parent = parent
        self.conversation = conversation
        self.steering = steering or Steering()
        self._stop_requested: set[int] = set()
        self._ended: dict[int, asyncio.Event] = {}
        pane = self._new_pane(model)
        self.alternatives = [pane]
        self._shown = 0
        self.slot = slim.VBox([pane.box], layout=slim.Layout())
        super().__init__([pane], backend, [self.slot], context)
        self.regenerate_button = slim.Button(
            description="Regenerate", tooltip="A new reply to the same prompt", style=slim.ButtonStyleSlim()
        )
        self.previous_button = slim.Button(description="Previous alternative", style=slim.ButtonStyleSlim())
        self.next_button = slim.Button(description="Next alternative", style=slim.ButtonStyleSlim())
        self.counter = slim.HTML()
        self.regenerate_button.on_click(lambda _button: self.regenerate())
        self.previous_button.on_click(lambda _button: self.show_alternative(self._shown - 1))
        self.next_button.on_click(lambda _button: self.show_alternative(self._shown + 1))
        self.controls = slim.HBox([self.regenerate_button, self.previous_button, self.counter, self.next_button])
        self.controls.add_class("jsc-controls")
        self._controls_shown_in: str | None = None
        self._update_controls()
        key = (backend.notebook, conversation)
        self._before = _last_chat.get(key)
        _last_chat[key] = self
        self._spawn(self._settled(pane, self._guarded(pane, self._run(pane, None))))

    # ----- public ------------------------------------------------------------------------------------
    @property
    def alternative_results(self) -> list[PaneResult]:
        """Every alternative reply, oldest first (``results`` holds the one shown)."""
        return [pane.state.result() for pane in self.alternatives]

    @property
    def shown(self) -> int:
        """The index of the alternative shown (and followed by the next chat of the conversation)."""
        return self._shown

    def regenerate(self) -> None:
        """A new reply to the same prompt after the same history, shown in place; it starts once every
        alternative before it has ended (``await widget.done`` then waits for it too)."""
        source = self.alternatives[self._shown]
        pane = self._new_pane(source.state.model)
        self.alternatives.append(pane)
        self._reopen()
        _last_chat[(self.backend.notebook, self.conversation)] = self  # the next chat waits for this one too
        self.show_alternative(len(self.alternatives) - 1)
        self._spawn(self._settled(pane, self._guarded(pane, self._run(pane, source))))

    def show_alternative(self, index: int) -> None:
        """Show alternative ``index`` (0-based) in place: the live view, or the static output once all ended."""
        if not 0 <= index < len(self.alternatives):
            return
        self._shown = index
        pane = self.alternatives[index]
        self.panes = [pane]
        self.slot.children = (pane.box,)
        self.note.value = self._note_html()
        self._update_controls()
        if self._final_published:
            self._publish_final()

    def followed_leaf(self) -> str | None:
        """The run the next chat of the conversation must name as its parent: the alternative shown, when
        it is not the newest (the server would otherwise follow the newest turn)."""
        if self._shown == len(self.alternatives) - 1:
            return None
        return self.alternatives[self._shown].state.run

    # ----- display -----------------------------------------------------------------------------------
    def _ipython_display_(self) -> None:
        super()._ipython_display_()
        cell = current_cell()
        # With the live view only: a client that shows no live view (nbclient) gets the static output alone.
        if not self._final_published and self._controls_shown_in != cell:
            self._controls_shown_in = cell
            # No text/plain: where no widget can show (GitHub, nbviewer), the saved output shows nothing.
            display({**(self.controls._repr_mimebundle_() or {}), "text/plain": ""}, raw=True)

    def _static_html(self) -> str:
        place = (self._shown + 1, len(self.alternatives)) if len(self.alternatives) > 1 else None
        return _static.chat_html(self.results[0], self.record_note, place)

    def _every_pane(self) -> list[Pane]:
        return self.alternatives

    def _on_all_ended(self) -> None:
        self._update_controls()

    def _update_controls(self) -> None:
        count, streaming = len(self.alternatives), not all(p.state.finished for p in self.alternatives)
        self.regenerate_button.disabled = streaming
        self.previous_button.disabled = self._shown == 0
        self.next_button.disabled = self._shown == count - 1
        self.counter.value = f'<span class="jsc-alt-count">{self._shown + 1} / {count}</span>' if count > 1 else ""
        for control in (self.previous_button, self.next_button):
            (control.remove_class if count > 1 else control.add_class)("jsc-hidden")

    # ----- runs --------------------------------------------------------------------------------------
    def _new_pane(self, model: str | None) -> Pane:
        pane = Pane(model, on_stop=self._stop_pane)
        self._ended[id(pane)] = asyncio.Event()  # its run has ended and its record was asked for
        pane.state.conversation = self.conversation
        if getattr(self, "backend", None) is not None:  # an alternative: as the first pane was set up
            pane.state.notebook = self.backend.notebook
            pane.state.recorded = "pending" if self.backend.notebook else None
            pane.state.context = self.context.records
        return pane

    async def _run(self, pane: Pane, source: Pane | None) -> None:
        if not self.prompt.strip():
            pane.fail("empty_prompt", "the prompt is empty: nothing was sent")
            return
        if self.context.error:
            pane.fail("bad_context", f"{self.context.error} (nothing was sent)")
            return
        body: dict[str, Any] = self.steering.apply({"prompt": self.prompt, "conversation": self.conversation})
        if pane.state.model:
            body["model"] = pane.state.model
        if self.backend.notebook:
            body["notebook"] = self.backend.notebook
        if self.context.wire:
            body["context"] = self.context.wire
        if source is not None:
            await self._all_before_ended(pane)  # its parent is known once it has ended
            parent = source.state.details.get("parent", UNKNOWN) if source.state.run else UNKNOWN
            if parent is not UNKNOWN:
                body["parent"] = parent
        elif self._before is not None:
            await self._before._all_ended()  # the chat before this one in the conversation has ended
            leaf = self._before.followed_leaf()
            if leaf is not None:
                body["parent"] = leaf
        if source is None and self._parent is not UNKNOWN:
            body["parent"] = self._parent
        if id(pane) in self._stop_requested:
            pane.state.finish("stopped")  # stopped while it waited its turn: nothing was sent
            pane.render_final()
            return
        started = await self._start_in_turn(pane, body)
        pane.state.run = started["id"]
        if id(pane) in self._stop_requested:
            self._spawn(self._request_stop(pane))
        await self._follow(pane)
        await self._adopt_details(pane)

    async def _all_before_ended(self, pane: Pane) -> None:
        """Until every alternative before ``pane`` has ended and has its server record (its parent)."""
        for other in self.alternatives[: self.alternatives.index(pane)]:
            await self._ended[id(other)].wait()

    async def _settled(self, pane: Pane, run: Awaitable[None]) -> None:
        try:
            await run
        finally:
            self._ended[id(pane)].set()

    async def _adopt_details(self, pane: Pane) -> None:
        """The server's record of the ended run: its cost, parent and the rest of its reproducibility record."""
        try:
            if pane.state.run is not None:
                pane.state.adopt_details(await self.backend.get_run(pane.state.run))
                pane.refresh_stats()
        except (StreamChatAPIError, httpx.TransportError):
            pass  # the reply stands; only its cost and parent stay unknown

    async def _start_in_turn(self, pane: Pane, body: dict[str, Any]) -> dict[str, Any]:
        """Start the run; while another client's reply in the conversation streams, wait for it to end first."""
        while True:
            try:
                return await self.backend.start_run(body)
            except StreamChatAPIError as exc:
                if exc.status != 409 or exc.message != STILL_STREAMING:
                    raise
            streaming = await self.backend.list_runs(
                status=RUNNING, notebook=self.backend.notebook or "", conversation=pane.state.conversation or ""
            )
            for run in streaming:  # each stream ends with the run's `done`
                async with aclosing(self.backend.events(run["id"])) as events:
                    async for _message in events:
                        pass

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
            self._stop_requested.add(id(pane))  # stopped as soon as the server names the run
            return
        self._spawn(self._request_stop(pane))

    async def _request_stop(self, pane: Pane) -> None:
        try:
            assert pane.state.run is not None
            await self.backend.stop(pane.state.run)
        except (StreamChatAPIError, httpx.TransportError) as exc:
            pane.error.value = _static.error_line({"code": "stop_failed", "message": str(exc)})


def chosen_leaf(notebook: str | None, conversation: str) -> str | None:
    """The alternative a user switched to in this kernel's last chat of the conversation, if not the newest:
    the leaf its next chat follows (``history()`` reads the same branch)."""
    for (chat_notebook, chat_conversation), widget in _last_chat.items():
        if chat_notebook == notebook and chat_conversation == conversation:
            return widget.followed_leaf()
    return None
