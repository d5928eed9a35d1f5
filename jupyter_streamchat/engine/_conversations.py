"""A conversation as the server knows it (SPEC 11): the notebook's turns, plus this server's runs of it that
are not there yet (finished, or still streaming), and its active leaf.

One reading for two uses: the branch a new turn follows (``ChatService._branch``) and ``GET conversations``,
with which a kernel reads the tree (``jupyter_streamchat.history``, ``replay``) without reading the file
itself: the file may lag behind turns handed to an open document, and a kernel may run on another machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from ..persistence import Conversation, make_turn
from ._errors import Conflict, NotFound, StreamChatError
from .contract import DEFAULT_CONVERSATION

if TYPE_CHECKING:
    from ._run import Run


@dataclass(frozen=True, slots=True)
class KnownTurns:
    """``turns``: run id -> turn, the notebook's in file order, then the pending runs' oldest first;
    ``active``: the newest pending run, else the notebook's active leaf; ``streaming``: pending runs not ended."""

    turns: dict[str, Mapping[str, Any]]
    active: str | None
    streaming: frozenset[str]


def known_turns(recorded: Conversation, runs: Iterable[Run], notebook: str | None, conversation: str) -> KnownTurns:
    """``recorded`` (the notebook's) with the runs (newest first) of ``conversation`` in ``notebook`` it lacks."""
    turns: dict[str, Mapping[str, Any]] = {turn["run"]: turn for turn in recorded.turns}
    pending = [run for run in runs if _of(run, notebook, conversation) and run.id not in turns]  # newest first
    for run in reversed(pending):
        turns[run.id] = make_turn(run.record(), run.prompt)
    streaming = frozenset(run.id for run in pending if not run.ended_for_clients)
    return KnownTurns(turns, pending[0].id if pending else recorded.active, streaming)


def _of(run: Run, notebook: str | None, conversation: str) -> bool:
    return run.notebook == notebook and (run.conversation or DEFAULT_CONVERSATION) == conversation


class ConversationAnswer(TypedDict):
    active: str | None
    turns: list[Mapping[str, Any]]


class ConversationsAnswer(TypedDict):
    """``GET conversations``: the notebook (None: runs naming none) and its conversations by name."""

    notebook: str | None
    conversations: dict[str, ConversationAnswer]


def conversations_answer(
    notebook: str | None,
    recorded: Mapping[str, Conversation],
    runs: Iterable[Run],
    only: str | None,
    visible: Callable[[Run], bool],
) -> ConversationsAnswer:
    """The answer for ``recorded`` (the notebook's conversations) and this server's ``runs`` (newest first) that
    ``visible`` lets the asker see; ``only``: just that conversation (there even when it has no turn yet)."""
    runs = [run for run in runs if run.notebook == notebook and visible(run)]
    names = [only] if only is not None else [*recorded, *(run.conversation or DEFAULT_CONVERSATION for run in runs)]
    answer: dict[str, ConversationAnswer] = {}
    for name in dict.fromkeys(names):
        known = known_turns(recorded.get(name) or Conversation([], None), runs, notebook, name)
        answer[name] = ConversationAnswer(active=known.active, turns=list(known.turns.values()))
    return ConversationsAnswer(notebook=notebook, conversations=answer)


def not_of_conversation(run: Run | None, parent: str, notebook: str | None, conversation: str) -> StreamChatError:
    """A ``parent`` that is no turn of the conversation: 409 if it is a run (``run``) of another one, else 404."""
    if run is not None:
        where = f"conversation {run.conversation or DEFAULT_CONVERSATION!r}"
        if run.notebook != notebook:
            where += f" of {run.notebook or 'no notebook'}"
        return Conflict(f"'parent' {parent!r} is a turn of {where}, not of {conversation!r}")
    return NotFound(f"'parent' {parent!r} names no turn of conversation {conversation!r}")
