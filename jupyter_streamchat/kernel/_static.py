"""Static HTML for finished widgets: what a saved notebook shows with no kernel (GitHub, nbviewer, reopen).

Everything here is a pure function of the panes' final results, so the live widget and the saved
output can never disagree about what a run said.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from ..engine.contract import TERMINAL_STATUSES
from . import _markdown, _stats
from ._results import Measure, PaneResult

# JupyterLab variables with fallbacks, so the same rules work in Lab (light or dark) and elsewhere.
STYLE = """
.jsc-root{font-family:var(--jp-ui-font-family,system-ui,sans-serif);color:var(--jp-ui-font-color1,#222)}
.jsc-panes{display:flex;flex-wrap:wrap;gap:8px;align-items:stretch}
.jsc-pane{flex:1 1 300px;min-width:260px;margin:2px;border:1px solid var(--jp-border-color2,#ddd);border-radius:6px;
padding:6px 10px;box-sizing:border-box;background:var(--jp-layout-color1,#fff)}
.jsc-style{height:0;min-height:0;margin:0;overflow:hidden}
.jsc-root .widget-html,.jsc-root .widget-html-content{min-height:0;height:auto;line-height:1.5}
.jsc-root .jsc-head .widget-html-content{line-height:28px}
.jsc-head{display:flex;flex-wrap:wrap;gap:6px;align-items:baseline;font-size:12px}
.jsc-model{font-weight:600;font-size:13px}
.jsc-stats{color:var(--jp-ui-font-color2,#666);font-size:12px}
.jsc-status{display:inline-block;padding:0 6px;border-radius:8px;font-size:11px;font-weight:600;
background:var(--jp-layout-color3,#e8e8e8);color:var(--jp-ui-font-color1,#222)}
.jsc-status-running{background:var(--jp-brand-color3,#cfe3fb)}
.jsc-status-completed{background:var(--jp-success-color3,#cdeccd)}
.jsc-status-stopped{background:var(--jp-warn-color3,#fde9c2)}
.jsc-status-failed,.jsc-status-interrupted{background:var(--jp-error-color3,#f8d3d3)}
.jsc-status-running,.jsc-status-completed,.jsc-status-stopped,.jsc-status-failed,.jsc-status-interrupted{
color:#1b1b1b}
.jsc-root .jsc-reply{font-size:var(--jp-content-font-size1,14px);line-height:1.5;overflow-wrap:anywhere}
.jsc-root .jsc-reply pre{background:var(--jp-cell-editor-background,#f6f8fa);padding:6px 8px;border-radius:4px;
overflow-x:auto;font-size:12px;margin:6px 0}
.jsc-root .jsc-reply pre.jsc-code-segment{margin:0;border-radius:0;padding-top:0;padding-bottom:0}
.jsc-root .jsc-reply pre.jsc-code-segment.jsc-first{margin-top:6px;border-radius:4px 4px 0 0;padding-top:6px}
.jsc-root .jsc-reply pre.jsc-code-segment.jsc-last{margin-bottom:6px;border-radius:0 0 4px 4px;padding-bottom:6px}
.jsc-root .jsc-reply table{border-collapse:collapse}
.jsc-root .jsc-reply td,.jsc-root .jsc-reply th{border:1px solid var(--jp-border-color2,#ccc);padding:2px 6px}
.jsc-root .jsc-reply p{margin:6px 0}
.jsc-error{color:var(--jp-error-color1,#b00);font-size:12px}
.jsc-note{color:var(--jp-ui-font-color3,#888);font-size:11px}
.jsc-reasoning{color:var(--jp-ui-font-color2,#666);font-size:12px}
.jsc-root .jsc-summary table{border-collapse:collapse;font-size:12px;margin-top:6px}
.jsc-root .jsc-summary td,.jsc-root .jsc-summary th{padding:2px 8px;text-align:left;
border-bottom:1px solid var(--jp-border-color2,#ddd)}
.jsc-context{font-size:12px;color:var(--jp-ui-font-color2,#666);margin:2px 0}
.jsc-chip{display:inline-block;margin:0 4px;padding:0 6px;border-radius:8px;
border:1px solid var(--jp-border-color2,#ccc);color:var(--jp-ui-font-color1,#222)}
.jsc-chip-kind{margin-left:4px;color:var(--jp-ui-font-color2,#666);font-size:11px}
.jsc-hidden{display:none !important}
.jsc-prompt{margin:10px 0 4px;padding:2px 10px;border-left:3px solid var(--jp-brand-color1,#1976d2);
font-size:var(--jp-content-font-size1,14px)}
.jsc-controls{gap:4px;align-items:center;flex-wrap:wrap}
.jsc-root .jsc-controls .jupyter-button,.jsc-controls .jupyter-button{width:auto;height:24px;font-size:12px;
padding:0 8px;margin:2px 0}
.jsc-controls .widget-html-content{white-space:nowrap;line-height:24px;min-height:0}
.jsc-alt,.jsc-alt-count{font-size:12px;color:var(--jp-ui-font-color2,#666)}
.jsc-bar{height:8px;background:var(--jp-brand-color1,#1976d2);border-radius:2px;min-width:1px}
.jsc-root .jsc-reply pre .c{color:var(--jp-mirror-editor-comment-color,#6a737d);font-style:italic}
.jsc-root .jsc-reply pre .k{color:var(--jp-mirror-editor-keyword-color,#d73a49);font-weight:600}
.jsc-root .jsc-reply pre .s{color:var(--jp-mirror-editor-string-color,#22863a)}
.jsc-root .jsc-reply pre .m{color:var(--jp-mirror-editor-number-color,#005cc5)}
.jsc-root .jsc-reply pre .nf{color:var(--jp-mirror-editor-def-color,#6f42c1)}
.jsc-root .jsc-reply pre .nb{color:var(--jp-mirror-editor-builtin-color,#e36209)}
"""

STYLE_TAG = f"<style>{STYLE}</style>"


def status_badge(status: str) -> str:
    return f'<span class="jsc-status jsc-status-{html.escape(status)}">{html.escape(status)}</span>'


def stats_line(result: PaneResult) -> str:
    """The status badge, then the numbers in the wording the panel uses too (``_stats.stats_text``)."""
    numbers = _stats.stats_text(result["ttft"], result["tokens_per_second"], result["output_tokens"])
    cost = _stats.cost_text(result.get("cost"))
    return " · ".join(part for part in (status_badge(result["status"]), html.escape(numbers), cost) if part)


def error_line(error: Mapping[str, Any] | None) -> str:
    if not error:
        return ""
    code = html.escape(str(error.get("code") or "error"))
    return f'<div class="jsc-error" role="alert">⚠ {code}: {html.escape(str(error.get("message") or ""))}</div>'


def pane_html(result: PaneResult) -> str:
    parts = [
        '<div class="jsc-pane">',
        '<div class="jsc-head">',
        f'<span class="jsc-model">{html.escape(str(result["model"] or "default model"))}</span>',
        f'<span class="jsc-stats">{stats_line(result)}</span>',
        "</div>",
    ]
    if result["reasoning"]:
        parts.append(
            '<details class="jsc-reasoning"><summary>Reasoning</summary>'
            f"{_markdown.render(result['reasoning'])}</details>"
        )
    parts.append(f'<div class="jsc-reply">{_markdown.render(result["text"])}</div>')
    parts.append(error_line(result["error"]))
    parts.append("</div>")
    return "".join(parts)


def context_html(records: Sequence[Mapping[str, Any]]) -> str:
    """The context a turn sent, as chips: its name (or kind), its kind, and its token estimate on hover."""
    if not records:
        return ""
    chips = []
    for record in records:
        kind = str(record.get("kind") or "")
        tokens = record.get("tokens_estimate")
        title = f"{kind}, about {tokens} tokens" if isinstance(tokens, int) else kind
        chips.append(
            f'<span class="jsc-chip" title="{html.escape(title)}">{html.escape(str(record.get("name") or kind))}'
            f'<span class="jsc-chip-kind">{html.escape(kind)}</span></span>'
        )
    return f'<div class="jsc-context" role="group" aria-label="Context sent">Context: {"".join(chips)}</div>'


_SUMMARY_COLUMNS: tuple[tuple[str, Measure, str], ...] = (
    ("first token (s)", "ttft", "{:.2f}"),
    ("tokens/s", "tokens_per_second", "{:.1f}"),
    ("output tokens", "output_tokens", "{:d}"),
)


def summary_html(results: Sequence[PaneResult]) -> str:
    """A table with simple bars: time to first token, tokens per second, output tokens, status."""
    columns = _SUMMARY_COLUMNS
    peaks = {key: max((r[key] or 0) for r in results) or 1 for _, key, _ in columns}
    head = "".join(f"<th>{title}</th>" for title, _, _ in columns)
    rows = []
    for result in results:
        cells = [f"<td>{html.escape(str(result['model']))}</td>", f"<td>{status_badge(result['status'])}</td>"]
        for _, key, fmt in columns:
            value = result[key]
            if value is None:
                cells.append("<td>&ndash;</td>")
                continue
            width = max(1, round(100 * value / peaks[key]))
            cells.append(
                f'<td>{fmt.format(value)}<div class="jsc-bar" style="width:{width}px" '
                f'title="{fmt.format(value)}"></div></td>'
            )
        # Cost only where the model has a price (unknown is not zero); tokens are always shown.
        cells.append(f"<td>{_stats.cost_text(result.get('cost')) or '&ndash;'}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<div class="jsc-summary"><table><thead><tr><th>model</th><th>status</th>'
        f"{head}<th>cost</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def chat_html(result: PaneResult, note: str, place: tuple[int, int] | None = None) -> str:
    """A chat's reply; ``place``: (n, of) when it is one of several alternatives (the one shown)."""
    chips = context_html(result["context"])
    where = f'<div class="jsc-alt">alternative {place[0]} / {place[1]}</div>' if place else ""
    return (
        f'{STYLE_TAG}<div class="jsc-root">{chips}{where}{pane_html(result)}'
        f'<div class="jsc-note">{html.escape(note)}</div></div>'
    )


def compare_html(results: Sequence[PaneResult], note: str) -> str:
    panes = "".join(pane_html(result) for result in results)
    chips = context_html(results[0]["context"]) if results else ""
    return (
        f'{STYLE_TAG}<div class="jsc-root">{chips}<div class="jsc-panes">{panes}</div>{summary_html(results)}'
        f'<div class="jsc-note">{html.escape(note)}</div></div>'
    )


def record_phrase(result: PaneResult) -> str | None:
    """Whether one run is recorded in its notebook, as the server said it (None: it names no notebook)."""
    recorded, notebook = result["recorded"], result["notebook"]
    if recorded is None:
        return None
    if recorded == "recorded":
        return f"Recorded in {notebook}"
    if recorded == "gone":
        return f"Not recorded: {notebook} was deleted (the run can still be read from the server)"
    if recorded == "refused":
        return "Not recorded: the request was refused, nothing was started"
    if recorded == "unknown":
        return f"Not confirmed: the server could not say whether {notebook} holds this turn"
    if result["status"] not in TERMINAL_STATUSES:
        return f"Not recorded yet: the turn goes to {notebook} when the reply ends"
    return f"Not recorded in {notebook} yet: the server has not confirmed it"


def record_note(results: Sequence[PaneResult], fallback: str) -> str:
    """One line for a widget's footer: one phrase if every pane is in the same case, else one per model;
    ``fallback`` (where runs go) when no run names a notebook."""
    phrases = [record_phrase(result) for result in results]
    if all(phrase is None for phrase in phrases):
        return fallback
    if len(set(phrases)) == 1:
        return str(phrases[0])
    return " · ".join(f"{result['model']}: {phrase}" for result, phrase in zip(results, phrases, strict=True))


def outcome(result: PaneResult) -> str:
    """``model · status`` and, for a failure, its one-line reason."""
    line = f"{result['model']} · {result['status']}"
    error = result["error"]
    return f"{line} {error.get('code')}: {error.get('message')}" if error else line


def plain_text(results: Sequence[PaneResult]) -> str:
    """``text/plain`` for consoles and for tools that read outputs as text."""
    return "\n\n".join(f"[{outcome(result)}]\n{result['text']}" for result in results)
