"""What a reply cost: ``c.StreamChat.prices`` (USD per million input / output tokens per model id, SPEC 11).

A price is known per requested model id (``provider:model``); a turn's cost is computed from the usage the
provider reported, and only when it reported both counts (a reply stopped before its usage came has no cost:
unknown, not zero).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PER_TOKENS = 1_000_000  # prices are per million tokens
COST_DECIMALS = 9  # costs are rounded to a billionth of a dollar


@dataclass(frozen=True, slots=True)
class Price:
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens

    def cost(self, usage: Mapping[str, int]) -> float | None:
        """USD for ``usage``, or None when it lacks a count."""
        tokens_in, tokens_out = usage.get("input_tokens"), usage.get("output_tokens")
        if not isinstance(tokens_in, int) or not isinstance(tokens_out, int):
            return None
        return round((tokens_in * self.input + tokens_out * self.output) / PER_TOKENS, COST_DECIMALS)


def parse_prices(raw: Mapping[str, Any]) -> dict[str, Price]:
    """The price table from its configuration; ``ValueError`` naming the first entry that is not one."""
    prices: dict[str, Price] = {}
    for model_id, entry in raw.items():
        where = f"prices[{model_id!r}]"
        provider, sep, model = str(model_id).partition(":")
        if not sep or not provider or not model:
            raise ValueError(f"{where}: a model id looks like 'provider:model'")
        if not isinstance(entry, Mapping) or set(entry) != {"input", "output"}:
            raise ValueError(f"{where} must be {{'input': usd_per_million, 'output': usd_per_million}}")
        for side in ("input", "output"):
            value = entry[side]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
                raise ValueError(f"{where}[{side!r}] must be a non-negative number of USD per million tokens")
        prices[model_id] = Price(float(entry["input"]), float(entry["output"]))
    return prices


def unknown_price_keys(prices: Mapping[str, Price], listed: Mapping[str, list[str]]) -> list[str]:
    """One line per price key that names no configured provider, or a model its provider does not list (when
    it lists any): most likely a typo, whose replies would then show no cost. ``listed``: provider -> models."""
    lines: list[str] = []
    for model_id in prices:
        provider, _, model = model_id.partition(":")
        if provider not in listed:
            lines.append(f"prices: {model_id!r} names provider {provider!r}, which is not configured")
        elif listed[provider] and model not in listed[provider]:
            lines.append(
                f"prices: {model_id!r} is not among the models {provider!r} lists "
                f"({', '.join(listed[provider][:8])}{', ...' if len(listed[provider]) > 8 else ''})"
            )
    return lines
