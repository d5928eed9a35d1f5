"""The two server-side ways a turn lands in a notebook: the shared (collaborative) document, or the file."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, TypeGuard, TypeVar

from jupyter_core.utils import ensure_async
from jupyter_server.services.contents.fileio import path_to_intermediate
from tornado import web

from ._layout import dump, locate_metadata
from ._schema import Turn, merged_streamchat
from ._section import UnreadableSection

log = logging.getLogger("jupyter_streamchat.persistence")

T = TypeVar("T")
TORN_READ_ATTEMPTS = 8  # x TORN_READ_DELAY: how long a save may keep a notebook half-written
TORN_READ_DELAY = 0.05
CHANGED_WHILE_MERGING_ATTEMPTS = 3  # a save landing between our read and our write: merge again
NOTEBOOK_SUFFIX = ".ipynb"  # what Jupyter's contents API opens as a notebook


class NotANotebook(ValueError):
    """The path exists but is not a notebook, by its name (as Jupyter decides) or by what it holds: never written.

    Unlike a plain ValueError (a notebook caught half-written by a save), this does not pass by waiting.
    """


async def write_shared_document(serverapp: Any, path: str, conversation: str, turn: Turn) -> bool:
    """Write through jupyter-collaboration's shared model if the notebook has a live room; else False."""
    ydoc_apps = serverapp.extension_manager.extension_apps.get("jupyter_server_ydoc") or set()
    ydoc_app = next(iter(ydoc_apps), None)
    if ydoc_app is None:
        return False
    try:
        document = await ydoc_app.get_document(path=path, content_type="notebook", file_format="json", copy=False)
    except Exception as exc:  # no file id yet, extension not started...: fall back, never fail
        log.debug("streamchat: no shared document for %s: %s", path, exc)
        return False
    if document is None:
        return False
    try:
        _merge_into_shared(document, conversation, turn)
    except UnreadableSection:
        raise  # the shared document is what will be saved: never written, and not the file behind it either
    except Exception:
        # A shared model we cannot write must not lose the turn: the caller falls back to the file.
        log.exception("streamchat: could not write to the shared document of %s", path)
        return False
    return True


def _merge_into_shared(document: Any, conversation: str, turn: Turn) -> None:
    from pycrdt import Map

    with document.ydoc.transaction():
        meta = document.ydoc.get("meta", type=Map)  # YNotebook keeps it private (_ymeta)
        metadata = meta["metadata"].to_py() if "metadata" in meta else {}
        section = merged_streamchat(metadata or {}, conversation, turn)
        if section is not None:
            if "metadata" not in meta:
                meta["metadata"] = Map({})
            meta["metadata"]["streamchat"] = section


async def check_notebook(contents_manager: Any, path: str) -> None:
    """Raise unless ``path`` is an existing notebook: FileNotFoundError, NotANotebook, PermissionError, or
    ValueError when it cannot be parsed (say, half-written by another tool for longer than a save takes)."""
    os_path = _local_path(contents_manager, path)
    if os_path is not None:
        await _tolerating_saves(_read_local_metadata, os_path, contents_manager.root_dir)
    else:
        await _get_notebook(contents_manager, path)


async def notebook_exists(contents_manager: Any, path: str) -> bool:
    """A cheap look (no read) whether the notebook is there: through a symlink, as it would be written."""
    os_path = _local_path(contents_manager, path)
    if os_path is not None:
        return await asyncio.to_thread(os.path.isfile, os_path)
    return bool(await ensure_async(contents_manager.file_exists(path)))


class FileVersion(TypedDict):
    """A notebook file's version as Jupyter's contents API reports it (what a page compares before it saves)."""

    hash: str | None
    hash_algorithm: str | None
    last_modified: str | None  # ISO-8601


