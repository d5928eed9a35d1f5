"""The ``metadata.streamchat`` schema: pure functions over plain dicts (no I/O, easy to test)."""

from __future__ import annotations

import copy
from typing import Any

from ..engine.contract import DEFAULT_CONVERSATION

SCHEMA_VERSION = 1


def make_turn(record: dict[str, Any], prompt: dict[str, str] | None) -> dict[str, Any]:
    """One turn for a finished run record; ``content`` is exactly what clients were streamed."""
    status = record["status"]
    text = record.get("text") or ""
    return {
        "run": record["id"],
        "model": record["model"],
        "mode": record["mode"],
        "prompt": dict(prompt) if prompt else {"role": "user", "content": ""},
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


def conversation_key(record: dict[str, Any]) -> str:
    return record.get("conversation") or DEFAULT_CONVERSATION


def has_turn(metadata: dict[str, Any], run_id: str) -> bool:
    conversations = (metadata.get("streamchat") or {}).get("conversations") or {}
    return any(turn.get("run") == run_id for conv in conversations.values() for turn in (conv or {}).get("turns") or ())


def merged_streamchat(metadata: dict[str, Any], conversation: str, turn: dict[str, Any]) -> dict[str, Any] | None:
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


def turns_of(metadata: dict[str, Any], conversation: str) -> list[dict[str, Any]]:
    conversations = (metadata.get("streamchat") or {}).get("conversations") or {}
    return list((conversations.get(conversation) or {}).get("turns") or [])


def history_messages(turns: list[dict[str, Any]]) -> list[dict[str, str]]:
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
