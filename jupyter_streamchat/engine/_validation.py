"""Validation of request bodies: ``POST runs`` and ``POST stream``, and the JSON reading every POST shares.

Two steps, so an adapter that already holds the body as Python objects (the in-process backend) validates
it as it is, never serialised and parsed again: ``read_json_object`` (bytes to one JSON object, HTTP only),
then ``validate_chat_body`` (any object to a ``ChatBody``, or a ``BadRequest`` naming what is wrong).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..providers._parts import ChatMessage
from ._errors import BadRequest, PayloadTooLarge
from ._parts import ContextItem, ImageBudget, parse_context, parse_parts

ROLES = ("system", "user", "assistant")
MAX_ID_CHARS = 200
MAX_CONVERSATION_CHARS = 128
# A chat body is an object of lists of objects (of parts): a handful of levels. Far more is an attack, and
# past ~1000 levels Python's JSON parser gives up with a RecursionError.
MAX_JSON_DEPTH = 32

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_body_bytes: int = 1_048_576
    max_messages: int = 500
    max_message_chars: int = 200_000
    #: decoded bytes of all images of one request (message parts and context items together)
    max_image_bytes: int = 5 * 1_048_576
    #: characters of text in all context items of one request
    max_context_chars: int = 100_000

    @property
    def max_raw_bytes(self) -> int:
        """The body limit before parsing: text, plus the base64 size of the images it may carry."""
        return self.max_body_bytes + (self.max_image_bytes * 4 + 2) // 3


@dataclass(slots=True)
class ChatBody:
    model: str | None
    messages: list[ChatMessage] | None
    prompt: str | None
    notebook: str | None
    conversation: str | None
    options: dict[str, Any]
    context: list[ContextItem] = field(default_factory=list)
    #: the run id the new turn follows (SPEC 11); None with ``parent_given``: it starts the conversation
    parent: str | None = None
    #: whether the body named a ``parent`` at all (absent: the turn follows the conversation's active leaf)
    parent_given: bool = False
    #: the system prompt, sent first as a system message
    system: str | None = None


def _optional_str(body: dict[str, Any], key: str, max_chars: int = MAX_ID_CHARS) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"'{key}' must be a non-empty string")
    if len(value) > max_chars:
        raise BadRequest(f"'{key}' is longer than {max_chars} characters")
    return value


def validate_conversation(value: Any) -> str | None:
    """A conversation id is a user's name for a thread: free text, but never a prototype-like key."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest("'conversation' must be a non-empty string")
    if len(value) > MAX_CONVERSATION_CHARS:
        raise BadRequest(f"'conversation' is longer than {MAX_CONVERSATION_CHARS} characters")
    if _CONTROL.search(value):
        raise BadRequest("'conversation' must not hold a control character")
    if value.startswith("__"):
        # Clients key objects by it: "__proto__" would reach Object.prototype in a browser.
        raise BadRequest("'conversation' must not start with '__'")
    return value


def _messages(raw: Any, limits: BodyLimits, images: ImageBudget) -> list[ChatMessage]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'messages' must be a non-empty list")
    if len(raw) > limits.max_messages:
        raise BadRequest(f"too many messages ({len(raw)} > {limits.max_messages})")
    messages: list[ChatMessage] = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{index}] must be an object")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise BadRequest(f"messages[{index}].role must be one of {', '.join(ROLES)}")
        where = f"messages[{index}].content"
        if isinstance(content, list):
            messages.append({"role": role, "content": parse_parts(content, where, limits.max_message_chars, images)})
            continue
        if not isinstance(content, str):
            raise BadRequest(f"{where} must be a string or a list of parts")
        if len(content) > limits.max_message_chars:
            raise BadRequest(f"{where} is longer than {limits.max_message_chars} characters")
        messages.append({"role": role, "content": content})
    return messages


