"""pandas DataFrame and Series, read through bounded slices only.

Nothing here touches every row: null counts come from at most ``limits.sample_rows`` rows taken at a stride
(``iloc[::step]``, a view for numpy-backed columns), sample rows from ``iloc`` head and tail slices, the index from
its first and last labels. Only the first ``limits.columns`` columns of a wide frame are read at all.
"""

from __future__ import annotations

import math
from typing import Any

from ._table import Table, label, render, sample_note, sample_positions, value_cells
from ._text import cell, count, one_line, plural
from ._types import ContextLimits, Kind

OBJECT_TYPES_READ = 200


def describe(obj: Any, name: str | None, limits: ContextLimits) -> tuple[Kind, str] | None:
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        return "dataframe", render(frame_table(obj, name, limits), limits)
    if isinstance(obj, pd.Series):
        return "series", render(series_table(obj, name, limits), limits)
    return None


def frame_table(df: Any, name: str | None, limits: ContextLimits) -> Table:
    rows, columns = df.shape
    kind = "pandas DataFrame" if type(df).__name__ == "DataFrame" else f"pandas DataFrame ({type(df).__name__})"
    title = f"{name}: {kind}" if name else kind
    table = Table(f"{title}, {plural(rows, 'row')} x {plural(columns, 'column')}", rows, columns)
    table.notes.append(index_note(df.index, "index", limits))
    if getattr(df.columns, "nlevels", 1) > 1:
        table.notes.append(f"columns: MultiIndex of {df.columns.nlevels} levels (names joined by ' / ')")
    described = df.iloc[:, : min(columns, limits.columns)]
    sample, table.nulls_label = null_sample(described, rows, limits)
    nulls = sample.isna().sum(axis=0).tolist() if len(described.columns) else []
    for position, column in enumerate(described.columns):
        dtype = dtype_text(described.iloc[:, position], sample.iloc[:, position])
        table.schema.append((label(column, limits.cell_chars), dtype, count(int(nulls[position]))))
    shown = df.iloc[:, : min(columns, limits.table_columns)]
    add_sample(table, shown, rows, limits, [label(c, limits.cell_chars) for c in shown.columns])
    return table


def series_table(series: Any, name: str | None, limits: ContextLimits) -> Table:
    rows = len(series)
    kind = "pandas Series" if type(series).__name__ == "Series" else f"pandas Series ({type(series).__name__})"
    title = f"{name}: {kind}" if name else kind
    if series.name is not None:
        title += f" {label(series.name, limits.cell_chars)!r}"
    table = Table(f"{title}, {plural(rows, 'value')}", rows, 1)
    table.notes.append(index_note(series.index, "index", limits))
    sample, nulls_label = null_sample(series, rows, limits)
    table.notes.append(f"dtype: {dtype_text(series, sample)}; {nulls_label}: {count(int(sample.isna().sum()))}")
    add_sample(table, series.to_frame(name="value"), rows, limits, ["value"])
    return table


def null_sample(obj: Any, rows: int, limits: ContextLimits) -> tuple[Any, str]:
    """The rows nulls are counted on, and how to label that count."""
    if rows <= limits.sample_rows:
        return obj, "nulls"
    step = math.ceil(rows / limits.sample_rows)
    sample = obj.iloc[::step]
    return sample, f"nulls in {count(len(sample))} sampled rows (every {count(step)}th)"


def add_sample(table: Table, shown: Any, rows: int, limits: ContextLimits, header: list[str]) -> None:
    head, tail = sample_positions(rows, limits.rows)
    part = shown.iloc[[*range(head), *range(rows - tail, rows)]]
    index = part.index
    names = [n for n in getattr(index, "names", [index.name]) if n is not None]
    table.index_column = True
    table.sample_header = [cell(" / ".join(str(n) for n in names), limits.cell_chars), *header]
    columns = [list(index)] + [list(part.iloc[:, position]) for position in range(len(part.columns))]
    table.sample_rows = value_cells(columns, limits)
    table.sample_note = sample_note(rows, head, tail)


def dtype_text(series: Any, sample: Any) -> str:
    dtype = series.dtype
    text = str(dtype)
    if text == "category":
        text = f"category ({plural(len(dtype.categories), 'category', 'categories')})"
    elif text == "object":
        seen: dict[str, None] = {}
        for value in sample.iloc[:OBJECT_TYPES_READ]:
            # Missing values are not a type; `value == value` would be an array for an array in a cell.
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                seen.setdefault(type(value).__name__, None)
        if seen:
            text += " (" + ", ".join(list(seen)[:4]) + (", …" if len(seen) > 4 else "") + ")"
    return one_line(text, 60)


def index_note(index: Any, what: str, limits: ContextLimits) -> str:
    kind = type(index).__name__
    if getattr(index, "nlevels", 1) > 1:
        levels = ", ".join(
            f"{label(n if n is not None else f'level {i}', limits.cell_chars)} ({level.dtype})"
            for i, (n, level) in enumerate(zip(index.names, index.levels, strict=True))
        )
        return f"{what}: MultiIndex of {index.nlevels} levels: {levels}"
    if kind == "RangeIndex":
        return f"{what}: RangeIndex from {index.start:,} to {index.stop:,} step {index.step:,}"
    named = f" {label(index.name, limits.cell_chars)!r}" if index.name is not None else ""
    text = f"{what}: {kind}{named} ({index.dtype})"
    if len(index):
        (first,), (last,) = value_cells([[index[0], index[-1]]], limits)
        text += f", from {first} to {last}"
    return text
