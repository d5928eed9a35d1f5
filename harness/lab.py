"""A real ``jupyter lab`` process and a real browser (Debian chromium driven by Playwright), for UI tests.

``LabProcess`` starts JupyterLab with jupyter_streamchat like ``harness/server_process.py`` starts a plain server:
every directory Jupyter would touch (config, data, runtime, home, settings, workspaces) is private to the test, so
no user or machine setting leaks in -- but the labextensions installed in this environment
(``<sys.prefix>/share/jupyter/labextensions``, on Jupyter's default path) are found as usual. Nothing is downloaded:
news and update checks are off, and the browser is the system's ``/usr/bin/chromium`` (never ``playwright install``).

``launch_browser()`` / ``open_lab()`` start chromium headless and open a document in the Lab page; the page has
``window.jupyterapp`` (``--LabApp.expose_app_in_browser``) and records every dialog it ever shows in
``window.__dialogs`` (a dialog that came and went is still seen).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest

from harness.server_process import REPO, free_port, private_env
from harness.waiting import wait_until

CHROMIUM = Path(os.environ.get("STREAMCHAT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
ARTIFACTS = REPO / "test-artifacts"

T = TypeVar("T")


# pytest-jupyter (loaded by conftest) has autouse fixtures that close "the" event loop and clean up an in-process
# server after each test: with Playwright's sync API running its own loop in the test's thread, both fail. Browser
# tests use neither asyncio nor an in-process server; importing these two into a test module switches them off.
@pytest.fixture
def jp_asyncio_loop() -> None:
    return None


@pytest.fixture
def jp_server_cleanup() -> None:
    return None


def browser_available() -> str | None:
    """None if the browser tests can run here, else why not (for ``pytest.skip``)."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright; never `playwright install`)"
    if shutil.which("jupyter-lab") is None and not (Path(sys.executable).parent / "jupyter-lab").exists():
        return "jupyterlab is not installed"
    return None


def notebook_json(source: str = "", metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """A small valid nbformat 4.5 notebook with one code cell, as JupyterLab writes them."""
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": secrets.token_hex(4),
                "metadata": {},
                "outputs": [],
                "source": source,
            }
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            **(metadata or {}),
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