@dataclass(frozen=True, slots=True)
class FileWrite:
    """What writing a turn did: ``changed`` is False when the run was already recorded.

    ``before`` / ``after`` are the file's versions around the write as Jupyter's contents API reports them
    (``hash``, ``hash_algorithm``, ``last_modified``), when asked for: an open page that knew ``before`` may
    take ``after`` as its own (see ``_handoff``).
    """

    changed: bool
    before: FileVersion | None = None
    after: FileVersion | None = None


async def write_file(
    contents_manager: Any, path: str, conversation: str, turn: Turn, versions: bool = False
) -> FileWrite:
    """Read-merge-write of the notebook file. Caller serializes per path.

    Only an existing notebook is written: a missing file is not created, and a file that is not a notebook
    (any more) is left alone, so both raise as in ``check_notebook``. Local files are merged as raw JSON in a
    worker thread and written in place, as Jupyter's own save writes them (see ``_write_in_place``): the
    event loop never parses, validates or serializes a big notebook, and every byte we did not change is
    written back as it was. Other ContentsManagers (S3, databases...) get a normal ``get``/``save``.
    ``versions``: also say which file versions the write went from and to (costs a hash of the file).
    """
    os_path = _local_path(contents_manager, path)
    if os_path is not None:
        algorithm = _hash_algorithm(contents_manager) if versions else None
        return await _tolerating_saves(
            _merge_into_local_file, os_path, contents_manager.root_dir, conversation, turn, algorithm
        )
    before = await _version_of(contents_manager, path) if versions else None
    notebook = await _get_notebook(contents_manager, path)
    section = merged_streamchat(dict(notebook.metadata), conversation, turn)
    if section is None:
        return FileWrite(False, before, before)
    notebook.metadata["streamchat"] = section
    model = {"type": "notebook", "format": "json", "content": notebook}
    await ensure_async(contents_manager.save(model, path))
    return FileWrite(True, before, await _version_of(contents_manager, path) if versions else None)


async def _version_of(contents_manager: Any, path: str) -> FileVersion | None:
    try:
        model = await ensure_async(contents_manager.get(path, content=False, require_hash=True))
    except Exception:  # a manager without hashes or a file gone: the page just will not take the version
        return None
    modified = model.get("last_modified")
    return {
        "hash": model.get("hash"),
        "hash_algorithm": model.get("hash_algorithm"),
        "last_modified": modified.isoformat() if isinstance(modified, datetime) else modified,
    }


def _hash_algorithm(contents_manager: Any) -> str | None:
    algorithm = getattr(contents_manager, "hash_algorithm", None)
    return algorithm if isinstance(algorithm, str) and algorithm in hashlib.algorithms_available else None


def _local_version(os_path: str, content: bytes, algorithm: str) -> FileVersion:
    """The version of a local file as jupyter_server's FileContentsManager reports it (``lstat``'s mtime)."""
    modified = datetime.fromtimestamp(os.lstat(os_path).st_mtime, tz=UTC)
    return {
        "hash": hashlib.new(algorithm, content).hexdigest(),
        "hash_algorithm": algorithm,
        "last_modified": modified.isoformat(),
    }


async def read_metadata(contents_manager: Any, path: str) -> dict[str, Any] | None:
    """The notebook's top-level metadata, or None if there is no such file."""
    try:
        os_path = _local_path(contents_manager, path)
        if os_path is not None:
            return await _tolerating_saves(_read_local_metadata, os_path, contents_manager.root_dir)
        return dict((await _get_notebook(contents_manager, path)).metadata)
    except FileNotFoundError:
        return None


async def _tolerating_saves(work: Callable[..., T], *args: Any) -> T:
    """Run file work in a worker thread; retry briefly if the notebook could not be parsed.

    Jupyter's own save rewrites a notebook in place (and so does ours), so a read can meet a
    half-written file. It is whole again within milliseconds; a file that stays unreadable raises
    ValueError as before, and one that is not a notebook raises NotANotebook at once.
    """
    for attempt in range(TORN_READ_ATTEMPTS):
        try:
            return await asyncio.to_thread(work, *args)
        except NotANotebook:
            raise
        except ValueError:
            if attempt == TORN_READ_ATTEMPTS - 1:
                raise
            await asyncio.sleep(TORN_READ_DELAY)
    raise AssertionError("unreachable")


