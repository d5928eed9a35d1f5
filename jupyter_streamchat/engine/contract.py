"""The contract every client sees, defined once (SPEC 3-5).

Statuses, SSE event names, the default conversation, and the shapes of the API's answers: run records,
start and stop results, the models answer, the listing filters, the resume point and the batch interval.
The Tornado handlers (``server/handlers.py``) and the in-process backend (``kernel/_backends.py``) are thin
adapters over these functions, so the two answer the same shapes by construction, not by care.

A leaf at run time (it imports only ``_errors``): ``runs``, ``persistence`` and the kernel side import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from ._errors import BadRequest, NotFound

if TYPE_CHECKING:
    from ..providers import ProviderRegistry
    from ._run import Run

RUNNING, COMPLETED, STOPPED, FAILED, INTERRUPTED = "running", "completed", "stopped", "failed", "interrupted"
TERMINAL_STATUSES = (COMPLETED, STOPPED, FAILED, INTERRUPTED)
STATUSES = (RUNNING, *TERMINAL_STATUSES)

# The events of a run's SSE stream (SPEC 5), in the order a run can send them.
EVENT_RUN, EVENT_DELTA, EVENT_REASONING, EVENT_USAGE, EVENT_SNAPSHOT, EVENT_DONE = (
    "run",
    "delta",
    "reasoning",
    "usage",
    "snapshot",
    "done",
)

# The conversation of a run (and a notebook turn) that names none.
DEFAULT_CONVERSATION = "default"
# What a run id is made of (``secrets.token_urlsafe``'s alphabet); routes naming a run accept nothing else.
RUN_ID_CHARS = r"[A-Za-z0-9_\-]"
# A ``prompt`` request whose branch ends in a reply still streaming is refused (409) with this message: a new
# turn never follows half a reply. Clients that queue (the kernel's chat widgets) recognise it by this text.
STILL_STREAMING = "a reply in this conversation is still streaming; wait for it or stop it"

DETACHED, DIRECT = "detached", "direct"

# ``GET runs`` filters; an empty value filters nothing.
LISTING_FILTERS = ("status", "notebook", "conversation")
# ``?batch=S``: the longest pause a client may ask for between writes.
MAX_BATCH_SECONDS = 1.0


class RunFields(TypedDict):
    """What every record of a run holds."""

    id: str
    model: str
    mode: str
    status: str
    usage: dict[str, int]
    finish_reason: str | None
    error: dict[str, Any] | None
    notebook: str | None
    conversation: str | None
    owner: str | None
    created: str
    first_token: str | None
    finished: str | None
    # The reproducibility record (SPEC 11); a turn keeps the same.
    parent: str | None  # the run id of the turn this one follows; None: it starts its conversation
    params: dict[str, Any]  # temperature, max_tokens, seed, top_p, system: as sent, unset ones left out
    messages_sha256: str | None  # of the exact messages sent (``providers._parts.messages_sha256``)
    response_model: str | None  # the model name the provider answered with
    system_fingerprint: str | None
    cost: float | None  # USD, when the model has a price and the usage has both counts


class RunRecord(RunFields):
    """A run as clients may know it (``Run.record``): released text only."""

    text: str
    reasoning: str


class JournalRecord(RunFields):
    """What the journal keeps of a run besides its text (journaled apart, as chunks)."""

    events: int  # the last event id so far: ids go on from there after a restart


class Recorded(TypedDict, total=False):
    recorded: str  # only for a run that names a notebook: pending, recorded, gone or refused (SPEC 6, 11)
    record_error: str  # only when refused: why its notebook's metadata was not written


class PublicRecord(RunRecord, Recorded):
    """``GET runs/{id}`` and each item of ``GET runs``."""

    prompt: str | None  # the user message the run answers, for a client that did not start it


class StartResult(TypedDict):
    id: str
    status: str
    events_url: NotRequired[str]  # over HTTP only: in-process, ``events(id)`` is the way to the events


class StopResult(TypedDict):
    id: str
    status: str
    stopped: bool  # only the call that stopped the run says True


class ModelsAnswer(TypedDict):
    models: list[dict[str, Any]]  # {"id", "provider", "name"}
    default: str


class RunList(TypedDict):
    runs: list[PublicRecord]


def public_record(run: Run) -> PublicRecord:
    """A run's record as the API answers it: with the prompt it answers, so a client that attaches
    to a run it did not start (after a reload, or one started from a cell) can show the question;
    and, for a run that names a notebook, whether it is ``recorded`` there (SPEC 6)."""
    prompt = run.prompt
    recorded = Recorded() if run.notebook_state is None else Recorded(recorded=run.notebook_state)
    if run.record_error is not None:
        recorded["record_error"] = run.record_error
    return {**run.record(), **recorded, "prompt": prompt["content"] if prompt else None}


def start_result(run: Run, events_url: str | None = None) -> StartResult:
    result = StartResult(id=run.id, status=run.status)
    if events_url is not None:
        result["events_url"] = events_url
    return result


async def stop(run: Run) -> StopResult:
    """Stop a run; answers once its partial is recorded. A stop after the end changes nothing and says so."""
    stopped = await run.stop()
    return StopResult(id=run.id, status=run.status, stopped=stopped)


async def models_answer(registry: ProviderRegistry) -> ModelsAnswer:
    return ModelsAnswer(models=await registry.list_models(), default=await registry.default_model())


def visible(run: Run, viewer: str | None) -> bool:
    """Whether ``viewer`` (a username; None: whoever may see every run) may see and stop ``run``."""
    return viewer is None or run.owner == viewer


def find_run(lookup: Callable[[str], Run | None], run_id: str, viewer: str | None = None) -> Run:
    """The run, if ``viewer`` may see it: another user's run does not exist for them (404, not 403)."""
    run = lookup(run_id)
    if run is None or not visible(run, viewer):
        raise NotFound(f"unknown run {run_id!r}")
    return run


def listing_filters(raw: Callable[[str], str]) -> dict[str, str]:
    """``GET runs`` filters from ``raw(name)`` (empty when absent); an unknown status is a 400."""
    filters = {key: raw(key) for key in LISTING_FILTERS}
    status = filters["status"]
    if status and status not in STATUSES:
        raise BadRequest(f"unknown status {status!r}")
    return filters


def run_list(runs: Iterable[Run], viewer: str | None = None) -> RunList:
    """``GET runs``: the records of ``runs`` (already filtered, newest first) that ``viewer`` may see."""
    return RunList(runs=[public_record(run) for run in runs if visible(run, viewer)])


def resume_point(raw: str, run: Run) -> int:
    """The event id a subscriber has seen (``Last-Event-ID`` or ``?after=``); events after it are sent."""
    try:
        after = int(raw)
    except ValueError:
        raise BadRequest(f"the resume point must be an event id, got {raw!r}") from None
    if after < 0:
        raise BadRequest("the resume point must not be negative")
    # An id this run never issued (yet): waiting for it would hang, and end without `done` if it never comes.
    if after > run.last_seq:
        raise BadRequest(f"the resume point {after} is beyond the run's last event ({run.last_seq})")
    return after


def batch_interval(raw: str) -> float:
    """``?batch=S`` (0 < S <= 1): the client takes events at most every S seconds, several per write."""
    if not raw:
        return 0.0
    try:
        batch = float(raw)
    except ValueError:
        raise BadRequest(f"'batch' must be a number of seconds, got {raw!r}") from None
    if not 0 <= batch <= MAX_BATCH_SECONDS:
        raise BadRequest(f"'batch' must be between 0 and {MAX_BATCH_SECONDS} seconds")
    return batch
