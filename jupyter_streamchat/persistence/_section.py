"""Reading ``metadata.streamchat`` safely: which sections may be written, the version-1 upgrade, and the tree.

A notebook is user data: anyone may have edited it, and a newer version of this extension may have written a
section this one does not understand. So a section is written only when all of it can be read (SPEC 11,
docs/metadata.md): an object whose ``version`` is 1 or 2, whose ``conversations`` is an object of objects
whose ``turns`` are lists of objects with a string ``run``, whose ``parent`` (when there) and ``active`` (when
there) are run ids or null. Anything else is refused with a one-line reason, never replaced: a later version's
records and a hand-edited section are never lost to a write. (No section at all, or ``null``, is simply none.)

The reading rule of both versions, so version 1 reads as one branch in turn order: a turn without a
``parent`` key follows the turn before it in the list (the first one starts the conversation), and a
conversation without ``active`` has its last turn active. The upgrade to version 2 writes exactly that down.

The panel reads and merges the same way (``labextension/src/metadata.ts``); ``tests/parity/metadata`` holds
both to it, reasons included, word for word.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


class UnreadableSection(Exception):
    """A ``metadata.streamchat`` section this version may not write: ``reason`` says why, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _kind(value: object) -> str:
    """What a JSON value is, in words (the same words as the panel's ``kindOf``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _whole(value: object) -> int | None:
    """A JSON number that is a whole number (``2`` or ``2.0``: a browser cannot tell them apart), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None


def section_problem(section: object) -> str | None:
    """Why ``section`` (a ``metadata.streamchat`` value) must not be written, or None when it may be."""
    if section is None:
        return None
    where = "metadata.streamchat"
    if not isinstance(section, dict):
        return f"{where} is {_kind(section)}, not an object"
    version = _whole(section.get("version"))
    if version is not None and version > SCHEMA_VERSION:
        return (
            f"{where} has version {version}, newer than this jupyter_streamchat understands ({SCHEMA_VERSION}); "
            "update jupyter_streamchat to record here"
        )
    if version not in READABLE_VERSIONS:
        shown = json.dumps(section["version"], ensure_ascii=False) if "version" in section else "none"
        return f"{where} has version {shown}, not one this jupyter_streamchat reads (1 or 2)"
    conversations = section.get("conversations", {})
    if not isinstance(conversations, dict):
        return f"{where}.conversations is {_kind(conversations)}, not an object"
    for name, entry in conversations.items():
        problem = _conversation_problem(f"{where}.conversations[{json.dumps(name, ensure_ascii=False)}]", entry)
        if problem is not None:
            return problem
    return None


def _conversation_problem(where: str, entry: object) -> str | None:
    if not isinstance(entry, dict):
        return f"{where} is {_kind(entry)}, not an object"
    turns = entry.get("turns", [])
    if not isinstance(turns, list):
        return f"{where}.turns is {_kind(turns)}, not a list"
    active = entry.get("active")
    if active is not None and not isinstance(active, str):
        return f"{where}.active is {_kind(active)}, not a run id"
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("run"), str):
            return f"{where}.turns[{index}] is not a turn (an object with a run id)"
        parent = turn.get("parent")
        if parent is not None and not isinstance(parent, str):
            return f"{where}.turns[{index}].parent is {_kind(parent)}, not a run id"
    return None


def check_section(metadata: Mapping[str, Any]) -> None:
    """Raise ``UnreadableSection`` unless the notebook's section (if any) may be written."""
    problem = section_problem(metadata.get("streamchat"))
    if problem is not None:
        raise UnreadableSection(problem)


def upgraded(section: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deep copy of a readable section (None: a new one) at ``SCHEMA_VERSION``, its reading rule written
    down: every turn gets its ``parent`` (the turn before it), every conversation with turns its ``active``
    (its last turn). Nothing is removed or reordered; keys this version does not know are kept."""
    result: dict[str, Any] = copy.deepcopy(dict(section)) if section is not None else {}
    result["version"] = SCHEMA_VERSION
    conversations = result.setdefault("conversations", {})
    for entry in conversations.values():
        turns = entry.get("turns")
        if not turns:
            continue
        previous: str | None = None
        for turn in turns:
            if "parent" not in turn:
                turn["parent"] = previous
            previous = turn["run"]
        if entry.get("active") is None:
            entry["active"] = previous
    return result


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation as read: its turns in file order, each with its ``parent`` filled in, and the
    run id of its active leaf (None: no turn yet)."""

    turns: list[dict[str, Any]]
    active: str | None


def read_conversation(metadata: Mapping[str, Any], conversation: str) -> Conversation:
    """The conversation's tree as the reading rule gives it; raises ``UnreadableSection`` like a write would
    (a section that cannot be written cannot be trusted to read either)."""
    check_section(metadata)
    section = metadata.get("streamchat")
    if section is None:
        return Conversation([], None)
    entry = section.get("conversations", {}).get(conversation)
    if entry is None:
        return Conversation([], None)
    entry = upgraded({"version": SCHEMA_VERSION, "conversations": {conversation: entry}})["conversations"][conversation]
    return Conversation(list(entry.get("turns", [])), entry.get("active"))


def read_conversations(metadata: Mapping[str, Any]) -> dict[str, Conversation]:
    """Every conversation of the notebook's section, by name, as ``read_conversation`` reads each."""
    check_section(metadata)
    section = metadata.get("streamchat")
    names = list(section.get("conversations", {})) if section is not None else []
    return {name: read_conversation(metadata, name) for name in names}


def branch(turns: Mapping[str, Mapping[str, Any]], leaf: str | None) -> list[Mapping[str, Any]]:
    """The turns from the root of the tree down to ``leaf`` (run id -> turn; None: no turn). A ``parent``
    that names no known turn ends the walk there: that turn is then the first of its branch."""
    path: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    current = leaf
    while current is not None and current in turns and current not in seen:
        seen.add(current)
        turn = turns[current]
        path.append(turn)
        parent = turn.get("parent")
        current = parent if isinstance(parent, str) else None
    path.reverse()
    return path
