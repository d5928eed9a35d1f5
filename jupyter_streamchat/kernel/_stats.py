"""A reply's numbers and its stats line, defined once for the widgets and the saved HTML.

The JupyterLab panel computes the same numbers with the same rule and wording
(``labextension/src/stats.ts``); the fixtures in ``tests/parity/stats`` hold both to it, and those in
``tests/parity/cost`` hold ``cost_text`` to the panel's ``costText`` (``labextension/src/steering.ts``).

- time to first token: from the request to the first ``delta`` or ``reasoning`` event;
- tokens/s: output tokens divided by the time from the first token to the end of the run (or to now
  while it runs), shown only once there are at least ``MIN_RATE_TOKENS`` tokens over at least
  ``MIN_RATE_SECONDS``: before that, one early token would show an absurd rate;
- output tokens: the provider's ``usage.output_tokens`` once reported, else the text deltas seen.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

MIN_RATE_TOKENS = 2
MIN_RATE_SECONDS = 0.1
COST_SIGNIFICANT = 3  # a cost shows three significant digits ($0.000123), and at least cents ($1.50)


def tokens_per_second(first_at: float | None, end_at: float, tokens: int) -> float | None:
    """``tokens`` over the seconds from ``first_at`` to ``end_at``, or None while it cannot be told."""
    if first_at is None or tokens < MIN_RATE_TOKENS:
        return None
    seconds = end_at - first_at
    return tokens / seconds if seconds >= MIN_RATE_SECONDS else None


def fixed(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, rounded as JavaScript's ``toFixed`` does (ties away from zero on
    the exact binary value; Python's format rounds ties to even)."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def stats_text(ttft: float | None, rate: float | None, tokens: int | None) -> str:
    """``first token 0.42 s · 12.5 tok/s · 40 tokens`` (``1 token``), each part only once it is known."""
    parts = []
    if ttft is not None:
        parts.append(f"first token {fixed(ttft, 2)} s")
    if rate is not None:
        parts.append(f"{fixed(rate, 1)} tok/s")
    if tokens:
        parts.append(f"{tokens} token" if tokens == 1 else f"{tokens} tokens")
    return " · ".join(parts)


def cost_text(cost: float | None) -> str:
    """``$0.000123`` (three significant digits, at least two decimals), or "" when the cost is not known."""
    if cost is None:
        return ""
    if cost <= 0:
        return "$0"
    decimals = max(2, COST_SIGNIFICANT - 1 - math.floor(math.log10(cost)))
    return "$" + format(Decimal(cost).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP), "f")
