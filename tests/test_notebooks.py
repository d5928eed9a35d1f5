"""Every notebook in notebooks/ runs headlessly (nbclient, a kernel no server started) without errors,
and what it leaves behind reads well with no kernel: finished widgets are static HTML, not widget views."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
REPO = Path(__file__).resolve().parent.parent


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
    # Every widget the notebook waited for became static HTML holding its reply (GitHub, nbviewer, reopen)
    awaited = sum(c.source.count(".done") for c in notebook.cells if c.cell_type == "code")
    renderings = [
        o["data"]["text/html"]
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "display_data" and 'class="jsc-pane"' in o.get("data", {}).get("text/html", "")
    ]
    assert awaited >= 1
    assert len(renderings) >= awaited
    assert all("offline demo model" in html for html in renderings)
