"""The text of a tabular item (a DataFrame or Series of pandas or polars), fitted to the item's limit.

A library module (``_pandas``, ``_polars``) reads a bounded sample into a :class:`Table`; this module lays it out:
a title, a schema table (column, dtype, nulls), then sample rows as a Markdown table. When the text is over the
item limit, fewer columns are shown (and the text says how many there are) before anything is cut.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._objects import ReprTimeout, time_limit
from ._text import ELLIPSIS, cell, count, markdown_table, one_line, plural
from ._types import ContextLimits

MISSING_NAMES = {"NaTType": "NaT", "NAType": "<NA>", "NoneType": "None"}


@dataclass
class Table:
    title: str
    rows: int
    columns: int
    notes: list[str] = field(default_factory=list)
    """Lines under the title (the index, ...)."""
    schema: list[tuple[str, str, str]] = field(default_factory=list)
    """(column, dtype, nulls) of the first columns, as many as the limits allow reading."""
    nulls_label: str = "nulls"
    sample_header: list[str] = field(default_factory=list)
    sample_rows: list[list[str]] = field(default_factory=list)
    sample_note: str = ""
    index_column: bool = False
    """The sample table's first column is the index (it is kept when columns are dropped)."""


def render(table: Table, limits: ContextLimits) -> str:
    """The table's text at most ``limits.item_chars`` long, showing as many columns as fit."""
    described = len(table.schema)
    shown = min(len(table.sample_header) - table.index_column, limits.table_columns)
    for _ in range(12):
        text = layout(table, described, shown)
        if len(text) <= limits.item_chars or (described <= 1 and shown <= 1):
            break
        described, shown = max(1, described * 2 // 3), max(1, shown * 2 // 3)
    if len(text) > limits.item_chars:
        text = text[: limits.item_chars - 40] + f"\n{ELLIPSIS} (cut: over {count(limits.item_chars)} chars)"
    return text


def layout(table: Table, described: int, shown: int) -> str:
    lines = [table.title, *table.notes]
    if table.schema:
        lines += ["", markdown_table(["column", "dtype", table.nulls_label], table.schema[:described])]
        if table.columns > described:
            lines.append(f"{ELLIPSIS} (cut: {plural(table.columns, 'column')}, first {count(described)} shown)")
    if table.sample_rows:
        first = int(table.index_column)
        total = len(table.sample_header) - first
        keep = slice(0, first + shown)
        note = table.sample_note
        if table.columns > shown and total > 0:
            note += f"; first {count(min(shown, total))} of {plural(table.columns, 'column')}"
        lines += ["", note + ":", markdown_table(table.sample_header[keep], [row[keep] for row in table.sample_rows])]
    return "\n".join(lines)


def sample_positions(rows: int, wanted: int) -> tuple[int, int]:
    """How many of the first and of the last rows to show."""
    if rows <= wanted:
        return rows, 0
    head = (wanted + 1) // 2
    return head, wanted - head


def sample_note(rows: int, head: int, tail: int) -> str:
    if not tail:
        return f"All {plural(rows, 'row')}" if rows != 1 else "The row"
    return f"First {count(head)} and last {count(tail)} of {plural(rows, 'row')}"


def value_cells(columns: list[list[Any]], limits: ContextLimits) -> list[list[str]]:
    """Rows of Markdown cells from per-column values; a value whose repr hangs leaves a note instead."""
    formatter = value_formatter(limits.cell_chars)
    try:
        with time_limit(limits.repr_seconds):
            cells = [[formatter(value) for value in column] for column in columns]
    except ReprTimeout:
        cells = [["(repr too slow)"] * len(column) for column in columns]
    return [list(row) for row in zip(*cells, strict=True)] if cells else []


def value_formatter(limit: int) -> Callable[[Any], str]:
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxlevel = 2
    shortener.maxlist = shortener.maxtuple = shortener.maxset = shortener.maxdict = 4
    shortener.maxstring = shortener.maxother = limit

    def show(value: Any) -> str:
        return cell(text_of(value, shortener), limit)

    return show


def text_of(value: Any, shortener: Any) -> str:
    kind = type(value).__name__
    if value is None or kind in MISSING_NAMES:
        return MISSING_NAMES.get(kind, str(value))
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or kind == "bool_":
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return exact(float(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return str(shortener.repr(bytes(value[: shortener.maxstring])))
    if kind in ("Timestamp", "datetime", "date", "Timedelta", "timedelta", "datetime64", "timedelta64"):
        return str(value)
    return str(shortener.repr(value))


def exact(value: float) -> str:
    """A float as in the data: integral ones without a fraction, others to 7 significant digits."""
    if value != value:
        return "NaN"
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:.7g}"


def label(value: Any, limit: int) -> str:
    """A column or index name for a table cell (a MultiIndex's tuple joined by " / ")."""
    if isinstance(value, tuple):
        return cell(" / ".join(one_line(str(part), limit) for part in value), limit)
    return cell(one_line(str(value), limit), limit)
