"""A conversation read back from the kernel (SPEC 11): ``history()`` (the active branch, exported as Markdown,
HTML or a DataFrame) and ``replay()`` (a turn run again with its recorded model, parameters and history).

The turns come from the server (``GET conversations``): the notebook's, plus its runs not recorded there yet, so
a reply that just ended is already in the history. In-process (no server) they are this kernel's runs.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..engine.contract import DEFAULT_CONVERSATION, TERMINAL_STATUSES
from ..export import branch_html, branch_markdown, total_cost, turn_result
from ..persistence._section import branch
from ._backends import Backend, current_backend
from ._chat import ChatWidget, chosen_leaf
from ._context import PreparedContext
from ._now import answer_now, widget_backend
from ._steering import Steering
from ._widgets import shown

if TYPE_CHECKING:
    import pandas

# The columns of ``History.to_dataframe()``: one row per turn.
COLUMNS = (
    "run",
    "model",
    "status",
    "prompt",
    "reply",
    "input_tokens",
    "output_tokens",
    "cost",
    "ttft",
    "tokens_per_second",
    "created",
)


def conversations_now(notebook: str | None, conversation: str | None) -> dict[str, Any]:
    """``GET conversations`` for this kernel, answered before the call returns; ``notebook`` None: the kernel's."""
    local = widget_backend()
    if local is not None:
        return local.conversations_now(conversation)
    return answer_now(lambda backend: backend.conversations(notebook or backend.notebook, conversation))


class History(list[dict[str, Any]]):
    """The active branch of a conversation, root first: one dict per turn, as the notebook records it."""

    def __init__(self, turns: Iterable[dict[str, Any]], conversation: str, notebook: str | None) -> None:
        super().__init__(turns)
        self.conversation = conversation
        self.notebook = notebook

    @property
    def cost(self) -> float | None:
        """USD for the turns with a known cost (None when none has one: unknown, not zero)."""
        return total_cost(self)

    def to_markdown(self) -> str:
        """Each turn as a "**You**" prompt and a "**model**" reply, the reply's Markdown as it was streamed."""
        return branch_markdown(self)

    def to_html(self) -> str:
        """The same rendering as the widgets' static output (and the panel's HTML export): prompts and replies."""
        return branch_html(self)

    def to_dataframe(self) -> pandas.DataFrame:
        """One row per turn: model, status, tokens, cost, time to first token, tokens/s (pandas, imported now)."""
        import pandas

        rows = []
        for turn in self:
            result = turn_result(turn)
            rows.append(
                {
                    "run": result["run"],
                    "model": result["model"],
                    "status": result["status"],
                    "prompt": (turn.get("prompt") or {}).get("content") or "",
                    "reply": result["text"],
                    "input_tokens": result["usage"].get("input_tokens"),
                    "output_tokens": result["output_tokens"],
                    "cost": result["cost"],
                    "ttft": result["ttft"],
                    "tokens_per_second": result["tokens_per_second"],
                    "created": turn.get("created"),
                }
            )
        return pandas.DataFrame(rows, columns=list(COLUMNS))

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return f"History({self.conversation!r}, {len(self)} turns)"


def history(conversation: str = DEFAULT_CONVERSATION, notebook: str | None = None) -> History:
    """The active branch of ``conversation`` in ``notebook`` (default: this kernel's notebook), root first: the
    branch the next chat of this kernel follows (the alternative shown in its last chat widget, if switched)."""
    answer = conversations_now(notebook, conversation)
    entry = answer["conversations"].get(conversation) or {"turns": [], "active": None}
    turns = {turn["run"]: turn for turn in entry["turns"]}
    chosen = chosen_leaf(answer.get("notebook"), conversation)
    leaf = chosen if chosen in turns else entry["active"]
    return History([dict(turn) for turn in branch(turns, leaf)], conversation, answer.get("notebook"))


class ReplayWidget(ChatWidget):
    """A recorded turn run again as a new alternative: its model, parameters, context text and parent.

    Once it has ended, ``comparison`` says whether the same messages were sent (``messages_sha256``) and whether
    the provider's model or system fingerprint changed; the widget shows it under the reply.
    """

    def __init__(self, original: Mapping[str, Any], conversation: str, backend: Backend) -> None:
        self.original = dict(original)
        records = [item for item in original.get("context") or [] if isinstance(item, dict)]
        texts = [item for item in records if item.get("kind") != "image" and isinstance(item.get("text"), str)]
        #: image items are recorded without their bytes: they cannot be sent again
        self.images_not_sent = len(records) - len(texts)
        wire = [{key: item[key] for key in ("kind", "name", "text") if key in item} for item in texts]
        super().__init__(
            str((original.get("prompt") or {}).get("content") or ""),
            str(original["model"]),
            conversation,
            backend,
            PreparedContext([dict(item) for item in texts], wire),
            Steering.of_record(dict(original.get("params") or {})),
            parent=original.get("parent"),
        )

    @property
    def comparison(self) -> dict[str, Any] | None:
        """The replay against the original (None until the replay has ended)."""
        result = self.results[0]
        if result["status"] not in TERMINAL_STATUSES:
            return None
        before, after = self.original, result
        return {
            "original": before.get("run"),
            "replay": after["run"],
            "same_messages": before.get("messages_sha256") == after["messages_sha256"],
            "messages_sha256": [before.get("messages_sha256"), after["messages_sha256"]],
            "response_model": [before.get("response_model"), after["response_model"]],
            "response_model_changed": before.get("response_model") != after["response_model"],
            "system_fingerprint": [before.get("system_fingerprint"), after["system_fingerprint"]],
            "system_fingerprint_changed": before.get("system_fingerprint") != after["system_fingerprint"],
            "images_not_sent": self.images_not_sent,
        }

    def comparison_text(self) -> str:
        """The comparison in one line for people."""
        found = self.comparison
        if found is None:
            return f"Replay of {self.original.get('run')}: running"
        said = [f"Replay of {found['original']}:"]
        said.append("the same messages were sent" if found["same_messages"] else "the messages sent differ")
        if found["images_not_sent"]:
            said.append(f"({found['images_not_sent']} image(s) of the context are not recorded, so not sent)")
        for key, what in (("response_model", "the provider's model"), ("system_fingerprint", "the fingerprint")):
            old, new = found[key]
            said.append(f"; {what} changed: {old} → {new}" if old != new else f"; {what} unchanged ({old})")
        return " ".join(said).replace(" ;", ";")

    def _static_html(self) -> str:
        return super()._static_html() + f'<div class="jsc-note">{html.escape(self.comparison_text())}</div>'


def replay(run_id: str, notebook: str | None = None) -> ReplayWidget:
    """Run the turn ``run_id`` again with its recorded model, parameters and history, as a new alternative."""
    answer = conversations_now(notebook, None)
    found = [(name, turn) for name, entry in answer["conversations"].items() for turn in entry["turns"]]
    matching = [(name, turn) for name, turn in found if turn["run"] == run_id]
    if not matching:
        where = answer.get("notebook") or "this kernel's runs"
        raise ValueError(f"no turn {run_id!r} in {where}: replay takes the run id of a recorded turn")
    conversation, original = matching[0]
    return shown(lambda: ReplayWidget(original, conversation, current_backend()))
