"""A real JupyterHub on 127.0.0.1, with configurable-http-proxy and local single-user servers, for tests.

The hub runs as users run it: ``jupyterhub`` from PyPI, the proxy from npm (``tests/hub/node_modules``,
installed by ``./dev``), ``SimpleLocalProcessSpawner`` starting ``jupyterhub-singleuser`` as the current user
(root on the test machines, hence ``--allow-root``), and stdin not a terminal, so that the single-user servers
the hub stops get SIGINT without a terminal, as in production. Every directory the hub and the users' servers
touch is under the test's ``workdir``; each user's server has its own home, root (notebooks) and Jupyter data
directory (where the streamchat journal lives).

    hub = Hub(workdir, upstream.openai_base_url).start()
    token = hub.user_token("alice")                        # created through the hub's REST API
    hub.start_server("alice")                              # POST /hub/api/users/alice/server, wait until ready
    url = hub.user_url("alice")                            # http://127.0.0.1:<proxy port>/user/alice/
    hub.stop_server("alice")                               # DELETE ..., wait until stopped
    hub.close()
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from harness.server_process import REPO, free_port
from harness.waiting import wait_until

CHP = REPO / "tests" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
ADMIN_SERVICE = "streamchat-tests"


def missing_requirements() -> str | None:
    """Why a real hub cannot run here, or None when it can."""
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return "jupyterhub is not installed (it is in the `test` extra: pip install -e '.[test]')"
    if not CHP.exists():
        return f"configurable-http-proxy is not installed at {CHP} (./dev runs npm install in tests/hub)"
    if shutil.which("node") is None:
        return "node is not on PATH (configurable-http-proxy needs it)"
    return None


class Hub:
    """One JupyterHub process (and the proxy it starts) on loopback; users' servers start on demand."""

    def __init__(
        self,
        workdir: Path,
        upstream_openai_url: str,
        *,
        users: tuple[str, ...] = ("alice", "bob"),
        streamchat: dict[str, Any] | None = None,
        user_env: dict[str, str] | None = None,
        culler: tuple[str, list[str]] | None = None,
    ) -> None:
        """``culler``: (the one user ``jupyterhub-idle-culler`` may see and cull, its command-line options); the
        culler runs once ``start_culler`` is called."""
        self.workdir = workdir
        self.users = users
        self.port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.admin_token = secrets.token_hex(32)
        self.proxy_token = secrets.token_hex(32)
        self.upstream_openai_url = upstream_openai_url
        self.streamchat = {
            "ollama_enabled": False,
            "journal_flush_interval": 0.1,
            **(streamchat or {}),
        }
        self.user_env = dict(user_env or {})
        self.culler = culler
        self.culler_token = secrets.token_hex(32)
        self.process: subprocess.Popen[bytes] | None = None
        self.culler_process: subprocess.Popen[bytes] | None = None
        # Pids of single-user servers seen running: ended by id if the hub could not stop them itself.
        self.server_pids: set[int] = set()
        self._http = httpx.Client(
            base_url=f"{self.url}hub/api/", headers={"Authorization": f"token {self.admin_token}"}, timeout=30
        )

    # -- where things are ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The public URL: the proxy, as a browser sees the hub."""
        return f"http://127.0.0.1:{self.port}/"

    def user_url(self, user: str) -> str:
        """A user's single-user server, through the proxy."""
        return f"{self.url}user/{user}/"

    def root(self, user: str) -> Path:
        """Where a user's notebooks are (the single-user server's root_dir)."""
        return self.workdir / "users" / user / "notebooks"

    def home(self, user: str) -> Path:
        return self.workdir / "users" / user / "home"

    @property
    def log_path(self) -> Path:
        return self.workdir / "jupyterhub.log"

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    @property
    def proxy_pid(self) -> int | None:
        """configurable-http-proxy's process (from the pid file the hub has it write)."""
        return _read_pid(self.workdir / "proxy.pid")

    # -- life cycle ---------------------------------------------------------------------------------

    def _config(self) -> str:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "JUPYTER_CONFIG_DIR": str(self.workdir / "user-config"),
            "JUPYTER_PLATFORM_DIRS": "1",
            # Provider settings come from the spawner's environment, as a Kubernetes Secret would give them.
            "OPENAI_BASE_URL": self.upstream_openai_url,
            "OPENAI_API_KEY": "sk-hub-test",
            **self.user_env,
        }
        for name in ("LANG", "LC_ALL"):
            if name in os.environ:
                env.setdefault(name, os.environ[name])
        users_dir = self.workdir / "users"
        return "\n".join(
            [
                "c = get_config()  # noqa",
                f"c.JupyterHub.bind_url = {self.url!r}",
                f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{self.hub_port}'",
                f"c.JupyterHub.db_url = 'sqlite:///{self.workdir / 'jupyterhub.sqlite'}'",
                f"c.JupyterHub.cookie_secret_file = {str(self.workdir / 'jupyterhub_cookie_secret')!r}",
                f"c.JupyterHub.pid_file = {str(self.workdir / 'jupyterhub.pid')!r}",
                f"c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]",
                f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{self.proxy_api_port}'",
                f"c.ConfigurableHTTPProxy.auth_token = {self.proxy_token!r}",
                f"c.ConfigurableHTTPProxy.pid_file = {str(self.workdir / 'proxy.pid')!r}",
                "c.JupyterHub.authenticator_class = 'dummy'",
                f"c.Authenticator.allowed_users = {set(self.users)!r}",
                f"c.JupyterHub.services = {self._services()!r}",
                f"c.JupyterHub.load_roles = {self._roles()!r}",
                "c.JupyterHub.spawner_class = 'simple'",
                f"c.Spawner.cmd = [{sys.executable!r}, '-m', 'jupyterhub.singleuser']",
                "c.Spawner.args = ['--allow-root']",
                "c.Spawner.ip = '127.0.0.1'",
                f"c.Spawner.notebook_dir = {str(users_dir / '{username}' / 'notebooks')!r}",
                f"c.SimpleLocalProcessSpawner.home_dir_template = {str(users_dir / '{username}' / 'home')!r}",
                f"c.Spawner.environment = {env!r}",
                # A busy 2-core test machine: generous, the tests bound what they measure themselves.
                "c.Spawner.start_timeout = 120",
                "c.Spawner.http_timeout = 120",
                "c.JupyterHub.init_spawners_timeout = 60",
                # Only SIGINT stops a server here: the hub's later SIGTERM would hide a server that ignores it
                # (a test's own guard fails first).
                "c.Spawner.interrupt_timeout = 300",
            ]
        )

    def _services(self) -> list[dict[str, Any]]:
        services: list[dict[str, Any]] = [{"name": ADMIN_SERVICE, "api_token": self.admin_token}]
        if self.culler is not None:
            # An external service (the test starts it): a managed one starts with the hub and, with the short idle
            # timeout tests use, culled a server whose spawn took longer than that timeout on a loaded machine the
            # moment it was up (the hub counts a server's activity only once it runs).
            services.append({"name": "idle-culler", "api_token": self.culler_token})
        return services

    def _roles(self) -> list[dict[str, Any]]:
        roles: list[dict[str, Any]] = [{"name": "admin", "services": [ADMIN_SERVICE]}]
        if self.culler is not None:
            # The culler's usual role, narrowed to one user so that it leaves the other tests' servers alone.
            user = self.culler[0]
            scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
            roles.append(
                {"name": "idle-culler", "scopes": [f"{s}!user={user}" for s in scopes], "services": ["idle-culler"]}
            )
        return roles

    def start(self, timeout: float = 90.0) -> Hub:
        (self.workdir / "user-config").mkdir(parents=True, exist_ok=True)
        (self.workdir / "user-config" / "jupyter_server_config.json").write_text(
            json.dumps({"StreamChat": self.streamchat}, indent=1)
        )
        for user in self.users:
            self.root(user).mkdir(parents=True, exist_ok=True)
            self.home(user).mkdir(parents=True, exist_ok=True)
        config = self.workdir / "jupyterhub_config.py"
        config.write_text(self._config() + "\n")
        env = {
            **os.environ,
            "HOME": str(self.workdir / "hub-home"),
            "JUPYTER_CONFIG_DIR": str(self.workdir / "hub-config"),
            "JUPYTER_DATA_DIR": str(self.workdir / "hub-data"),
            "JUPYTER_RUNTIME_DIR": str(self.workdir / "hub-runtime"),
        }
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OLLAMA_HOST"):
            env.pop(name, None)
        # As in production (systemd, a container): no terminal, so SIGINT reaches servers without one.
        self.process = process = self._launch_into_log([sys.executable, "-m", "jupyterhub", "-f", str(config)], env)

        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                return self._http.get("").status_code == 200 and self._http.get(f"users/{self.users[0]}").is_success
            return False

        try:
            wait_until(answers, timeout, what=lambda: f"jupyterhub to answer:\n{self.log_tail()}", interval=0.2)
        except AssertionError:
            self.close()
            raise
        return self

    def start_culler(self, timeout: float = 60.0) -> None:
        """Start ``jupyterhub-idle-culler`` with the ``culler`` options, logging into the hub's log; return once
        the hub has answered its first look at the users."""
        assert self.culler is not None and self.culler_process is None, "one culler, configured at construction"
        looks = self._culler_looks()
        env = {
            **os.environ,
            "JUPYTERHUB_API_TOKEN": self.culler_token,
            "JUPYTERHUB_API_URL": f"http://127.0.0.1:{self.hub_port}/hub/api",
        }
        self.culler_process = culler = self._launch_into_log(
            [sys.executable, "-m", "jupyterhub_idle_culler", *self.culler[1]], env
        )

        def looked() -> bool:
            if culler.poll() is not None:
                raise RuntimeError(f"the idle culler exited with {culler.returncode}:\n{self.log_tail()}")
            return self._culler_looks() > looks

        wait_until(looked, timeout, what=lambda: f"the idle culler's first look\n{self.log_tail()}", interval=0.2)

    def _launch_into_log(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start a process of the hub's deployment (the hub, the culler) with no terminal, logging to the hub's log."""
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                args, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def _culler_looks(self) -> int:
        """How many user listings the hub has answered the culler (one log line each)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return sum("GET /hub/api/users?" in line and "(idle-culler@" in line for line in text.splitlines())

    def close(self) -> None:
        """Stop the culler and the hub (it stops the users' servers and the proxy), then end by id whatever it
        left."""
        _end(self.culler_process, grace=30)
        _end(self.process, grace=60)
        proxy_pid = self.proxy_pid
        for pid in [*self.server_pids, *([proxy_pid] if proxy_pid else [])]:
            _kill_if_alive(pid)
        self._http.close()

    # -- the hub's REST API, as an admin service ----------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._http.request(method, path, **kwargs)

    def user_token(self, user: str, **body: Any) -> str:
        """A new API token for ``user`` (POST /hub/api/users/{user}/tokens), what a user makes on the token page."""
        response = self.api("POST", f"users/{user}/tokens", json={"note": "streamchat tests", **body})
        response.raise_for_status()
        return str(response.json()["token"])

    def server_model(self, user: str) -> dict[str, Any] | None:
        response = self.api("GET", f"users/{user}")
        response.raise_for_status()
        return response.json().get("servers", {}).get("")

    def start_server(self, user: str, timeout: float = 120.0) -> dict[str, Any]:
        """Start ``user``'s server through the hub's API and wait until the hub says it is ready."""
        response = self.api("POST", f"users/{user}/server")
        if response.status_code not in (201, 202, 400):  # 400: already running
            raise RuntimeError(f"POST users/{user}/server: {response.status_code} {response.text}")

        def ready() -> dict[str, Any] | None:
            model = self.server_model(user)
            return model if model is not None and model.get("ready") else None

        model = wait_until(ready, timeout, what=lambda: f"{user}'s server to be ready\n{self.log_tail()}", interval=0.2)
        pid = (model.get("state") or {}).get("pid")
        if pid:
            self.server_pids.add(int(pid))
        return model

    def stop_server(self, user: str, timeout: float = 60.0) -> float:
        """Stop ``user``'s server through the hub's API (the hub sends it SIGINT); the seconds until it is gone."""
        sent = time.monotonic()
        model = self.server_model(user)
        response = self.api("DELETE", f"users/{user}/server")
        if response.status_code not in (202, 204):
            raise RuntimeError(f"DELETE users/{user}/server: {response.status_code} {response.text}")
        return self.wait_server_gone(user, timeout, model) - sent

    def wait_server_gone(self, user: str, timeout: float, model: dict[str, Any] | None = None) -> float:
        """Wait until the hub lists no server for ``user`` and its process is gone; the monotonic time then."""
        model = model or self.server_model(user)
        pid = (model or {}).get("state", {}).get("pid")
        wait_until(
            lambda: self.server_model(user) is None and not (pid and _alive(int(pid))),
            timeout,
            what=lambda: f"{user}'s server to stop:\n{self.log_tail()}",
        )
        return time.monotonic()

    def direct_url(self, user: str) -> str:
        """A user's server without the proxy: the target of its route in configurable-http-proxy."""
        response = httpx.get(
            f"http://127.0.0.1:{self.proxy_api_port}/api/routes",
            headers={"Authorization": f"token {self.proxy_token}"},
            timeout=10,
        )
        response.raise_for_status()
        route = response.json()[f"/user/{user}"]
        return f"{route['target'].rstrip('/')}/user/{user}/"


def _end(process: subprocess.Popen[bytes] | None, grace: float) -> None:
    """SIGTERM ``process`` if it still runs, and kill it if it outlives ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by the hub) is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _kill_if_alive(pid: int) -> None:
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
