"""The chat service: turns a validated request into a run. Shared by the HTTP handlers and kernel clients."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ._paths import confine
from ._validation import BodyLimits, ChatBody
from .providers import ProviderRegistry
from .runs import Run, RunManager, RunRequest

log = logging.getLogger("jupyter_streamchat")


@dataclass
class ChatService:
    registry: ProviderRegistry
    runs: RunManager
    body_limits: BodyLimits
    root_dir: str
    keepalive_interval: float = 15.0

    async def start_run(self, body: ChatBody, mode: str) -> Run:
        model_id, provider, model = await self.registry.resolve(body.model)
        notebook = confine(self.root_dir, body.notebook) if body.notebook is not None else None
        messages = body.messages if body.messages is not None else [{"role": "user", "content": body.prompt or ""}]
        request = RunRequest(model_id, messages, body.options, notebook, body.conversation)
        run = self.runs.start(request, provider, model, mode)
        log.info("streamchat run %s started: %s (%s)", run.id, model_id, mode)
        return run

    async def aclose(self, timeout: float) -> None:
        await self.runs.shutdown(timeout)
        await self.registry.aclose()
