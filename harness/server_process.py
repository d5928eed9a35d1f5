"""A real ``jupyter server`` process with jupyter_streamchat, for tests that kill it (SIGKILL, SIGTERM).

pytest-jupyter's in-process server cannot crash; this one can. Every directory Jupyter would touch
(config, data, runtime, home) is private to the test, so no user or machine setting leaks in.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import nbformat

from harness.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_env(workdir: Path) -> dict[str, str]:
    """The environment of a Jupyter process whose config, data, runtime and home are all under ``workdir``,
    that imports this checkout, and that sees no provider keys or addresses from the machine."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(workdir / "config"),
        "JUPYTER_DATA_DIR": str(workdir / "data"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "HOME": str(workdir / "home"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OLLAMA_HOST"):
        env.pop(name, None)
    return env


class ServerProcess:
    """One server process; ``start()`` again after it ended to get a new one on the same journal and root."""

    def __init__(
        self,
        workdir: Path,
        upstream_url: str,
        flush_interval: float = 0.1,
        *,
        base_url: str = "/",
        extra_args: list[str] | None = None,
        demo_speed: float | None = None,
        openai_api_key: str = "k",
    ) -> None:
        self.workdir = workdir
        self.root = workdir / "root"
        self.journal = workdir / "journal.sqlite3"
        self.upstream_url = upstream_url
        self.flush_interval = flush_interval
        # The path prefix, as JupyterHub gives single-user servers (``/user/alice/``): starts and ends with "/".
        self.base_path = "/" + "".join(f"{part}/" for part in base_url.split("/") if part)
        self.extra_args = list(extra_args or [])
        self.demo_speed = demo_speed
        self.openai_api_key = openai_api_key
        self.token = secrets.token_hex(16)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        for name in ("root", "config", "data", "runtime", "home"):
            (workdir / name).mkdir(parents=True, exist_ok=True)

    @property
    def base_url(self) -> str:
        """The server's URL including ``base_path``, ending in "/"."""
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"server-{self.starts}.log"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def start(self, timeout: float = 90.0, *, stdin: int | None = subprocess.DEVNULL) -> None:
        """Start and wait until the server answers. ``stdin`` is not a terminal by default, as under JupyterHub,
        systemd or in a container (pass a pty's end to get a terminal)."""
        assert self.process is None or self.process.poll() is not None, "server already running"
        self.starts += 1
        self.port = free_port()
        env = private_env(self.workdir)
        args = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--ServerApp.jpserver_extensions={'jupyter_streamchat': True}",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.open_browser=False",
            "--allow-root",
            f"--ServerApp.root_dir={self.root}",
            f"--StreamChat.openai_base_url={self.upstream_url}",
            f"--StreamChat.openai_api_key={self.openai_api_key}",
            "--StreamChat.ollama_enabled=False",
            f"--StreamChat.journal_path={self.journal}",
            f"--StreamChat.journal_flush_interval={self.flush_interval}",
            f"--ServerApp.base_url={self.base_path}",
        ]
        if self.demo_speed is not None:
            args.append(f"--StreamChat.demo_speed={self.demo_speed}")
        args += self.extra_args
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                args, env=env, stdin=stdin, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        headers = {"Authorization": f"token {self.token}"}
        process = self.process

        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{self.log_tail()}")
            try:
                return httpx.get(f"{self.base_url}api/status", headers=headers, timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_until(answers, timeout, what=lambda: f"the server to answer:\n{self.log_tail()}")
        except AssertionError:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the server."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout: float = 10.0) -> float:
        """SIGTERM, then wait for the exit; returns the seconds it took (raises if longer than ``timeout``)."""
        return self.send(signal.SIGTERM, timeout)

    def send(self, signum: int, timeout: float = 10.0) -> float:
        """Send ``signum``, then wait for the exit; returns the seconds it took (raises if longer than ``timeout``)."""
        assert self.process is not None
        sent = time.monotonic()
        self.process.send_signal(signum)
        return self.wait_exit(sent, timeout, signal.Signals(signum).name)

    def wait_exit(self, since: float, timeout: float, what: str) -> float:
        """Wait for the process to exit after ``what`` happened at ``since`` (monotonic); the seconds it took."""
        assert self.process is not None
        try:
            self.process.wait(max(0.0, since + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"server did not exit within {timeout}s of {what}:\n{self.log_tail()}") from None
        return time.monotonic() - since

    def close(self) -> None:
        self.kill()


@contextmanager
def serving(process: ServerProcess, *notebooks: str) -> Iterator[ServerProcess]:
    """``process`` started, with an empty notebook at each of ``notebooks``; closed afterwards."""
    for name in notebooks:
        nbformat.write(nbformat.v4.new_notebook(), process.root / name)
    process.start()
    try:
        yield process
    finally:
        process.close()
