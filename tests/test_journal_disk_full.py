"""The journal's disk fills up, its file is deleted, its ``-shm`` turns immutable: with real server processes.

SPEC 9: a run that ended for its client keeps that status after a restart, also when the journal's disk
filled up; while the journal cannot take a new run, ``POST runs`` / ``POST stream`` answer 503 and nothing
starts; new runs are accepted again (and that is logged) once there is room; a journal removed under a
running server is noticed, logged and rebuilt; no journal fault kills the server.

The full disk is a real 512 KB tmpfs (the tests are skipped, saying why, where mounting is refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import nbformat
import pytest

from harness.server_process import ServerProcess
from harness.upstream import FakeUpstream, Script, Stall, Text
from harness.waiting import await_until
from jupyter_streamchat.client import StreamChatAPIError, StreamChatClient
from tests.helpers import chat, collect, text_of, wait_finished
from tests.test_crash_recovery import notebook_with_turn, recovered_run, turns_for, valid_notebook

RESERVE = 64 * 1024
NOTEBOOK = "disk.ipynb"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KB file system (tmpfs), unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()}): no real full disk")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` until it has no free byte; returns the filler file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        block = b"\0" * 4096
        while True:
            try:
                handle.write(block)
            except OSError as error:
                assert error.errno == errno.ENOSPC
                break
        for size in (512, 64, 1):  # the last partial block too
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * size)
    return filler


def client_for(server: ServerProcess) -> StreamChatClient:
    return StreamChatClient(server.base_url, server.token, timeout=10)


def server_on(tmp_path: Path, upstream: FakeUpstream, journal: Path) -> ServerProcess:
    server = ServerProcess(
        tmp_path / "server",
        upstream.openai_base_url,
        extra_args=[f"--StreamChat.journal_reserve_bytes={RESERVE}", "--StreamChat.journal_maintenance_interval=0.2"],
    )
    server.journal = journal
    return server


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream, small_disk: Path) -> Iterator[ServerProcess]:
    process = server_on(tmp_path, upstream, small_disk / "journal.sqlite3")
    try:
        yield process
    finally:
        process.close()


async def logged(server: ServerProcess, words: str) -> None:
    await await_until(lambda: words in server.log_path.read_text(errors="replace"), what=f"the log line {words!r}")


async def refused(client: StreamChatClient, model: str, direct: bool = False) -> StreamChatAPIError:
    with pytest.raises(StreamChatAPIError) as error:
        if direct:
            await collect(client.stream(chat(model)))
        else:
            await client.start_run(chat(model))
    return error.value


class Reader:
    """A client reading one run's events in the background: what it saw, and the `done` it got, if any."""

    def __init__(self, events: AsyncIterator[Any]) -> None:
        self.messages: list[Any] = []
        self.run_id = ""
        self.task = asyncio.ensure_future(self._read(events))

    async def _read(self, events: AsyncIterator[Any]) -> None:
        with contextlib.suppress(Exception):  # the server is killed under it
            async with aclosing(events) as stream:
                async for message in stream:
                    if message.event == "run":
                        self.run_id = message.json()["id"]
                    self.messages.append(message)

    @property
    def text(self) -> str:
        return text_of(self.messages)

    @property
    def done(self) -> dict[str, Any] | None:
        return next((m.json() for m in self.messages if m.event == "done"), None)

    def stop(self) -> None:
        self.task.cancel()


