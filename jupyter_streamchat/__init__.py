"""LLM chat inside Jupyter that never loses a word.

In a notebook: ``from jupyter_streamchat import chat, compare`` or ``%load_ext jupyter_streamchat``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .engine.contract import DEFAULT_CONVERSATION

__version__ = "0.1.0"

__all__ = ["__version__", "chat", "compare", "history", "replay"]

if TYPE_CHECKING:
    from .context import ContextLimits
    from .kernel._chat import ChatWidget
    from .kernel._history import History, ReplayWidget
    from .kernel._widgets import CompareWidget


def chat(
    prompt: str,
    model: str | None = None,
    conversation: str | None = None,
    *,
    context: Sequence[Any] | None = None,
    context_limits: ContextLimits | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> ChatWidget:
    """Stream ``model``'s reply to ``prompt`` into a widget (with Stop and Regenerate) and return the widget.

    Successive calls in one notebook continue one conversation unless ``conversation`` names
    another. ``await widget.done`` waits for the end; ``widget.results`` holds the outcome.
    ``context``: objects (a DataFrame, an array, a figure, an image, text, anything) or names of
    variables, sent with the prompt as compact summaries; ``@name`` in the prompt adds a variable too.
    ``system``, ``temperature`` (0-2), ``max_tokens`` (> 0), ``seed``: sent where the provider takes them
    and recorded with the turn; a bad value raises ``ValueError`` and nothing is sent.
    ``widget.regenerate()`` asks again (a new alternative reply for the same prompt and history).
    """
    from .kernel._widgets import chat as _chat

    return _chat(
        prompt,
        model=model,
        conversation=conversation,
        context=context,
        context_limits=context_limits,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
    )


def compare(
    prompt: str,
    models: Sequence[str],
    *,
    context: Sequence[Any] | None = None,
    context_limits: ContextLimits | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> CompareWidget:
    """Send ``prompt`` to 2-4 models side by side, each pane with its own Stop, plus Stop all; the same
    ``system`` prompt and options go to each model."""
    from .kernel._widgets import compare as _compare

    return _compare(
        prompt,
        models,
        context=context,
        context_limits=context_limits,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
    )


def history(conversation: str = DEFAULT_CONVERSATION, notebook: str | None = None) -> History:
    """The active branch of ``conversation`` in ``notebook`` (default: this kernel's notebook), root first:
    a list of turns as the notebook records them, with ``.to_markdown()``, ``.to_html()`` (as the widgets
    render) and ``.to_dataframe()`` (one row per turn: model, status, tokens, cost, TTFT, tokens/s)."""
    from .kernel._history import history as _history

    return _history(conversation, notebook)


def replay(run_id: str, notebook: str | None = None) -> ReplayWidget:
    """Run a recorded turn again (its model, parameters and history) as a new alternative; once it has
    ended, ``widget.comparison`` says whether the same messages were sent and whether the provider's model
    or system fingerprint changed."""
    from .kernel._history import replay as _replay

    return _replay(run_id, notebook)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_streamchat``: ``%%chat``, ``%%compare`` and ``%chat_models``."""
    from .kernel._magics import StreamChatMagics

    ipython.register_magics(StreamChatMagics)


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import StreamChatApp

    return [{"module": "jupyter_streamchat", "app": StreamChatApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-streamchat"}]
