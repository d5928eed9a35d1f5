"""The shapes of context (SPEC 10): limits, items, their record and their wire parts."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Literal, NotRequired, TypedDict

from ..providers._parts import ImageMime, Part

Kind = Literal["dataframe", "series", "array", "object", "text", "cell", "image"]


class ContextError(ValueError):
    """A context that cannot be sent as asked; the message is one line meant for the user, and nothing is sent."""


@dataclass(frozen=True)
class ContextLimits:
    """What one item and one request may cost. Defaults keep a tabular item under 4 KB of text.

    The sizes bound what is *sent*; the ``sample_*`` fields bound what is *read* from the object, so the time
    to build an item does not grow with the data.
    """

    item_chars: int = 4000
    """Text of one item (a longer one is cut, and says so)."""
    request_chars: int = 32_000
    """Text of all items of one request (items past it are cut, and say so)."""
    image_bytes: int = 1_500_000
    """One image, encoded (larger images are scaled down when that is possible)."""
    request_image_bytes: int = 5_000_000
    """All images of one request (beyond it the request is refused: an image is never half-sent)."""
    image_side: int = 1568
    """Longest side of an image in pixels (providers scale larger ones down themselves, at our cost)."""
    rows: int = 5
    """Sample rows shown of a table (the first ones and the last ones)."""
    columns: int = 40
    """Columns described (name, dtype, nulls) of a wide table."""
    table_columns: int = 20
    """Columns shown in the sample rows table."""
    cell_chars: int = 40
    """One value in the sample rows table."""
    sample_rows: int = 2000
    """Rows read to count nulls (or, for arrays, elements read for statistics)."""
    repr_seconds: float = 0.25
    """Time given to an unknown object's ``repr`` (on the main thread, where a timer can interrupt it)."""


class ImageInfo(TypedDict):
    mime: ImageMime
    sha256: str
    bytes: int
    width: int
    height: int


class ContextRecord(TypedDict):
    """An item as recorded in the turn's ``context`` (SPEC 10): never the image bytes."""

    kind: Kind
    name: NotRequired[str]
    text: NotRequired[str]
    chars: int
    tokens_estimate: int
    image: NotRequired[ImageInfo]


@dataclass(frozen=True)
class ContextItem:
    """One thing the model sees besides the prompt.

    ``text`` is exactly what is sent as text (for an image: its caption, sent just before it); ``data`` holds an
    image's encoded bytes, which stay out of the record.
    """

    kind: Kind
    text: str
    tokens_estimate: int
    name: str | None = None
    image: ImageInfo | None = None
    data: bytes | None = field(default=None, repr=False)

    @property
    def chars(self) -> int:
        return len(self.text)

    def record(self) -> ContextRecord:
        record: ContextRecord = {"kind": self.kind, "chars": self.chars, "tokens_estimate": self.tokens_estimate}
        if self.name is not None:
            record["name"] = self.name
        if self.text:
            record["text"] = self.text
        if self.image is not None:
            record["image"] = self.image.copy()
        return record

    def parts(self) -> list[Part]:
        parts: list[Part] = []
        if self.text:
            parts.append({"type": "text", "text": self.text})
        if self.image is not None and self.data is not None:
            parts.append({"type": "image", "mime": self.image["mime"], "data": base64.b64encode(self.data).decode()})
        return parts
