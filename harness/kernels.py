"""Drive real Jupyter kernels from tests, with or without a Jupyter server in between.

Two launchers behind one async interface, because the kernel side of jupyter_streamchat must work in both
worlds users actually have: a kernel that a Jupyter server started (JupyterLab, JupyterHub; the kernel sees
``JPY_SESSION_NAME`` and talks to the browser through the server's websocket), and a kernel that no server
started (VS Code; nothing points back at a server). nbclient is not enough for this: tests need to start a cell,
interrupt it while it is busy, and count and size every ``comm_open`` / ``comm_msg`` on iopub as it arrives.

Usage::

    async with LocalKernel.start() as kernel:                    # or ServerKernel.start(url, token, "a.ipynb")
        (await kernel.execute("print(1 + 1)")).raise_for_error()
        msg_id = await kernel.start_running("import asyncio; await asyncio.sleep(30)")  # a busy cell
        await kernel.interrupt()
        execution = await kernel.wait_execution(msg_id, timeout=5)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import shutil
import struct
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from harness.server_process import REPO

__all__ = [
    "OUTPUT_TYPES",
    "Execution",
    "Kernel",
    "KernelMessage",
    "LocalKernel",
    "ServerKernel",
    "Starting",
    "local_kernel_env",
]

PROTOCOL_VERSION = "5.3"
# What ``start_running`` cells print first (on stdout) to say their code runs.
RUNNING_MARK = "streamchat-test: cell running"
# The iopub messages a notebook front end turns into (or applies to) cell outputs.
OUTPUT_TYPES = frozenset({"stream", "display_data", "update_display_data", "execute_result", "error", "clear_output"})
# Wake-up period of waits even when no message arrives, so predicates may also look at state outside the kernel.
_POLL = 0.05
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

K_co = TypeVar("K_co", bound="Kernel", covariant=True)
T = TypeVar("T")


@dataclass(frozen=True)
class KernelMessage:
    """One message as received, stamped on arrival.

    ``size`` is the length in bytes of ``content`` as compact UTF-8 JSON: the same measure for both launchers
    (the server re-encodes messages for its websocket, so wire sizes would differ by transport, not by what the
    kernel sent). Binary buffers (widgets may send some) are counted apart in ``buffer_bytes``.
    """

    time: float
    channel: str
    msg_type: str
    msg_id: str
    parent_msg_id: str | None
    content: dict[str, Any]
    size: int
    buffer_bytes: int = 0

    @property
    def comm_id(self) -> str | None:
        """The comm this message belongs to (``comm_open``, ``comm_msg``, ``comm_close``), else None."""
        comm_id = self.content.get("comm_id")
        return comm_id if isinstance(comm_id, str) else None


def _json_size(content: Mapping[str, Any]) -> int:
    return len(json.dumps(content, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def _record(channel: str, msg: Mapping[str, Any], buffers: Sequence[bytes | memoryview]) -> KernelMessage:
    header = msg.get("header") or {}
    parent = msg.get("parent_header") or {}
    content = dict(msg.get("content") or {})
    return KernelMessage(
        time=time.monotonic(),
        channel=channel,
        msg_type=str(header.get("msg_type") or msg.get("msg_type") or ""),
        msg_id=str(header.get("msg_id") or ""),
        parent_msg_id=parent.get("msg_id") or None,
        content=content,
        size=_json_size(content),
        buffer_bytes=sum(memoryview(buffer).nbytes for buffer in buffers),
    )


@dataclass
class Execution:
    """What one ``execute_request`` produced, complete: its reply and every output up to the kernel's idle."""

    msg_id: str
    reply: dict[str, Any]
    outputs: list[KernelMessage]

    @property
    def status(self) -> str:
        return str(self.reply.get("status", ""))

    @property
    def stdout(self) -> str:
        return self._stream("stdout")

    @property
    def stderr(self) -> str:
        return self._stream("stderr")

    @property
    def error(self) -> dict[str, Any] | None:
        """The content of the ``error`` output, else of the reply if only the reply says "error"."""
        for output in self.outputs:
            if output.msg_type == "error":
                return output.content
        return self.reply if self.status == "error" else None

    def _stream(self, name: str) -> str:
        return "".join(
            str(output.content.get("text", ""))
            for output in self.outputs
            if output.msg_type == "stream" and output.content.get("name") == name
        )

    def raise_for_error(self) -> Self:
        """Fail the test with the kernel's traceback (colours stripped); returns self to allow chaining."""
        if self.status == "error":
            error = self.error or {}
            lines = [f"{error.get('ename', '?')}: {error.get('evalue', '')}", *error.get("traceback", [])]
            raise AssertionError(_ANSI.sub("", "\n".join(lines)))
        return self


