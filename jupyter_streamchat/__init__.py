"""LLM chat inside Jupyter that never loses a word.

In a notebook: ``from jupyter_streamchat import chat, compare`` or ``%load_ext jupyter_streamchat``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "chat", "compare"]

if TYPE_CHECKING:
    from .context import ContextLimits
    from .kernel._widgets import ChatWidget, CompareWidget


def chat(
    prompt: str,
    model: str | None = None,
    conversation: str | None = None,
    *,
    context: Sequence[Any] | None = None,
    context_limits: ContextLimits | None = None,
) -> ChatWidget:
    """Stream ``model``'s reply to ``prompt`` into a widget (with Stop) and return the widget.

    Successive calls in one notebook continue one conversation unless ``conversation`` names
    another. ``await widget.done`` waits for the end; ``widget.results`` holds the outcome.
    ``context``: objects (a DataFrame, an array, a figure, an image, text, anything) or names of
    variables, sent with the prompt as compact summaries; ``@name`` in the prompt adds a variable too.
    """
    from .kernel._widgets import chat as _chat

    return _chat(prompt, model=model, conversation=conversation, context=context, context_limits=context_limits)


def compare(
    prompt: str,
    models: Sequence[str],
    *,
    context: Sequence[Any] | None = None,
    context_limits: ContextLimits | None = None,
) -> CompareWidget:
    """Send ``prompt`` to 2-4 models side by side, each pane with its own Stop, plus Stop all."""
    from .kernel._widgets import compare as _compare

    return _compare(prompt, models, context=context, context_limits=context_limits)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_streamchat``: ``%%chat``, ``%%compare`` and ``%chat_models``."""
    from .kernel._magics import StreamChatMagics

    ipython.register_magics(StreamChatMagics)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import StreamChatApp

    return [{"module": "jupyter_streamchat", "app": StreamChatApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-streamchat"}]
