"""One model's reply in a widget: exact state from SSE events, throttled and incremental rendering.

State is applied per event (cheap: append a string); rendering happens at most every
``MIN_INTERVAL`` seconds and sends only what changed: finished Markdown blocks go out once as new
child widgets, the open tail replaces the previous tail. A render is also held back until the new
text is at least ``1 / TAIL_RESEND_RATIO`` of the tail it would re-send, so what reaches the
browser stays a small multiple of the reply whatever the token rate (see benchmarks).
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets

from ..engine._sse import SSEMessage
from ..engine.contract import TERMINAL_STATUSES
from ..engine.runs import joined
from . import _markdown, _static, _stats
from . import _slim as slim
from ._results import PaneResult, RecordState

MIN_INTERVAL = 0.05  # at most 20 renders per second per pane
MAX_INTERVAL = 0.5  # ...and at least 2 while text keeps arriving
TAIL_RESEND_RATIO = 2  # re-send the tail only once new text is >= 1/2 of it (message overhead included)
UPDATE_OVERHEAD = 150  # bytes of comm envelope around each update
STATS_INTERVAL = 1.0  # live numbers once a second; status changes at once
BLOCKS_PER_GROUP = 8  # sealed blocks per container, so no update re-lists every block
# Finished blocks wait in the tail until they make this much text (or SEAL_INTERVAL passed): every
# sealed piece is a widget of its own, whose opening costs a few hundred bytes.
MIN_SEAL_CHARS = 400
SEAL_INTERVAL = 1.0
# The fields of a run record that a pane takes once the run has ended (SPEC 11).
DETAILS = ("cost", "parent", "params", "response_model", "system_fingerprint", "messages_sha256")


@dataclass
class PaneState:
    """Everything known about one run, exactly as the events said it."""

    model: str | None
    run: str | None = None
    status: str = "starting"
    text_parts: list[str] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    error: dict[str, Any] | None = None
    conversation: str | None = None
    requested_at: float = field(default_factory=time.monotonic)
    first_at: float | None = None
    ended_at: float | None = None
    deltas: int = 0
    last_event_id: int = 0
    # Where the run is recorded (its current path) and whether the server says it is: None (no
    # notebook), "pending", "recorded", "gone" (deleted), "refused" (nothing started), "unknown".
    notebook: str | None = None
    recorded: RecordState | None = None
    #: the context sent with the prompt, as the turn records it (SPEC 10)
    context: list[dict[str, Any]] = field(default_factory=list)
    #: the server's reproducibility record of the ended run (SPEC 11): cost, parent, params, ... (``DETAILS``)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return joined(self.text_parts)

    @property
    def reasoning(self) -> str:
        return joined(self.reasoning_parts)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def partial(self) -> bool:
        """Ended early with some text kept (as the notebook's turn says it)."""
        return self.finished and self.status != "completed" and bool(self.text)

    def apply(self, message: SSEMessage, now: float | None = None) -> None:
        """One event; ``now`` is the clock reading when it arrived (default: the monotonic clock)."""
        if message.id and message.id.isdigit():
            self.last_event_id = int(message.id)
        kind = message.event
        data = message.json() if message.data else {}
        if kind in ("delta", "reasoning"):
            if self.first_at is None:
                self.first_at = time.monotonic() if now is None else now
            if kind == "delta":
                self.text_parts.append(data["text"])
                self.deltas += 1
            else:
                self.reasoning_parts.append(data["text"])
        elif kind == "run":
            self.run, self.model, self.status = data["id"], data.get("model") or self.model, "running"
        elif kind == "snapshot":  # re-attached after events left the replay buffer
            self.text_parts, self.reasoning_parts = [data.get("text") or ""], [data.get("reasoning") or ""]
        elif kind == "usage":
            self.usage.update(_counts(data))
        elif kind == "done":
            self.finish(data["status"], data.get("error"), data.get("finish_reason"), data.get("usage"), now)

    def finish(
        self,
        status: str,
        error: dict[str, Any] | None = None,
        finish_reason: str | None = None,
        usage: dict[str, int] | None = None,
        now: float | None = None,
    ) -> None:
        if self.finished:
            return
        self.status, self.error, self.finish_reason = status, error, finish_reason or self.finish_reason
        self.usage.update(_counts(usage))
        self.ended_at = time.monotonic() if now is None else now

    def adopt_record(self, record: Mapping[str, Any]) -> None:
        """The server's final record is the truth: what it recorded is what the pane shows."""
        self.run = record.get("id") or self.run
        self.text_parts = [record.get("text") or ""]
        self.reasoning_parts = [record.get("reasoning") or ""]
        self.status = "running"  # let finish() below set the terminal fields once
        self.finish(record["status"], record.get("error"), record.get("finish_reason"), record.get("usage"))
        self.adopt_details(record)

    def adopt_details(self, record: Mapping[str, Any]) -> None:
        """What only the server's record says (the ``done`` event does not): what the reply cost, its parent..."""
        self.details = {key: record.get(key) for key in DETAILS}
        self.details["params"] = dict(record.get("params") or {})

    @property
    def output_tokens(self) -> int | None:
        """The provider's count once reported, else the deltas seen (None while there are none)."""
        reported = self.usage.get("output_tokens")
        return reported if reported is not None else (self.deltas or None)

    def result(self, now: float | None = None) -> PaneResult:
        """The pane's outcome and numbers (see ``_stats``); ``now`` ends the tokens/s interval while running."""
        ttft = max(0.0, self.first_at - self.requested_at) if self.first_at is not None else None
        tokens = self.output_tokens
        end = self.ended_at if self.ended_at is not None else (time.monotonic() if now is None else now)
        rate = _stats.tokens_per_second(self.first_at, end, tokens or 0)
        return {
            "run": self.run,
            "model": self.model,
            "status": self.status,
            "text": self.text,
            "reasoning": self.reasoning,
            "usage": dict(self.usage),
            "finish_reason": self.finish_reason,
            "error": self.error,
            "conversation": self.conversation,
            "notebook": self.notebook,
            "recorded": self.recorded,
            "context": [dict(record) for record in self.context],
            "ttft": ttft,
            "tokens_per_second": rate,
            "output_tokens": tokens,
            "cost": self.details.get("cost"),
            "parent": self.details.get("parent"),
            "params": dict(self.details.get("params") or {}),
            "response_model": self.details.get("response_model"),
            "system_fingerprint": self.details.get("system_fingerprint"),
            "messages_sha256": self.details.get("messages_sha256"),
        }


def _counts(usage: dict[str, Any] | None) -> dict[str, int]:
    """The token counts of a usage object (the panel keeps the same: numbers only)."""
    return {k: v for k, v in (usage or {}).items() if isinstance(v, int) and not isinstance(v, bool)}


class _Shared:
    """One layout and one style for all plain widgets of a pane: each would otherwise open two comms."""

    def __init__(self) -> None:
        self.layout = slim.Layout(margin="0")
        self.html_style = slim.HTMLStyleSlim()

    def html(self, value: str = "") -> slim.HTML:
        return slim.HTML(value=value, layout=self.layout, style=self.html_style)

    def vbox(self, children: list[widgets.Widget]) -> slim.VBox:
        return slim.VBox(children, layout=self.layout)

    def hbox(self, children: list[widgets.Widget]) -> slim.HBox:
        return slim.HBox(children, layout=self.layout)


class _MarkdownArea:
    """A growing Markdown text shown as sealed HTML blocks plus one re-rendered tail."""

    def __init__(self, css_class: str, shared: _Shared) -> None:
        self._progress = _markdown.ProgressiveMarkdown()
        self._shared = shared
        self._pending = shared.html()
        self._tail = shared.html()
        self._groups: list[slim.VBox] = []
        self._last_seal = time.monotonic()
        self.box = shared.vbox([self._pending, self._tail])
        self.box.add_class(css_class)
        self.rendered_chars = 0
        self.tail_chars = 0

    def render(self, text: str, final: bool = False) -> None:
        now = time.monotonic()
        min_seal = 0 if now - self._last_seal >= SEAL_INTERVAL else MIN_SEAL_CHARS
        advance = self._progress.advance(text, final=final, min_seal=min_seal)
        if advance.sealed:
            self._last_seal = now
            self._append(self._shared.html(advance.sealed))
        if self._pending.value != advance.pending:
            self._pending.value = advance.pending
        if self._tail.value != advance.tail:
            self._tail.value = advance.tail
        self.rendered_chars = len(text)
        self.tail_chars = self._progress.open_chars

    def _append(self, block: widgets.HTML) -> None:
        group = self._groups[-1] if self._groups else None
        if group is None or len(group.children) >= BLOCKS_PER_GROUP:
            group = self._shared.vbox([block])
            self._groups.append(group)
            self.box.children = (*self._groups, self._pending, self._tail)
        else:
            group.children = (*group.children, block)


class Pane:
    """The widgets of one reply and the throttle that keeps them in step with its ``PaneState``."""

    def __init__(self, model: str | None, on_stop: Callable[[Pane], None]) -> None:
        self.state = PaneState(model)
        self._on_stop = on_stop
        shared = _Shared()
        self.title = shared.html(self._title_html())
        self.stats = shared.html(_static.stats_line(self.state.result()))
        self.reply = _MarkdownArea("jsc-reply", shared)
        self._shared = shared
        # Created when the first reasoning arrives: most replies have none.
        self.thinking: _MarkdownArea | None = None
        self.reasoning: slim.Accordion | None = None
        self.error = shared.html()
        label = model or "the default model"
        self.stop_button = slim.Button(
            description="Stop", tooltip=f"Stop {label}", layout=shared.layout, style=slim.ButtonStyleSlim()
        )
        self.stop_button.on_click(lambda _button: self._on_stop(self))
        # Laid out by CSS classes (see _static.STYLE): a Layout of its own would open one more comm each.
        head = shared.hbox([self.title, self.stats])
        head.add_class("jsc-head")
        self.box = shared.vbox([head, self.reply.box, self.error, self.stop_button])
        self.box.add_class("jsc-pane")
        self._handle: asyncio.TimerHandle | None = None
        self._last_render = 0.0
        self._last_stats = 0.0
        self._shown_status = self.state.status

    def _title_html(self) -> str:
        return f'<span class="jsc-model">{html.escape(self.state.model or "default model")}</span>'

    # ----- events ------------------------------------------------------------------------------------
    def apply(self, message: SSEMessage) -> None:
        before = self.state.model
        self.state.apply(message)
        if self.state.model != before:
            self.title.value = self._title_html()
        if self.state.finished:
            self.render_final()
        else:
            self.schedule()

    def schedule(self) -> None:
        if self._handle is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_render + MIN_INTERVAL - time.monotonic())
        self._handle = loop.call_later(delay, self._render_now)

    def _render_now(self) -> None:
        self._handle = None
        now = time.monotonic()
        state = self.state
        new_chars = len(state.text) - self.reply.rendered_chars
        waited = now - self._last_render
        if new_chars * TAIL_RESEND_RATIO < self.reply.tail_chars + UPDATE_OVERHEAD and waited < MAX_INTERVAL:
            # Not worth re-sending the tail yet: look again shortly.
            self._handle = asyncio.get_running_loop().call_later(MIN_INTERVAL, self._render_now)
            self._update_stats(now)
            return
        self._last_render = now
        if new_chars:
            self.reply.render(state.text)
        if state.reasoning_parts and len(state.reasoning) != self._show_reasoning().rendered_chars:
            self._show_reasoning().render(state.reasoning)
        self._update_stats(now)

    def _update_stats(self, now: float, force: bool = False) -> None:
        if force or self.state.status != self._shown_status or now - self._last_stats >= STATS_INTERVAL:
            self._last_stats = now
            self._shown_status = self.state.status
            value = _static.stats_line(self.state.result())
            if self.stats.value != value:
                self.stats.value = value

    def refresh_stats(self) -> None:
        """The stats line again, now (the server's record added the reply's cost)."""
        self._update_stats(time.monotonic(), force=True)

    def render_final(self) -> None:
        """Exact final state: every remaining block, the numbers, and the error if there is one."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        state = self.state
        self.reply.render(state.text, final=True)
        if state.reasoning:
            self._show_reasoning().render(state.reasoning, final=True)
        self._update_stats(time.monotonic(), force=True)
        self.error.value = _static.error_line(state.error)
        self.stop_button.disabled = True

    def _show_reasoning(self) -> _MarkdownArea:
        if self.thinking is None:
            self.thinking = _MarkdownArea("jsc-reasoning", self._shared)
            self.reasoning = slim.Accordion([self.thinking.box], selected_index=None, titles=("Reasoning",))
            self.box.children = (self.box.children[0], self.reasoning, *self.box.children[1:])
        return self.thinking

    def fail(self, code: str, message: str) -> None:
        self.state.finish("failed", {"code": code, "message": message})
        self.render_final()
