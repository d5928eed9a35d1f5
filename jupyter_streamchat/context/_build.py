"""From objects to items, and from items to what a request sends: the per-request limits and the wire parts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..providers._parts import Part
from . import _arrays, _images, _pandas, _polars
from ._mentions import resolve_mentions, suggestion
from ._objects import bounded_repr, describe_object, describe_text
from ._text import ELLIPSIS, count, cut, library_of, one_line, pixels, type_name
from ._tokens import estimate_image_tokens, estimate_tokens
from ._types import ContextError, ContextItem, ContextLimits, Kind

DESCRIBERS = {"pandas": _pandas.describe, "polars": _polars.describe, "numpy": _arrays.describe}
IMAGE_LIBRARIES = frozenset({"matplotlib", "PIL", "IPython"})
DEFAULT_LIMITS = ContextLimits()


def build_item(obj: Any, name: str | None = None, limits: ContextLimits = DEFAULT_LIMITS) -> ContextItem:
    """What the model is sent for ``obj``: a text item (a table, an array, a string, any object) or an image item.

    Raises :class:`ContextError` (one line) only for an image that cannot be rendered or made to fit; anything
    else yields an item, if need be with a note saying what could not be read.
    """
    if isinstance(obj, str):
        return text_item("text", describe_text(obj, name, limits), name)
    library = library_of(obj)
    if library in IMAGE_LIBRARIES:
        image = _images.describe(obj, library, name or f"the {type(obj).__name__}", limits)
        if image is not None:
            return image_item(image, name)
    describer = DESCRIBERS.get(library or "")
    if describer is not None:
        try:
            described = describer(obj, name, limits)
        except Exception as error:  # a summary that failed still leaves the type and a bounded repr
            return text_item("object", unsummarised(obj, name, error, limits), name)
        if described is not None:
            kind, text = described
            return text_item(kind, text, name)
    return text_item("object", describe_object(obj, name, limits), name)


def cell_item(text: str, name: str | None = None, limits: ContextLimits = DEFAULT_LIMITS) -> ContextItem:
    """A notebook cell (its source, and its error if any) as the panel words it, cut at the item limit."""
    return text_item("cell", cut(text, limits.item_chars, f"{count(len(text))} chars, the first part shown"), name)


def image_bytes_item(
    data: bytes, name: str | None = None, limits: ContextLimits = DEFAULT_LIMITS, source: str = "image"
) -> ContextItem:
    """An image from encoded bytes (a cell's PNG output): sent as it is when it fits, else scaled down."""
    return image_item(_images.from_bytes(data, name or f"the {source}", limits, source), name)


def text_item(kind: Kind, text: str, name: str | None) -> ContextItem:
    return ContextItem(kind=kind, text=text, tokens_estimate=estimate_tokens(text), name=name)


def image_item(image: _images.Encoded, name: str | None) -> ContextItem:
    caption = f"{name + ': ' if name else ''}{image.source}; sent as {image.mime.partition('/')[2].upper()}"
    if not image.source.endswith(pixels(image.width, image.height)):
        caption += f" at {pixels(image.width, image.height)}"
    return ContextItem(
        kind="image",
        text=caption,
        tokens_estimate=estimate_tokens(caption) + estimate_image_tokens(image.width, image.height),
        name=name,
        image={
            "mime": image.mime,
            "sha256": hashlib.sha256(image.data).hexdigest(),
            "bytes": len(image.data),
            "width": image.width,
            "height": image.height,
        },
        data=image.data,
    )


def unsummarised(obj: Any, name: str | None, error: Exception, limits: ContextLimits) -> str:
    header = f"{name}: {type_name(obj)}" if name else type_name(obj)
    note = one_line(f"(could not be summarised: {type(error).__name__}: {error})", 300)
    return cut(f"{header}\n{note}\n{bounded_repr(obj, limits)}", limits.item_chars, "repr too long")


def build_context(
    context: Sequence[Any] | None = None,
    prompt: str = "",
    namespace: Mapping[str, Any] | None = None,
    limits: ContextLimits = DEFAULT_LIMITS,
) -> list[ContextItem]:
    """The items of one request: ``context`` entries, then the variables the prompt ``@mentions``.

    An entry that is a ``str`` and a Python identifier names a variable of ``namespace`` (``"df"``); any other
    ``str`` is text. An object passed directly is named after the variable holding it, if one does. Each name is
    sent once (``context=[df]`` with ``@df`` in the prompt sends ``df`` once). The request limits then apply
    (:func:`within_request`). A name that names nothing, or a mention close to a variable's name, raises
    :class:`ContextError` and nothing is built.
    """
    space: Mapping[str, Any] = namespace if namespace is not None else {}
    names = check_names(context, prompt, space)
    entries: list[tuple[str | None, Any]] = []
    for entry in context or ():
        if isinstance(entry, str) and entry.isidentifier():
            entries.append((entry, space[entry]))
        else:
            entries.append((None if isinstance(entry, str) else name_of(entry, space), entry))
    entries += [(name, space[name]) for name in names]
    seen: set[object] = set()
    items = []
    for name, obj in entries:
        key = name if name is not None else ("unnamed", id(obj))
        if key not in seen:
            seen.add(key)
            items.append(build_item(obj, name, limits))
    return within_request(items, limits)


def check_names(context: Sequence[Any] | None, prompt: str, namespace: Mapping[str, Any]) -> list[str]:
    """The variables the prompt ``@mentions``, once every name in ``context`` and in the prompt is checked
    (cheap: nothing is built). :class:`ContextError` names a wrong one, with the closest variable if any."""
    for entry in context or ():
        if isinstance(entry, str) and entry.isidentifier() and entry not in namespace:
            close = suggestion(entry, namespace)
            hint = f"; did you mean {close!r}?" if close else ""
            raise ContextError(f"context names {entry!r}, which is no variable here{hint}")
    names, error = resolve_mentions(prompt, namespace)
    if error:
        raise ContextError(error)
    return names


def name_of(obj: Any, namespace: Mapping[str, Any]) -> str | None:
    """The first public variable of ``namespace`` bound to ``obj`` itself."""
    return next((k for k, v in namespace.items() if v is obj and not k.startswith("_")), None)


def within_request(items: Iterable[ContextItem], limits: ContextLimits = DEFAULT_LIMITS) -> list[ContextItem]:
    """The items within the request's limits. Text: in order, an item that does not fit is cut to what is left
    (room is kept for the one-line notes of the items after it, so the total stays within ``request_chars``).
    Images: over ``request_image_bytes`` the request is refused (:class:`ContextError`), never half-sent."""
    items = list(items)
    kept: list[ContextItem] = []
    chars = image_bytes = 0
    what = f"{count(limits.request_chars)} chars of context per request reached"
    note_only = f"{ELLIPSIS} (cut: {what})"
    for position, item in enumerate(items):
        if item.image is not None:
            image_bytes += item.image["bytes"]
            if image_bytes > limits.request_image_bytes:
                raise ContextError(
                    f"the images in this context take {image_bytes / 1e6:.1f} MB, over the "
                    f"{limits.request_image_bytes / 1e6:.1f} MB limit per request: send fewer images"
                )
        room = limits.request_chars - chars - len(note_only) * (len(items) - position - 1)
        if item.chars > room:
            text = cut(item.text, room, what) if room >= 2 * len(note_only) else note_only
            tokens = item.tokens_estimate - estimate_tokens(item.text) + estimate_tokens(text)
            item = replace(item, text=text, tokens_estimate=tokens)
        chars += item.chars
        kept.append(item)
    return kept


def to_parts(items: Iterable[ContextItem]) -> list[Part]:
    """SPEC 10 wire parts of the items, in order (an image's caption just before the image)."""
    return [part for item in items for part in item.parts()]


def content(prompt: str, items: Sequence[ContextItem]) -> str | list[Part]:
    """A user message's ``content``: the prompt alone without context, else the context's parts then the prompt."""
    if not items:
        return prompt
    return [*to_parts(items), {"type": "text", "text": prompt}]
