"""Notebook paths are server-relative and must stay inside the server root."""

from __future__ import annotations

import os
import posixpath

from ._errors import BadRequest, Forbidden


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
