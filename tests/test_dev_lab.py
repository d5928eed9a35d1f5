"""`./dev lab` on a fresh clone: JupyterLab as `pip install jupyter_streamchat jupyterlab` gives it (no test
extras, so no collaborative mode), and the checkout stays clean (no rewritten lock file, no runtime files).

Slow (a new venv, `npm ci`, the labextension build): pip's and npm's caches are reused, nothing else is
skipped, and `./dev test` runs it like every other test.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from harness.server_process import free_port
from harness.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
SETUP_SECONDS = 1200.0  # venv + pip (cached) + npm ci (cached) + the labextension build, on 2 shared cores


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "clone"
    git("clone", "--quiet", str(REPO), str(target), cwd=tmp_path)
    return target


def lab_env(tmp_path: Path) -> dict[str, str]:
    """The user's caches (pip, npm) but Jupyter directories of the test's own, and nothing from the test venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv" not in p)
    for name in ("config", "data", "runtime"):
        (tmp_path / name).mkdir()
        env[f"JUPYTER_{name.upper()}_DIR"] = str(tmp_path / name)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    return env


def wait_for_lab(process: subprocess.Popen[bytes], url: str, log: Path) -> str:
    """The Lab page's HTML, once the server answers it (polled; the setup before it takes minutes)."""

    def page() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"./dev lab exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            response = httpx.get(url, timeout=5)
        except httpx.TransportError:
            return None
        return response.text if response.status_code == 200 else None

    return wait_until(page, SETUP_SECONDS, what=lambda: f"Lab to answer:\n{log.read_text()[-4000:]}", interval=0.5)


@pytest.mark.timeout(SETUP_SECONDS + 120)
def test_when_a_newcomer_runs_dev_lab_then_lab_serves_streamchat_without_collaboration_and_git_stays_clean(
    clone, tmp_path
):
    port, token = free_port(), "dev-lab-test-token"
    log = tmp_path / "dev-lab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["./dev", "lab", f"--port={port}", "--ServerApp.port_retries=0", "--no-browser",
             f"--IdentityProvider.token={token}"],
            cwd=clone, env=lab_env(tmp_path), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        page = wait_for_lab(process, f"http://127.0.0.1:{port}/lab?token={token}", log)

        # Then the extension is served (its bundle and its routes) and collaboration is not there at all
        assert "jupyter-streamchat" in page
        assert "collaboration" not in page.lower()
        headers = {"Authorization": f"token {token}"}
        models = httpx.get(f"http://127.0.0.1:{port}/streamchat/models", headers=headers, timeout=10)
        assert models.status_code == 200 and models.json()["default"].startswith("demo:")
        rooms = httpx.get(f"http://127.0.0.1:{port}/api/collaboration/room/x", headers=headers, timeout=10)
        assert rooms.status_code == 404
        no_collab = subprocess.run([str(clone / ".venv-lab/bin/python"), "-c", "import jupyter_collaboration"])
        assert no_collab.returncode != 0
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)

    # Then the checkout is exactly what was cloned
    assert git("status", "--porcelain", "--ignored=no", cwd=clone) == ""
    ignored = git("status", "--porcelain", "--ignored", cwd=clone).splitlines()
    assert sorted(ignored) == sorted(
        line for line in ignored if line.split()[-1].rstrip("/").split("/")[-1] in IGNORED_BUILD_OUTPUT
    ), ignored


# What the setup builds inside the checkout, all git-ignored: the venv, npm's and the build's output.
IGNORED_BUILD_OUTPUT = {".venv-lab", "node_modules", "lib", "labextension", "tsconfig.tsbuildinfo", "__pycache__"}
