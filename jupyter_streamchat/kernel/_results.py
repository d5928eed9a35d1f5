"""What a chat or compare widget reports about each pane (``widget.results``, ``await widget.done``).

A leaf module (no widgets, no I/O), so the static renderings and a user's type checker can both use it.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

# Whether the server says a run is in its notebook: None (no notebook), "pending", "recorded", "gone" (the
# notebook was deleted), "refused" (nothing was started), "unknown" (the server could not be asked).
RecordState = Literal["pending", "recorded", "gone", "refused", "unknown"]
# The ones a server answers (SPEC 6, ``recorded`` in a run record); the others are the widget's own.
SERVER_RECORD_STATES: tuple[RecordState, ...] = ("pending", "recorded", "gone")

# The numbers of a pane that the compare summary draws as bars.
Measure = Literal["ttft", "tokens_per_second", "output_tokens"]


class PaneResult(TypedDict):
    """One pane's run, final once ``done`` resolved."""

    run: str | None  # the run id, once the server named it
    model: str | None  # None: the server's default model, until the run names it
    status: str  # "starting", "running", then completed / stopped / failed / interrupted
    text: str
    reasoning: str
    usage: dict[str, int]  # input_tokens, output_tokens when the provider said
    finish_reason: str | None
    error: dict[str, Any] | None  # {"code", "message", "upstream_status"?} for a failed run
    conversation: str | None
    notebook: str | None  # where the run is recorded (its current path)
    recorded: RecordState | None
    context: list[dict[str, Any]]  # what was sent with the prompt, as the turn records it (SPEC 10)
    ttft: float | None  # seconds from the request to the first token
    tokens_per_second: float | None
    output_tokens: int | None
    # The reproducibility record (SPEC 11), from the server's record once the run has ended.
    cost: float | None  # USD, when the model has a price (``c.StreamChat.prices``) and the usage is known
    parent: str | None  # the run id of the turn this one follows
    params: dict[str, Any]  # temperature, max_tokens, seed, top_p, system: as sent
    response_model: str | None  # the model name the provider answered with
    system_fingerprint: str | None
    messages_sha256: str | None  # of the exact messages sent
