"""Every notebook in notebooks/ runs headlessly without errors, and what it leaves behind reads well with no
kernel: every chat and compare cell ends with its final static output (not a widget view stuck at "starting"),
`%chat_models` is a table, and the HTML export holds the replies. Headless runs are nbclient in-process, and
`jupyter nbconvert --execute` in a subprocess, with a real Jupyter server and without one."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from harness.kernels import ServerKernel
from harness.server_process import ServerProcess
from harness.upstream import FakeUpstream

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
REPO = Path(__file__).resolve().parent.parent
# A cell that starts a chat or a comparison (not one that imports `chat` or awaits a widget).
CHAT_CELL = re.compile(r"(?:^|[\s=(])(?:chat|compare)\(|^%%(?:chat|compare)\b", re.M)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
FINAL = {"completed", "stopped"}


def kernel_env(runtime_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_STREAMCHAT_", "JPY_"))}
    env["JUPYTER_RUNTIME_DIR"] = str(runtime_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def test_the_notebooks_exist():
    assert {path.name for path in NOTEBOOKS} >= {"quickstart.ipynb", "compare_models.ipynb"}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_notebook_runs_headlessly_and_reads_well_without_a_kernel(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=90, kernel_name="python3", resources={"metadata": {"path": tmp_path}})
    client.execute(env=kernel_env(tmp_path / "runtime"))  # raises CellExecutionError on any error

    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    finals = final_outputs(notebook)
    assert len(finals) == sum(1 for cell in notebook.cells if is_chat_cell(cell))
    assert all("offline demo model" in output["text/html"] for output in finals)


def is_chat_cell(cell: Any) -> bool:
    return cell.cell_type == "code" and bool(CHAT_CELL.search(cell.source))


def final_outputs(notebook: Any) -> list[dict[str, str]]:
    """The one output of every chat/compare cell, checked to be the final static rendering (fails otherwise)."""
    finals = []
    for index, cell in enumerate(notebook.cells):
        if not is_chat_cell(cell):
            continue
        shown = [o for o in cell.outputs if o.output_type in ("display_data", "execute_result")]
        assert not any(WIDGET_VIEW in o.get("data", {}) for o in shown), f"cell {index} saved a live widget view"
        static = [o.data for o in shown if 'class="jsc-pane"' in o.get("data", {}).get("text/html", "")]
        assert len(static) == 1, f"cell {index} ({cell.source[:40]!r}) has {len(static)} static outputs"
        statuses = re.findall(r'class="jsc-status jsc-status-(\w+)"', static[0]["text/html"])
        assert statuses and set(statuses) <= FINAL, f"cell {index} ended with {statuses}"
        finals.append(static[0])
    assert finals
    return finals


def nbconvert(path: Path, out_dir: Path, env: dict[str, str]) -> tuple[Any, str]:
    """`jupyter nbconvert --execute` (to an .ipynb), then its HTML export: the executed notebook and the HTML."""
    out_dir.mkdir(parents=True, exist_ok=True)
    execute = [sys.executable, "-m", "nbconvert", "--execute", "--to", "notebook", "--output-dir", str(out_dir)]
    run = subprocess.run(
        [*execute, "--ExecutePreprocessor.timeout=120", str(path)],
        env=env, cwd=path.parent, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    executed = out_dir / path.name
    export = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", "--output-dir", str(out_dir), str(executed)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr[-4000:]
    return nbformat.read(executed, as_version=4), executed.with_suffix(".html").read_text()


def assert_reads_well(notebook: Any, exported: str, note: str) -> list[dict[str, str]]:
    finals = final_outputs(notebook)
    for output in finals:
        # the reply text (the demo quotes the prompt) is in the export, with the footer saying where it is
        quoted = re.findall(r"You wrote: “[^”]*”", output["text/plain"])
        assert quoted and all(text in exported for text in quoted), quoted
        assert note in output["text/html"], output["text/html"][-400:]
    if any("%chat_models" in cell.source for cell in notebook.cells if cell.cell_type == "code"):
        assert re.search(r"<table>\s*<thead>\s*<tr>\s*<th>model id</th>", exported)
    return finals


@pytest.mark.timeout(400)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_when_nbconvert_executes_a_notebook_without_a_server_then_every_chat_cell_ends_static(path, tmp_path):
    notebook, exported = nbconvert(path, tmp_path / "out", kernel_env(tmp_path / "runtime"))

    assert_reads_well(notebook, exported, "Notebook persistence is off")


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", upstream.openai_base_url, demo_speed=20.0)
    process.start()
    try:
        yield process
    finally:
        process.close()


async def kernel_link(server: ServerProcess, notebook: str) -> dict[str, str]:
    """What the server hands the processes it starts (kernels, terminals) to reach it."""
    async with ServerKernel.start(server.base_url, server.token, notebook) as kernel:
        code = "import json, os\nprint(json.dumps({k: v for k, v in os.environ.items() if k.startswith('JUPYTER_')}))"
        link = json.loads((await kernel.execute(code)).raise_for_error().stdout)
    return {k: v for k, v in link.items() if k.startswith("JUPYTER_STREAMCHAT_")}


@pytest.mark.timeout(400)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_when_nbconvert_executes_a_notebook_for_a_server_then_every_chat_cell_ends_static_and_recorded(
    path, tmp_path, server
):
    # Given the notebook in the server's root, executed by nbconvert with the server's link (as from a
    # terminal of that server) and the notebook named as a session names it
    shutil.copy(path, server.root / path.name)
    env = kernel_env(tmp_path / "runtime")
    env.update(asyncio.run(kernel_link(server, path.name)))
    env["JPY_SESSION_NAME"] = str(server.root / path.name)

    notebook, exported = nbconvert(server.root / path.name, tmp_path / "out", env)

    # Then every chat cell is final and says it is recorded, and the notebook file holds every run once
    finals = assert_reads_well(notebook, exported, f"Recorded in {path.name}")
    panes = sum(output["text/html"].count('class="jsc-pane"') for output in finals)
    metadata = nbformat.read(server.root / path.name, as_version=4).metadata
    turns = [t["run"] for c in metadata["streamchat"]["conversations"].values() for t in c["turns"]]
    assert len(turns) == len(set(turns)) == panes
