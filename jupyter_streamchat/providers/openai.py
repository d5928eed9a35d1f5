"""OpenAI chat-completions streaming (also vLLM, llama.cpp server, LM Studio, Ollama's /v1, proxies)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from ..engine._sse import SSEMessage
from ._base import (
    Answered,
    EventBatch,
    Finish,
    HTTPTransport,
    Reasoning,
    StreamEvent,
    UpstreamError,
    UpstreamSettings,
    Usage,
    decode_events,
    log,
    parse_json_chunk,
    stream_batches,
    text_field,
    upstream_label,
)
from ._parts import ChatMessage, to_openai
from ._redact import Redactor
from ._think import LeadingThinkSplitter

MODEL_LIST_TTL = 60.0


class OpenAIProvider:
    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None = None,
        models: list[str] | None = None,
        settings: UpstreamSettings | None = None,
        discover_models: bool = True,
        redactor: Redactor | None = None,
    ) -> None:
        self.name = name
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._transport = HTTPTransport(
            base_url,
            name,
            headers=headers,
            settings=settings or UpstreamSettings(),
            redactor=(redactor or Redactor()).including([api_key]),
        )
        self._configured_models = list(models or [])
        self._discover = discover_models
        self._discovered: list[str] = []
        self._discovered_at = float("-inf")

    @property
    def settings(self) -> UpstreamSettings:
        return self._transport.settings

    def knows_model(self, model: str) -> bool:
        # Any model name is accepted for a configured provider: the upstream decides.
        return bool(model)

    async def list_models(self) -> list[str]:
        if self._configured_models or not self._discover:
            return list(self._configured_models)
        if time.monotonic() - self._discovered_at > MODEL_LIST_TTL:
            self._discovered_at = time.monotonic()
            try:
                data = await self._transport.get_json("models")
                listed = (item["id"] for item in data.get("data", []) if isinstance(item, dict) and "id" in item)
                self._discovered = sorted(upstream_label(self._transport, model, 200) or "" for model in listed)
            except Exception as exc:  # a model list is a convenience; never fail the caller for it
                log.debug("could not list %s models: %s", self.name, type(exc).__name__)
        return list(self._discovered)

    async def available(self) -> bool:
        try:
            await self._transport.get_json("models", timeout=0.5)
        except Exception:
            return False
        return True

    def stream(self, model: str, messages: list[ChatMessage], options: Mapping[str, Any]) -> AsyncIterator[EventBatch]:
        body: dict[str, Any] = {
            "model": model,
            "messages": to_openai(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        # temperature, max_tokens, seed, top_p: the chat-completions names (see engine/_validation.py)
        body.update({k: v for k, v in options.items() if v is not None})
        splitter = LeadingThinkSplitter()
        transport = self._transport
        answered = _AnsweredBy(transport)

        def decode(message: SSEMessage) -> tuple[list[StreamEvent], bool]:
            if message.data == "[DONE]":
                return [*splitter.flush(), Finish(None)], True
            chunk = parse_json_chunk(message.data, transport)
            if not isinstance(chunk, dict):
                raise UpstreamError("upstream_malformed", f"{self.name} sent a non-object chunk")
            if "error" in chunk:
                raise UpstreamError("upstream_error", transport.clean(_error_text(chunk["error"])))
            events = decode_events(transport, "chunk shape", _chunk_events, chunk, splitter, transport)
            news = answered.news(chunk)
            return ([news, *events] if news is not None else events), False

        # A stream cut off inside a leading <think> block still delivers the thought it had.
        return stream_batches(self._transport, "chat/completions", body, decode, at_end=splitter.flush)

    async def aclose(self) -> None:
        await self._transport.aclose()


class _AnsweredBy:
    """Who answered, told once (and again only if it changes): every chunk names its model and usually the
    same ``system_fingerprint``, so the per-token cost is two lookups and two comparisons."""

    __slots__ = ("_fingerprint", "_model", "_transport")

    def __init__(self, transport: HTTPTransport) -> None:
        self._transport = transport
        self._model: object = None
        self._fingerprint: object = None

    def news(self, chunk: dict[str, Any]) -> Answered | None:
        model, fingerprint = chunk.get("model"), chunk.get("system_fingerprint")
        if (model is None or model == self._model) and (fingerprint is None or fingerprint == self._fingerprint):
            return None
        if model is not None:
            self._model = model
        if fingerprint is not None:
            self._fingerprint = fingerprint
        return Answered(
            upstream_label(self._transport, self._model, 200) if self._model is not None else None,
            upstream_label(self._transport, self._fingerprint, 200) if self._fingerprint is not None else None,
        )


def _chunk_events(
    chunk: dict[str, Any], splitter: LeadingThinkSplitter, transport: HTTPTransport
) -> Iterator[StreamEvent]:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        thought = delta.get("reasoning_content") or delta.get("reasoning")
        if thought:
            yield Reasoning(text_field(thought))
        content = delta.get("content")
        if content:
            yield from splitter.feed(text_field(content))
        if choice.get("finish_reason"):
            yield from splitter.flush()
            yield Finish(upstream_label(transport, choice["finish_reason"]))
    usage = chunk.get("usage")
    if usage:
        # The final usage chunk has no choices; some servers also report running usage on content chunks.
        yield Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"), final=not chunk.get("choices"))


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
