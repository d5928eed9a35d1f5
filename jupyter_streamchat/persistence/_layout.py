"""A notebook file in nbformat's own layout: its top-level metadata found, and replaced, without parsing the cells."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# In nbformat's layout (indent 1, sorted keys) a notebook starts with its cells and ends with its
# metadata, nbformat and nbformat_minor. A raw newline is always structural in JSON, and nothing but
# these two numbers stands between the metadata object and the root's closing brace, so that object
# is the notebook's own metadata: it is replaced without decoding, parsing or copying the cells (a
# 10 MB notebook would otherwise hold the GIL, and stall every stream, for tens of milliseconds).
_HEAD = b'{\n "cells": ['
_METADATA_KEY = b'\n "metadata": '
_TAIL = re.compile(r',\n "nbformat": \d+,\n "nbformat_minor": \d+\n\}\n?\Z')
_DECODER = json.JSONDecoder()


@dataclass(slots=True)
class Located:
    value_at: int  # byte offset of the metadata object: everything before it stays as it is
    metadata: dict[str, Any]
    after: bytes  # the bytes after the metadata object


def locate_metadata(raw: bytes) -> Located | None:
    """The top-level metadata of a notebook in nbformat's layout, found without parsing its cells; else None."""
    if not raw.startswith(_HEAD):  # the root's first key is "cells", holding a list: a notebook's
        return None
    key_at = raw.rfind(_METADATA_KEY)
    if key_at < 0:
        return None
    value_at = key_at + len(_METADATA_KEY)
    try:
        rest = raw[value_at:].decode("utf-8")
        metadata, end = _DECODER.raw_decode(rest)
    except ValueError:  # UnicodeDecodeError included
        return None
    if not isinstance(metadata, dict) or not _TAIL.match(rest, end):
        return None
    return Located(value_at, metadata, rest[end:].encode("utf-8"))


def dump(value: dict[str, Any]) -> bytes:
    """nbformat's own on-disk layout, so untouched bytes round-trip exactly."""
    text = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, separators=(",", ": "))
    return (text + "\n").encode("utf-8")
