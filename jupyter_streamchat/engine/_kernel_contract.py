"""The names a server and its kernels agree on: where the server is, the kernel's credential, the root.

The server side (``server/_kernel_access.py``) publishes them; the kernel side (``kernel/_backends.py``)
reads them. They live here so that neither side imports the other.
"""

from __future__ import annotations

ENV_URL = "JUPYTER_STREAMCHAT_URL"
ENV_TOKEN = "JUPYTER_STREAMCHAT_TOKEN"
ENV_ROOT = "JUPYTER_STREAMCHAT_ROOT"
TOKEN_HEADER = "X-StreamChat-Token"
