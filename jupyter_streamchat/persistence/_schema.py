"""The ``metadata.streamchat`` schema: its shapes, and pure functions over plain dicts (no I/O, easy to test).

What we write is typed (``Turn``); what we read back from a notebook is not: anyone may have edited the file,
so readers take ``Mapping[str, Any]`` and look before they use (``_section.py`` decides what may be written).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, NotRequired, TypedDict

from ..context._types import ContextRecord
from ..engine.contract import DEFAULT_CONVERSATION
from ..providers._parts import ChatMessage, Content, Part
from ._section import SCHEMA_VERSION, check_section, upgraded

__all__ = [
    "SCHEMA_VERSION",
    "FinishedRun",
    "PromptMessage",
    "Reply",
    "Turn",
    "conversation_key",
    "has_turn",
    "history_messages",
    "make_turn",
    "merged_streamchat",
]


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
    """One finished run in ``metadata.streamchat.conversations.<id>.turns`` (SPEC 6, 11)."""

    run: str
    parent: str | None  # the run id this turn follows; None: it starts the conversation (SPEC 11)
    model: str
    mode: str
    prompt: PromptMessage
    reply: Reply
    params: dict[str, Any]  # temperature, max_tokens, seed, top_p, system: as sent, unset ones left out
    response_model: str | None  # the model name the provider answered with
    system_fingerprint: NotRequired[str]  # when the provider gave one
    messages_sha256: NotRequired[str]  # of the exact messages sent (``providers._parts.messages_sha256``)
    created: str
    first_token: str | None
    finished: str | None
    cost: NotRequired[float]  # USD, when the model has a price (``c.StreamChat.prices``)
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
    first_token: str | None
    parent: str | None
    params: dict[str, Any]
    response_model: str | None
    system_fingerprint: str | None
    messages_sha256: str | None
    cost: float | None


def make_turn(record: FinishedRun, prompt: Mapping[str, Any] | None) -> Turn:
    """One turn for a finished run record; ``content`` is exactly what clients were streamed, ``context`` what
    the model was sent besides the prompt (SPEC 10), recorded only when there was some; the reproducibility
    record (SPEC 11) as the run kept it."""
    status = record["status"]
    text = record.get("text") or ""
    turn: Turn = {
        "run": record["id"],
        "parent": record.get("parent"),
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
        "params": dict(record.get("params") or {}),
        "response_model": record.get("response_model"),
        "created": record["created"],
        "first_token": record.get("first_token"),
        "finished": record["finished"],
    }
    fingerprint, digest, cost = record.get("system_fingerprint"), record.get("messages_sha256"), record.get("cost")
    if fingerprint is not None:
        turn["system_fingerprint"] = fingerprint
    if digest is not None:
        turn["messages_sha256"] = digest
    if cost is not None:
        turn["cost"] = cost
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
    """The new ``metadata["streamchat"]`` with ``turn`` added to ``conversation`` as its active leaf, or None if
    the run is already there, in any conversation. ``metadata`` is not modified.

    The section is written at ``SCHEMA_VERSION``: a version-1 section is upgraded (``_section.upgraded``:
    nothing lost or reordered). One that cannot be read safely (a newer version, or malformed) raises
    ``UnreadableSection`` and is never replaced. The turn goes after the last turn created no later than it
    (in a sorted list: sorted by ``created``, equal times in their order), the other turns keep their order.
    The panel merges the same way (``labextension/src/metadata.ts`` ``mergeTurn``); ``tests/parity/metadata``
    holds both to it.
    """
    if has_turn(metadata, turn["run"]):
        return None
    check_section(metadata)
    section = upgraded(metadata.get("streamchat"))
    entry = section["conversations"].setdefault(conversation, {})
    turns: list[Any] = entry.setdefault("turns", [])
    created = _created(turn)
    at = next((index + 1 for index in range(len(turns) - 1, -1, -1) if _created(turns[index]) <= created), 0)
    turns.insert(at, copy.deepcopy(turn))
    entry["active"] = turn["run"]
    return section


def history_messages(turns: Iterable[Mapping[str, Any]]) -> list[ChatMessage]:
    """Messages for the next turn from a branch (``_section.branch``, root first): completed and partial
    replies go to the model; failures do not. A prompt keeps the text context it was sent with (images are
    not sent again)."""
    messages: list[ChatMessage] = []
    for turn in turns:
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
