"""Pytest fixtures for testing against a Jupyter server running jupyter_streamchat.

Use with ``pytest_plugins = ("pytest_jupyter.jupyter_server",)`` and enable the extension in
``jp_server_config`` (``streamchat_server_config`` does both the enabling and the settings).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from .client import StreamChatClient


@pytest.fixture
def streamchat_settings() -> dict[str, Any]:
    """``c.StreamChat`` settings for the test server; override this fixture to change them."""
    return {"ollama_enabled": False}


@pytest.fixture
def streamchat_server_config(streamchat_settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_streamchat": True}},
        "StreamChat": dict(streamchat_settings),
    }


@pytest.fixture
def streamchat_url(jp_serverapp: Any, http_server_client: Any, jp_http_port: int, jp_base_url: str) -> str:
    # http_server_client makes pytest-jupyter actually serve on jp_http_port.
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}"


@pytest.fixture
def streamchat_client(
    jp_serverapp: Any, streamchat_url: str, jp_asyncio_loop: asyncio.AbstractEventLoop
) -> Iterator[StreamChatClient]:
    """An HTTP client for ``{base_url}streamchat/``, authenticated with the server's token."""
    client = StreamChatClient(streamchat_url, jp_serverapp.identity_provider.token)
    yield client
    jp_asyncio_loop.run_until_complete(client.aclose())
