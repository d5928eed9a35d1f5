"""What steers a reply from Python and the magics (SPEC 11): a system prompt and the sampling options.

Checked in the kernel by the server's own rules (``engine._validation``) before anything is sent, so
``chat(..., temperature=5)`` and ``%%chat --temperature 5`` fail at once with one line, and nothing starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..engine._errors import BadRequest
from ..engine._validation import BodyLimits, parse_options, parse_system

_QUOTED_NAME = re.compile(r"'(?:options\.)?(\w+)'")


@dataclass(frozen=True, slots=True)
class Steering:
    """The system prompt and the options of one request, as the wire takes them (``system``, ``options``)."""

    system: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Steering:
        """Checked values; ``ValueError`` in one line (the argument's own name) for the first bad one."""
        raw = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}
        try:
            options = parse_options({key: value for key, value in raw.items() if value is not None})
            parsed_system = parse_system(system, BodyLimits())
        except BadRequest as bad:
            # "'options.temperature' must be ..." -> "temperature must be ...": the name the caller typed.
            raise ValueError(_QUOTED_NAME.sub(r"\1", bad.message)) from None
        return cls(parsed_system, options)

    @classmethod
    def of_record(cls, params: dict[str, Any]) -> Steering:
        """A turn's recorded ``params`` (options and ``system`` together) as a request sends them again."""
        system = params.get("system")
        options = {key: value for key, value in params.items() if key != "system"}
        return cls(system if isinstance(system, str) and system else None, options)

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with the system prompt and options added (only those that are set)."""
        if self.system:
            body["system"] = self.system
        if self.options:
            body["options"] = dict(self.options)
        return body
