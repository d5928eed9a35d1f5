"""Result records, percentiles and the plain-text tables the benchmarks print."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

PASS, FAIL, NONE = "✓", "✗", ""


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) like numpy's default; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


@dataclass
class Row:
    """One measured number: ``value`` in ``unit``; ``target`` text and a check if the issue sets one."""

    metric: str
    value: float | str | None
    unit: str = ""
    target: str = ""
    ok: bool | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": None if isinstance(self.value, float) and math.isnan(self.value) else self.value,
            "unit": self.unit,
            "target": self.target or None,
            "met": self.ok,
            "detail": self.detail or None,
        }


def check(
    metric: str,
    value: float,
    unit: str,
    target: str,
    passes: Callable[[float], bool],
    detail: str = "",
) -> Row:
    ok = None if value is None or (isinstance(value, float) and math.isnan(value)) else bool(passes(value))
    return Row(metric, value, unit, target, ok, detail)


def info(metric: str, value: float | str | None, unit: str = "", detail: str = "") -> Row:
    """A number reported for context, with no target."""
    return Row(metric, value, unit, detail=detail)


@dataclass
class Section:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "rows": [row.as_dict() for row in self.rows],
            "notes": self.notes,
            "data": self.data,
            "seconds": round(self.seconds, 1),
        }


def fmt(value: float | str | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def render(section: Section) -> str:
    header = ("metric", "measured", "target", "")
    lines = [(r.metric, f"{fmt(r.value)} {r.unit}".rstrip(), r.target, mark(r.ok)) for r in section.rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = [f"== {section.title} ({section.seconds:.0f} s) =="]
    out.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out += [f"  note: {note}" for note in section.notes]
    return "\n".join(out)


def mark(ok: bool | None) -> str:
    return PASS if ok is True else FAIL if ok is False else NONE


def markdown(sections: Sequence[Section]) -> str:
    """One Markdown table of every row, for the README."""
    out = ["| benchmark | metric | measured | target | |", "|---|---|---|---|---|"]
    for section in sections:
        for row in section.rows:
            value = f"{fmt(row.value)} {row.unit}".rstrip()
            out.append(f"| {section.name} | {row.metric} | {value} | {row.target} | {mark(row.ok)} |")
    return "\n".join(out)
