"""What the side panel reads from a notebook's kernel, without disturbing it (SPEC 10).

The panel calls these functions through the notebook's own kernel connection with an ``execute_request``
that runs no code and evaluates one user expression::

    {"code": "", "silent": true, "store_history": false, "allow_stdin": false,
     "user_expressions": {"streamchat": "__import__('jupyter_streamchat.kernel._inspect', fromlist=['_'])"
                                        ".variables()"}}

``silent`` consumes no execution count, broadcasts no ``execute_input`` or result and runs no pre/post-execute
hooks (so no pending matplotlib figure is shown); ``store_history`` false leaves ``In``, ``_ih`` and ``Out``
alone; ``__import__`` binds no name in the user's namespace. IPython formats the expression's value with the
display formatter, so the value's ``_repr_json_`` arrives as ``application/json``. A kernel that is running a
cell answers after the cell: the panel waits for it without blocking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from ..context import ContextError, ContextItem, ContextLimits, build_item, list_variables, within_request
from ..context._mentions import suggestion
from ..context._text import one_line
from ._context import user_namespace, wire_items

__all__ = ["Answer", "items", "variables"]

LIMIT_FIELDS = frozenset(f.name for f in fields(ContextLimits))


class Answer:
    """A JSON value the panel reads from ``user_expressions`` (``application/json``); its ``text/plain``
    stays short, as IPython formats that too."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value

    def _repr_json_(self) -> dict[str, Any]:
        return self.value

    def __repr__(self) -> str:
        return f"<streamchat answer: {', '.join(self.value)}>"


def variables(limit: int | None = None) -> Answer:
    """``{"variables": [{"name", "type", "shape"}, ...]}``: the user's variables, sorted by name."""
    namespace = user_namespace()
    listed = list_variables(namespace) if limit is None else list_variables(namespace, limit)
    return Answer({"variables": listed})


def items(names: Sequence[str], **limits: Any) -> Answer:
    """``{"items": [{"name", "item"} | {"name", "error"}, ...]}``, one per name in order: the context item as
    the request's ``context`` takes it (``kernel/_context.py``'s ``wire_items``: the record, and an image's bytes
    in base64), or a one-line reason it cannot be sent (a variable that is gone, an image that cannot be made to
    fit). ``limits`` are :class:`ContextLimits` fields; the per-request limits apply to the items together."""
    unknown = set(limits) - LIMIT_FIELDS
    if unknown:
        raise TypeError(f"unknown context limits: {', '.join(sorted(unknown))}")
    bounds = ContextLimits(**limits)
    namespace = user_namespace()
    built: list[tuple[str, ContextItem | str]] = [(str(name), _build(str(name), namespace, bounds)) for name in names]
    good = [item for _, item in built if isinstance(item, ContextItem)]
    try:
        wired = iter(wire_items(within_request(good, bounds)))
    except ContextError as error:  # the images together are over the request's limit: none is sent
        reason = str(error)
        return Answer({"items": [{"name": name, "error": reason} for name, _ in built]})
    answers = [
        {"name": name, "item": next(wired)} if isinstance(item, ContextItem) else {"name": name, "error": item}
        for name, item in built
    ]
    return Answer({"items": answers})


def _build(name: str, namespace: Mapping[str, Any], limits: ContextLimits) -> ContextItem | str:
    """The item for the variable ``name``, or the one-line reason there is none."""
    if not name.isidentifier() or name not in namespace:
        close = suggestion(name, namespace) if name.isidentifier() else None
        hint = f"; did you mean {close}?" if close else ""
        return f"no variable {name!r} in the kernel now (deleted, renamed, or the kernel restarted){hint}"
    try:
        return build_item(namespace[name], name, limits)
    except ContextError as error:
        return str(error)
    except Exception as error:  # build_item keeps what it can; anything left must still not break the panel
        return one_line(f"{name} could not be read: {type(error).__name__}: {error}", 300)