class LabProcess:
    """One ``jupyter lab`` on 127.0.0.1 (token auth, a JupyterHub-like base URL, a temporary root)."""

    def __init__(
        self,
        workdir: Path,
        *,
        base_url: str = "/user/tester/",
        extra_args: list[str] | None = None,
        collaborative: bool = False,
    ) -> None:
        self.workdir = workdir
        self.collaborative = collaborative
        self.root = workdir / "root"
        self.base_path = "/" + "".join(f"{part}/" for part in base_url.split("/") if part)
        self.extra_args = list(extra_args or [])
        self.token = secrets.token_hex(16)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        for name in ("root", "config", "data", "runtime", "home"):
            (workdir / name).mkdir(parents=True, exist_ok=True)
        self._write_user_settings()

    # ----- addresses and HTTP ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/<base path>``, ending in "/"."""
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def url_of(self, path: str, workspace: str | None = None) -> str:
        """The Lab URL that opens ``path`` (server-relative), logging in with the token.

        Each page gets its own new workspace unless one is named: Lab would otherwise restore the previous page's
        layout (and open its documents too)."""
        workspace = workspace or f"test-{secrets.token_hex(6)}"
        return f"{self.base_url}lab/workspaces/{workspace}/tree/{quote(path)}?token={self.token}"

    def notebook7_url(self, path: str) -> str:
        """The Notebook 7 URL that opens ``path`` (server-relative) in a page of its own, logging in with the token."""
        return f"{self.base_url}notebooks/{quote(path)}?token={self.token}"

    def api(self, method: str, endpoint: str, **kwargs: Any) -> httpx.Response:
        """Call ``{base_url}{endpoint}`` with the token; raises on an error status."""
        response = httpx.request(method, self.base_url + endpoint, headers=self.headers, timeout=10, **kwargs)
        response.raise_for_status()
        return response

    # ----- logs ---------------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.workdir / "lab.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    # ----- life cycle -------------------------------------------------------------------------------
    def _write_user_settings(self) -> None:
        """Lab settings for tests: no autosave (a test decides when a document is saved), no news, no update check;
        and the server logs jupyter_streamchat's INFO lines (``recorded_how`` reads them) and the hand-off's DEBUG
        lines (``document_streams``)."""
        server_config = {
            "ServerApp": {
                "logging_config": {
                    "handlers": {"debug": {"class": "logging.StreamHandler", "formatter": "console", "level": "DEBUG"}},
                    "loggers": {
                        "jupyter_streamchat": {"level": "INFO", "handlers": ["console"]},
                        "jupyter_streamchat.handoff": {"level": "DEBUG", "handlers": ["debug"], "propagate": False},
                    },
                }
            }
        }
        (self.workdir / "config" / "jupyter_server_config.json").write_text(json.dumps(server_config))
        settings = self.workdir / "config" / "lab" / "user-settings"
        files = {
            "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
            "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
                "fetchNews": "false",
                "checkForUpdates": False,
            },
        }
        for name, value in files.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))

    def start(self, timeout: float = 60.0) -> None:
        assert self.process is None or self.process.poll() is not None, "lab already running"
        self.port = free_port()
        env = private_env(self.workdir)
        args = [
            sys.executable,
            "-m",
            "jupyterlab",
            # jupyter-lsp would scan the machine for language servers: not what these tests are about.
            "--ServerApp.jpserver_extensions={'jupyter_streamchat': True, 'jupyter_lsp': False}",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.open_browser=False",
            "--allow-root",
            f"--ServerApp.root_dir={self.root}",
            f"--ServerApp.base_url={self.base_path}",
            "--LabApp.expose_app_in_browser=True",
            # Notebook 7 (the ``notebook`` package) serves /tree and /notebooks/<path> from the same server.
            "--JupyterNotebookApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            # jupyter-collaboration (a test dependency) would put open notebooks in a shared room: the server then
            # writes through the room and never offers a turn to the page. Tests of the hand-off need plain Lab
            # (what ``pip install jupyterlab`` gives); ``collaborative=True`` keeps the rooms.
            *([] if self.collaborative else ["--YDocExtension.disable_rtc=True"]),
            "--StreamChat.demo_speed=20",
            "--StreamChat.ollama_enabled=False",
            f"--StreamChat.journal_path={self.workdir / 'journal.sqlite3'}",
            *self.extra_args,
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir
            )
        process = self.process

        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{self.log_tail()}")
            try:
                return httpx.get(f"{self.base_url}api/status", headers=self.headers, timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_until(answers, timeout, what=lambda: f"jupyter lab to answer:\n{self.log_tail()}")
        except AssertionError:
            self.stop()
            raise
        self._check_labextension()

    def _check_labextension(self) -> None:
        """Fail clearly if Lab serves no jupyter-streamchat bundle, or another one than this checkout built."""
        page = self.api("GET", f"lab?token={self.token}").text
        match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S)
        assert match, "no jupyter-config-data in the Lab page"
        extensions = {ext["name"]: ext for ext in json.loads(match.group(1)).get("federated_extensions", [])}
        served = extensions.get("jupyter-streamchat")
        if served is None:
            raise RuntimeError("JupyterLab does not load the jupyter-streamchat labextension (pip install -e .)")
        built = REPO / "jupyter_streamchat" / "labextension" / "package.json"
        if built.exists():
            expected = json.loads(built.read_text())["jupyterlab"]["_build"]["load"]
            if served.get("load") != expected:
                raise RuntimeError(
                    f"JupyterLab serves a stale jupyter-streamchat bundle ({served.get('load')}, this checkout built "
                    f"{expected}): reinstall (pip install -e .) or link it (jupyter-builder develop --overwrite .)"
                )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (the server shuts its kernels down), SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    # ----- files under the root ---------------------------------------------------------------------
    def write_notebook(self, path: str, source: str = "") -> Path:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(notebook_json(source), indent=1) + "\n")
        return target

    def read_notebook(self, path: str) -> dict[str, Any]:
        """The notebook's JSON. Jupyter's "atomic" save rewrites the file in place (after a backup copy), so a
        reader can catch it half-written: read again until it parses."""

        def parsed() -> dict[str, Any] | None:
            try:
                return dict(json.loads((self.root / path).read_text()))
            except json.JSONDecodeError:
                return None

        return wait_until(parsed, what=f"{path} to parse")

    # ----- runs ---------------------------------------------------------------------------------------
    def start_run(
        self, notebook: str, conversation: str, prompt: str = "hi", model: str = "demo:fast", history: bool = True
    ) -> str:
        """Start a detached run; with ``history`` the server builds the messages from the conversation (``prompt``),
        which reads the notebook file; without, the request carries the one message itself (``messages``)."""
        body: dict[str, Any] = {"model": model, "notebook": notebook, "conversation": conversation}
        if history:
            body["prompt"] = prompt
        else:
            body["messages"] = [{"role": "user", "content": prompt}]
        return str(self.api("POST", "streamchat/runs", json=body).json()["id"])

    def run_record(self, run_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"streamchat/runs/{run_id}").json())

    def wait_run_finished(self, run_id: str, timeout: float = 20.0) -> dict[str, Any]:
        return wait_until(
            lambda: (record := self.run_record(run_id))["status"] != "running" and record,
            timeout,
            what=f"run {run_id} to finish",
        )

    def shutdown_kernels(self) -> None:
        """Shut down every kernel (each notebook a test opens in Lab starts one)."""
        for kernel in self.api("GET", "api/kernels").json():
            try:
                self.api("DELETE", f"api/kernels/{kernel['id']}")
            except httpx.HTTPStatusError:
                pass  # already gone

    def recorded_how(self, run_id: str) -> str | None:
        """How the server says it recorded a run (shared, file, duplicate), from its log."""
        match = re.search(rf"streamchat run {re.escape(run_id)} recorded in .* \(([a-z-]+)\)", self.log_text())
        return match.group(1) if match else None

    def document_streams(self) -> list[list[str]]:
        """The open-document streams the server holds open now (paths sorted, oldest stream first), from its log.

        The server's view, not the browser's tools: Playwright has reported a stream the page aborted, and the server
        saw closed at once, as open for over a minute."""
        open_streams: dict[str, list[str]] = {}
        for match in re.finditer(r"streamchat document stream (\d+) (opened for (\[.*?\])|closed)", self.log_text()):
            if match.group(3) is not None:
                open_streams[match.group(1)] = json.loads(match.group(3))
            else:
                open_streams.pop(match.group(1), None)
        return list(open_streams.values())


