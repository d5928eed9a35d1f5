"""Imported inside test kernels: the model ids of a widget and everything under it."""

from __future__ import annotations

from typing import Any


def model_ids(widget: Any) -> set[str]:
    ids = {widget.model_id}
    for name in ("layout", "style"):
        child = getattr(widget, name, None)
        if child is not None and hasattr(child, "model_id"):
            ids.add(child.model_id)
    for child in getattr(widget, "children", ()):
        ids |= model_ids(child)
    return ids
