"""How kernels started by this server reach it, with nothing typed by the user.

The server publishes three environment variables before any kernel starts; kernels inherit the
server's environment (jupyter_server's session manager copies ``os.environ`` into every kernel it
starts), so a kernel finds the URL, a credential and the root its ``JPY_SESSION_NAME`` is under.

The credential is not the server's token: it is a random secret that only ``streamchat/`` handlers
accept (in their own ``prepare``, before Jupyter's identity provider), so a kernel, or code the
kernel runs, cannot use it to open contents, kernels or terminals.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..engine._kernel_contract import ENV_ROOT, ENV_TOKEN, ENV_URL

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

KERNEL_USERNAME = "streamchat-kernel"

_WILDCARD_HOSTS = {"", "0.0.0.0", "*", "localhost", "::"}


class KernelAccess:
    """The credential kernels hold, and the environment that hands it to them."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(32)
        self._saved: dict[str, str | None] = {}

    def accepts(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self.token.encode())

    def publish(self, serverapp: ServerApp) -> None:
        """Export the link for every kernel started from now on (restored by ``withdraw``)."""
        values = {
            ENV_URL: server_url(serverapp),
            ENV_TOKEN: self.token,
            ENV_ROOT: os.path.realpath(serverapp.kernel_manager.root_dir or serverapp.root_dir),
        }
        for name, value in values.items():
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def withdraw(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


def server_url(serverapp: ServerApp) -> str:
    """Where a process on this machine reaches the server directly (not through any proxy in front)."""
    base_url = serverapp.base_url if serverapp.base_url.endswith("/") else serverapp.base_url + "/"
    if getattr(serverapp, "sock", ""):
        return f"http+unix://{quote(serverapp.sock, safe='')}{base_url}"
    scheme = "https" if serverapp.certfile else "http"
    host = serverapp.ip or ""
    if host in _WILDCARD_HOSTS:
        host = "127.0.0.1"
    else:
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass  # a host name
    return f"{scheme}://{host}:{serverapp.port}{base_url}"
