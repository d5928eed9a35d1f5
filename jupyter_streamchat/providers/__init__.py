"""Provider registry: which providers are configured, and which adapter serves a ``provider:model`` id."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..engine._errors import NotFound
from . import _environ
from ._asyncio_backend import AsyncioTransport
from ._base import (
    Answered,
    Delta,
    EventBatch,
    Finish,
    Provider,
    Reasoning,
    StreamEvent,
    UpstreamError,
    UpstreamSettings,
    Usage,
)
from ._redact import Redactor, secrets_of_url
from .anthropic import AnthropicProvider
from .demo import DemoProvider
from .openai import OpenAIProvider

__all__ = [
    "Answered",
    "AsyncioTransport",
    "Delta",
    "EventBatch",
    "Finish",
    "Provider",
    "ProviderConfig",
    "ProviderRegistry",
    "Reasoning",
    "StreamEvent",
    "UpstreamError",
    "UpstreamSettings",
    "Usage",
    "split_model_id",
]

OLLAMA_RECHECK_SECONDS = 30.0


def split_model_id(model_id: str) -> tuple[str, str]:
    provider, sep, model = model_id.partition(":")
    if not sep or not provider or not model:
        raise NotFound(f"model id must look like 'provider:model', got {model_id!r}")
    return provider, model


@dataclass
class ProviderConfig:
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_models: list[str] = field(default_factory=list)
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    anthropic_models: list[str] = field(default_factory=list)
    ollama_url: str = _environ.OLLAMA_DEFAULT_URL
    ollama_enabled: bool | None = None  # None: enabled when Ollama answers
    demo_enabled: bool = True
    demo_speed: float = 1.0
    default_model: str = ""
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ, **overrides: Any) -> ProviderConfig:
        """What the server extension would configure with no config file, for the in-process engine."""
        base_url = _environ.openai_base_url(environ)
        settings: dict[str, Any] = {
            "openai_api_key": _environ.openai_api_key(environ),
            "openai_base_url": base_url,
            "openai_models": _environ.openai_listed_models(base_url),
            "anthropic_api_key": _environ.anthropic_api_key(environ),
            "anthropic_base_url": _environ.anthropic_base_url(environ),
            "anthropic_models": list(_environ.ANTHROPIC_LISTED_MODELS),
            "ollama_url": _environ.ollama_url(environ),
        }
        settings.update(overrides)
        return cls(**settings)


class ProviderRegistry:
    def __init__(self, config: ProviderConfig) -> None:
        self._config = config
        self._providers: dict[str, Provider] = {}
        # Every provider redacts every configured secret: an upstream (or a proxy shared by two
        # providers) may echo another provider's key as well as its own.
        redactor = Redactor(
            [
                config.openai_api_key,
                config.anthropic_api_key,
                *secrets_of_url(config.openai_base_url),
                *secrets_of_url(config.anthropic_base_url),
                *secrets_of_url(config.ollama_url),
            ]
        )
        if config.demo_enabled:
            self._providers["demo"] = DemoProvider(config.demo_speed)
        if config.openai_api_key or config.openai_base_url:
            self._providers["openai"] = OpenAIProvider(
                "openai",
                config.openai_base_url or "https://api.openai.com/v1",
                config.openai_api_key,
                config.openai_models,
                config.upstream,
                # api.openai.com lists hundreds of models; a configured list is friendlier there.
                discover_models=bool(config.openai_base_url),
                redactor=redactor,
            )
        if config.anthropic_api_key or config.anthropic_base_url:
            self._providers["anthropic"] = AnthropicProvider(
                "anthropic",
                config.anthropic_base_url or "https://api.anthropic.com",
                config.anthropic_api_key,
                config.anthropic_models,
                config.upstream,
                redactor=redactor,
            )
        self._ollama: OpenAIProvider | None = None
        if config.ollama_enabled is not False:
            self._ollama = OpenAIProvider(
                "ollama", config.ollama_url.rstrip("/") + "/v1", None, None, config.upstream, redactor=redactor
            )
        self._ollama_seen = config.ollama_enabled is True
        self._ollama_checked = float("-inf")
        self._ollama_lock = asyncio.Lock()

    async def _active(self) -> dict[str, Provider]:
        if self._ollama is not None and self._config.ollama_enabled is None:
            async with self._ollama_lock:
                if time.monotonic() - self._ollama_checked > OLLAMA_RECHECK_SECONDS:
                    self._ollama_seen = await self._ollama.available()
                    self._ollama_checked = time.monotonic()
        active = dict(self._providers)
        if self._ollama is not None and self._ollama_seen:
            active["ollama"] = self._ollama
        return active

    async def resolve(self, model_id: str | None) -> tuple[str, Provider, str]:
        """Return ``(full id, provider, model)``; unknown providers or models are ``NotFound``."""
        model_id = model_id or await self.default_model()
        provider_name, model = split_model_id(model_id)
        provider = (await self._active()).get(provider_name)
        if provider is None:
            raise NotFound(f"provider {provider_name!r} is not configured")
        if not provider.knows_model(model):
            raise NotFound(f"unknown model {model_id!r}")
        return model_id, provider, model

    async def configured(self) -> list[str]:
        """The providers that answer requests now (a provider whose model list is empty is one too)."""
        return list(await self._active())

    async def list_models(self) -> list[dict[str, Any]]:
        active = await self._active()
        listings = await asyncio.gather(*(p.list_models() for p in active.values()))
        models = []
        for (name, provider), names in zip(active.items(), listings, strict=True):
            for model in names:
                title = provider.title(model) if isinstance(provider, DemoProvider) else model
                models.append({"id": f"{name}:{model}", "provider": name, "name": title})
        return models

    async def default_model(self) -> str:
        if self._config.default_model:
            return self._config.default_model
        for name in ("openai", "anthropic"):
            provider = self._providers.get(name)
            if provider is not None:
                listed = await provider.list_models()
                if listed:
                    return f"{name}:{listed[0]}"
        if "demo" in self._providers:
            return "demo:chat"
        models = await self.list_models()
        if not models:
            raise NotFound("no model is configured")
        return str(models[0]["id"])

    async def aclose(self) -> None:
        providers = list(self._providers.values())
        if self._ollama is not None:
            providers.append(self._ollama)
        await asyncio.gather(*(p.aclose() for p in providers), return_exceptions=True)
