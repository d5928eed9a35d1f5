"""Provider settings read from the environment: one home for the variable names and their defaults.

The server extension uses these as trait defaults and the in-process engine (a kernel that no
server started) uses them directly, so both see the same providers for the same environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

OPENAI_LISTED_MODELS = ["gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"]
ANTHROPIC_LISTED_MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5"]
OLLAMA_DEFAULT_URL = "http://127.0.0.1:11434"


def _get(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(name) or None


def openai_api_key(environ: Mapping[str, str] = os.environ) -> str | None:
    return _get(environ, "OPENAI_API_KEY")


def openai_base_url(environ: Mapping[str, str] = os.environ) -> str | None:
    return _get(environ, "OPENAI_BASE_URL")


def anthropic_api_key(environ: Mapping[str, str] = os.environ) -> str | None:
    return _get(environ, "ANTHROPIC_API_KEY")


def anthropic_base_url(environ: Mapping[str, str] = os.environ) -> str | None:
    return _get(environ, "ANTHROPIC_BASE_URL")


def ollama_url(environ: Mapping[str, str] = os.environ) -> str:
    host = environ.get("OLLAMA_HOST", "")
    if not host:
        return OLLAMA_DEFAULT_URL
    return host if "://" in host else f"http://{host}"


def openai_listed_models(base_url: str | None) -> list[str]:
    # api.openai.com lists hundreds of models; a custom base URL is asked for its own list instead.
    return [] if base_url else list(OPENAI_LISTED_MODELS)
