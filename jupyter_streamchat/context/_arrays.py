"""numpy arrays: shape, dtype, size, and statistics over a bounded strided sample.

The sample is read by fancy indexing at evenly spaced flat positions (``np.unravel_index``), which never copies
the array: a 100 M-element broadcast, memmap or non-contiguous view costs the same as a small one.
"""

from __future__ import annotations

from typing import Any

from ._table import value_cells
from ._text import count, cut, number, plural
from ._types import ContextLimits, Kind

FIRST_ELEMENTS = 8


def describe(obj: Any, name: str | None, limits: ContextLimits) -> tuple[Kind, str] | None:
    import numpy as np

    if not isinstance(obj, np.ndarray):
        return None
    return "array", cut(array_text(obj, name, limits), limits.item_chars, f"over {count(limits.item_chars)} chars")


def array_text(array: Any, name: str | None, limits: ContextLimits) -> str:
    import numpy as np

    kind = "numpy ndarray" if type(array) is np.ndarray else f"numpy {type(array).__name__}"
    shape = "(" + ", ".join(count(n) for n in array.shape) + ("," if array.ndim == 1 else "") + ")"
    title = f"{name}: {kind}" if name else kind
    size = f"{plural(array.size, 'element')} ({size_text(array.nbytes)})"
    lines = [f"{title}, shape {shape}, dtype {array.dtype}, {size}"]
    if array.dtype.names:
        lines.append("fields: " + ", ".join(f"{n} ({array.dtype.fields[n][0]})" for n in array.dtype.names[:20]))
    if array.size == 0:
        return "\n".join(lines)
    first = value_cells([list(take(array, np.arange(min(FIRST_ELEMENTS, array.size))))], limits)
    more = ", …" if array.size > FIRST_ELEMENTS else ""
    lines.append("first elements (flat order): [" + ", ".join(row[0] for row in first) + more + "]")
    if array.size <= limits.sample_rows:
        sample, where = take(array, np.arange(array.size)), "over all elements"
    else:
        positions = np.linspace(0, array.size - 1, limits.sample_rows).astype(np.intp)
        sample, where = take(array, positions), f"over {count(limits.sample_rows)} evenly spaced elements"
    stats = statistics(sample)
    if stats:
        lines.append(f"statistics {where}: {stats}")
    return "\n".join(lines)


def take(array: Any, flat_positions: Any) -> Any:
    """The elements at these flat (C order) positions, without copying the array."""
    import numpy as np

    if array.ndim == 0:
        return array.reshape(1)
    return array[np.unravel_index(flat_positions, array.shape)]


def statistics(sample: Any) -> str:
    import numpy as np

    kind = sample.dtype.kind
    with np.errstate(all="ignore"):
        if kind == "b":
            return f"True {count(int(sample.sum()))} of {count(sample.size)}"
        if kind in "iuf":
            values = sample.astype(np.float64)
            finite = values[np.isfinite(values)]
            parts = []
            if kind == "f":
                parts.append(f"NaN {count(int(np.isnan(values).sum()))}")
            if finite.size:
                parts = [
                    f"min {number(float(finite.min()))}",
                    f"max {number(float(finite.max()))}",
                    f"mean {number(float(finite.mean()))}",
                    f"std {number(float(finite.std()))}",
                    *parts,
                ]
            return ", ".join(parts)
        if kind in "mM":
            valid = sample[~np.isnat(sample)]
            text = f"NaT {count(sample.size - valid.size)}"
            return f"min {valid.min()}, max {valid.max()}, {text}" if valid.size else text
        if kind == "c":
            mean = complex(sample.mean())
            return f"mean {mean.real:.6g}{mean.imag:+.6g}j"
    return ""


def size_text(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"
