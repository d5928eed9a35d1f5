"""The two server-side ways a turn lands in a notebook: the shared (collaborative) document, or the file."""

from __future__ import annotations

import logging
from typing import Any

import nbformat
from jupyter_core.utils import ensure_async

from ._schema import merged_streamchat

log = logging.getLogger("jupyter_streamchat.persistence")


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
    from pycrdt import Map

    with document.ydoc.transaction():
        meta = document.ymeta
        metadata = meta["metadata"].to_py() if "metadata" in meta else {}
        section = merged_streamchat(metadata or {}, conversation, turn)
        if section is not None:
            if "metadata" not in meta:
                meta["metadata"] = Map({})
            meta["metadata"]["streamchat"] = section
    return True


async def write_file(contents_manager: Any, path: str, conversation: str, turn: dict[str, Any]) -> bool:
    """Read-merge-write through the ContentsManager (atomic save). Caller serializes per path."""
    if await ensure_async(contents_manager.file_exists(path)):
        model = await ensure_async(contents_manager.get(path, content=True, type="notebook"))
        notebook = model["content"]
    else:
        notebook = nbformat.v4.new_notebook()
    section = merged_streamchat(dict(notebook.metadata), conversation, turn)
    if section is None:
        return False
    notebook.metadata["streamchat"] = section
    await ensure_async(contents_manager.save({"type": "notebook", "format": "json", "content": notebook}, path))
    return True
