"""Where a finished turn goes: the shared document, the open document (hand-off), or the file.

One turn per run id, whatever raced: the merge is idempotent by run id and each path is serialized.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from .._errors import BadRequest, Conflict, Forbidden, NotFound
from ._handoff import HandoffHub
from ._schema import conversation_key, make_turn, turns_of
from ._writers import NOTEBOOK_SUFFIX, NotANotebook, check_notebook, read_metadata, write_file, write_shared_document

log = logging.getLogger("jupyter_streamchat.persistence")


class NotebookRecorder:
    def __init__(self, serverapp: Any, handoff: HandoffHub) -> None:
        self._serverapp = serverapp
        self.handoff = handoff
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.writes: dict[str, int] = defaultdict(int)  # path -> file writes (observability, benchmarks)

    @property
    def contents_manager(self) -> Any:
        return self._serverapp.contents_manager

    async def require_notebook(self, path: str) -> None:
        """Refuse, before a run starts, a path that is not an existing notebook (SPEC 4).

        Without the path's lock: that is held while a finished turn is offered to an open document (up to
        ``handoff_timeout``), and a request must not wait for it. A read that meets a turn being written
        is retried like one that meets a save.
        """
        try:
            await check_notebook(self.contents_manager, path)
        except FileNotFoundError:
            raise NotFound(f"no notebook {path!r}") from None
        except NotANotebook:
            raise BadRequest(f"{path!r} is not a notebook") from None
        except PermissionError:
            raise Forbidden(f"the server may not read or write {path!r}") from None
        except ValueError:
            raise Conflict(f"{path} could not be read as a notebook; nothing was started") from None

    async def record(self, record: dict[str, Any], prompt: dict[str, str] | None) -> str:
        """Land one finished run in its notebook; returns how: shared, open-document, file or duplicate."""
        path = record["notebook"]
        if not path.endswith(NOTEBOOK_SUFFIX):  # a run adopted from an old journal: not a notebook, never written
            raise NotANotebook(f"{path} is not named like a notebook")
        conversation = conversation_key(record)
        turn = make_turn(record, prompt)
        async with self._locks[path]:
            if await write_shared_document(self._serverapp, path, conversation, turn):
                return "shared"
            if await self.handoff.offer(path, conversation, turn):
                return "open-document"
            if await write_file(self.contents_manager, path, conversation, turn):
                self.writes[path] += 1
                return "file"
            return "duplicate"

    async def conversation_turns(self, path: str, conversation: str) -> list[dict[str, Any]]:
        async with self._locks[path]:
            metadata = await read_metadata(self.contents_manager, path)
        return turns_of(metadata, conversation) if metadata is not None else []
