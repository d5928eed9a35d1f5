"""A Jupyter server with jupyter_streamchat as a subprocess, so its RSS and CPU are measurable."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from . import _profiled_server
from ._proc import cpu_seconds, free_port, rss_kib
from ._upstream_proc import REPO

# Settings every benchmark server gets; benchmarks add or override with ``extra``.
BASE_SETTINGS: dict[str, Any] = {
    "ollama_enabled": False,
    "openai_api_key": "sk-bench",
    "max_concurrent_runs": 5000,
    "upstream_max_connections": 5000,
    "upstream_idle_timeout": 900.0,
    "upstream_retry_attempts": 1,
    "keepalive_interval": 15.0,
}


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


class JupyterServer:
    """``python -m jupyter_server`` with the extension, isolated config/data/runtime dirs and a token.

    ``profile_out`` runs it under ``benchmarks._profiled_server``: ``profile_start()`` /
    ``profile_stop()`` bracket the window to profile, and the stats land in ``profile_out``.
    """

    def __init__(
        self,
        workdir: Path,
        product_dir: Path,
        upstream_openai_url: str,
        settings: dict[str, Any] | None = None,
        profile_out: Path | None = None,
        name: str = "server",
    ) -> None:
        self.workdir = workdir
        self.product_dir = product_dir
        self.settings = {**BASE_SETTINGS, "openai_base_url": upstream_openai_url, **(settings or {})}
        self.profile_out = profile_out
        self.name = name
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.root = workdir / f"{name}-root"
        self.data_dir = workdir / f"{name}-data"
        self.runtime_dir = workdir / f"{name}-runtime"
        self.config_dir = workdir / f"{name}-config"
        self.log_path = workdir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self._log: Any = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def profile_start(self) -> None:
        assert self.proc is not None and self.profile_out is not None
        self.proc.send_signal(_profiled_server.START)

    async def profile_stop(self, timeout: float = 30.0) -> bool:
        """Stop profiling and wait until the stats file is written."""
        assert self.proc is not None and self.profile_out is not None
        self.profile_out.unlink(missing_ok=True)
        self.proc.send_signal(_profiled_server.STOP)
        deadline = time.monotonic() + timeout
        size = -1
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            if self.profile_out.exists():
                now = self.profile_out.stat().st_size
                if now == size and now > 0:
                    return True
                size = now
        return False

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m"]
        if self.profile_out is not None:
            cmd += ["benchmarks._profiled_server", str(self.profile_out)]
        else:
            cmd += ["jupyter_server"]
        cmd += [
            f"--port={self.port}",
            "--ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            "--ServerApp.open_browser=False",
            "--allow-root",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.jpserver_extensions={'jupyter_streamchat': True}",
        ]
        cmd += [f"--StreamChat.{key}={_cli_value(value)}" for key, value in self.settings.items()]
        return cmd

    async def start(self, timeout: float = 60.0) -> JupyterServer:
        for path in (self.root, self.data_dir, self.runtime_dir, self.config_dir):
            path.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            PYTHONPATH=os.pathsep.join([str(self.product_dir), str(REPO), env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
            JUPYTER_CONFIG_DIR=str(self.config_dir),
            JUPYTER_DATA_DIR=str(self.data_dir),
            JUPYTER_RUNTIME_DIR=str(self.runtime_dir),
            JUPYTER_PLATFORM_DIRS="1",
            PYTHONUNBUFFERED="1",
        )
        for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OLLAMA_HOST"):
            env.pop(key, None)
        self._log = open(self.log_path, "ab")  # noqa: ASYNC230 - a log file, closed in stop()
        self.proc = await asyncio.create_subprocess_exec(
            *self.command(), stdout=self._log, stderr=self._log, cwd=str(self.root), env=env
        )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(headers=self.auth_headers, timeout=2.0) as client:
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"jupyter server exited ({self.proc.returncode}); see {self.log_path}")
                try:
                    response = await client.get(f"{self.base_url}api/status")
                    if response.status_code == 200:
                        models = await client.get(f"{self.base_url}streamchat/models")
                        if models.status_code == 200:
                            return self
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    await self.stop()
                    raise RuntimeError(f"jupyter server did not answer within {timeout}s; see {self.log_path}")
                await asyncio.sleep(0.2)

    async def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (clean shutdown), SIGKILL after ``timeout``."""
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode
