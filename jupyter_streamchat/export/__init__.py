"""One branch of a conversation exported (SPEC 11): Markdown, HTML (the widgets' static output) and JSON.

Shared by ``history()`` in a kernel (``kernel/_history.py``) and the server's ``GET export`` (the panel's
"Export"), so the two can never write a branch differently. It imports the kernel's pure rendering modules
(Markdown, static HTML, stats), never a widget: the server must not need ipywidgets to load.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..kernel import _markdown, _static, _stats
from ..kernel._results import PaneResult

# A standalone page fetches nothing: no script, no remote image, font or style, even opened from disk.
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


def _seconds(start: Any, end: Any) -> float | None:
    """Seconds between two recorded ISO-8601 timestamps, or None when either is missing or unreadable."""
    try:
        return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
    except ValueError:
        return None


def turn_result(turn: Mapping[str, Any]) -> PaneResult:
    """A recorded turn as a widget pane's result, numbers included (computed from its timestamps as the panel
    does after a reload: time to first token from ``created``, tokens/s from ``first_token`` to ``finished``)."""
    reply = turn.get("reply") or {}
    usage = {k: v for k, v in (reply.get("usage") or {}).items() if isinstance(v, int) and not isinstance(v, bool)}
    first = turn.get("first_token")
    ttft = _seconds(turn.get("created"), first) if first else None
    tokens = usage.get("output_tokens")
    span = _seconds(first, turn.get("finished")) if first and turn.get("finished") else None
    rate = _stats.tokens_per_second(0.0, span, tokens or 0) if span is not None else None
    return {
        "run": turn.get("run"),
        "model": turn.get("model"),
        "status": str(reply.get("status") or "unknown"),
        "text": str(reply.get("content") or ""),
        "reasoning": str(reply.get("reasoning") or ""),
        "usage": usage,
        "finish_reason": reply.get("finish_reason"),
        "error": reply.get("error"),
        "conversation": None,
        "notebook": None,
        "recorded": None,
        "context": list(turn.get("context") or []),
        "ttft": max(0.0, ttft) if ttft is not None else None,
        "tokens_per_second": rate,
        "output_tokens": tokens,
        "cost": turn.get("cost"),
        "parent": turn.get("parent"),
        "params": dict(turn.get("params") or {}),
        "response_model": turn.get("response_model"),
        "system_fingerprint": turn.get("system_fingerprint"),
        "messages_sha256": turn.get("messages_sha256"),
    }


def _prompt(turn: Mapping[str, Any]) -> str:
    return str((turn.get("prompt") or {}).get("content") or "")


def total_cost(turns: Sequence[Mapping[str, Any]]) -> float | None:
    """USD for the turns with a known cost (None when none has one: unknown, not zero)."""
    costs = [turn["cost"] for turn in turns if isinstance(turn.get("cost"), int | float)]
    return round(sum(costs), 9) if costs else None


def branch_markdown(turns: Sequence[Mapping[str, Any]]) -> str:
    """Each turn as a "**You**" prompt and a "**model**" reply, the reply's Markdown as it was streamed."""
    parts = []
    for turn in turns:
        reply = turn_result(turn)
        stats = " · ".join(
            part
            for part in (
                reply["status"],
                _stats.stats_text(reply["ttft"], reply["tokens_per_second"], reply["output_tokens"]),
                _stats.cost_text(reply["cost"]),
            )
            if part
        )
        parts.append(f"**You**\n\n{_prompt(turn)}\n\n**{reply['model']}** ({stats})\n\n{reply['text']}")
    return "\n\n---\n\n".join(parts) + ("\n" if parts else "")


def branch_html(turns: Sequence[Mapping[str, Any]]) -> str:
    """The same rendering as the widgets' static output: each prompt, then its reply as a pane (an output's
    HTML: the style tag, then the turns)."""
    rendered = []
    for turn in turns:
        result = turn_result(turn)
        rendered.append(
            f'<div class="jsc-prompt">{_markdown.render(_prompt(turn))}</div>'
            f"{_static.context_html(result['context'])}{_static.pane_html(result)}"
        )
    total = _stats.cost_text(total_cost(turns))
    footer = f"{len(turns)} turn{'s' if len(turns) != 1 else ''}" + (f" · {total}" if total else "")
    return (
        f'{_static.STYLE_TAG}<div class="jsc-root jsc-history">{"".join(rendered)}'
        f'<div class="jsc-note">{html.escape(footer)}</div></div>'
    )


def export_title(notebook: str | None, turns: Sequence[Mapping[str, Any]]) -> str:
    """The notebook (or "Chat") and the branch's first prompt, on one line of at most 60 characters of it."""
    first = " ".join(_prompt(turns[0]).split()) if turns else ""
    about = f"{first[:59]}…" if len(first) > 60 else first
    return f"{notebook or 'Chat'}: {about}"


def standalone_html(notebook: str | None, turns: Sequence[Mapping[str, Any]]) -> str:
    """``branch_html`` as a page of its own: a title, the static output's CSS and a policy that fetches nothing."""
    title = html.escape(export_title(notebook, turns))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{PAGE_POLICY}">'
        f"<title>{title}</title></head>\n<body>{branch_html(turns)}</body></html>\n"
    )


def branch_json(notebook: str | None, conversation: str, turns: Sequence[Mapping[str, Any]]) -> str:
    """Where the branch comes from and its turns as recorded, first turn first."""
    document = {"notebook": notebook, "conversation": conversation, "turns": list(turns)}
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


# The formats of ``GET export``: a file extension and a media type each.
FORMATS: dict[str, tuple[str, str]] = {
    "markdown": ("md", "text/markdown; charset=utf-8"),
    "html": ("html", "text/html; charset=utf-8"),
    "json": ("json", "application/json; charset=utf-8"),
}


def render(fmt: str, notebook: str | None, conversation: str, turns: Sequence[Mapping[str, Any]]) -> str:
    """The branch in ``fmt`` (a key of ``FORMATS``)."""
    if fmt == "markdown":
        return branch_markdown(turns)
    if fmt == "html":
        return standalone_html(notebook, turns)
    return branch_json(notebook, conversation, turns)


def file_name(notebook: str | None, conversation: str, fmt: str) -> str:
    """``<notebook stem>-<conversation>.<ext>``: letters, digits, ``-``, ``_`` and ``.`` only (a safe header)."""
    stem = (notebook or "chat").rsplit("/", 1)[-1].removesuffix(".ipynb")

    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:60]

    return f"{safe(stem)}-{safe(conversation)}.{FORMATS[fmt][0]}"
