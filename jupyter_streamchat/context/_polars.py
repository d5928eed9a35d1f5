"""polars DataFrame and Series. Null counts are exact and cheap (Arrow keeps them per chunk); rows are read
only through ``head`` and ``tail``, and only the first ``limits.columns`` columns of a wide frame are touched."""

from __future__ import annotations

from typing import Any

from ._table import Table, label, render, sample_note, sample_positions, value_cells
from ._text import count, one_line, plural
from ._types import ContextLimits, Kind


def describe(obj: Any, name: str | None, limits: ContextLimits) -> tuple[Kind, str] | None:
    import polars as pl

    if isinstance(obj, pl.DataFrame):
        return "dataframe", render(frame_table(obj, name, limits), limits)
    if isinstance(obj, pl.Series):
        return "series", render(series_table(obj, name, limits), limits)
    return None


def frame_table(df: Any, name: str | None, limits: ContextLimits) -> Table:
    rows, columns = df.shape
    title = f"{name}: polars DataFrame" if name else "polars DataFrame"
    table = Table(f"{title}, {plural(rows, 'row')} x {plural(columns, 'column')}", rows, columns)
    names = df.columns[: limits.columns]
    for column in names:
        series = df.get_column(column)
        table.schema.append((label(column, limits.cell_chars), dtype_text(series), count(series.null_count())))
    shown = names[: limits.table_columns]
    add_sample(table, df.select(shown), rows, limits, [label(c, limits.cell_chars) for c in shown])
    return table


def series_table(series: Any, name: str | None, limits: ContextLimits) -> Table:
    rows = len(series)
    title = f"{name}: polars Series" if name else "polars Series"
    if series.name:
        title += f" {label(series.name, limits.cell_chars)!r}"
    table = Table(f"{title}, {plural(rows, 'value')}", rows, 1)
    table.notes.append(f"dtype: {dtype_text(series)}; nulls: {count(series.null_count())}")
    add_sample(table, series.to_frame("value"), rows, limits, ["value"])
    return table


def add_sample(table: Table, shown: Any, rows: int, limits: ContextLimits, header: list[str]) -> None:
    head, tail = sample_positions(rows, limits.rows)
    parts = [shown.head(head), *([shown.tail(tail)] if tail else [])]
    columns = [[value for part in parts for value in part.get_column(c).to_list()] for c in shown.columns]
    table.sample_header = header
    table.sample_rows = value_cells(columns, limits) if columns else []
    table.sample_note = sample_note(rows, head, tail)


def dtype_text(series: Any) -> str:
    return one_line(str(series.dtype), 60)
