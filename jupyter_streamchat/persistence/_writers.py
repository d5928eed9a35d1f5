"""The two server-side ways a turn lands in a notebook: the shared (collaborative) document, or the file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

import nbformat
from jupyter_core.utils import ensure_async

from ._schema import merged_streamchat

log = logging.getLogger("jupyter_streamchat.persistence")

T = TypeVar("T")
TORN_READ_ATTEMPTS = 8  # x TORN_READ_DELAY: how long a save may keep a notebook half-written
TORN_READ_DELAY = 0.05


async def write_shared_document(serverapp: Any, path: str, conversation: str, turn: dict[str, Any]) -> bool:
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
    except Exception:
        # A shared model we cannot write must not lose the turn: the caller falls back to the file.
        log.exception("streamchat: could not write to the shared document of %s", path)
        return False
    return True


def _merge_into_shared(document: Any, conversation: str, turn: dict[str, Any]) -> None:
    from pycrdt import Map

    with document.ydoc.transaction():
        meta = document.ydoc.get("meta", type=Map)  # YNotebook keeps it private (_ymeta)
        metadata = meta["metadata"].to_py() if "metadata" in meta else {}
        section = merged_streamchat(metadata or {}, conversation, turn)
        if section is not None:
            if "metadata" not in meta:
                meta["metadata"] = Map({})
            meta["metadata"]["streamchat"] = section


async def write_file(contents_manager: Any, path: str, conversation: str, turn: dict[str, Any]) -> bool:
    """Read-merge-write of the notebook file; False if the run was already there. Caller serializes per path.

    Local files are merged as raw JSON in a worker thread and replaced atomically (temp file +
    ``os.replace``): the event loop never parses, validates or serializes a big notebook, a reader
    never sees a half-written file, and every byte we did not change is written back as it was.
    Other ContentsManagers (S3, databases...) get a normal ``get``/``save``.
    """
    os_path = _local_path(contents_manager, path)
    if os_path is not None:
        return await _tolerating_saves(_merge_into_local_file, os_path, conversation, turn)
    notebook = await _get_notebook(contents_manager, path)
    if notebook is None:
        notebook = nbformat.v4.new_notebook()
    section = merged_streamchat(dict(notebook.metadata), conversation, turn)
    if section is None:
        return False
    notebook.metadata["streamchat"] = section
    model = {"type": "notebook", "format": "json", "content": notebook}
    await ensure_async(contents_manager.save(model, path))
    return True


async def read_metadata(contents_manager: Any, path: str) -> dict[str, Any] | None:
    """The notebook's top-level metadata, or None if there is no such notebook."""
    os_path = _local_path(contents_manager, path)
    if os_path is not None:
        notebook = await _tolerating_saves(_load_local, os_path)
        return None if notebook is None else dict(notebook.get("metadata") or {})
    model = await _get_notebook(contents_manager, path)
    return None if model is None else dict(model.metadata)


async def _tolerating_saves(work: Callable[..., T], *args: Any) -> T:
    """Run file work in a worker thread; retry briefly if the notebook could not be parsed.

    Jupyter's own save rewrites a notebook in place, so a read can meet a half-written file. It is
    whole again within milliseconds; a file that stays unreadable raises ValueError as before.
    """
    for attempt in range(TORN_READ_ATTEMPTS):
        try:
            return await asyncio.to_thread(work, *args)
        except ValueError:
            if attempt == TORN_READ_ATTEMPTS - 1:
                raise
            await asyncio.sleep(TORN_READ_DELAY)
    raise AssertionError("unreachable")


async def _get_notebook(contents_manager: Any, path: str) -> Any | None:
    if not await ensure_async(contents_manager.file_exists(path)):
        return None
    model = await ensure_async(contents_manager.get(path, content=True, type="notebook"))
    return model["content"]


def _local_path(contents_manager: Any, path: str) -> str | None:
    get_os_path = getattr(contents_manager, "_get_os_path", None)
    return get_os_path(path) if callable(get_os_path) else None


def _load_local(os_path: str) -> dict[str, Any] | None:
    raw = _read_bytes(os_path)
    return None if raw is None else _parse_notebook(raw, os_path)


def _read_bytes(os_path: str) -> bytes | None:
    try:
        with open(os_path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _parse_notebook(raw: bytes, os_path: str) -> dict[str, Any]:
    notebook = json.loads(raw)  # an unreadable notebook raises: never overwrite what we cannot read
    if not isinstance(notebook, dict) or not isinstance(notebook.get("metadata", {}), dict):
        raise ValueError(f"{os_path} is not a notebook")
    return notebook


def _merge_into_local_file(os_path: str, conversation: str, turn: dict[str, Any]) -> bool:
    raw = _read_bytes(os_path)
    if raw is None:
        raw = _dump(nbformat.v4.new_notebook())
    merged = _spliced(raw, conversation, turn)
    if merged is None:
        merged = _reserialized(raw, os_path, conversation, turn)
    if not merged:  # the run is already recorded
        return False
    _replace_atomically(os_path, merged)
    return True


def _reserialized(raw: bytes, os_path: str, conversation: str, turn: dict[str, Any]) -> bytes:
    """Any other layout: parse and re-serialize the whole notebook (empty if the run is already there)."""
    notebook = _parse_notebook(raw, os_path)
    metadata = notebook.setdefault("metadata", {})
    section = merged_streamchat(metadata, conversation, turn)
    if section is None:
        return b""
    metadata["streamchat"] = section
    return _dump(notebook)


# In nbformat's layout (indent 1, sorted keys) the notebook ends with its metadata, nbformat and
# nbformat_minor. A raw newline is always structural in JSON, and nothing but these two numbers
# stands between the metadata object and the root's closing brace, so that object is the
# notebook's own metadata: it is replaced without decoding, parsing or copying the cells (a 10 MB
# notebook would otherwise hold the GIL, and stall every stream, for tens of milliseconds).
_METADATA_KEY = b'\n "metadata": '
_TAIL = re.compile(r',\n "nbformat": \d+,\n "nbformat_minor": \d+\n\}\n?\Z')
_DECODER = json.JSONDecoder()


def _spliced(raw: bytes, conversation: str, turn: dict[str, Any]) -> bytes | None:
    """``raw`` with the turn merged into its metadata; empty if already there; None if not nbformat's layout."""
    key_at = raw.rfind(_METADATA_KEY)
    if key_at < 0:
        return None
    value_at = key_at + len(_METADATA_KEY)
    try:
        rest = raw[value_at:].decode("utf-8")
        metadata, end = _DECODER.raw_decode(rest)
    except ValueError:  # UnicodeDecodeError included
        return None
    if not isinstance(metadata, dict) or not _TAIL.match(rest, end):
        return None
    section = merged_streamchat(metadata, conversation, turn)
    if section is None:
        return b""
    metadata["streamchat"] = section
    # One level deeper than a root object: indent every structural line break by one more space.
    value = _dump(metadata)[:-1].replace(b"\n", b"\n ")
    return b"".join((raw[:value_at], value, rest[end:].encode("utf-8")))


def _dump(value: dict[str, Any]) -> bytes:
    """nbformat's own on-disk layout, so untouched bytes round-trip exactly."""
    text = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False, separators=(",", ": "))
    return (text + "\n").encode("utf-8")


def _replace_atomically(os_path: str, data: bytes) -> None:
    directory = os.path.dirname(os_path)
    os.makedirs(directory, exist_ok=True)
    mode = os.stat(os_path).st_mode & 0o777 if os.path.exists(os_path) else None
    fd, tmp = tempfile.mkstemp(prefix=".streamchat-", suffix=".ipynb.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, os_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
