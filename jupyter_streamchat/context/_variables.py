"""Which names of a user namespace are variables worth offering (the panel's list, "did you mean" suggestions).

Reading the list never calls a repr and never runs user code beyond attribute reads that are O(1) for the types
we know (``shape`` of a pandas, polars or numpy object, ``len`` of a builtin container, a figure's size).
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from typing import Any, TypedDict

from ._text import count, library_of, pixels

IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})
# Output and input history (_, __, _3, _i, _ii3, _ih, _oh, _dh) and dunders (__builtins__, __name__).
IPYTHON_HISTORY = re.compile(r"_{1,3}|_i{1,3}\d*|_\d+|_ih|_oh|_dh|__\w+__")
NOT_VARIABLES = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
SIZED: dict[type[Any], str] = {
    list: "items",
    tuple: "items",
    dict: "items",
    set: "items",
    frozenset: "items",
    str: "chars",
    bytes: "bytes",
}
VARIABLES_LISTED = 1000


class Variable(TypedDict):
    name: str
    type: str
    shape: str | None


def is_variable(name: str, value: Any) -> bool:
    """A public name holding data: not private, not IPython's own, not a module, class or function."""
    return not name.startswith("_") and name not in IPYTHON_NAMES and not isinstance(value, NOT_VARIABLES)


def is_users(name: str) -> bool:
    """A name the user may mention: anything but IPython's own (``In``, ``_``, ``_i3``, ``_oh``, ...)."""
    return name not in IPYTHON_NAMES and IPYTHON_HISTORY.fullmatch(name) is None


def list_variables(namespace: Mapping[str, Any], limit: int = VARIABLES_LISTED) -> list[Variable]:
    """The namespace's variables, sorted by name (case-insensitively), at most ``limit`` of them."""
    found = sorted(((k, v) for k, v in list(namespace.items()) if is_variable(k, v)), key=lambda kv: kv[0].lower())
    return [{"name": k, "type": type_label(v), "shape": shape_of(v)} for k, v in found[:limit]]


def type_label(value: Any) -> str:
    cls = type(value)
    library = library_of(value)
    return f"{library}.{cls.__name__}" if library else cls.__name__


def shape_of(value: Any) -> str | None:
    for cls, unit in SIZED.items():
        if isinstance(value, cls):
            return f"{count(len(value))} {unit}"
    library = library_of(value)
    try:
        if library in ("pandas", "polars", "numpy"):
            shape = getattr(value, "shape", None)
            if isinstance(shape, tuple) and all(isinstance(n, int) for n in shape):
                return " x ".join(count(n) for n in shape) if shape else "scalar"
        elif library == "matplotlib" and type(value).__name__ == "Figure":
            width, height = value.get_size_inches() * value.dpi
            return pixels(round(width), round(height))
        elif library == "PIL" and hasattr(value, "size"):
            return pixels(*value.size)
    except Exception:  # a shape we cannot read is just not shown
        return None
    return None