# ----- the browser ---------------------------------------------------------------------------------------

# Installed in every page before Lab's own scripts: remember every dialog that was ever attached.
DIALOG_RECORDER = """
window.__dialogs = [];
new MutationObserver(records => {
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (node instanceof Element) {
        const dialogs = node.matches('.jp-Dialog') ? [node] : Array.from(node.querySelectorAll('.jp-Dialog'));
        for (const dialog of dialogs) window.__dialogs.push(dialog.textContent.trim().slice(0, 500));
      }
    }
  }
}).observe(document, {childList: true, subtree: true});
"""

# The open document of the current notebook panel: metadata, dirty state, cell sources.
DOCUMENT_STATE = """
() => {
  const widget = window.jupyterapp.shell.currentWidget;
  if (!widget || !widget.context || !widget.context.isReady) return null;
  const model = widget.context.model;
  const cells = [];
  for (let i = 0; i < model.cells.length; i++) cells.push(model.cells.get(i).sharedModel.getSource());
  return {
    path: widget.context.path,
    dirty: model.dirty,
    streamchat: model.getMetadata('streamchat') ?? null,
    cells,
    handoff: widget.node.dataset.streamchatHandoff ?? null,
  };
}
"""


# Browser console lines of every page opened by ``open_lab`` (for failure messages).
CONSOLE: dict[Any, list[str]] = {}


def console_of(page: Any) -> str:
    return "\n".join(CONSOLE.get(page, []))


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