class Starting(Generic[K_co]):
    """A kernel being started: ``await`` it to get the kernel, or ``async with`` it to also close it at the end.

    This spares tests the ``async with await Kernel.start(...)`` dance without giving up the plain ``await``.
    """

    def __init__(self, start: Callable[[], Awaitable[K_co]]) -> None:
        self._start = start
        self._kernel: K_co | None = None

    def __await__(self) -> Generator[Any, None, K_co]:
        return self._start().__await__()

    async def __aenter__(self) -> K_co:
        self._kernel = await self._start()
        return self._kernel

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._kernel is not None:
            await self._kernel.close()


class Kernel(ABC):
    """What tests do with a kernel, whatever started it; subclasses only move messages.

    Subclasses call ``_received`` for every message from the kernel and ``_fail`` when their transport broke,
    so that waits end at once with the cause instead of running into their timeout.
    """

    def __init__(self) -> None:
        self.session_id = uuid.uuid4().hex
        # Every iopub message since the harness connected, in order of arrival.
        self.messages: list[KernelMessage] = []
        # Shell and control replies, by the msg_id of their request.
        self.replies: dict[str, KernelMessage] = {}
        self._idle: set[str] = set()
        self._busy: set[str] = set()
        self._waker: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._failure: BaseException | None = None
        self._closed = False

    # -- transport, per launcher ------------------------------------------------------------------

    @abstractmethod
    def _send_message(self, channel: str, message: dict[str, Any]) -> None:
        """Hand a complete message (header, parent_header, metadata, content, buffers) to the kernel."""

    @abstractmethod
    async def _interrupt(self) -> None:
        """Interrupt the kernel as its owner does (the server's REST call, or the kernel manager's signal)."""

    @abstractmethod
    async def _shutdown(self) -> None:
        """Stop reading, shut the kernel down and release everything; must not raise for a dead kernel."""

    async def _check_alive(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Raise if the kernel is known to be gone; called while waiting so waits fail fast."""

    # -- bookkeeping --------------------------------------------------------------------------------

    def _received(self, channel: str, msg: Mapping[str, Any], buffers: Sequence[bytes | memoryview] = ()) -> None:
        record = _record(channel, msg, buffers)
        if channel == "iopub":
            self.messages.append(record)
            if record.msg_type == "status" and record.parent_msg_id:
                state = record.content.get("execution_state")
                if state == "busy":
                    self._busy.add(record.parent_msg_id)
                elif state == "idle":
                    self._busy.discard(record.parent_msg_id)
                    self._idle.add(record.parent_msg_id)
        elif channel in ("shell", "control") and record.parent_msg_id:
            self.replies[record.parent_msg_id] = record
        self._notify()

    def _fail(self, error: BaseException) -> None:
        if not self._closed and self._failure is None:
            self._failure = error
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, ready: Callable[[], T | None], timeout: float, what: str | Callable[[], str]) -> T:
        deadline = time.monotonic() + timeout
        while True:
            changed = self._changed
            result = ready()
            if result:
                return result
            if self._failure is not None:
                raise RuntimeError(f"kernel connection failed while waiting for {_text(what)}: {self._failure!r}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                recent = ", ".join(f"{m.msg_type}({m.parent_msg_id})" for m in self.messages[-8:])
                raise TimeoutError(f"no {_text(what)} within {timeout}s; last iopub messages: {recent or 'none'}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, _POLL))
            await self._check_alive()

    # -- public interface ---------------------------------------------------------------------------

    def send(self, msg_type: str, content: Mapping[str, Any], channel: str = "shell") -> str:
        """Send a request as a front end would and return its msg_id; replies land in ``replies``."""
        if self._closed:
            raise RuntimeError("kernel harness is closed")
        if self._failure is not None:
            raise RuntimeError(f"kernel connection failed: {self._failure!r}")
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": "streamchat-test",
            "session": self.session_id,
            "date": datetime.now(UTC).isoformat(),
            "version": PROTOCOL_VERSION,
        }
        self._send_message(
            channel, {"header": header, "parent_header": {}, "metadata": {}, "content": dict(content), "buffers": []}
        )
        return msg_id

    async def request(
        self, msg_type: str, content: Mapping[str, Any], channel: str = "shell", timeout: float = 10
    ) -> KernelMessage:
        """Send a request and wait for its reply (e.g. ``kernel_info_request``, ``comm_info_request``)."""
        msg_id = self.send(msg_type, content, channel)
        return await self._wait(lambda: self.replies.get(msg_id), timeout, f"reply to {msg_type} {msg_id}")

    def send_execute(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        stop_on_error: bool = True,
        user_expressions: Mapping[str, str] | None = None,
        allow_stdin: bool = True,
    ) -> str:
        """Start running ``code`` without waiting, so a test can act while the cell is busy; returns the msg_id.

        ``allow_stdin`` is true as JupyterLab, Notebook 7 and VS Code send it; nbclient (nbconvert, papermill)
        sends false, and the widgets then take the cell for one that renders no live view."""
        return self.send(
            "execute_request",
            {
                "code": code,
                "silent": silent,
                "store_history": store_history,
                "user_expressions": dict(user_expressions or {}),
                "allow_stdin": allow_stdin,
                "stop_on_error": stop_on_error,
            },
        )

    async def start_running(self, code: str, timeout: float = 30) -> str:
        """Start ``code`` and return its msg_id once it runs: it prints a marker first, and the test waits for that
        output. ipykernel ignores SIGINT while idle, and ``busy`` goes out before its handler is set, so only the
        cell's own output says an interrupt will land."""
        msg_id = self.send_execute(f"print({RUNNING_MARK!r}, flush=True)\n{code}")

        def printed(messages: list[KernelMessage]) -> bool:
            return any(
                m.parent_msg_id == msg_id and m.msg_type == "stream" and RUNNING_MARK in m.content.get("text", "")
                for m in messages
            )

        await self.wait_for(printed, timeout, f"cell {msg_id} to run")
        return msg_id

    async def wait_execution(self, msg_id: str, timeout: float = 30) -> Execution:
        """Wait for both the ``execute_reply`` and the iopub ``idle`` of a request.

        Both, because they travel on different sockets and arrive in either order: outputs published before
        ``idle`` may still be on their way when the reply is in.
        """

        def done() -> bool:
            return msg_id in self.replies and msg_id in self._idle

        def what() -> str:
            missing = [
                name for name, seen in (("reply", msg_id in self.replies), ("idle", msg_id in self._idle)) if not seen
            ]
            return f"{' and '.join(missing)} for execute_request {msg_id}"

        await self._wait(done, timeout, what)
        outputs = [m for m in self.messages if m.parent_msg_id == msg_id and m.msg_type in OUTPUT_TYPES]
        return Execution(msg_id=msg_id, reply=dict(self.replies[msg_id].content), outputs=outputs)

    async def execute(self, code: str, timeout: float = 30) -> Execution:
        """Run ``code`` to completion; errors in the cell are returned, not raised (see ``raise_for_error``)."""
        return await self.wait_execution(self.send_execute(code), timeout)

    def comm_messages(self, comm_ids: set[str] | None = None) -> list[KernelMessage]:
        """The ``comm_msg`` records so far, in order, optionally only those of ``comm_ids``."""
        return [m for m in self.messages if m.msg_type == "comm_msg" and (comm_ids is None or m.comm_id in comm_ids)]

    async def wait_for(
        self, predicate: Callable[[list[KernelMessage]], T | None], timeout: float = 10, what: str = "matching messages"
    ) -> T:
        """Return the first truthy ``predicate(self.messages)``; re-checked on every message and every 50 ms.

        Raises TimeoutError (or RuntimeError when the connection broke) instead of returning a falsy value.
        """
        return await self._wait(lambda: predicate(self.messages), timeout, what)

    async def interrupt(self, *, wake: bool = True) -> None:
        """Interrupt the kernel the way its owner does: the server's REST call, or the kernel manager's SIGINT.

        ipykernel ignores SIGINT while idle, so interrupt while a cell is busy. A cell that is ``await``-ing
        (top-level await) is only cancelled once the kernel's event loop wakes up for some other reason: ipykernel's
        SIGINT handler schedules the cancellation with tornado's ``add_callback``, which, called from a signal
        handler on the loop's own thread, does not wake the selector (ipykernel 7.4, tornado 6.6; cf.
        ipython/ipykernel#881). With ``wake`` (the default) a few ``kernel_info_request`` follow on the shell
        channel, which wakes the loop, until the busy requests went idle or about 1.5 s passed; the interrupt
        then lands at once. ``wake=False`` leaves the kernel to whatever traffic the test causes, as a browser
        would.
        """
        busy = set(self._busy)
        await self._interrupt()
        if wake:
            await _cancel(self._waker)
            self._waker = asyncio.create_task(self._wake(busy), name="kernel waker")

    async def _wake(self, busy: set[str]) -> None:
        # The first delay lets the signal handler run before the message arrives; a message that arrives first
        # wakes the loop too early to help.
        for delay in (0.1, 0.2, 0.4, 0.8):
            await asyncio.sleep(delay)
            if self._closed or self._failure is not None or (busy and busy <= self._idle):
                return
            with contextlib.suppress(Exception):  # best effort: a broken connection shows up in the test's waits
                self.send("kernel_info_request", {})

    async def _handshake(self, timeout: float) -> None:
        """Return once a kernel_info request got both its reply and an iopub message.

        A ZMQ SUB socket drops what is published before its subscription is in place, so a reply alone does not
        prove iopub works; without this the first cell's outputs can go missing.
        """
        sent: list[str] = []
        deadline = time.monotonic() + timeout

        def ready() -> bool:
            return any(msg_id in self.replies for msg_id in sent) and any(
                m.parent_msg_id in sent for m in self.messages
            )

        while True:
            sent.append(self.send("kernel_info_request", {}))
            try:
                await self._wait(ready, min(1.0, max(deadline - time.monotonic(), 0.01)), "kernel_info handshake")
                return
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"kernel did not answer kernel_info on shell and iopub within {timeout}s"
                    ) from None

    async def close(self) -> None:
        """Shut the kernel down; safe to call twice and after the kernel or its server died."""
        if self._closed:
            return
        self._closed = True
        await _cancel(self._waker)
        await self._shutdown()
        self._notify()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _text(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _decode_binary_frame(frame: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """jupyter_server's legacy binary frame (used for messages with buffers): a count, offsets, JSON, buffers."""
    (count,) = struct.unpack_from("!I", frame, 0)
    offsets = [*struct.unpack_from(f"!{count}I", frame, 4), len(frame)]
    parts = [frame[offsets[i] : offsets[i + 1]] for i in range(count)]
    return json.loads(parts[0]), parts[1:]


class ServerKernel(Kernel):
    """A kernel that a real Jupyter server started for a notebook session, driven through the server's websocket.

    This is the path JupyterLab takes, so the kernel gets the server's environment (``JPY_SESSION_NAME`` etc.)
    and every message passes the server's websocket bridge, rate limits included. The legacy JSON protocol is
    used (no websocket subprotocol requested), so messages can be read without the v1 binary framing.
    """

    def __init__(self, base_url: str, token: str, http: httpx.AsyncClient, session: dict[str, Any]) -> None:
        super().__init__()
        self.base_url = base_url
        self.token = token
        self.session_model = session
        self._http = http
        self._websocket: WebSocketClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def kernel_id(self) -> str:
        return str(self.session_model["kernel"]["id"])

    @property
    def notebook_path(self) -> str:
        return str(self.session_model["path"])

    @classmethod
    def start(
        cls, base_url: str, token: str, notebook_path: str, *, kernel_name: str = "python3", timeout: float = 60
    ) -> Starting[Self]:
        """Create a notebook session (the server starts a kernel for it) and connect to the kernel's channels.

        ``base_url`` includes the server's base path and ends in "/"; ``notebook_path`` is relative to the server
        root. The session is deleted on close, which shuts the kernel down.
        """
        return Starting(lambda: cls._start(base_url, token, notebook_path, kernel_name, timeout))

    @classmethod
    async def _start(cls, base_url: str, token: str, notebook_path: str, kernel_name: str, timeout: float) -> Self:
        base_url = base_url if base_url.endswith("/") else base_url + "/"
        http = httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"token {token}"}, timeout=timeout)
        body = {
            "path": notebook_path,
            "name": PurePosixPath(notebook_path).name,
            "type": "notebook",
            "kernel": {"name": kernel_name},
        }
        try:
            response = await http.post("api/sessions", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"POST api/sessions: {response.status_code} {response.text[:2000]}")
        except BaseException:
            await http.aclose()
            raise
        kernel = cls(base_url, token, http, response.json())
        try:
            await kernel._connect(timeout)
        except BaseException:
            await kernel.close()
            raise
        return kernel

    async def _connect(self, timeout: float) -> None:
        ws_url = "ws" + self.base_url.removeprefix("http")
        request = HTTPRequest(
            f"{ws_url}api/kernels/{self.kernel_id}/channels?session_id={self.session_id}",
            headers={"Authorization": f"token {self.token}"},
            connect_timeout=timeout,
            request_timeout=timeout,
        )
        # The server accepts the upgrade once the kernel answered a kernel_info_request, and handles what we send
        # only after its "nudge" saw iopub deliver; the handshake below checks the same from our side.
        self._websocket = await websocket_connect(request, max_message_size=256 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read(self._websocket), name=f"ServerKernel {self.kernel_id} reader")
        await self._handshake(timeout)

    async def _read(self, websocket: WebSocketClientConnection) -> None:
        try:
            while True:
                frame = await websocket.read_message()
                if frame is None:
                    raise ConnectionError(f"websocket closed: {websocket.close_code} {websocket.close_reason}")
                if isinstance(frame, bytes):
                    msg, buffers = _decode_binary_frame(frame)
                else:
                    msg, buffers = json.loads(frame), []
                self._received(str(msg.get("channel", "")), msg, buffers)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._fail(error)

    def _send_message(self, channel: str, message: dict[str, Any]) -> None:
        if self._websocket is None:
            raise RuntimeError("not connected")
        written = self._websocket.write_message(json.dumps({**message, "channel": channel}))
        written.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[None]) -> None:
        # A failed write surfaces in waits; retrieving it here also keeps asyncio from logging it as lost.
        if not future.cancelled() and (error := future.exception()) is not None:
            self._fail(error)

    async def _interrupt(self) -> None:
        response = await self._http.post(f"api/kernels/{self.kernel_id}/interrupt")
        if response.status_code != 204:
            raise RuntimeError(f"interrupt: {response.status_code} {response.text[:2000]}")

    async def _shutdown(self) -> None:
        await _cancel(self._reader)
        if self._websocket is not None:
            self._websocket.close()
        try:
            with contextlib.suppress(httpx.TransportError):  # the server may be gone already (killed by the test)
                await self._http.delete(f"api/sessions/{self.session_model['id']}")
        finally:
            await self._http.aclose()


