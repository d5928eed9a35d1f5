"""Self-test of harness/kernels.py against real ipykernel kernels, started by a real server and by nobody.

Other tests trust this harness to tell them what a kernel printed, raised, displayed and sent over comms, and
whether an interrupt landed; if it misreads any of that, they pass or fail for the wrong reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import nbformat
import pytest

from harness.kernels import Kernel, LocalKernel, ServerKernel, Starting
from harness.server_process import ServerProcess
from harness.upstream import FakeUpstream

StartKernel = Callable[[], Starting[Kernel]]


@pytest.fixture(scope="module")
def module_upstream() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream()
    upstream.start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_upstream: FakeUpstream) -> Iterator[ServerProcess]:
    """One server for the module: starting one takes seconds, a kernel session in it well under one."""
    process = ServerProcess(tmp_path_factory.mktemp("server"), module_upstream.openai_base_url)
    process.start()
    try:
        yield process
    finally:
        stop_server(process)


def stop_server(process: ServerProcess) -> None:
    """SIGTERM first, so the server shuts its kernels down; SIGKILL would orphan them."""
    try:
        if process.process is not None and process.process.poll() is None:
            process.terminate(timeout=15)
    finally:
        process.close()


def new_notebook(root: Path, relative: str) -> str:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(), path)
    return relative


@pytest.fixture(params=["local", "server"])
def start_kernel(request: pytest.FixtureRequest) -> StartKernel:
    """Starts a kernel of the parametrized kind; the server is only started when a server kernel is needed."""
    if request.param == "local":
        return LocalKernel.start
    server: ServerProcess = request.getfixturevalue("server")
    path = new_notebook(server.root, f"harness-{uuid.uuid4().hex[:8]}.ipynb")
    return lambda: ServerKernel.start(server.base_url, server.token, path)


async def test_print_goes_to_stdout(start_kernel: StartKernel) -> None:
    async with start_kernel() as kernel:
        execution = (await kernel.execute("print(1+1)")).raise_for_error()
        assert execution.stdout == "2\n"
        assert execution.stderr == ""
        assert execution.error is None
        assert [output.msg_type for output in execution.outputs] == ["stream"]
        assert execution.reply["status"] == "ok"


async def test_exception_is_an_error_and_the_kernel_goes_on(start_kernel: StartKernel) -> None:
    async with start_kernel() as kernel:
        execution = await kernel.execute("1/0")
        assert execution.status == "error"
        assert execution.error is not None and execution.error["ename"] == "ZeroDivisionError"
        assert [output.msg_type for output in execution.outputs] == ["error"]
        with pytest.raises(AssertionError, match="ZeroDivisionError: division by zero"):
            execution.raise_for_error()
        assert (await kernel.execute("print('after')")).raise_for_error().stdout == "after\n"


async def error_of(kernel: Kernel, msg_id: str, timeout: float) -> None:
    """Wait for the error output an interrupted request publishes on iopub."""
    await kernel.wait_for(
        lambda messages: [m for m in messages if m.parent_msg_id == msg_id and m.msg_type == "error"],
        timeout=timeout,
        what=f"the error of interrupted {msg_id}",
    )


async def test_busy_cells_can_be_interrupted(start_kernel: StartKernel) -> None:
    async with start_kernel() as kernel:
        for code, enames in [
            # busy cells, the subject: one awaiting, one blocking
            ("import asyncio; await asyncio.sleep(30)", {"CancelledError", "KeyboardInterrupt"}),
            ("import time; time.sleep(30)", {"KeyboardInterrupt"}),
        ]:
            msg_id = await kernel.start_running(code)
            await kernel.interrupt()
            # The cell fails at once (its error on iopub), then its shell reply comes.
            await error_of(kernel, msg_id, timeout=5)
            execution = await kernel.wait_execution(msg_id, timeout=30)
            assert execution.status == "error", code
            assert execution.error is not None and execution.error["ename"] in enames, code
        # The kernel survived both interrupts.
        assert (await kernel.execute("print('alive')")).raise_for_error().stdout == "alive\n"


async def test_no_reply_is_lost_across_many_interrupts(start_kernel: StartKernel) -> None:
    """CI once saw an interrupted cell's error and idle but never its execute_reply: the harness's zmq reader
    missed a wake-up while the interrupt waker sent on the same socket (see ``_REPOLL_SECONDS``)."""
    async with start_kernel() as kernel:
        for _ in range(40):
            # When a busy cell is interrupted and a request follows it on the same shell channel
            msg_id = await kernel.start_running("import asyncio; await asyncio.sleep(30)")
            await kernel.interrupt()
            await error_of(kernel, msg_id, timeout=30)
            # Then both replies arrive, in order (the kernel answers one shell request after another)
            await kernel.request("kernel_info_request", {}, timeout=30)
            assert msg_id in kernel.replies
            assert kernel.replies[msg_id].content["status"] == "error"


async def test_display_then_update_display(start_kernel: StartKernel) -> None:
    code = (
        "h = display({'text/plain': 'first'}, raw=True, display_id='harness-1')\n"
        "h.update({'text/plain': 'second'}, raw=True)"
    )
    async with start_kernel() as kernel:
        execution = (await kernel.execute(code)).raise_for_error()
        assert [output.msg_type for output in execution.outputs] == ["display_data", "update_display_data"]
        first, second = execution.outputs
        assert first.content["data"] == {"text/plain": "first"}
        assert second.content["data"] == {"text/plain": "second"}
        assert first.content["transient"] == second.content["transient"] == {"display_id": "harness-1"}
        assert first.time <= second.time
        assert first.size == len(json.dumps(first.content, separators=(",", ":")).encode())


async def test_comm_traffic_is_counted_and_sized(start_kernel: StartKernel) -> None:
    code = (
        "from comm import create_comm\n"
        "c = create_comm(target_name='harness', data={'hello': 1})\n"
        "c.send({'n': 1}); c.send({'n': 2, 'pad': 'x' * 1000}); c.send({'n': 3}, buffers=[b'\\x00' * 5000])\n"
        "print(c.comm_id)"
    )
    async with start_kernel() as kernel:
        execution = (await kernel.execute(code)).raise_for_error()
        comm_id = execution.stdout.strip()
        (opened,) = [m for m in kernel.messages if m.msg_type == "comm_open"]
        assert opened.comm_id == comm_id and opened.content["target_name"] == "harness"
        sent = kernel.comm_messages({comm_id})
        assert [m.content["data"]["n"] for m in sent] == [1, 2, 3]
        assert sent[1].size > 1000 > sent[0].size
        assert [m.buffer_bytes for m in sent] == [0, 0, 5000]
        assert kernel.comm_messages({"some-other-comm"}) == []
        assert kernel.comm_messages() == sent


async def test_local_kernel_sees_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_STREAMCHAT_LEAK", "1")
    monkeypatch.setenv("JPY_SESSION_NAME", "/leaked/from/a/server.ipynb")
    code = (
        "import os, jupyter_streamchat\n"
        "print(sorted(n for n in os.environ if n.startswith(('JPY_', 'JUPYTER_STREAMCHAT_'))))\n"
        "print(os.listdir(os.environ['JUPYTER_RUNTIME_DIR']), os.environ['HARNESS_EXTRA'])"
    )
    async with LocalKernel.start(env={"HARNESS_EXTRA": "yes"}) as kernel:
        stdout = (await kernel.execute(code)).raise_for_error().stdout
    # JPY_PARENT_PID is set by jupyter_client's launcher itself (to this process), as any kernel manager does.
    assert stdout == "['JPY_PARENT_PID']\n[] yes\n"


async def test_server_kernel_under_a_base_url(tmp_path: Path, module_upstream: FakeUpstream) -> None:
    server = ServerProcess(tmp_path / "server", module_upstream.openai_base_url, base_url="/user/alice/")
    server.start()
    try:
        assert server.base_url == f"http://127.0.0.1:{server.port}/user/alice/"
        async with httpx.AsyncClient(headers={"Authorization": f"token {server.token}"}) as http:
            assert (await http.get(f"http://127.0.0.1:{server.port}/api/status")).status_code == 404
        path = new_notebook(server.root, "notes/alice.ipynb")
        async with ServerKernel.start(server.base_url, server.token, path) as kernel:
            assert kernel.notebook_path == path
            code = "import os, jupyter_streamchat; print(os.environ['JPY_SESSION_NAME'])"
            session_name = (await kernel.execute(code)).raise_for_error().stdout.strip()
            assert session_name.endswith("/notes/alice.ipynb")
            msg_id = await kernel.start_running("import asyncio; await asyncio.sleep(30)")  # a busy cell
            await kernel.interrupt()
            assert (await kernel.wait_execution(msg_id, timeout=5)).status == "error"
        # Closing deleted the session, which shut its kernel down.
        async with httpx.AsyncClient(headers={"Authorization": f"token {server.token}"}) as http:
            assert (await http.get(f"{server.base_url}api/sessions")).json() == []
            assert (await http.get(f"{server.base_url}api/kernels")).json() == []
    finally:
        stop_server(server)