def open_lab(
    browser: Any,
    lab: LabProcess,
    path: str,
    *,
    context: Any = None,
    before_goto: Callable[[Any], None] | None = None,
    subscribed: bool = True,
    timeout: float = 60.0,
    url: str | None = None,
) -> Any:
    """A new page with ``path`` open in Lab, its document loaded, clean, and its hand-off subscribed (``ready``).

    The page gets a browser context of its own unless ``context`` is given (pages of one context share cookies,
    Web Locks and the browser's connection pool, like tabs of one browser); ``before_goto(page)`` runs before the
    page loads (e.g. to install ``page.route`` handlers); ``subscribed=False`` does not wait for the hand-off;
    ``url`` opens another page of the same server instead of Lab (``lab.notebook7_url(path)``: Notebook 7)."""
    if context is None:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(timeout * 1000)
    page = context.new_page()
    CONSOLE[page] = console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    page.add_init_script(DIALOG_RECORDER)
    if before_goto is not None:
        before_goto(page)
    page.goto(url or lab.url_of(path))
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started", timeout=timeout * 1000)
    page.wait_for_function(
        """path => {
          const w = window.jupyterapp.shell.currentWidget;
          return !!(w && w.context && w.context.path === path && w.context.isReady && w.content.widgets.length);
        }""",
        arg=path,
        timeout=timeout * 1000,
    )
    # Lab updates the notebook's language_info when its kernel comes up, which can make the document dirty. Start
    # every test from what a user has after opening and saving a notebook: kernel idle, document clean.
    page.wait_for_function(
        """() => {
          const s = window.jupyterapp.shell.currentWidget.sessionContext;
          return s.isReady && s.session?.kernel?.connectionStatus === 'connected' && s.kernelDisplayStatus === 'idle';
        }""",
        timeout=timeout * 1000,
    )
    if document_state(page)["dirty"]:
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    if subscribed:
        page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget.node.dataset.streamchatHandoff === 'ready'",
            timeout=timeout * 1000,
        )
    return page


def open_another(page: Any, path: str, timeout: float = 60.0) -> None:
    """Open one more notebook in a Lab page (it becomes the current widget) and wait until its document loaded."""
    page.evaluate("path => { void window.jupyterapp.commands.execute('docmanager:open', {path}); }", path)
    page.wait_for_function(
        """path => {
          const w = window.jupyterapp.shell.currentWidget;
          return !!(w && w.context && w.context.path === path && w.context.isReady);
        }""",
        arg=path,
        timeout=timeout * 1000,
    )


def handoff_states(page: Any) -> dict[str, dict[str, str | None]]:
    """Every open notebook panel of the page: path -> its hand-off state and subscribed path (data attributes)."""
    return dict(
        page.evaluate(
            """() => {
              const states = {};
              window.jupyterapp.shell.widgets('main').forEach(w => {
                if (w.context && w.node.classList.contains('jp-NotebookPanel')) {
                  states[w.context.path] = {
                    state: w.node.dataset.streamchatHandoff ?? null,
                    path: w.node.dataset.streamchatHandoffPath ?? null,
                  };
                }
              });
              return states;
            }"""
        )
    )


def document_state(page: Any) -> dict[str, Any]:
    state = page.evaluate(DOCUMENT_STATE)
    assert state is not None, "no notebook document is current in the Lab page"
    return dict(state)


def dialogs_seen(page: Any) -> list[str]:
    """Text of every dialog the page ever showed, plus any on screen now."""
    seen = list(page.evaluate("() => window.__dialogs"))
    on_screen = page.locator(".jp-Dialog").all_text_contents()
    return seen + [text for text in on_screen if text.strip()[:500] not in seen]


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


@contextmanager
def running(process: LabProcess) -> Iterator[LabProcess]:
    """A started Lab server, stopped afterwards."""
    process.start()
    try:
        yield process
    finally:
        process.stop()


def upstream_args(openai_base_url: str, models: list[str]) -> list[str]:
    """Lab server arguments that make the test upstream the ``openai`` provider, with ``models`` listed."""
    return [
        f"--StreamChat.openai_base_url={openai_base_url}",
        "--StreamChat.openai_api_key=test-key",
        *(f"--StreamChat.openai_models={name}" for name in models),
    ]
