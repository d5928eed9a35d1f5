"""The built-in offline ``demo`` provider: no key, no network, honest about what it is.

It streams canned Markdown at a realistic pace so every feature (Stop, re-attach, compare,
persistence, Regenerate) can be tried on a fresh machine. It does not understand the prompt.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._base import Answered, Delta, EventBatch, Finish, Reasoning, Usage
from ._parts import ChatMessage, describe_received, prompt_text, text_of


@dataclass(frozen=True, slots=True)
class DemoVariant:
    title: str
    seconds_per_token: float
    paragraphs: int
    thinks: bool = False


VARIANTS: dict[str, DemoVariant] = {
    "chat": DemoVariant("Demo (offline)", 0.025, 3),
    "fast": DemoVariant("Demo fast (offline)", 0.002, 3),
    "slow": DemoVariant("Demo slow (offline)", 0.2, 2),
    "long": DemoVariant("Demo long (offline)", 0.004, 60),
    "thinker": DemoVariant("Demo thinker (offline)", 0.02, 2, thinks=True),
}

_TOKEN = re.compile(r"\s*\S+")

_PARAGRAPHS = [
    "Streaming keeps every token: if you press **Stop**, the partial answer is kept and recorded.",
    "Here is a small example you could run in the next cell:\n\n```python\nimport math\n\n"
    "print(sum(math.sqrt(i) for i in range(10)))\n```",
    "- Runs survive a reload of the page.\n- Compare panes stop on their own.\n- Nothing is lost.",
    "Swap in a real model by setting `OPENAI_API_KEY`, `ANTHROPIC_API_KEY` or `OPENAI_BASE_URL`.",
]


def _quoted(text: str) -> str:
    return " ".join(text.split())[:120]


def paragraph_order(paragraphs: int, options: Mapping[str, Any]) -> list[int]:
    """Which canned paragraphs a reply shows, in order; always the same ones, so only their order varies.

    Like a real model, a reply is drawn anew each time (so Regenerate shows a different alternative), while
    a ``seed`` gives the same reply every time and temperature 0 the canonical one.
    """
    order = list(range(min(paragraphs, len(_PARAGRAPHS))))
    seed = options.get("seed")
    if seed is not None or options.get("temperature") != 0:
        random.Random(seed).shuffle(order)
    return [order[i % len(order)] for i in range(paragraphs)]


def _reply(prompt: str, order: list[int], received: str = "", system: str = "") -> str:
    quoted = _quoted(prompt) or "(empty prompt)"
    parts = [f"*This is the offline demo model; it does not understand you.* You wrote: “{quoted}”."]
    if system:
        parts.append(f"Your system prompt: “{_quoted(system)}”.")
    if received:
        parts.append(f"Besides your words I received: {received}.")
    parts += [_PARAGRAPHS[i] for i in order]
    return "\n\n".join(parts)


def _thoughts(prompt: str) -> str:
    return f"The user wrote {len(prompt.split())} words. A demo model has nothing to reason about, so it says so."


class DemoProvider:
    name = "demo"

    def __init__(self, speed: float = 1.0) -> None:
        # ``speed`` > 1 makes every variant faster (tests use it to keep the suite short).
        self._speed = speed

    async def list_models(self) -> list[str]:
        return list(VARIANTS)

    def knows_model(self, model: str) -> bool:
        return model in VARIANTS

    @staticmethod
    def title(model: str) -> str:
        return VARIANTS[model].title

    async def stream(
        self, model: str, messages: list[ChatMessage], options: Mapping[str, Any]
    ) -> AsyncIterator[EventBatch]:
        variant = VARIANTS[model]
        prompt = next((prompt_text(m["content"]) for m in reversed(messages) if m["role"] == "user"), "")
        received = describe_received(messages)
        system = "\n\n".join(text_of(m["content"]) for m in messages if m["role"] == "system")
        delay = variant.seconds_per_token / self._speed
        max_tokens = options.get("max_tokens") or 1_000_000
        input_tokens = sum(len(text_of(m["content"]).split()) for m in messages)
        yield [Answered(model), Usage(input_tokens, None, final=False)]
        if variant.thinks:
            for token in _TOKEN.findall(_thoughts(prompt)):
                await asyncio.sleep(delay)
                yield [Reasoning(token)]
        produced = 0
        order = paragraph_order(variant.paragraphs, options)
        for token in _TOKEN.findall(_reply(prompt, order, received, system)):
            if produced >= max_tokens:
                break
            await asyncio.sleep(delay)
            produced += 1
            yield [Delta(token)]
        yield [Finish("length" if produced >= max_tokens else "stop"), Usage(input_tokens, produced, final=True)]

    async def aclose(self) -> None:
        return None