OPTIONS = ("temperature", "max_tokens", "seed", "top_p")
# A seed goes to providers as a 64-bit integer.
MAX_SEED = 2**63 - 1


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_options(raw: Any) -> dict[str, Any]:
    """Sampling options (SPEC 11), each checked on its own: the first bad one is named in the 400."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequest("'options' must be an object")
    unknown = set(raw) - set(OPTIONS)
    if unknown:
        raise BadRequest(f"unknown options: {', '.join(sorted(unknown))} (known: {', '.join(OPTIONS)})")
    options: dict[str, Any] = {}
    temperature = raw.get("temperature")
    if temperature is not None:
        if not _number(temperature) or not 0 <= temperature <= 2:
            raise BadRequest("'options.temperature' must be a number between 0 and 2")
        options["temperature"] = temperature
    max_tokens = raw.get("max_tokens")
    if max_tokens is not None:
        if not _integer(max_tokens) or max_tokens < 1:
            raise BadRequest("'options.max_tokens' must be a positive integer")
        options["max_tokens"] = max_tokens
    seed = raw.get("seed")
    if seed is not None:
        if not _integer(seed) or abs(seed) > MAX_SEED:
            raise BadRequest("'options.seed' must be an integer (64-bit)")
        options["seed"] = seed
    top_p = raw.get("top_p")
    if top_p is not None:
        if not _number(top_p) or not 0 < top_p <= 1:
            raise BadRequest("'options.top_p' must be a number greater than 0 and at most 1")
        options["top_p"] = top_p
    return options


def parse_system(value: Any, limits: BodyLimits) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("'system' must be a string")
    if len(value) > limits.max_message_chars:
        raise BadRequest(f"'system' is longer than {limits.max_message_chars} characters")
    return value or None


def read_json_object(raw: bytes, max_bytes: int) -> dict[str, Any]:
    """A request body that must be one JSON object: 413 above ``max_bytes``, 400 for anything else.

    The size is checked before parsing, so an oversized body costs no JSON work.
    """
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("request body is not valid JSON") from None
    except RecursionError:
        raise BadRequest(f"request body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _check_storable(body: dict[str, Any]) -> None:
    """Refuse a body that could not be taken whole: nesting past ``MAX_JSON_DEPTH``, or a lone surrogate in
    any string (a notebook, the journal and the provider's JSON all need UTF-8), wherever it is.

    Iterative, so no nesting can exhaust the stack; only containers and strings cost anything.
    """
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(body, 1, ())]
    while stack:
        value, depth, trail = stack.pop()
        if isinstance(value, str):
            if not _storable(value):
                raise BadRequest(f"{_where(trail)} holds text that cannot be stored as UTF-8 (a lone surrogate)")
            continue
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"request body is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):  # only from Python callers: JSON keys are strings
                    raise BadRequest(f"a key in {_where(trail)} is not a string: {key!r}")
                if not _storable(key):
                    raise BadRequest(
                        f"a key in {_where(trail)} holds text that cannot be stored as UTF-8 (a lone surrogate)"
                    )
                if isinstance(item, str | dict | list):
                    stack.append((item, depth + 1, (trail, key)))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str | dict | list):
                    stack.append((item, depth + 1, (trail, index)))


def _storable(text: str) -> bool:
    """False for text with a lone surrogate: json.loads takes one from a "\\ud800" escape (or raw CESU bytes),
    and no UTF-8 file, journal or provider request can hold it. (ASCII is answered in O(1); encoding the rest
    is several times faster than a regex over it.)"""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _where(trail: tuple[Any, ...]) -> str:
    """``messages[0].content`` from the linked trail ``(((), "messages"), 0), "content")``."""
    parts: list[str] = []
    while trail:
        trail, step = trail
        parts.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "".join(reversed(parts)).lstrip(".") or "the request body"


def parse_chat_body(raw: bytes, limits: BodyLimits) -> ChatBody:
    """A body as HTTP delivers it: its images may add their base64 size to ``max_body_bytes``."""
    return validate_chat_body(read_json_object(raw, limits.max_raw_bytes), limits, body_bytes=len(raw))


def validate_chat_body(body: object, limits: BodyLimits, body_bytes: int | None = None) -> ChatBody:
    """A ``POST runs`` / ``POST stream`` body, taken whole or refused (``BadRequest``); ``body`` is read,
    never kept: what the ``ChatBody`` holds is copied out of it. ``body_bytes``: its size on the wire, held
    to ``max_body_bytes`` without its images."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    _check_storable(body)
    images = ImageBudget(limits.max_image_bytes)
    has_messages, has_prompt = body.get("messages") is not None, body.get("prompt") is not None
    if has_messages == has_prompt:
        raise BadRequest("send exactly one of 'messages' or 'prompt'")
    prompt = None
    if has_prompt:
        prompt = body["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadRequest("'prompt' must be a non-empty string")
        if len(prompt) > limits.max_message_chars:
            raise BadRequest(f"'prompt' is longer than {limits.max_message_chars} characters")
    parsed = ChatBody(
        model=_optional_str(body, "model"),
        messages=_messages(body["messages"], limits, images) if has_messages else None,
        prompt=prompt,
        notebook=_optional_str(body, "notebook", 4096),
        conversation=validate_conversation(body.get("conversation")),
        options=parse_options(body.get("options")),
        context=parse_context(body.get("context"), limits.max_context_chars, images),
        parent=_optional_str(body, "parent"),
        parent_given="parent" in body,
        system=parse_system(body.get("system"), limits),
    )
    if body_bytes is not None and body_bytes - images.encoded > limits.max_body_bytes:
        raise PayloadTooLarge(f"request body is larger than {limits.max_body_bytes} bytes (not counting images)")
    return parsed
