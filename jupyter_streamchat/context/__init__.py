"""Notebook context (SPEC 10): what the model sees besides the prompt, built from live objects at bounded cost.

Pure Python with no server and no widgets, so the kernel side and the in-process engine share it. pandas, polars,
numpy, matplotlib and PIL are never imported here unless an object's type comes from them (they are optional):

    items = build_context([df, fig, "other_var"], prompt, namespace=get_ipython().user_ns)
    message = {"role": "user", "content": content(prompt, items)}   # text / image parts
    turn["context"] = [item.record() for item in items]             # image bytes stay out

- :func:`build_item` turns one object into a :class:`ContextItem`; :func:`cell_item` and
  :func:`image_bytes_item` do the same for a cell's text and an image output's bytes.
- :func:`build_context` resolves names and ``@mentions`` and applies the per-request limits
  (:func:`within_request`); :class:`ContextLimits` holds every limit.
- :func:`to_parts` / :func:`content` give the wire parts; :func:`estimate_tokens` and
  :func:`estimate_image_tokens` the documented estimates.
- :func:`find_mentions`, :func:`resolve_mentions` and :func:`list_variables` serve prompts and the panel.

Errors a user must see (a mistyped ``@name``, an image that cannot be made to fit) are :class:`ContextError`
with a one-line message; nothing else raises.
"""

from __future__ import annotations

from ..providers._parts import ImagePart, Part, TextPart
from ._build import (
    build_context,
    build_item,
    cell_item,
    check_names,
    content,
    image_bytes_item,
    to_parts,
    within_request,
)
from ._mentions import find_mentions, resolve_mentions
from ._tokens import estimate_image_tokens, estimate_tokens
from ._types import (
    ContextError,
    ContextItem,
    ContextLimits,
    ContextRecord,
    ImageInfo,
    Kind,
)
from ._variables import Variable, list_variables

__all__ = [
    "ContextError",
    "ContextItem",
    "ContextLimits",
    "ContextRecord",
    "ImageInfo",
    "ImagePart",
    "Kind",
    "Part",
    "TextPart",
    "Variable",
    "build_context",
    "build_item",
    "cell_item",
    "check_names",
    "content",
    "estimate_image_tokens",
    "estimate_tokens",
    "find_mentions",
    "image_bytes_item",
    "list_variables",
    "resolve_mentions",
    "to_parts",
    "within_request",
]
