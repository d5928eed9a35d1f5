from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from traitlets.config import Config

from harness.upstream import FakeUpstream

pytest_plugins = ("pytest_jupyter.jupyter_server", "jupyter_streamchat.pytest_plugin")

OPENAI_KEY = "sk-test-SECRET-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-test-SECRET-anthropic-0123456789"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def streamchat_settings(upstream: FakeUpstream) -> dict[str, Any]:
    return {
        "openai_base_url": upstream.openai_base_url,
        "openai_api_key": OPENAI_KEY,
        "anthropic_base_url": upstream.anthropic_base_url,
        "anthropic_api_key": ANTHROPIC_KEY,
        "ollama_enabled": False,
        "demo_speed": 50.0,
        "keepalive_interval": 1.0,
        "upstream_idle_timeout": 5.0,
    }


@pytest.fixture
def jp_server_config(streamchat_server_config: dict[str, Any]) -> Config:
    return Config(streamchat_server_config)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright, one per test module (browser tests, see harness/lab.py)."""
    from playwright.sync_api import sync_playwright

    from harness.lab import launch_browser

    playwright = sync_playwright().start()
    try:
        chromium = launch_browser(playwright)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
