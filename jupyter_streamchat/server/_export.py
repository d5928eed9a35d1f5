"""``GET export?notebook=&conversation=&leaf=&format=``: one branch of a conversation as a file to download
(SPEC 11), rendered by the one Python renderer ``history()`` uses too (``jupyter_streamchat.export``).

The branch is the one ending at ``leaf`` (the panel's shown alternative: the file's ``active`` may not be saved
yet); the turns are those of ``GET conversations``, read with its checks and refusals.
"""

from __future__ import annotations

import re

from jupyter_server.auth.decorator import authorized
from tornado import web

from .. import export
from ..engine._errors import BadRequest, NotFound
from ..engine.contract import DEFAULT_CONVERSATION, RUN_ID_CHARS
from ..persistence._section import branch
from .handlers import ConversationsHandler

_RUN_ID = re.compile(rf"{RUN_ID_CHARS}{{1,128}}")


class ExportHandler(ConversationsHandler):
    """The branch ending at ``leaf`` (default: the conversation's active leaf) in ``format`` (default Markdown)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        fmt = self.get_query_argument("format", "markdown")
        if fmt not in export.FORMATS:
            raise BadRequest(f"'format' must be one of {', '.join(export.FORMATS)}, not {fmt[:40]!r}")
        leaf = self.get_query_argument("leaf", "") or None
        if leaf is not None and (not _RUN_ID.fullmatch(leaf) or leaf.startswith("__")):
            raise BadRequest("'leaf' must be a run id (letters, digits, '-' and '_')")
        conversation = self.get_query_argument("conversation", "") or DEFAULT_CONVERSATION
        answer = await self.read_conversations(conversation)
        tree = answer["conversations"][conversation]
        turns = {turn["run"]: turn for turn in tree["turns"]}
        if leaf is not None and leaf not in turns:
            raise NotFound(f"'leaf' {leaf!r} names no turn of conversation {conversation!r}")
        chosen = branch(turns, leaf or tree["active"])
        name = export.file_name(answer["notebook"], conversation, fmt)
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        # A download, not a page of this origin: never sniffed into HTML, nothing fetched if a browser shows it.
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", export.PAGE_POLICY)
        self.set_header("Cache-Control", "no-store")
        self.finish(
            export.render(fmt, answer["notebook"], conversation, chosen), set_content_type=export.FORMATS[fmt][1]
        )
