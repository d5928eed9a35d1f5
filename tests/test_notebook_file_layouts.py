"""Merging a turn into a notebook file, whatever layout wrote it: only metadata.streamchat changes."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from jupyter_streamchat.persistence._schema import make_turn
from jupyter_streamchat.persistence._writers import _merge_into_local_file


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
    assert _merge_into_local_file(str(path), "c", turn("run-1")) is True
    assert _merge_into_local_file(str(path), "c", turn("run-2")) is True
    assert _merge_into_local_file(str(path), "c", turn("run-1")) is False
    # Then the notebook is the original plus our section, with both turns once, and still valid
    merged = json.loads(path.read_bytes())
    section = merged["metadata"].pop("streamchat")
    assert merged == original
    assert [t["run"] for t in section["conversations"]["c"]["turns"]] == ["run-1", "run-2"]
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))


def test_a_missing_file_becomes_a_valid_notebook(tmp_path: Path) -> None:
    path = tmp_path / "new.ipynb"
    assert _merge_into_local_file(str(path), "c", turn("run-1")) is True
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["streamchat"]["conversations"]["c"]["turns"][0]["run"] == "run-1"


@pytest.mark.parametrize("content", [b'{"cells": [ not json', b"[1, 2]", b'{"metadata": 7}', b""])
def test_what_is_not_a_notebook_is_left_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "odd.ipynb"
    path.write_bytes(content)
    with pytest.raises(ValueError):
        _merge_into_local_file(str(path), "c", turn("run-1"))
    assert path.read_bytes() == content
