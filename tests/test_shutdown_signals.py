"""Every way a real server process is stopped records a running run once, as ``interrupted``, before it exits.

SIGTERM is covered in ``test_crash_recovery``. Here: SIGINT with stdin not a terminal (how JupyterHub's local
spawners, systemd and containers stop a server; jupyter_server leaves SIGINT to Python there, and the server
used to exit through ``KeyboardInterrupt`` without calling ``stop_extension``), SIGINT with a terminal (the
server asks "Shut down?"), and ``jupyter server stop`` (``POST api/shutdown``).
"""

from __future__ import annotations

import asyncio
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from harness.server_process import ServerProcess, private_env
from harness.upstream import FakeUpstream
from harness.waiting import await_until
from tests.test_crash_recovery import (
    NOTEBOOK,
    PARTIAL,
    assert_interrupted_turn,
    client_for,
    record_barrier_run,
    recovered_run,
    start_stalling_run,
    turns_for,
    valid_notebook,
)

# A guard against a hang, not a speed claim: the server's shutdown_timeout is 5 s, a busy machine gets more.
EXIT_WITHIN = 30.0
# What jupyter_server prints (to its stdout, our log) when SIGINT comes with a terminal on stdin.
CONFIRM_PROMPT = "Shut down this Jupyter server"


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", upstream.openai_base_url, flush_interval=0.1)
    # Runs may only name an existing notebook (SPEC 4)
    nbformat.write(nbformat.v4.new_notebook(), process.root / NOTEBOOK)
    try:
        yield process
    finally:
        process.close()


async def check_recorded_once(server: ServerProcess, upstream: FakeUpstream, run_id: str, prompt: str) -> None:
    """The notebook holds one interrupted turn; a restarted server lists the run and adds no second turn."""
    notebook_path = server.root / NOTEBOOK
    (turn,) = turns_for(valid_notebook(notebook_path), run_id)
    assert_interrupted_turn(turn, prompt)
    server.start()
    async with client_for(server) as client:
        record = await recovered_run(client, run_id)
        assert record["status"] == "interrupted" and record["text"] == PARTIAL
        barrier = await record_barrier_run(client, upstream, notebook_path)
    notebook = valid_notebook(notebook_path)
    assert turns_for(notebook, run_id) == [turn]
    assert len(turns_for(notebook, barrier)) == 1


async def test_sigint_without_terminal_records_the_running_run(server: ServerProcess, upstream: FakeUpstream) -> None:
    # Given a server whose stdin is /dev/null (as under JupyterHub), streaming a run into a notebook
    server.start(stdin=subprocess.DEVNULL)
    async with client_for(server) as client:
        run_id = await start_stalling_run(client, upstream, "interrupt me")
        request = await upstream.wait_for_request_async("stall")

        # When it gets one SIGINT (JupyterHub's LocalProcessSpawner.stop sends exactly that first)
        server.send(signal.SIGINT, EXIT_WITHIN)

    # Then it exits cleanly, having hung up on the upstream during its stall
    assert server.process is not None and server.process.returncode == 0, server.log_tail()
    assert await request.wait_closed_async(30) is not None
    # And the notebook holds exactly one interrupted turn with the streamed text, also after a restart
    await check_recorded_once(server, upstream, run_id, "interrupt me")


@pytest.mark.parametrize("how", ["answer y", "twice"])
async def test_sigint_with_terminal_records_the_running_run(
    server: ServerProcess, upstream: FakeUpstream, how: str
) -> None:
    # Given a server with a terminal on stdin (jupyter_server then asks before stopping on SIGINT)
    primary, secondary = pty.openpty()
    try:
        server.start(stdin=secondary)
        async with client_for(server) as client:
            run_id = await start_stalling_run(client, upstream, "interrupt me")
            request = await upstream.wait_for_request_async("stall")
            assert server.process is not None

            # When the user presses Ctrl-C and confirms with "y", or presses Ctrl-C twice
            sent = time.monotonic()
            server.process.send_signal(signal.SIGINT)
            # The prompt is printed once the second Ctrl-C would stop it and right before the terminal is read
            await await_until(lambda: CONFIRM_PROMPT in server.log_path.read_text(errors="replace"), what="the prompt")
            if how == "answer y":
                os.write(primary, b"y\n")
            else:
                server.process.send_signal(signal.SIGINT)
            server.wait_exit(sent, EXIT_WITHIN, f"SIGINT ({how})")
    finally:
        os.close(primary)
        os.close(secondary)

    # Then the upstream call ended and the run is in the notebook once, interrupted
    assert await request.wait_closed_async(30) is not None
    (turn,) = turns_for(valid_notebook(server.root / NOTEBOOK), run_id)
    assert_interrupted_turn(turn, "interrupt me")


async def test_jupyter_server_stop_records_the_running_run(server: ServerProcess, upstream: FakeUpstream) -> None:
    # Given a server streaming a run into a notebook
    server.start()
    async with client_for(server) as client:
        run_id = await start_stalling_run(client, upstream, "interrupt me")
        request = await upstream.wait_for_request_async("stall")

        # When `jupyter server stop <port>` stops it (POST api/shutdown; SIGTERM after 5 s if still running)
        sent = time.monotonic()
        stop = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "jupyter_server", "stop", str(server.port)],
            env=private_env(server.workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        # Reaped at once: the stop command polls the pid, and an unreaped child would look alive to it
        # (it would escalate to SIGTERM and SIGKILL after 5 s each).
        server.wait_exit(sent, EXIT_WITHIN, "jupyter server stop")
        output, _ = await asyncio.wait_for(stop.communicate(), EXIT_WITHIN)
        assert stop.returncode == 0, output.decode(errors="replace")
        assert b"SIGTERM" not in output and b"SIGKILL" not in output
        assert server.process is not None and server.process.returncode == 0

    # Then the upstream call ended (the command's own start-up, seconds on a busy machine, is in this time),
    # and the run is recorded once (also across a restart)
    assert await request.wait_closed_async(30) is not None
    await check_recorded_once(server, upstream, run_id, "interrupt me")
