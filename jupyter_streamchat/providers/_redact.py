"""The one home of what may be kept of a text made from upstream bytes (SPEC 2 and 4).

An upstream is not trusted: an error body, a malformed chunk, an error event or an exception
string may echo the request, and with it the API key. Every such text goes through
``Redactor.clean`` before it is put in an error, a log line or a record: secrets are replaced
*first*, over the whole text, and only then is the text cut short, so a cut can never leave part
of a key behind. Lone surrogates (from a JSON ``\\ud800`` escape) cannot be stored as UTF-8, so they
become U+FFFD here too; ``scrub_json`` does the same for every upstream chunk that may hold one (reply,
reasoning, everything), where ``_base.parse_json_chunk`` decodes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

REDACTED = "***"
# Characters of upstream text kept in one error message (after redaction).
ERROR_TEXT_LIMIT = 1000
# Bytes of an upstream error body read at most: the rest could only be cut away. Far above
# ERROR_TEXT_LIMIT, so a key split by this read limit can never reach the kept text.
ERROR_BODY_READ_LIMIT = 65536
# A secret shorter than this is only redacted where it stands as a whole token: replacing every
# occurrence of a one-letter key would garble every message and protect nothing.
_SUBSTRING_MIN = 8
_TOKEN_CHARS = r"A-Za-z0-9._~+/=-"
# Credentials an upstream may echo that were never configured here (a proxy's own key, a header dump).
_CREDENTIAL = re.compile(
    r"(?i)(\b(?:bearer|basic)\s+|\b(?:x-api-key|api[-_]?key|authorization|access[-_]token)[\"']?\s*[:=]\s*[\"']?"
    rf"(?:(?:bearer|basic)\s+)?)(?!(?:bearer|basic)\b)[{_TOKEN_CHARS}]{{6,}}"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization"})


def scrub_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (valid text is returned as it is)."""
    return _SURROGATE.sub("\ufffd", text)


def scrub_json(value: Any) -> Any:
    """Every string inside a decoded JSON value with lone surrogates replaced (keys too)."""
    if isinstance(value, str):
        return scrub_surrogates(value)
    if isinstance(value, list):
        return [scrub_json(item) for item in value]
    if isinstance(value, dict):
        return {scrub_surrogates(key): scrub_json(item) for key, item in value.items()}
    return value


def secrets_of_url(url: str | None) -> list[str]:
    """What in a configured URL is a credential: its user info and its query values."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [parts.password or "", parts.username or "" if parts.password else ""]
    found += [value for _, value in parse_qsl(parts.query)]
    return [value for value in found if value]


def secrets_of_headers(headers: Mapping[str, str]) -> list[str]:
    """Values of credential headers, and the bare token of ``Bearer <token>``."""
    found = []
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS and value:
            found.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic"):
                found.append(token)
    return found


class Redactor:
    """Replaces known secrets and credential-looking tokens in upstream texts."""

    __slots__ = ("_long", "_secrets", "_short")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets = frozenset(s for s in secrets if s and s.strip())
        # Longest first, so a key is replaced whole before a shorter secret inside it could split it.
        self._long = sorted((s for s in self._secrets if len(s) >= _SUBSTRING_MIN), key=len, reverse=True)
        short = sorted((s for s in self._secrets if len(s) < _SUBSTRING_MIN), key=len, reverse=True)
        self._short = (
            re.compile(rf"(?<![{_TOKEN_CHARS}])(?:{'|'.join(map(re.escape, short))})(?![{_TOKEN_CHARS}])")
            if short
            else None
        )

    def including(self, secrets: Iterable[str | None]) -> Redactor:
        """A redactor that also knows ``secrets``."""
        return Redactor([*self._secrets, *secrets])

    def redact(self, text: str) -> str:
        """``text`` without secrets."""
        for secret in self._long:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if self._short is not None:
            text = self._short.sub(REDACTED, text)
        return _CREDENTIAL.sub(lambda match: match.group(1) + REDACTED, text)

    def clean(self, text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
        """What may be kept of an upstream text: redacted, then storable, then cut to ``limit``."""
        text = scrub_surrogates(self.redact(text))
        return text if len(text) <= limit else text[: limit - 1] + "…"
