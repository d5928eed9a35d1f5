"""Small text helpers shared by every kind: cutting with a note, Markdown cells, numbers, type names."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

ELLIPSIS = "…"


def count(n: int) -> str:
    """A count with thousands separators: 10,000,000."""
    return f"{n:,}"


def pixels(width: int, height: int) -> str:
    return f"{width}x{height} px"


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{count(n)} {word if n == 1 else (words or word + 's')}"


def one_line(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks the cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + ELLIPSIS


def cut(text: str, limit: int, what: str) -> str:
    """``text`` at most ``limit`` characters; a cut ends with a line saying what was cut."""
    if len(text) <= limit:
        return text
    note = f"\n{ELLIPSIS} (cut: {what})"
    keep = max(0, limit - len(note))
    return (text[:keep] + note)[:limit] if keep else note.strip()[:limit]


def cell(value: str, limit: int) -> str:
    """A value for a Markdown table cell: one line, no pipes, at most ``limit`` characters."""
    flat = value.replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + ELLIPSIS


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def number(value: float) -> str:
    """A statistic: 6 significant digits, no noise."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return f"{value:.6g}"


def type_name(obj: Any) -> str:
    """``module.Qualname`` of ``obj``'s type (just the name for builtins)."""
    cls = type(obj)
    module = getattr(cls, "__module__", "") or ""
    name = getattr(cls, "__qualname__", cls.__name__)
    return name if module == "builtins" else f"{module}.{name}"


def library_of(obj: Any) -> str | None:
    """The top-level package that defines ``obj``'s type or one of its bases (``"pandas"``, ...), without importing.

    A subclass defined elsewhere (a user's ``class Frame(pd.DataFrame)``) is still recognised by its base.
    """
    try:
        mro = type(obj).__mro__
    except AttributeError:
        return None
    for cls in mro:
        root = (getattr(cls, "__module__", "") or "").partition(".")[0]
        if root in LIBRARIES:
            return root
    return None


LIBRARIES = frozenset({"pandas", "polars", "numpy", "matplotlib", "PIL", "IPython"})
