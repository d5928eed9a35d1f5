"""``@name`` mentions in a prompt (SPEC 10).

A mention is ``@`` followed by a Python identifier, at the start of the prompt or after whitespace, outside
inline code spans and fenced code blocks: ``user@example.com`` and ``@decorator`` inside backticks are text. A
mention of a variable adds it to the context; one that names nothing but is close to a variable's name is a
mistake worth stopping for ("@dff" when ``df`` exists); one close to nothing is just text ("what does @property
do?").
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Mapping
from typing import Any

from ._variables import is_users, is_variable

MENTION = re.compile(r"(?<!\S)@([^\W\d]\w*)")
FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
BACKTICKS = re.compile(r"`+")
CLOSE_ENOUGH = 0.8
CANDIDATES_READ = 10_000


def find_mentions(prompt: str) -> list[str]:
    """The names mentioned in ``prompt``, each once, in order."""
    return list(dict.fromkeys(match.group(1) for match in MENTION.finditer(without_code(prompt))))


def resolve_mentions(prompt: str, namespace: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """(names of variables mentioned, error). An error (one line) means nothing should be sent."""
    names = []
    for name in find_mentions(prompt):
        if name in namespace and is_users(name):
            names.append(name)
            continue
        close = suggestion(name, namespace)
        if close is not None:
            return names, f"@{name} names no variable; did you mean @{close}?"
    return names, None


def suggestion(name: str, namespace: Mapping[str, Any]) -> str | None:
    """The variable whose name is closest to ``name`` (case-insensitively, difflib ratio ≥ 0.8), if any."""
    by_lower: dict[str, str] = {}
    for count, (key, value) in enumerate(list(namespace.items())):
        if count >= CANDIDATES_READ:
            break
        if is_variable(key, value):
            by_lower.setdefault(key.lower(), key)
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=CLOSE_ENOUGH)
    return by_lower[close[0]] if close else None


def without_code(text: str) -> str:
    """``text`` with fenced code blocks and inline code spans blanked out (same length, so positions hold)."""
    lines = text.split("\n")
    fence: str | None = None
    for i, line in enumerate(lines):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
            lines[i] = " " * len(line)
        elif fence is not None:
            closing = FENCE.match(line)
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence):
                if not line[closing.end() :].strip():
                    fence = None
            lines[i] = " " * len(line)
    return blank_code_spans("\n".join(lines))


def blank_code_spans(text: str) -> str:
    """Blank out `code` spans: a run of n backticks up to the next run of exactly n (CommonMark)."""
    runs = list(BACKTICKS.finditer(text))
    by_width: dict[int, list[int]] = {}
    for index, run in enumerate(runs):
        by_width.setdefault(len(run.group()), []).append(index)
    out = list(text)
    i = 0
    while i < len(runs):
        opener = runs[i]
        same = by_width[len(opener.group())]
        at = bisect.bisect_right(same, i)
        if at == len(same):
            i += 1
            continue
        closer = same[at]
        out[opener.start() : runs[closer].end()] = " " * (runs[closer].end() - opener.start())
        i = closer + 1
    return "".join(out)
