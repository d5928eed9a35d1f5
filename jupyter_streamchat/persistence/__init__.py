"""Recording finished runs: into notebooks (exactly once) and into the crash-safe run journal."""

from __future__ import annotations

from ._follow import NotebookFollower
from ._handoff import HandoffHub
from ._notebooks import GONE, PENDING, RECORDED, REFUSED, NotebookRecorder, NotRecordedYet
from ._schema import history_messages, make_turn
from ._section import Conversation, UnreadableSection, branch
from .journal import RunJournal

__all__ = [
    "GONE",
    "PENDING",
    "RECORDED",
    "REFUSED",
    "Conversation",
    "HandoffHub",
    "NotRecordedYet",
    "NotebookFollower",
    "NotebookRecorder",
    "RunJournal",
    "UnreadableSection",
    "branch",
    "history_messages",
    "make_turn",
]
