"""Pytest fixtures for testing against a real Jupyter server running jupyter_streamchat.

One line in your top-level ``conftest.py`` is enough (with ``pytest-jupyter[server]`` installed)::

    pytest_plugins = ["jupyter_streamchat.pytest_plugin"]

It loads pytest-jupyter's server fixtures and serves the extension: ``jp_server_config`` is
``streamchat_server_config``. Then ``streamchat_client`` is an authenticated client, and
``streamchat_settings`` (override it) holds the ``c.StreamChat`` settings. A ``jp_server_config`` of
your own conftest still wins; build it on ``streamchat_server_config`` to keep the extension enabled.
Do not set pytest-asyncio's ``asyncio_mode = "auto"``: pytest-jupyter runs ``async def`` tests itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from .client import StreamChatClient

# pytest registers these after this module, so their fixtures override same-named ones defined here: the
# jp_server_config that enables the extension lives in the last one, after pytest-jupyter's own.
pytest_plugins = ("pytest_jupyter.jupyter_server", "jupyter_streamchat._pytest_server")


@pytest.fixture
def streamchat_settings() -> dict[str, Any]:
    """``c.StreamChat`` settings for the test server; override this fixture to change them."""
    return {"ollama_enabled": False}


@pytest.fixture
def streamchat_server_config(streamchat_settings: dict[str, Any]) -> dict[str, Any]:
    """Server configuration that enables the extension with ``streamchat_settings``."""
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
