"""Merging a turn into a notebook file, whatever layout wrote it: only metadata.streamchat changes."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from jupyter_streamchat.persistence._schema import make_turn
from jupyter_streamchat.persistence._writers import NotANotebook, _merge_into_local_file


def a_notebook() -> dict:
    cell = nbformat.v4.new_code_cell("x = {'metadata': 1}\nprint(x)\n", execution_count=3)
    cell.metadata = {"tags": ["keep"], "nbformat": 4}  # nested keys named like the root's
    cell.outputs = [nbformat.v4.new_output("stream", text='"metadata": {}\n')]
    notebook = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell("ünïcode ✓")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return json.loads(json.dumps(notebook))


LAYOUTS = {
    "nbformat": lambda nb: nbformat.writes(nbformat.from_dict(nb)) + "\n",
    "minified": lambda nb: json.dumps(nb),
    "indent-2": lambda nb: json.dumps(nb, indent=2),
    "metadata-first": lambda nb: json.dumps({"metadata": nb["metadata"], **nb}, indent=1),
    "crlf": lambda nb: (nbformat.writes(nbformat.from_dict(nb)) + "\n").replace("\n", "\r\n"),
    "cells-last": lambda nb: json.dumps({k: nb[k] for k in ("metadata", "nbformat", "nbformat_minor", "cells")}),
    # Hand-made: a cell's metadata on a line of its own with one space, and the root's not.
    "nested-at-one-space": lambda nb: json.dumps(nb).replace('"metadata": {"tags"', '\n "metadata": {"tags"'),
}


def turn(run_id: str) -> dict:
    record = {
        "id": run_id, "model": "demo:chat", "mode": "detached", "status": "completed", "text": "answer",
        "reasoning": "", "usage": {}, "finish_reason": "stop", "error": None,
        "created": "2026-11-21T00:00:00.000Z", "finished": "2026-11-21T00:00:01.000Z",
    }  # fmt: skip
    return make_turn(record, {"role": "user", "content": "q"})


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_only_the_streamchat_section_changes(tmp_path: Path, layout: str) -> None:
    # Given a notebook file written in some layout
    path = tmp_path / "nb.ipynb"
    path.write_bytes(LAYOUTS[layout](a_notebook()).encode())
    original = json.loads(path.read_bytes())
    # When two turns are merged into it, and the first one again
    assert _merge_into_local_file(str(path), str(tmp_path), "c", turn("run-1"), None).changed is True
    assert _merge_into_local_file(str(path), str(tmp_path), "c", turn("run-2"), None).changed is True
    assert _merge_into_local_file(str(path), str(tmp_path), "c", turn("run-1"), None).changed is False
    # Then the notebook is the original plus our section, with both turns once, and still valid
    merged = json.loads(path.read_bytes())
    section = merged["metadata"].pop("streamchat")
    assert merged == original
    assert [t["run"] for t in section["conversations"]["c"]["turns"]] == ["run-1", "run-2"]
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))


def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "new.ipynb"
    with pytest.raises(FileNotFoundError):
        _merge_into_local_file(str(path), str(tmp_path), "c", turn("run-1"), None)
    assert list(tmp_path.iterdir()) == []


NOT_NOTEBOOKS = {
    "broken": b'{"cells": [ not json',
    "array": b"[1, 2]",
    "metadata-not-an-object": b'{"metadata": 7}',
    "empty": b"",
    "package": b'{"name": "pkg", "metadata": {}}',
    # nbformat's own layout, down to the tail the fast path looks for, but without cells
    "no-cells": b'{\n "metadata": {},\n "nbformat": 4,\n "nbformat_minor": 5\n}\n',
}


@pytest.mark.parametrize("content", NOT_NOTEBOOKS.values(), ids=NOT_NOTEBOOKS.keys())
def test_what_is_not_a_notebook_is_left_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "odd.ipynb"
    path.write_bytes(content)
    with pytest.raises(ValueError):
        _merge_into_local_file(str(path), str(tmp_path), "c", turn("run-1"), None)
    assert path.read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == ["odd.ipynb"]


def test_a_notebook_under_another_name_is_not_one(tmp_path: Path) -> None:
    # Jupyter decides by the name: a .json file is a file, whatever it holds
    path = tmp_path / "nb.json"
    content = (nbformat.writes(nbformat.v4.new_notebook()) + "\n").encode()
    path.write_bytes(content)
    with pytest.raises(NotANotebook):
        _merge_into_local_file(str(path), str(tmp_path), "c", turn("run-1"), None)
    assert path.read_bytes() == content


def test_a_symlink_out_of_the_root_is_not_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside.ipynb"
    root.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), outside)
    content = outside.read_bytes()
    (root / "link.ipynb").symlink_to(outside)
    with pytest.raises(PermissionError):
        _merge_into_local_file(str(root / "link.ipynb"), str(root), "c", turn("run-1"), None)
    assert outside.read_bytes() == content
