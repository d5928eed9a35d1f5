"""Part of ``jupyter_streamchat.pytest_plugin``: the override of pytest-jupyter's ``jp_server_config``.

A module of its own because pytest lets the plugin registered last win for a fixture name, and
``pytest_plugin`` lists pytest-jupyter and then this module, so this one comes after pytest-jupyter.
"""

from __future__ import annotations

from typing import Any

import pytest
from traitlets.config import Config


@pytest.fixture
def jp_server_config(streamchat_server_config: dict[str, Any]) -> Config:
    """The test server's configuration: the extension enabled with ``streamchat_settings``."""
    return Config(streamchat_server_config)
