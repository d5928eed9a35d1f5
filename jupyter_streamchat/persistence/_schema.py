"""The ``metadata.streamchat`` schema: its shapes, and pure functions over plain dicts (no I/O, easy to test).

What we write is typed (``Turn``); what we read back from a notebook is not: anyone may have edited the file,
so readers take ``Mapping[str, Any]`` and look before they use.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

SCHEMA_VERSION = 1
DEFAULT_CONVERSATION = "default"


class ChatMessage(TypedDict):
    role: str
    content: str


class Reply(TypedDict):
    role: str  # "assistant"
    content: str  # exactly what clients were streamed
    reasoning: str
    status: str  # a terminal status
    partial: bool  # ended early with some text
    finish_reason: str | None
    usage: dict[str, int]
    error: dict[str, Any] | None


class Turn(TypedDict):
    """One finished run in ``metadata.streamchat.conversations.<id>.turns`` (SPEC 6)."""

    run: str
    model: str
    mode: str
    prompt: ChatMessage
    reply: Reply
    created: str
    finished: str | None


class FinishedRun(TypedDict):
    """What a turn is made from: the fields of a run record (``engine.runs.Run.record``) that it keeps."""

    id: str
    model: str
    mode: str
    status: str
    text: str
    reasoning: str
    usage: dict[str, int]
    finish_reason: str | None
    error: dict[str, Any] | None
    notebook: str | None
    conversation: str | None
    created: str
    finished: str | None


def make_turn(record: FinishedRun, prompt: Mapping[str, str] | None) -> Turn:
    """One turn for a finished run record; ``content`` is exactly what clients were streamed."""
    status = record["status"]
    text = record.get("text") or ""
    return {
        "run": record["id"],
        "model": record["model"],
        "mode": record["mode"],
        "prompt": {"role": prompt["role"], "content": prompt["content"]} if prompt else {"role": "user", "content": ""},
        "reply": {
            "role": "assistant",
            "content": text,
            "reasoning": record.get("reasoning") or "",
            "status": status,
            "partial": status != "completed" and bool(text),
            "finish_reason": record.get("finish_reason"),
            "usage": dict(record.get("usage") or {}),
            "error": record.get("error"),
        },
        "created": record["created"],
        "finished": record["finished"],
    }


def conversation_key(record: FinishedRun) -> str:
    return record.get("conversation") or DEFAULT_CONVERSATION


def has_turn(metadata: Mapping[str, Any], run_id: str) -> bool:
    conversations = (metadata.get("streamchat") or {}).get("conversations") or {}
    return any(turn.get("run") == run_id for conv in conversations.values() for turn in (conv or {}).get("turns") or ())


def merged_streamchat(metadata: Mapping[str, Any], conversation: str, turn: Turn) -> dict[str, Any] | None:
    """The new ``metadata["streamchat"]`` with ``turn`` appended, or None if the run is already there."""
    if has_turn(metadata, turn["run"]):
        return None
    section = copy.deepcopy(metadata.get("streamchat") or {})
    if not isinstance(section, dict):
        section = {}
    section["version"] = SCHEMA_VERSION
    conversations = section.setdefault("conversations", {})
    turns = conversations.setdefault(conversation, {}).setdefault("turns", [])
    turns.append(turn)
    turns.sort(key=lambda t: t.get("created") or "")
    return section


def turns_of(metadata: Mapping[str, Any], conversation: str) -> list[Mapping[str, Any]]:
    conversations = (metadata.get("streamchat") or {}).get("conversations") or {}
    return list((conversations.get(conversation) or {}).get("turns") or [])


def history_messages(turns: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Messages for the next turn: completed and partial replies go to the model; failures do not."""
    messages: list[dict[str, str]] = []
    for turn in sorted(turns, key=lambda t: t.get("created") or ""):
        reply = turn.get("reply") or {}
        content = reply.get("content") or ""
        if reply.get("status") == "failed" or not content:
            continue
        prompt = turn.get("prompt") or {}
        if prompt.get("content"):
            messages.append({"role": "user", "content": prompt["content"]})
        messages.append({"role": "assistant", "content": content})
    return messages
