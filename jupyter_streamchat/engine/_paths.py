"""Notebook paths are server-relative and must stay inside the server root."""

from __future__ import annotations

import os
import posixpath
from typing import Any

from jupyter_core.utils import ensure_async

from ._errors import BadRequest, Forbidden, NotFound


def confine(root_dir: str, path: str) -> str:
    """Return the normalized server-relative path, or raise ``Forbidden`` if it leaves ``root_dir``.

    Rejects absolute paths, ``..`` segments, drive letters, NUL bytes, and symlinks resolving outside.
    """
    if not isinstance(path, str) or not path.strip():
        raise BadRequest("'notebook' must be a non-empty server-relative path")
    if "\x00" in path or "\\" in path:
        raise Forbidden(f"forbidden notebook path {path!r}")
    if path.startswith(("/", "~")) or (len(path) > 1 and path[1] == ":"):
        raise Forbidden(f"notebook path must be server-relative, got {path!r}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise Forbidden(f"notebook path must stay inside the server root, got {path!r}")
    relative = posixpath.join(*parts)
    root = os.path.realpath(root_dir)
    resolved = os.path.realpath(os.path.join(root, *parts))
    if resolved != root and not resolved.startswith(root + os.sep):
        raise Forbidden(f"notebook path leaves the server root: {path!r}")
    return relative


async def refuse_hidden(contents_manager: Any, path: str) -> None:
    """A path Jupyter's contents API hides does not exist here either: its 404, in its words.

    The contents manager decides (``allow_hidden``, ``is_hidden``): the same rule as ``/api/contents``
    (dot-files, dot-folders anywhere in the path, ``.ipynb_checkpoints``, the OS's hidden flag).
    """
    if contents_manager.allow_hidden:
        return
    try:
        hidden = await ensure_async(contents_manager.is_hidden(path))
    except NotImplementedError:  # a ContentsManager with no notion of hidden files
        return
    if hidden:
        raise NotFound(f"file or directory {path!r} does not exist")