async def _get_notebook(contents_manager: Any, path: str) -> Any:
    """A notebook through a ContentsManager's API (one that has no local files)."""
    if not path.endswith(NOTEBOOK_SUFFIX):
        raise NotANotebook(f"{path} is not named like a notebook")
    if not await ensure_async(contents_manager.file_exists(path)):
        if await ensure_async(contents_manager.dir_exists(path)):
            raise NotANotebook(f"{path} is a directory")
        raise FileNotFoundError(errno.ENOENT, "no such notebook", path)
    try:
        model = await ensure_async(contents_manager.get(path, content=True, type="notebook"))
    except web.HTTPError as error:  # how a ContentsManager says it cannot open this as a notebook
        if error.status_code == 404:
            raise FileNotFoundError(errno.ENOENT, "no such notebook", path) from error
        if error.status_code == 403:
            raise PermissionError(errno.EACCES, "permission denied", path) from error
        raise NotANotebook(f"{path}: {error.log_message}") from error
    return model["content"]


def _local_path(contents_manager: Any, path: str) -> str | None:
    get_os_path = getattr(contents_manager, "_get_os_path", None)
    return get_os_path(path) if callable(get_os_path) else None


def _target(os_path: str, root: str) -> str:
    """The file a notebook at ``os_path`` lives in: through symlinks, as Jupyter's own save writes, but never
    out of the server root (a symlink may have been changed since the request was checked)."""
    if not os_path.endswith(NOTEBOOK_SUFFIX):
        raise NotANotebook(f"{os_path} is not named like a notebook")
    target = os.path.realpath(os_path)
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, target]) != real_root:
        raise PermissionError(errno.EACCES, "the notebook leads out of the server root", os_path)
    if not os.path.lexists(target):
        raise FileNotFoundError(errno.ENOENT, "no such notebook", os_path)
    if not os.path.isfile(target):
        raise NotANotebook(f"{os_path} is not a file")
    return target


def _read_local_metadata(os_path: str, root: str) -> dict[str, Any]:
    with open(_target(os_path, root), "rb") as handle:
        raw = handle.read()
    located = locate_metadata(raw)
    if located is not None:
        return located.metadata
    return dict(_parse_notebook(raw, os_path).get("metadata") or {})


def _parse_notebook(raw: bytes, os_path: str) -> dict[str, Any]:
    notebook = json.loads(raw)  # an unreadable notebook raises: never overwrite what we cannot read
    if not _is_notebook(notebook):
        raise NotANotebook(f"{os_path} is not a notebook")
    return notebook


def _is_notebook(value: object) -> TypeGuard[dict[str, Any]]:
    """nbformat's top level: a version number, metadata, and cells (worksheets before version 4)."""
    if not isinstance(value, dict) or not isinstance(value.get("metadata", {}), dict):
        return False
    version = value.get("nbformat")
    if not isinstance(version, int) or isinstance(version, bool):
        return False
    return isinstance(value.get("cells" if version >= 4 else "worksheets"), list)


def _merge_into_local_file(os_path: str, root: str, conversation: str, turn: Turn, algorithm: str | None) -> FileWrite:
    target = _target(os_path, root)
    for _ in range(CHANGED_WHILE_MERGING_ATTEMPTS):
        with open(target, "rb") as handle:
            read = os.fstat(handle.fileno())
            raw = handle.read()
        before = _local_version(os_path, raw, algorithm) if algorithm else None
        change = _merged(raw, os_path, conversation, turn)
        if change is None:  # the run is already recorded
            return FileWrite(False, before, before)
        if _same_version(read, os.stat(target)):
            offset, tail = change
            _write_in_place(target, raw, offset, tail)
            after = _local_version(os_path, raw[:offset] + tail, algorithm) if algorithm else None
            return FileWrite(True, before, after)
    # Saved again and again under us: as for a torn read, the caller waits a little and tries again.
    raise ValueError(f"{os_path} kept changing while a turn was merged into it")


