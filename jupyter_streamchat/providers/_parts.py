"""Chat messages whose content is text or a list of parts (SPEC 10), and how each wire format spells them.

The engine validates parts once (``engine/_validation.py``); providers only translate: OpenAI-compatible
servers take ``image_url`` parts with ``data:`` URIs, Anthropic takes ``image`` blocks with a base64 source.
A message whose content is a plain string goes out unchanged, so text-only chats send exactly what they did.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any, Literal, TypeAlias, TypedDict

ImageMime: TypeAlias = Literal["image/png", "image/jpeg", "image/webp", "image/gif"]
IMAGE_MIMES: tuple[ImageMime, ...] = ("image/png", "image/jpeg", "image/webp", "image/gif")


class TextPart(TypedDict):
    type: Literal["text"]
    text: str


class ImagePart(TypedDict):
    type: Literal["image"]
    mime: ImageMime
    #: base64 of the image bytes
    data: str


Part: TypeAlias = TextPart | ImagePart
Content: TypeAlias = str | list[Part]


class ChatMessage(TypedDict):
    role: str
    content: Content


def messages_sha256(messages: list[ChatMessage]) -> str:
    """The fingerprint a turn records of the exact messages sent (SPEC 11, docs/metadata.md): sha256 (hex) of
    their provider-neutral form (roles, contents, parts with base64 images) as JSON with sorted keys, no
    spaces (separators "," and ":") and characters as they are (not ``\\u`` escaped), UTF-8 encoded. The same
    branch, system prompt and context give the same digest, whichever provider the messages went to."""
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def text_of(content: Content) -> str:
    """The text a message carries (its text parts joined), for counting and for the demo model."""
    if isinstance(content, str):
        return content
    return "\n\n".join(part["text"] for part in content if part["type"] == "text")


def prompt_text(content: Content) -> str:
    """The prompt itself: a plain message, or the last text part (context items come before it)."""
    if isinstance(content, str):
        return content
    texts = [part["text"] for part in content if part["type"] == "text"]
    return texts[-1] if texts else ""


def images_of(content: Content) -> list[ImagePart]:
    if isinstance(content, str):
        return []
    return [part for part in content if part["type"] == "image"]


def to_openai(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """OpenAI chat-completions messages: text and ``image_url`` parts (data URIs)."""
    return [{"role": m["role"], "content": _openai_content(m["content"])} for m in messages]


def _openai_content(content: Content) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if part["type"] == "text":
            parts.append({"type": "text", "text": part["text"]})
        else:
            parts.append({"type": "image_url", "image_url": {"url": f"data:{part['mime']};base64,{part['data']}"}})
    return parts


def to_anthropic(content: Content) -> str | list[dict[str, Any]]:
    """Anthropic message content: text blocks and ``image`` blocks with a base64 source."""
    if isinstance(content, str):
        return content
    blocks: list[dict[str, Any]] = []
    for part in content:
        if part["type"] == "text":
            blocks.append({"type": "text", "text": part["text"]})
        else:
            blocks.append(
                {"type": "image", "source": {"type": "base64", "media_type": part["mime"], "data": part["data"]}}
            )
    return blocks


JPEG_SIZE_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def sniff(data: bytes) -> tuple[ImageMime, int, int] | None:
    """(mime, width, height) of PNG, JPEG, GIF or WebP bytes from their header (no decoding, no PIL needed);
    None for anything else or a broken header."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return "image/png", width, height
        if data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
            return "image/gif", width, height
        if data.startswith(b"\xff\xd8"):
            return _jpeg(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
    except (struct.error, IndexError):
        return None
    return None


def _jpeg(data: bytes) -> tuple[ImageMime, int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        if marker in JPEG_SIZE_MARKERS:
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return "image/jpeg", width, height
        at += 2 + length
    return None


def _webp(data: bytes) -> tuple[ImageMime, int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return "image/webp", width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return "image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return "image/webp", int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def describe_received(messages: list[ChatMessage]) -> str:
    """What a request carried besides plain text, in one line ("1 image, 640x480 PNG; a table of 3 columns").

    The demo model says it, so a new user sees context reach a model without any key.
    """
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    notes: list[str] = []
    images = images_of(last)
    if images:
        sizes = []
        for image in images:
            kind = image["mime"].split("/")[-1].upper()
            sniffed = sniff(_decoded(image["data"]))
            sizes.append(f"{sniffed[1]}\u00d7{sniffed[2]} {kind}" if sniffed else kind)
        count = f"{len(images)} image" + ("s" if len(images) != 1 else "")
        notes.append(f"{count}, {', '.join(sizes)}")
    if not isinstance(last, str):
        texts = [part["text"] for part in last if part["type"] == "text"]
        for text in texts[:-1]:  # the last text part is the prompt itself
            notes.append(_describe_text(text))
    return "; ".join(notes)


def _describe_text(text: str) -> str:
    """A context item's first line names it ("df: pandas DataFrame, 6 rows x 3 columns")."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= 100 else first[:99] + "\u2026"


def _decoded(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=False)
    except ValueError:
        return b""
