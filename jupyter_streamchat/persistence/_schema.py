"""The ``metadata.streamchat`` schema: its shapes, and pure functions over plain dicts (no I/O, easy to test).

What we write is typed (``Turn``); what we read back from a notebook is not: anyone may have edited the file,
so readers take ``Mapping[str, Any]`` and look before they use.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, NotRequired, TypedDict

from ..context._types import ContextRecord
from ..engine.contract import DEFAULT_CONVERSATION
from ..providers._parts import ChatMessage, Content, Part

SCHEMA_VERSION = 1


class PromptMessage(TypedDict):
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
    prompt: PromptMessage
    reply: Reply
    created: str
    finished: str | None
    context: NotRequired[list[ContextRecord]]  # what was sent besides the prompt (SPEC 10)


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


def make_turn(record: FinishedRun, prompt: Mapping[str, Any] | None) -> Turn:
    """One turn for a finished run record; ``content`` is exactly what clients were streamed, ``context`` what
    the model was sent besides the prompt (SPEC 10), recorded only when there was some."""
    status = record["status"]
    text = record.get("text") or ""
    turn: Turn = {
        "run": record["id"],
        "model": record["model"],
        "mode": record["mode"],
        "prompt": {"role": "user", "content": prompt.get("content") or ""}
        if prompt
        else {"role": "user", "content": ""},
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
    if prompt and prompt.get("context"):
        turn["context"] = copy.deepcopy(list(prompt["context"]))
    return turn


def conversation_key(record: FinishedRun) -> str:
    return record.get("conversation") or DEFAULT_CONVERSATION


def _conversations(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The conversations of ``metadata["streamchat"]``; a malformed section (a notebook is user data) has none."""
    section = metadata.get("streamchat")
    conversations = section.get("conversations") if isinstance(section, dict) else None
    return conversations if isinstance(conversations, dict) else {}


def _turns(entry: Any) -> list[Any]:
    turns = entry.get("turns") if isinstance(entry, dict) else None
    return turns if isinstance(turns, list) else []


def _created(turn: Any) -> str:
    created = turn.get("created") if isinstance(turn, dict) else None
    return created if isinstance(created, str) else ""


def has_turn(metadata: Mapping[str, Any], run_id: str) -> bool:
    return any(
        isinstance(turn, dict) and turn.get("run") == run_id
        for entry in _conversations(metadata).values()
        for turn in _turns(entry)
    )


def merged_streamchat(metadata: Mapping[str, Any], conversation: str, turn: Turn) -> dict[str, Any] | None:
    """The new ``metadata["streamchat"]`` with ``turn`` added to ``conversation`` (turns sorted by ``created``,
    equal times in their order), or None if the run is already there, in any conversation.

    ``metadata`` is not modified. What is malformed (a section, its conversations, a conversation or its turns
    that is not of its type) is replaced, everything else is kept. The panel merges the same way
    (``labextension/src/metadata.ts`` ``mergeTurn``); ``tests/parity/metadata`` holds both to it.
    """
    if has_turn(metadata, turn["run"]):
        return None
    old = metadata.get("streamchat")
    section: dict[str, Any] = copy.deepcopy(old) if isinstance(old, dict) else {}
    section["version"] = SCHEMA_VERSION
    conversations = section.get("conversations")
    if not isinstance(conversations, dict):
        conversations = section["conversations"] = {}
    entry = conversations.get(conversation)
    if not isinstance(entry, dict):
        entry = conversations[conversation] = {}
    turns = [*_turns(entry), turn]
    turns.sort(key=_created)
    entry["turns"] = turns
    return section


def turns_of(metadata: Mapping[str, Any], conversation: str) -> list[Mapping[str, Any]]:
    conversations = (metadata.get("streamchat") or {}).get("conversations") or {}
    return list((conversations.get(conversation) or {}).get("turns") or [])


def history_messages(turns: Iterable[Mapping[str, Any]]) -> list[ChatMessage]:
    """Messages for the next turn: completed and partial replies go to the model; failures do not. A prompt
    keeps the text context it was sent with (images are not sent again)."""
    messages: list[ChatMessage] = []
    for turn in sorted(turns, key=lambda t: t.get("created") or ""):
        reply = turn.get("reply") or {}
        content = reply.get("content") or ""
        if reply.get("status") == "failed" or not content:
            continue
        prompt = turn.get("prompt") or {}
        if prompt.get("content"):
            messages.append({"role": "user", "content": _with_text_context(prompt["content"], turn.get("context"))})
        messages.append({"role": "assistant", "content": content})
    return messages


def _with_text_context(prompt: str, context: Any) -> Content:
    texts: list[Part] = [
        {"type": "text", "text": item["text"]}
        for item in (context if isinstance(context, list) else ())
        if isinstance(item, dict) and item.get("kind") != "image" and isinstance(item.get("text"), str)
    ]
    return [*texts, {"type": "text", "text": prompt}] if texts else prompt
