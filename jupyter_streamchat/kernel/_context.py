"""Context from the kernel's live objects for ``chat``/``compare`` and the magics (SPEC 10).

The items are built here, in the kernel, where the objects are (bounded in time and size by
``ContextLimits``), and sent with the prompt as the request's ``context``; the server records them
with the turn. The same code serves a server-started kernel and the in-process engine.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..context import ContextError, ContextItem, ContextLimits, build_context

__all__ = ["ContextError", "ContextLimits", "PreparedContext", "context_items", "user_namespace", "wire_items"]


def user_namespace() -> Mapping[str, Any]:
    """The user's variables: IPython's user namespace, or (plain Python) the names of the first calling frame
    outside this package."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency
        shell = None
    if shell is not None:
        namespace: Mapping[str, Any] = shell.user_ns
        return namespace
    frame = sys._getframe(1)
    while frame.f_back is not None and _ours(str(frame.f_globals.get("__name__", ""))):
        frame = frame.f_back
    return {**frame.f_globals, **frame.f_locals}


def _ours(module: str) -> bool:
    package = __name__.partition(".")[0]
    return module == package or module.startswith(package + ".")


def context_items(
    prompt: str,
    context: Sequence[Any] | None,
    namespace: Mapping[str, Any],
    limits: ContextLimits | None = None,
) -> list[ContextItem]:
    """The items for ``context`` plus the prompt's ``@mentions``; :class:`ContextError` (one line) when a name
    is wrong, and then nothing is sent."""
    if context is not None and (isinstance(context, str | bytes) or not isinstance(context, Sequence)):
        raise ContextError("context must be a list, e.g. context=[df, fig, 'other_var']")
    return build_context(context, prompt, namespace, limits or ContextLimits())


def wire_items(items: Sequence[ContextItem]) -> list[dict[str, Any]]:
    """The request's ``context``: each item's record, and an image's bytes in base64 next to it."""
    wired: list[dict[str, Any]] = []
    for item in items:
        entry: dict[str, Any] = dict(item.record())
        if item.data is not None:
            entry["data"] = base64.b64encode(item.data).decode()
        wired.append(entry)
    return wired


@dataclass(frozen=True, slots=True)
class PreparedContext:
    """A call's context, built before anything is sent: what goes on the wire, what the widget shows, or the
    one-line reason it cannot be sent (then the call sends nothing)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    wire: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def build(
        cls,
        prompt: str,
        context: Sequence[Any] | None,
        namespace: Mapping[str, Any],
        limits: ContextLimits | None = None,
    ) -> PreparedContext:
        try:
            items = context_items(prompt, context, namespace, limits)
        except ContextError as error:
            return cls(error=str(error))
        return cls([dict(item.record()) for item in items], wire_items(items))
