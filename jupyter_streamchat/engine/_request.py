"""What a run is asked to do (its model, messages, options, where it is recorded, what it follows: SPEC 11), and
the small helpers a run uses at its ends (its timestamps, closing its provider stream)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..context._types import ContextRecord
from ..providers._parts import ChatMessage
from ._prices import Price

__all__ = ["RunRequest", "close_stream", "utc_now"]

log = logging.getLogger("jupyter_streamchat.runs")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class RunRequest:
    model: str
    messages: list[ChatMessage]
    options: dict[str, Any] = field(default_factory=dict)
    notebook: str | None = None
    conversation: str | None = None
    owner: str | None = None  # the Jupyter username of who started it (see handlers.py)
    #: what the last user message carries besides its prompt, as a turn records it (SPEC 10)
    context: list[ContextRecord] = field(default_factory=list)
    #: the run id of the turn this one follows (SPEC 11); None: it starts its conversation
    parent: str | None = None
    #: the system prompt (already the first of ``messages``), recorded with the options as the turn's params
    system: str | None = None
    #: the model's price, when ``c.StreamChat.prices`` has one: the run then knows its cost
    price: Price | None = None

    @property
    def params(self) -> dict[str, Any]:
        """What a turn records of how it was asked (SPEC 11): the options and the system prompt, unset ones left out."""
        params = {key: value for key, value in self.options.items() if value is not None}
        if self.system is not None:
            params["system"] = self.system
        return params


async def close_stream(run_id: str, stream: object) -> None:
    """End the provider's stream with its run: one cut at ``max_reply_chars`` is still suspended mid-reply,
    and closing it hangs up the upstream call now. (A stream that ended or was cancelled is already closed.)"""
    close = getattr(stream, "aclose", None)
    if close is None:
        return
    try:
        await close()
    except Exception:
        log.debug("run %s: closing the provider stream failed", run_id, exc_info=True)
