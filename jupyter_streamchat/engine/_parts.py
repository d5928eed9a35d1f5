"""Validation of what a request sends besides text (SPEC 10): message parts and context items.

Images arrive base64-encoded; their bytes count against ``max_image_bytes`` (all images of one request
together), which is why the raw body limit grows by their encoded size. The server, not the client, decides
what is recorded about an image (sha256, size, dimensions read from its header): the record is then true
whatever a client claims.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

from ..context._tokens import estimate_image_tokens, estimate_tokens
from ..context._types import ContextRecord, ImageInfo
from ..providers._parts import IMAGE_MIMES, Content, ImageMime, ImagePart, Part, TextPart, sniff
from ._errors import BadRequest, PayloadTooLarge

CONTEXT_KINDS = ("dataframe", "series", "array", "object", "text", "cell", "image")
MAX_CONTEXT_ITEMS = 32
MAX_CONTEXT_NAME_CHARS = 200


class PromptRecord(TypedDict):
    """A turn's ``prompt``: the user's own words; ``context`` is lifted to the turn by the schema."""

    role: Literal["user"]
    content: str
    context: NotRequired[list[ContextRecord]]


def inline_context(content: Content) -> list[ContextRecord]:
    """What a ``messages`` request's last user message carried besides its prompt, as a turn records it."""
    if isinstance(content, str):
        return []
    records: list[ContextRecord] = []
    texts = [part for part in content if part["type"] == "text"]
    for part in content:
        if part["type"] == "text":
            if part is not texts[-1]:
                text = part["text"]
                records.append(
                    ContextRecord(kind="text", text=text, chars=len(text), tokens_estimate=estimate_tokens(text))
                )
        else:
            _, _, facts = decode_image(part["mime"], part["data"], "an image part", ImageBudget(len(part["data"])))
            records.append(
                ContextRecord(
                    kind="image",
                    chars=0,
                    tokens_estimate=estimate_image_tokens(facts["width"], facts["height"]),
                    image=facts,
                )
            )
    return records


@dataclass(slots=True)
class ImageBudget:
    """Decoded image bytes one request may still carry."""

    remaining: int
    used: int = field(default=0)
    #: characters of base64 the images took in the body (which the text limit does not count)
    encoded: int = field(default=0)

    def take(self, data: bytes, where: str) -> None:
        if len(data) > self.remaining:
            raise PayloadTooLarge(
                f"{where}: the request's images are larger than {self.used + self.remaining:,} bytes in all"
            )
        self.remaining -= len(data)
        self.used += len(data)


def decode_image(mime: Any, data: Any, where: str, budget: ImageBudget) -> tuple[ImageMime, bytes, ImageInfo]:
    """The image's bytes and the facts a turn records, read by the server from the bytes themselves."""
    if mime not in IMAGE_MIMES:
        raise BadRequest(f"{where}.mime must be one of {', '.join(IMAGE_MIMES)}")
    if not isinstance(data, str) or not data:
        raise BadRequest(f"{where}.data must be base64 text")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where}.data is not valid base64") from None
    sniffed = sniff(raw)
    if sniffed is None:
        raise BadRequest(f"{where}.data is not a PNG, JPEG, GIF or WebP image")
    if sniffed[0] != mime:
        raise BadRequest(f"{where}.data is {sniffed[0]}, not the {mime} it is said to be")
    budget.take(raw, where)
    budget.encoded += len(data)
    facts: ImageInfo = {
        "mime": sniffed[0],
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
        "width": sniffed[1],
        "height": sniffed[2],
    }
    return sniffed[0], raw, facts


def parse_parts(raw: list[Any], where: str, max_chars: int, budget: ImageBudget) -> list[Part]:
    if not raw:
        raise BadRequest(f"{where} must be a string or a non-empty list of parts")
    parts: list[Part] = []
    chars = 0
    for index, part in enumerate(raw):
        here = f"{where}[{index}]"
        if not isinstance(part, dict):
            raise BadRequest(f"{here} must be an object")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise BadRequest(f"{here}.text must be a string")
            chars += len(text)
            if chars > max_chars:
                raise BadRequest(f"{where} holds more than {max_chars} characters of text")
            parts.append(TextPart(type="text", text=text))
        elif kind == "image":
            mime, _, _ = decode_image(part.get("mime"), part.get("data"), here, budget)
            parts.append(ImagePart(type="image", mime=mime, data=part["data"]))
        else:
            raise BadRequest(f"{here}.type must be 'text' or 'image'")
    return parts


@dataclass(slots=True)
class ContextItem:
    """A validated context item: what is recorded, and for an image the part that is sent."""

    record: ContextRecord
    image: ImagePart | None = None

    def parts(self) -> list[Part]:
        """What is sent: the item's text (an image's caption), then the image."""
        parts: list[Part] = []
        if self.record.get("text"):
            parts.append(TextPart(type="text", text=self.record["text"]))
        if self.image is not None:
            parts.append(self.image)
        return parts


def parse_context(raw: Any, max_chars: int, budget: ImageBudget) -> list[ContextItem]:
    """``context``: the items a client built from the notebook (SPEC 10), each a text or an image."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest("'context' must be a list of items")
    if len(raw) > MAX_CONTEXT_ITEMS:
        raise BadRequest(f"'context' holds more than {MAX_CONTEXT_ITEMS} items")
    items: list[ContextItem] = []
    chars = 0
    for index, item in enumerate(raw):
        where = f"context[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object")
        kind = item.get("kind")
        if kind not in CONTEXT_KINDS:
            raise BadRequest(f"{where}.kind must be one of {', '.join(CONTEXT_KINDS)}")
        record = ContextRecord(kind=kind, chars=0, tokens_estimate=0)
        name = item.get("name")
        if name is not None:
            if not isinstance(name, str) or not name or len(name) > MAX_CONTEXT_NAME_CHARS:
                raise BadRequest(f"{where}.name must be a non-empty string of at most {MAX_CONTEXT_NAME_CHARS} chars")
            record["name"] = name
        text = item.get("text")
        image: ImagePart | None = None
        if kind == "image":
            # An image's text is its optional caption (which name it shows), sent just before it.
            if text is not None and not isinstance(text, str):
                raise BadRequest(f"{where}.text must be a string")
            described = item.get("image")
            mime = described.get("mime") if isinstance(described, dict) else None
            mime, _, facts = decode_image(mime, item.get("data"), where, budget)
            record["image"] = facts
            record["tokens_estimate"] = estimate_image_tokens(facts["width"], facts["height"])
            image = ImagePart(type="image", mime=mime, data=item["data"])
        elif not isinstance(text, str) or not text:
            raise BadRequest(f"{where}.text must be a non-empty string")
        if text:
            chars += len(text)
            if chars > max_chars:
                raise BadRequest(f"'context' holds more than {max_chars} characters of text")
            record["text"] = text
            record["chars"] = len(text)
            record["tokens_estimate"] += estimate_tokens(text)
        items.append(ContextItem(record, image))
    return items


def with_context(prompt: str, items: list[ContextItem]) -> str | list[Part]:
    """A user message: the context items in order (a caption before its image), the prompt last; plain text
    without context."""
    if not items:
        return prompt
    return [*(part for item in items for part in item.parts()), TextPart(type="text", text=prompt)]
