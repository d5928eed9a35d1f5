"""Anthropic Messages streaming: text and thinking content blocks, usage in start/delta events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from ..engine._sse import SSEMessage
from ._base import (
    Answered,
    Delta,
    EventBatch,
    Finish,
    HTTPTransport,
    Reasoning,
    StreamEvent,
    UpstreamError,
    UpstreamSettings,
    Usage,
    decode_events,
    parse_json_chunk,
    stream_batches,
    text_field,
    upstream_label,
)
from ._parts import ChatMessage, text_of, to_anthropic
from ._redact import Redactor

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096


class AnthropicProvider:
    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None,
        models: list[str],
        settings: UpstreamSettings | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.name = name
        headers = {"anthropic-version": API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        self._transport = HTTPTransport(
            base_url,
            name,
            headers=headers,
            settings=settings or UpstreamSettings(),
            redactor=(redactor or Redactor()).including([api_key]),
        )
        self._models = list(models)

    def knows_model(self, model: str) -> bool:
        return bool(model)

    async def list_models(self) -> list[str]:
        return list(self._models)

    def stream(self, model: str, messages: list[ChatMessage], options: Mapping[str, Any]) -> AsyncIterator[EventBatch]:
        system = "\n\n".join(text_of(m["content"]) for m in messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": model,
            "messages": [
                {"role": m["role"], "content": to_anthropic(m["content"])} for m in messages if m["role"] != "system"
            ],
            "max_tokens": options.get("max_tokens") or DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system:
            body["system"] = system
        # No seed: the Messages API has none (the run records it all the same, see docs/api.md).
        for option in ("temperature", "top_p"):
            if options.get(option) is not None:
                body[option] = options[option]

        def decode(message: SSEMessage) -> tuple[list[StreamEvent], bool]:
            kind, events = self._decode(message)
            return events, kind == "message_stop"

        return stream_batches(self._transport, "v1/messages", body, decode)

    def _decode(self, message: SSEMessage) -> tuple[str, list[StreamEvent]]:
        transport = self._transport
        data = parse_json_chunk(message.data, transport)
        if not isinstance(data, dict):
            raise UpstreamError("upstream_malformed", f"{self.name} sent a non-object event")
        kind = data.get("type") or message.event
        if kind == "error":
            error = data.get("error") or {}
            text = error.get("message") if isinstance(error, dict) else str(error)
            raise UpstreamError("upstream_error", transport.clean(f"{self.name}: {text}"))
        return kind, decode_events(transport, f"{kind!r} event", _events, kind, data, transport)

    async def aclose(self) -> None:
        await self._transport.aclose()


def _events(kind: str, data: dict[str, Any], transport: HTTPTransport) -> Iterator[StreamEvent]:
    if kind == "content_block_delta":
        delta = data["delta"]
        if delta.get("type") == "text_delta" and delta.get("text"):
            yield Delta(text_field(delta["text"]))
        elif delta.get("type") == "thinking_delta" and delta.get("thinking"):
            yield Reasoning(text_field(delta["thinking"]))
    elif kind == "message_start":
        message = data["message"]
        if message.get("model") is not None:
            yield Answered(upstream_label(transport, message["model"], 200))
        usage = message.get("usage") or {}
        yield Usage(usage.get("input_tokens"), usage.get("output_tokens"), final=False)
    elif kind == "message_delta":
        usage = data.get("usage") or {}
        if usage:
            yield Usage(usage.get("input_tokens"), usage.get("output_tokens"), final=True)
        reason = (data.get("delta") or {}).get("stop_reason")
        if reason:
            yield Finish(upstream_label(transport, reason))
    elif kind == "message_stop":
        yield Finish(None)
