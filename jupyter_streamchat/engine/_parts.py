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

from ..providers._parts import IMAGE_MIMES, Content, ImagePart, Part, TextPart, image_size
from ._errors import BadRequest, PayloadTooLarge

CONTEXT_KINDS = ("dataframe", "series", "array", "object", "text", "cell", "image")
MAX_CONTEXT_ITEMS = 32
MAX_CONTEXT_NAME_CHARS = 200


class ImageFacts(TypedDict):
    mime: str
    sha256: str
    bytes: int
    width: int | None
    height: int | None


class ContextRecord(TypedDict, total=False):
    """One context item as a turn records it: text verbatim, an image by its facts (never its bytes)."""

    kind: Literal["dataframe", "series", "array", "object", "text", "cell", "image"]
    name: str
    text: str
    chars: int
    tokens_estimate: int
    image: ImageFacts


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
            raw = base64.b64decode(part["data"])
            facts = image_facts(part["mime"], raw)
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


def estimate_tokens(text: str) -> int:
    """About 4 characters a token for English prose and code (OpenAI's rule of thumb); at least 1 for any text."""
    return (len(text) + 3) // 4


def estimate_image_tokens(width: int | None, height: int | None) -> int:
    """Anthropic's published estimate (width * height / 750), within OpenAI's tile counts for common sizes."""
    if not width or not height:
        return 1_000
    return max(1, (width * height) // 750)


def decode_image(mime: Any, data: Any, where: str, budget: ImageBudget) -> tuple[str, bytes]:
    if mime not in IMAGE_MIMES:
        raise BadRequest(f"{where}.mime must be one of {', '.join(IMAGE_MIMES)}")
    if not isinstance(data, str) or not data:
        raise BadRequest(f"{where}.data must be base64 text")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where}.data is not valid base64") from None
    budget.take(raw, where)
    budget.encoded += len(data)
    return mime, raw


def image_facts(mime: str, raw: bytes) -> ImageFacts:
    size = image_size(raw)
    return {
        "mime": mime,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
        "width": size[0] if size else None,
        "height": size[1] if size else None,
    }


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
            mime, _ = decode_image(part.get("mime"), part.get("data"), here, budget)
            parts.append(ImagePart(type="image", mime=mime, data=part["data"]))
        else:
            raise BadRequest(f"{here}.type must be 'text' or 'image'")
    return parts


@dataclass(slots=True)
class ContextItem:
    """A validated context item: what is recorded, and for an image the part that is sent."""

    record: ContextRecord
    image: ImagePart | None = None

    def part(self) -> Part:
        if self.image is not None:
            return self.image
        return TextPart(type="text", text=self.record.get("text", ""))


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
        record = ContextRecord(kind=kind)
        name = item.get("name")
        if name is not None:
            if not isinstance(name, str) or not name or len(name) > MAX_CONTEXT_NAME_CHARS:
                raise BadRequest(f"{where}.name must be a non-empty string of at most {MAX_CONTEXT_NAME_CHARS} chars")
            record["name"] = name
        if kind == "image":
            image = item.get("image")
            mime = image.get("mime") if isinstance(image, dict) else None
            mime, data = decode_image(mime, item.get("data"), where, budget)
            facts = image_facts(mime, data)
            record["image"] = facts
            record["chars"] = 0
            record["tokens_estimate"] = estimate_image_tokens(facts["width"], facts["height"])
            items.append(ContextItem(record, ImagePart(type="image", mime=mime, data=item["data"])))
            continue
        text = item.get("text")
        if not isinstance(text, str) or not text:
            raise BadRequest(f"{where}.text must be a non-empty string")
        chars += len(text)
        if chars > max_chars:
            raise BadRequest(f"'context' holds more than {max_chars} characters of text")
        record["text"] = text
        record["chars"] = len(text)
        record["tokens_estimate"] = estimate_tokens(text)
        items.append(ContextItem(record))
    return items


def with_context(prompt: str, items: list[ContextItem]) -> str | list[Part]:
    """A user message: the context items first (text, then images), the prompt last; plain text without context."""
    if not items:
        return prompt
    texts = [item.part() for item in items if item.image is None]
    images = [item.part() for item in items if item.image is not None]
    return [*texts, *images, TextPart(type="text", text=prompt)]
