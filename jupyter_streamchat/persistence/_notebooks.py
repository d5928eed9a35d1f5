"""Where a finished turn goes: the shared document, the open document (hand-off), or the file.

One turn per run id, whatever raced: the merge is idempotent by run id and each path is serialized.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from ._handoff import HandoffHub
from ._schema import conversation_key, make_turn, turns_of
from ._writers import read_metadata, write_file, write_shared_document

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

    async def record(self, record: dict[str, Any], prompt: dict[str, str] | None) -> str:
        """Land one finished run in its notebook; returns how: shared, open-document, file or duplicate."""
        path = record["notebook"]
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