def local_kernel_env(runtime_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a kernel no server started: nothing of a server or of this extension leaks in.

    The test process may itself run under Jupyter (or have ``JUPYTER_STREAMCHAT_*`` set); a kernel launched by an
    editor has none of that, and an empty runtime dir keeps it from finding other servers' files by accident.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith(("JUPYTER_STREAMCHAT_", "JPY_"))}
    env["JUPYTER_RUNTIME_DIR"] = str(runtime_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


# A pending zmq.asyncio poll can miss its socket's ZMQ_FD edge when this side sends on the same DEALER socket
# meanwhile (the harness's requests, the interrupt waker's kernel_info_requests): the reply then sits readable
# (``poll(0)`` says so) while the awaiting poll never wakes, and every later shell reply is stuck behind it. CI saw
# an interrupted cell's error and idle but never its execute_reply. A fresh poll checks ZMQ_EVENTS first, so
# re-polling every so often turns a missed edge into at most this much delay.
_REPOLL_SECONDS = 0.5


class LocalKernel(Kernel):
    """A kernel started directly with jupyter_client, as VS Code does: no Jupyter server anywhere.

    Note that jupyter_client's launcher itself sets ``JPY_PARENT_PID`` (to this test process) on POSIX.
    """

    def __init__(self, manager: AsyncKernelManager, client: AsyncKernelClient, workdir: Path) -> None:
        super().__init__()
        self.manager = manager
        self.client = client
        self.workdir = workdir
        self.runtime_dir = workdir / "runtime"
        self._readers: list[asyncio.Task[None]] = []

    @classmethod
    def start(
        cls,
        *,
        kernel_name: str = "python3",
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        timeout: float = 60,
    ) -> Starting[Self]:
        """Launch a kernel; ``env`` adds to (or overrides) the cleaned environment of ``local_kernel_env``.

        The kernel runs in ``cwd`` (default: a fresh empty directory) with its connection file in a private
        temporary directory that close() removes.
        """
        return Starting(lambda: cls._start(kernel_name, env, cwd, timeout))

    @classmethod
    async def _start(
        cls, kernel_name: str, env: Mapping[str, str] | None, cwd: Path | str | None, timeout: float
    ) -> Self:
        workdir = Path(tempfile.mkdtemp(prefix="streamchat-kernel-"))
        for name in ("runtime", "cwd"):
            (workdir / name).mkdir()
        manager = AsyncKernelManager(kernel_name=kernel_name, connection_file=str(workdir / "kernel.json"))
        try:
            await manager.start_kernel(env=local_kernel_env(workdir / "runtime", env), cwd=str(cwd or workdir / "cwd"))
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        client = manager.client()
        assert isinstance(client, AsyncKernelClient)
        kernel = cls(manager, client, workdir)
        client.session.session = kernel.session_id
        try:
            client.start_channels()
            kernel._readers = [
                asyncio.create_task(kernel._read(name), name=f"LocalKernel {name} reader")
                for name in ("iopub", "shell", "control")
            ]
            await kernel._handshake(timeout)
        except BaseException:
            await kernel.close()
            raise
        return kernel

    def _channel(self, name: str) -> Any:
        return {
            "iopub": self.client.iopub_channel,
            "shell": self.client.shell_channel,
            "control": self.client.control_channel,
        }[name]

    async def _read(self, name: str) -> None:
        channel = self._channel(name)
        try:
            while True:
                try:
                    msg = await channel.get_msg(timeout=_REPOLL_SECONDS)
                except queue.Empty:
                    continue
                self._received(name, msg, msg.get("buffers") or ())
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._fail(error)

    def _send_message(self, channel: str, message: dict[str, Any]) -> None:
        self.client.session.send(self._channel(channel).socket, message)

    async def _check_alive(self) -> None:
        if not await self.manager.is_alive():
            raise RuntimeError("the kernel process died")

    async def _interrupt(self) -> None:
        await self.manager.interrupt_kernel()

    async def _shutdown(self) -> None:
        for reader in self._readers:
            await _cancel(reader)
        try:
            self.client.stop_channels()
            if self.manager.has_kernel:
                try:
                    await asyncio.wait_for(self.manager.shutdown_kernel(now=False), 10)
                except Exception:
                    await self.manager.shutdown_kernel(now=True)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
