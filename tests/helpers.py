"""Small helpers shared by the server tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from harness.waiting import await_until
from jupyter_streamchat.client import StreamChatClient
from jupyter_streamchat.engine._sse import SSEMessage


def chat(model: str, text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


async def collect(events: AsyncIterator[SSEMessage], limit: int | None = None) -> list[SSEMessage]:
    """Read events until the stream ends, or until ``limit`` delta events were seen (then hang up)."""
    seen: list[SSEMessage] = []
    deltas = 0
    async with aclosing(events) as stream:
        async for message in stream:
            seen.append(message)
            deltas += message.event == "delta"
            if limit is not None and deltas >= limit:
                break
    return seen


def text_of(events: list[SSEMessage]) -> str:
    """What a client shows: a snapshot replaces the text, deltas append."""
    text = ""
    for message in events:
        if message.event == "snapshot":
            text = message.json()["text"]
        elif message.event == "delta":
            text += message.json()["text"]
    return text


def ids_of(events: list[SSEMessage]) -> list[int]:
    return [int(message.id or 0) for message in events]


async def wait_finished(client: StreamChatClient, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The run's record once its status says it ended (the API's answer, not a duration)."""

    async def ended() -> dict[str, Any] | None:
        record = await client.get_run(run_id)
        return record if record["status"] != "running" else None

    return await await_until(ended, timeout, what=f"run {run_id} to end")


def service_of(jp_serverapp: Any) -> Any:
    """The extension's ChatService inside an in-process test server."""
    (app,) = jp_serverapp.extension_manager.extension_apps["jupyter_streamchat"]
    return app.service
