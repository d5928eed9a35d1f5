"""Where a run's notebook is now: a run follows its notebook across renames, and learns that it was deleted.

Two sources. The contents manager's events name every rename and delete made through Jupyter (the file
browser, the contents API, a notebook page's "Rename"), of the notebook or of a folder above it. Where
Jupyter's file ID service is installed (jupyter_server_fileid), it is asked too when a notebook is not
where the events say: its ``LocalFileIdManager`` finds a file moved outside Jupyter (``mv`` in a terminal)
by its inode; the default ``ArbitraryFileIdManager`` knows only what the events told it. Without either,
a notebook moved outside Jupyter is not found, and its runs end ``gone``.

A followed run's ``notebook`` attribute is its current path: the API answers it, the recorder writes there,
and ``on_move`` lets the journal follow, so a recovery after a crash writes into the renamed file too.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from jupyter_events import EventLogger
    from jupyter_server.serverapp import ServerApp

log = logging.getLogger("jupyter_streamchat.persistence")

CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"
# Events kept so a run that is being started can catch up with those since its notebook was checked.
RECENT_EVENTS = 256


class Followed(Protocol):
    id: str
    notebook: str | None


MoveHook = Callable[[Followed], Awaitable[None]]


def within(path: str, top: str) -> bool:
    """``path`` is ``top`` itself or inside the folder ``top``."""
    return bool(top) and (path == top or path.startswith(top + "/"))


def moved(path: str, source: str, destination: str) -> str | None:
    """``path`` after ``source`` was renamed to ``destination`` (the notebook itself or a folder above it)."""
    return destination + path[len(source) :] if within(path, source) else None


def _api_path(path: Any) -> str:
    return str(path).strip("/")


class NotebookFollower:
    def __init__(self, serverapp: ServerApp | None = None) -> None:
        self._serverapp = serverapp
        self._followed: dict[str, Followed] = {}  # run id -> run
        self._gone: set[str] = set()
        self._file_ids: dict[str, str] = {}
        self._recent: deque[tuple[int, dict[str, Any]]] = deque(maxlen=RECENT_EVENTS)
        self._seq = 0
        self._listening_to: EventLogger | None = None
        self.on_move: MoveHook | None = None

    # ----- wiring ----------------------------------------------------------------------------------
    def start(self) -> None:
        logger = getattr(self._serverapp, "event_logger", None)
        if logger is None or self._listening_to is not None:
            return
        logger.add_listener(schema_id=CONTENTS_EVENTS, listener=self._on_contents_event)
        self._listening_to = logger

    def stop(self) -> None:
        if self._listening_to is not None:
            self._listening_to.remove_listener(schema_id=CONTENTS_EVENTS, listener=self._on_contents_event)
            self._listening_to = None

    async def _on_contents_event(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        for run in self.apply(data):
            await self._moved(run)

    async def _moved(self, run: Followed) -> None:
        if self.on_move is not None:
            try:
                await self.on_move(run)
            except Exception:
                log.exception("streamchat run %s: could not note its notebook's new path", run.id)

    # ----- following -------------------------------------------------------------------------------
    def mark(self) -> int:
        """A point to catch up from: call before a notebook is checked, then pass it to ``follow``."""
        return self._seq

    def follow(self, run: Followed, since: int | None = None) -> None:
        """From now on ``run.notebook`` follows renames; those since ``mark()`` apply at once."""
        if run.notebook is None:
            return
        self._followed[run.id] = run
        if since is not None:
            for seq, data in self._recent:
                if seq > since:
                    self._apply_to(run, data)
        manager = self._file_id_manager()
        if manager is not None and run.id not in self._gone:
            try:
                file_id = manager.index(run.notebook)
            except Exception as exc:  # the file ID service is a help, never a reason to fail a run
                log.debug("streamchat: no file id for %s: %s", run.notebook, exc)
            else:
                if file_id:
                    self._file_ids[run.id] = file_id

    def forget(self, run_id: str) -> None:
        self._followed.pop(run_id, None)
        self._gone.discard(run_id)
        self._file_ids.pop(run_id, None)

    def is_gone(self, run_id: str) -> bool:
        return run_id in self._gone

    def path_of(self, run_id: str, fallback: str) -> str:
        run = self._followed.get(run_id)
        return run.notebook if run is not None and run.notebook else fallback

    def apply(self, data: dict[str, Any]) -> list[Followed]:
        """Take one contents event; the runs whose notebook moved."""
        action = data.get("action")
        if action not in ("rename", "delete") or not data.get("path"):
            return []
        self._seq += 1
        self._recent.append((self._seq, data))
        return [run for run in list(self._followed.values()) if self._apply_to(run, data)]

    def _apply_to(self, run: Followed, data: dict[str, Any]) -> bool:
        path = run.notebook
        if path is None or run.id in self._gone:
            return False
        if data["action"] == "delete":
            if within(path, _api_path(data["path"])):
                self._gone.add(run.id)
                log.info("streamchat run %s: its notebook %s was deleted", run.id, path)
            return False
        source = data.get("source_path")
        new = moved(path, _api_path(source), _api_path(data["path"])) if source else None
        if new is None:
            return False
        run.notebook = new
        log.info("streamchat run %s follows its notebook: %s -> %s", run.id, path, new)
        return True

    async def relocate(self, run_id: str) -> bool:
        """Ask the file ID service where a notebook that is not at its path went; True if the run moved.

        Only when the file is missing (for a ``LocalFileIdManager`` that may scan the server root).
        """
        run, file_id, manager = self._followed.get(run_id), self._file_ids.get(run_id), self._file_id_manager()
        if run is None or file_id is None or manager is None:
            return False
        try:
            found = manager.get_path(file_id)
        except Exception as exc:
            log.debug("streamchat: the file ID service could not find %s: %s", run.notebook, exc)
            return False
        if not found or _api_path(found) == run.notebook:
            return False
        log.info("streamchat run %s follows its notebook (file ID): %s -> %s", run_id, run.notebook, found)
        run.notebook = _api_path(found)
        await self._moved(run)
        return True

    def _file_id_manager(self) -> Any:
        web_app = getattr(self._serverapp, "web_app", None)
        settings = getattr(web_app, "settings", None) or {}
        return settings.get("file_id_manager")