async def test_a_full_journal_disk_refuses_new_runs_and_never_changes_a_status_after_a_restart(
    server: ServerProcess, upstream: FakeUpstream, small_disk: Path
) -> None:
    nbformat.write(nbformat.v4.new_notebook(), server.root / NOTEBOOK)
    upstream.script("quick", Script.reply(["all ", "done"]))
    upstream.script("long", Script.reply([f"w{i} " for i in range(400)], pace=0.01))
    server.start()
    async with client_for(server) as client:
        # Given a direct stream that completed for its client
        before = Reader(client.stream(chat("openai:quick", notebook=NOTEBOOK)))
        await before.task
        assert before.done is not None and before.done["status"] == "completed"
        # And detached and direct runs streaming into a notebook while the journal's disk fills up
        detached = Reader(client.events((await client.start_run(chat("openai:long", notebook=NOTEBOOK)))["id"]))
        direct = Reader(client.stream(chat("openai:long", notebook=NOTEBOOK)))
        await await_until(lambda: detached.text and direct.text, what="the first words of both runs")
        filler = fill(small_disk)

        # When new runs are asked for while the disk is full
        # Then they are refused with 503 and a JSON reason, and no model is called
        assert (await refused(client, "openai:nothing")).status == 503
        assert (await refused(client, "openai:nothing", direct=True)).status == 503
        assert upstream.requests_for("nothing") == []
        await logged(server, "new runs are refused")
        # (the streaming runs go on as far as the journal takes their words; wait until their upstreams are done)
        for record in upstream.requests_for("long"):
            await record.wait_finished_async(20)

        # When the server is killed while the disk is still full, and starts again once there is room
        server.kill()
    for reader in (before, detached, direct):
        reader.stop()
    filler.unlink()
    server.start()
    async with client_for(server) as client:
        # Then every run that ended for its client has the status and text it had then, and every other one
        # is interrupted with at least all the text its client saw
        for reader in (before, detached, direct):
            record = await recovered_run(client, reader.run_id)
            if reader.done is not None:
                assert (record["status"], record["text"]) == (reader.done["status"], reader.text)
            else:
                assert record["status"] == "interrupted" and record["text"].startswith(reader.text)
            # And the notebook holds one turn for it, saying the same
            await notebook_with_turn(server.root / NOTEBOOK, reader.run_id)
            (turn,) = turns_for(valid_notebook(server.root / NOTEBOOK), reader.run_id)
            assert (turn["reply"]["status"], turn["reply"]["content"]) == (record["status"], record["text"])
        # And new runs are accepted again
        started = await client.start_run(chat("openai:quick"))
        assert (await wait_finished(client, started["id"]))["status"] == "completed"


async def test_new_runs_are_refused_while_the_disk_is_full_and_accepted_once_there_is_room(
    server: ServerProcess, upstream: FakeUpstream, small_disk: Path
) -> None:
    upstream.script("quick", Script.reply(["fine"]))
    server.start()
    # Given a server whose journal's disk is full
    filler = fill(small_disk)
    async with client_for(server) as client:
        # When a run and a direct stream are asked for
        # Then both are refused with 503, saying why, and nothing starts
        error = await refused(client, "openai:quick")
        assert error.status == 503 and "nearly full" in str(error)
        assert (await refused(client, "openai:quick", direct=True)).status == 503
        assert upstream.requests_for("quick") == []
        await logged(server, "new runs are refused")
        # When space returns
        filler.unlink()
        # Then the server says so, and runs are accepted again
        await logged(server, "has room again")
        started = await client.start_run(chat("openai:quick"))
        assert (await wait_finished(client, started["id"]))["status"] == "completed"
        events = await collect(client.stream(chat("openai:quick")))
        assert events[-1].event == "done" and events[-1].json()["status"] == "completed"


