"""``%%chat``, ``%%compare`` and ``%chat_models``: the widgets from a cell, with one-line usage errors."""

from __future__ import annotations

import argparse
import html
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display

from ..context import ContextError, check_names
from ._now import answer_now
from ._steering import Steering
from ._widgets import MAX_PANES, MIN_PANES, chat, compare

LISTING_TIMEOUT = 20.0

STEERING_USAGE = "[--system TEXT] [--temperature T] [--max-tokens N] [--seed N]"
CHAT_USAGE = (
    f"%%chat [MODEL] [--conversation ID] [--context NAME,NAME] {STEERING_USAGE}   "
    "(MODEL looks like provider:model, e.g. demo:chat)"
)
COMPARE_USAGE = (
    f"%%compare MODEL1 MODEL2 [...] [--context NAME,NAME] {STEERING_USAGE}   ({MIN_PANES} to {MAX_PANES} model ids, "
    "e.g. demo:chat demo:fast)"
)


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting the kernel's process."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{message}; usage: {self.usage}")


def _parse(parser: _Parser, line: str) -> argparse.Namespace:
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{exc}; usage: {parser.usage}") from None
    return parser.parse_args(words)


def _prompt(cell: str) -> str:
    """The cell as the prompt, without the line breaks IPython adds around a cell's body."""
    return cell.lstrip("\n").rstrip()


def _check_model_id(model: str, usage: str) -> None:
    provider, sep, name = model.partition(":")
    if not (sep and provider and name):
        raise UsageError(f"{model!r} is not a model id; usage: {usage}")


_chat_parser = _Parser(prog="%%chat", usage=CHAT_USAGE, add_help=False)
_chat_parser.add_argument("model", nargs="?")
_chat_parser.add_argument("--conversation", "-c")
_chat_parser.add_argument("--context")

_compare_parser = _Parser(prog="%%compare", usage=COMPARE_USAGE, add_help=False)
_compare_parser.add_argument("models", nargs="*")
_compare_parser.add_argument("--context")

for _parser in (_chat_parser, _compare_parser):  # the range of each is checked by ``Steering.build``
    _parser.add_argument("--system")
    _parser.add_argument("--temperature", type=float)
    _parser.add_argument("--max-tokens", type=int)
    _parser.add_argument("--seed", type=int)


def _steering(args: argparse.Namespace) -> dict[str, Any]:
    """The steering arguments as ``chat``/``compare`` take them; a value out of range is a one-line UsageError."""
    given = {"system": args.system, "temperature": args.temperature, "max_tokens": args.max_tokens, "seed": args.seed}
    try:
        Steering.build(**given)
    except ValueError as error:
        message = str(error)
        name = message.split(" ", 1)[0]  # the argument's Python name: say it as the magic spells it
        raise UsageError(f"--{name.replace('_', '-')}{message[len(name) :]}; usage: {STEERING_USAGE}") from None
    return given


def _context_names(raw: str | None, prompt: str, shell: Any) -> list[str]:
    """``--context a,b``: variables by name; with the prompt's ``@mentions``, checked before anything is sent."""
    names = [name.strip() for name in (raw or "").split(",") if name.strip()]
    for name in names:
        if not name.isidentifier():
            raise UsageError(f"--context takes variable names separated by commas, got {name!r}")
    try:
        check_names(names, prompt, shell.user_ns if shell is not None else {})
    except ContextError as error:
        raise UsageError(str(error)) from None
    return names


@magics_class
class StreamChatMagics(Magics):
    @cell_magic
    def chat(self, line: str, cell: str) -> None:
        """Stream the cell as a prompt: ``%%chat [MODEL] [--conversation ID]``."""
        args = _parse(_chat_parser, line)
        if args.model:
            _check_model_id(args.model, CHAT_USAGE)
        prompt = _prompt(cell)
        names = _context_names(args.context, prompt, self.shell)
        chat(prompt, model=args.model, conversation=args.conversation, context=names, **_steering(args))

    @cell_magic
    def compare(self, line: str, cell: str) -> None:
        """Send the cell to several models side by side: ``%%compare MODEL1 MODEL2 [...]``."""
        args = _parse(_compare_parser, line)
        if not MIN_PANES <= len(args.models) <= MAX_PANES:
            raise UsageError(f"got {len(args.models)} models; usage: {COMPARE_USAGE}")
        for model in args.models:
            _check_model_id(model, COMPARE_USAGE)
        prompt = _prompt(cell)
        names = _context_names(args.context, prompt, self.shell)
        compare(prompt, args.models, context=names, **_steering(args))

    @line_magic
    def chat_models(self, line: str) -> None:
        """List the models this kernel can use (``*`` marks the default)."""
        if line.strip():
            raise UsageError("%chat_models takes no arguments")
        try:
            listing = _models_now()
        except Exception as exc:  # one line, like every other failure
            raise UsageError(f"could not list models: {exc}") from None
        display(_models_table(listing), raw=True)


def _models_now() -> Mapping[str, Any]:
    """The listing, answered before the magic returns (so headless runs capture it too); a local listing takes
    milliseconds."""
    return answer_now(lambda backend: backend.models(), LISTING_TIMEOUT)


MODEL_COLUMNS = ("model id", "name", "provider", "default")


def _models_table(listing: Mapping[str, Any]) -> dict[str, str]:
    """The listing as an HTML table (what notebooks, nbconvert and nbviewer render), with Markdown and
    aligned text for front ends that show only those."""
    default = listing.get("default")
    rows = [
        (str(m["id"]), str(m["name"]), str(m["provider"]), "yes" if m["id"] == default else "")
        for m in listing["models"]
    ]
    return {
        "text/html": _html_table(rows),
        "text/markdown": _markdown_table(rows),
        "text/plain": _text_table(rows),
    }


def _html_table(rows: Sequence[tuple[str, ...]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for title in MODEL_COLUMNS)
    body = "".join(
        f"<tr><td><code>{html.escape(row[0])}</code></td>"
        + "".join(f"<td>{html.escape(v)}</td>" for v in row[1:])
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _markdown_table(rows: Sequence[tuple[str, ...]]) -> str:
    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    separator = "|" + "---|" * len(MODEL_COLUMNS)
    return "\n".join([line(MODEL_COLUMNS), separator, *(line((f"`{row[0]}`", *row[1:])) for row in rows)])


def _text_table(rows: Sequence[tuple[str, ...]]) -> str:
    table = [MODEL_COLUMNS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(MODEL_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table
    )
