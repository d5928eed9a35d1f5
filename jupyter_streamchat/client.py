"""``jupyter_streamchat.client.StreamChatClient``: the documented import path of the API client.

The client lives with the rest of the kernel side in ``kernel/client.py``; this module keeps the
public name stable.
"""

from __future__ import annotations

from .kernel.client import StreamChatAPIError, StreamChatClient

__all__ = ["StreamChatAPIError", "StreamChatClient"]