async def test_a_journal_deleted_while_running_is_rebuilt_and_a_later_kill9_loses_nothing(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    server = server_on(tmp_path, upstream, tmp_path / "data" / "journal.sqlite3")
    try:
        nbformat.write(nbformat.v4.new_notebook(), server.root / NOTEBOOK)
        upstream.script("quick", Script.reply(["kept"]))
        upstream.script("long", Script([*(Text(f"w{i} ") for i in range(300)), Stall(60)], pace=0.01))
        server.start()
        async with client_for(server) as client:
            # Given a finished run, and a run streaming into a notebook, with a client reading it
            finished = await client.start_run(chat("openai:quick"))
            assert (await wait_finished(client, finished["id"]))["status"] == "completed"
            reader = Reader(client.events((await client.start_run(chat("openai:long", notebook=NOTEBOOK)))["id"]))
            await await_until(lambda: reader.text, what="the first words")
            # When the journal's files are deleted under the server
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{server.journal}{suffix}")
            # Then the server notices, says so, and rebuilds it
            await logged(server, "was removed")
            await logged(server, "rebuilt with")
            # And goes on streaming: the client gets more words
            seen_at_rebuild = len(reader.text)
            await await_until(lambda: len(reader.text) > seen_at_rebuild + 20, what="more words after the rebuild")
            # When the server is then killed with SIGKILL and starts again
            server.kill()
        reader.stop()
        server.start()
        async with client_for(server) as client:
            # Then the run is recovered, interrupted, with everything its client saw, into its notebook once
            record = await recovered_run(client, reader.run_id)
            assert record["status"] == "interrupted" and record["text"].startswith(reader.text)
            await notebook_with_turn(server.root / NOTEBOOK, reader.run_id)
            (turn,) = turns_for(valid_notebook(server.root / NOTEBOOK), reader.run_id)
            assert turn["reply"]["content"] == record["text"]
            # And the run that had finished before the deletion is still listed as it was
            assert (await recovered_run(client, finished["id"]))["status"] == "completed"
    finally:
        server.close()


def chattr(flag: str, path: Path) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


async def test_an_immutable_shm_neither_kills_the_server_nor_loses_a_word(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    server = server_on(tmp_path, upstream, tmp_path / "data" / "journal.sqlite3")
    shm = Path(f"{server.journal}-shm")
    try:
        upstream.script("quick", Script.reply(["fine"]))
        upstream.script("long", Script.reply([f"w{i} " for i in range(100)], pace=0.02))
        server.start()
        async with client_for(server) as client:
            started = await client.start_run(chat("openai:quick"))
            assert (await wait_finished(client, started["id"]))["status"] == "completed"
            # Given a run streaming to a client
            reader = Reader(client.events((await client.start_run(chat("openai:long")))["id"]))
            await await_until(lambda: reader.text, what="the first words")
            # When the journal's -shm file becomes immutable
            if not chattr("+i", shm):
                pytest.skip(f"chattr +i is not supported for {shm}")
            try:
                # Then the server keeps running and says why the journal is held
                await logged(server, "cannot be written")
                assert server.process is not None and server.process.poll() is None
                # And refuses new runs with 503
                assert (await refused(client, "openai:quick")).status == 503
                assert server.process.poll() is None
            finally:
                chattr("-i", shm)
            # When the -shm can be written again, the run goes on to its end, with every word
            await asyncio.wait_for(reader.task, 20)
            assert reader.done is not None and reader.done["status"] == "completed"
            assert reader.text == "".join(f"w{i} " for i in range(100))
            # And new runs are accepted
            again = await client.start_run(chat("openai:quick"))
            assert (await wait_finished(client, again["id"]))["status"] == "completed"

        # When the -shm is immutable while the server stops, and still when it starts again
        assert chattr("+i", shm)
        try:
            server.terminate()
            # Then it exits cleanly, not by SIGBUS
            assert server.process is not None
            assert server.process.returncode not in (-signal.SIGBUS, 128 + signal.SIGBUS)
            # And the next server starts, says why its journal is held, and refuses new runs
            server.start()
            await logged(server, "cannot be written")
            async with client_for(server) as client:
                assert (await refused(client, "openai:quick")).status == 503
            assert server.process.poll() is None
        finally:
            chattr("-i", shm)
        # When the -shm can be written again
        async with client_for(server) as client:
            # Then the journal is used again: the runs are recovered as they ended, and new runs accepted
            assert (await recovered_run(client, reader.run_id))["status"] == "completed"
            again = await client.start_run(chat("openai:quick"))
            assert (await wait_finished(client, again["id"]))["status"] == "completed"
    finally:
        chattr("-i", shm)
        server.close()
