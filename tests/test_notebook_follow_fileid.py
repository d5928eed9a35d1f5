"""With Jupyter's file ID service (jupyter_server_fileid), a run also follows a notebook moved outside Jupyter.

``LocalFileIdManager`` tracks files by inode, so it finds a notebook moved by ``mv`` in a terminal; the default
``ArbitraryFileIdManager`` knows only the renames made through Jupyter, so such a move is not followed and the
run ends ``gone`` (a documented limit). Renames through the contents API are followed with either.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from traitlets.config import Config

from harness.upstream import Script, Stall, Text
from tests.helpers import chat, collect

NOTEBOOK = "tracked.ipynb"
LOCAL = "jupyter_server_fileid.manager.LocalFileIdManager"
ARBITRARY = "jupyter_server_fileid.manager.ArbitraryFileIdManager"


@pytest.fixture
def jp_server_config(
    streamchat_server_config: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> Config:
    config = copy.deepcopy(streamchat_server_config)
    config["ServerApp"]["jpserver_extensions"]["jupyter_server_fileid"] = True
    config["FileIdExtension"] = {"file_id_manager_class": getattr(request, "param", LOCAL)}
    config["BaseFileIdManager"] = {"db_path": str(tmp_path / "file_id.db")}
    return Config(config)


@pytest.fixture
def notebook(jp_root_dir) -> str:
    nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / NOTEBOOK)
    return NOTEBOOK


def turns(root, path: str) -> list[dict[str, Any]]:
    notebook = nbformat.read(root / path, as_version=4)
    return notebook.metadata.get("streamchat", {}).get("conversations", {}).get("default", {}).get("turns", [])


async def streaming(client, upstream, model: str, notebook: str) -> str:
    upstream.script(model, Script([Text("Hal"), Text("f"), Stall(30)]))
    started = await client.start_run(chat(f"openai:{model}", "question?", notebook=notebook))
    await collect(client.events(started["id"]), limit=2)
    return started["id"]


async def wait_recorded(jp_fetch, run_id: str) -> dict[str, Any]:
    response = await jp_fetch("streamchat", "runs", run_id, params={"wait": "recorded"})
    return json.loads(response.body)


async def test_a_notebook_moved_on_disk_mid_run_is_followed_by_its_file_id(
    streamchat_client, upstream, jp_fetch, jp_root_dir, notebook
):
    run_id = await streaming(streamchat_client, upstream, "mv", notebook)
    # When the notebook is moved behind Jupyter's back (``mv`` in a terminal) into another folder
    (jp_root_dir / "elsewhere").mkdir()
    os.rename(jp_root_dir / notebook, jp_root_dir / "elsewhere" / "moved.ipynb")
    await streamchat_client.stop(run_id)
    # Then the file ID service finds it, and the turn lands there, once
    record = await wait_recorded(jp_fetch, run_id)
    assert record["notebook"] == "elsewhere/moved.ipynb" and record["recorded"] == "recorded"
    assert [t["run"] for t in turns(jp_root_dir, "elsewhere/moved.ipynb")] == [run_id]
    assert not (jp_root_dir / notebook).exists()


@pytest.mark.parametrize("jp_server_config", [ARBITRARY], indirect=True)
async def test_with_the_default_file_id_manager_a_move_on_disk_is_not_followed(
    streamchat_client, upstream, jp_fetch, jp_root_dir, notebook
):
    run_id = await streaming(streamchat_client, upstream, "mv-arbitrary", notebook)
    # When the notebook is moved behind Jupyter's back, with a file ID manager that does not track inodes
    os.rename(jp_root_dir / notebook, jp_root_dir / "moved.ipynb")
    await streamchat_client.stop(run_id)
    # Then the run ends gone (the limit), and neither path gets a turn or is created
    record = await wait_recorded(jp_fetch, run_id)
    assert record["recorded"] == "gone" and record["notebook"] == notebook
    assert turns(jp_root_dir, "moved.ipynb") == [] and not (jp_root_dir / notebook).exists()


@pytest.mark.parametrize("jp_server_config", [LOCAL, ARBITRARY], indirect=True)
async def test_a_rename_through_jupyter_is_followed_with_the_file_id_service_too(
    streamchat_client, upstream, jp_fetch, jp_root_dir, notebook
):
    run_id = await streaming(streamchat_client, upstream, "api-rename", notebook)
    await jp_fetch("api", "contents", notebook, method="PATCH", body=json.dumps({"path": "renamed.ipynb"}))
    await streamchat_client.stop(run_id)
    record = await wait_recorded(jp_fetch, run_id)
    assert record["notebook"] == "renamed.ipynb" and record["recorded"] == "recorded"
    assert [t["run"] for t in turns(jp_root_dir, "renamed.ipynb")] == [run_id]