def _same_version(before: os.stat_result, now: os.stat_result) -> bool:
    return (before.st_ino, before.st_dev, before.st_size, before.st_mtime_ns) == (
        now.st_ino,
        now.st_dev,
        now.st_size,
        now.st_mtime_ns,
    )


def _merged(raw: bytes, os_path: str, conversation: str, turn: Turn) -> tuple[int, bytes] | None:
    """Where the file changes and the bytes from there on, or None if the run is already recorded.

    In nbformat's layout only the metadata object and what follows it change (see ``_layout.locate_metadata``);
    any other layout is parsed and re-serialized whole.
    """
    located = locate_metadata(raw)
    if located is not None:
        section = merged_streamchat(located.metadata, conversation, turn)
        if section is None:
            return None
        located.metadata["streamchat"] = section
        # One level deeper than a root object: indent every structural line break by one more space.
        value = dump(located.metadata)[:-1].replace(b"\n", b"\n ")
        return located.value_at, value + located.after
    notebook = _parse_notebook(raw, os_path)
    metadata = notebook.setdefault("metadata", {})
    section = merged_streamchat(metadata, conversation, turn)
    if section is None:
        return None
    metadata["streamchat"] = section
    return 0, dump(notebook)


def _write_in_place(target: str, old: bytes, offset: int, new_tail: bytes) -> None:
    """Make the file ``old[:offset] + new_tail`` by writing into it, as Jupyter's ``atomic_writing`` does.

    Writing into the file, not replacing it, keeps what a save must keep: every symlink to it, its
    inode (jupyter_server_fileid tracks notebooks by it), its permissions and its owner. Only the bytes
    from ``offset`` on are written, in one write: in nbformat's layout that is the metadata, not the cells.

    Crash safety is Jupyter's own: the previous version is first copied next to the file under Jupyter's
    intermediate name (``.~<name>``) and removed once the new one is synced. A reader that comes while the
    tail is being written may find the file torn, as during any Jupyter save; if this process dies then,
    the file stays torn until Jupyter's contents manager opens it, finds it unreadable and restores the
    copy, and the run journal records the turn again at the next start. The copy is not fsynced
    (neither is Jupyter's): a power cut at that moment can lose it.
    """
    backup = path_to_intermediate(target)
    with open(target, "r+b") as handle:  # first: a file we may not write leaves no copy behind
        backed_up = _back_up(target, backup, old)
        try:
            handle.seek(offset)
            handle.write(new_tail)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            # Put the old bytes back in the same file; if even that fails, leave the copy for Jupyter.
            try:
                handle.seek(offset)
                handle.write(old[offset:])
                handle.truncate()
                handle.flush()
            except OSError:
                backed_up = False
            raise
        finally:
            if backed_up:
                with contextlib.suppress(OSError):
                    os.remove(backup)


def _back_up(target: str, backup: str, content: bytes) -> bool:
    """Copy the notebook's current ``content`` to ``backup``; False where its folder may not be written
    (then, as Jupyter does for a writable file in a read-only folder, it is written without a copy)."""
    if not os.access(os.path.dirname(target), os.W_OK):
        return False
    info = os.stat(target)
    mode = stat.S_IMODE(info.st_mode)
    # Created with the notebook's permissions: the copy is never readable by more people than the notebook.
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, mode)
            handle.write(content)
            handle.flush()
            os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))  # as copy2 leaves it (Jupyter may restore it)
    except BaseException:
        # A partial copy must not stay where Jupyter would take it for the previous version.
        with contextlib.suppress(OSError):
            os.remove(backup)
        raise
    return True
