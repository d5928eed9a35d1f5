"""The run journal: group commits while streaming, recovery of unfinished runs."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.upstream import Script, Stall, Text
from harness.waiting import await_until
from jupyter_streamchat.engine.runs import Run, RunRequest
from jupyter_streamchat.persistence import RunJournal
from jupyter_streamchat.providers import Delta
from tests.helpers import chat, collect, service_of


async def test_an_unpaced_stream_is_journaled_in_group_commits_not_one_per_token(
    streamchat_client, upstream, jp_serverapp
):
    journal = service_of(jp_serverapp).journal
    # Given a model that sends 3,000 tokens as fast as it can (hundreds per socket write)
    upstream.script("bulk", Script.bulk(3000, "t "))
    before = journal.transactions
    # When a client streams it
    started = await streamchat_client.start_run(chat("openai:bulk"))
    events = await collect(streamchat_client.events(started["id"]))
    writes = journal.transactions - before
    deltas = sum(m.event == "delta" for m in events)
    # Then every token was sent, and tokens that arrived while a commit was in flight shared the next one
    assert deltas == 3000
    assert writes <= deltas // 10, f"{writes} journal transactions for {deltas} tokens"


async def test_the_server_journals_what_it_streams(streamchat_client, upstream, jp_serverapp):
    journal_file = service_of(jp_serverapp).journal.path
    upstream.script("partial", Script([Text("abc"), Text("def"), Stall(30)]))
    started = await streamchat_client.start_run(chat("openai:partial"))
    await collect(streamchat_client.events(started["id"]), limit=2)
    # While the run waits on its upstream, the server's own journal file (read from outside) holds
    # the run, as running, with the text clients saw: it was journaled before they were sent it
    assert journaled(journal_file, started["id"]) == ("running", "abcdef")
    # And its final record once it ends
    await streamchat_client.stop(started["id"])
    assert journaled(journal_file, started["id"]) == ("stopped", "abcdef")


def journaled(path: Path, run_id: str) -> tuple[str | None, str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        status = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        chunks = db.execute("SELECT text FROM chunks WHERE run_id = ? AND kind = 0 ORDER BY seq", (run_id,))
        return (status[0] if status else None), "".join(text for (text,) in chunks)
    finally:
        db.close()


async def streamed_run(journal: RunJournal, *chunks: str) -> Run:
    """A run journaled by ``journal`` that streamed ``chunks``, committed."""
    run = Run(RunRequest("openai:x", [{"role": "user", "content": "hi"}]), "detached", 100)
    await journal.started(run, run.prompt)
    for chunk in chunks:
        run._on_event(Delta(chunk))
    await journal.flush()
    assert run.released_seq == run.last_seq
    return run


def crash(journal: RunJournal) -> None:
    """What SIGKILL does to a journal's owner: its lock is gone, its lock file and rows stay."""
    assert journal._owners.held
    journal._owners.drop_without_cleanup()


async def test_recovery_takes_over_only_runs_whose_server_is_gone(tmp_path):
    path = tmp_path / "j.sqlite3"
    # Given a server (journal a) streaming a run, journaled with its text so far
    a = RunJournal(path)
    a.open()
    run = await streamed_run(a, "abc", "def")
    # When a second server (b) opens the same journal and recovers
    b = RunJournal(path)
    b.open()
    recovery = await b.recover("2026-01-01T00:00:00.000Z")
    # Then it leaves the live server's running run alone: not claimed, not even listed
    assert recovery.claimed == set() and recovery.runs == []
    # When server a dies (its lock goes with it) and b recovers again
    crash(a)
    recovery = await b.recover("2026-01-01T00:00:00.000Z", everything=False)
    # Then b takes the run over: interrupted, with its text, to be persisted by b
    (journaled_run,) = recovery.runs
    assert recovery.claimed == {run.id}
    assert journaled_run.record["status"] == "interrupted" and journaled_run.record["text"] == "abcdef"
    assert journaled_run.prompt == {"role": "user", "content": "hi"} and journaled_run.persisted is False
    # And a third server, started meanwhile, does not take it again (b is alive and owns it now)
    c = RunJournal(path)
    c.open()
    recovery = await c.recover("2026-01-02T00:00:00.000Z")
    assert recovery.claimed == set()
    assert [(r.record["status"], r.record["finished"]) for r in recovery.runs] == [
        ("interrupted", "2026-01-01T00:00:00.000Z")
    ]
    # And once b has persisted it and closed, nobody persists it again
    await b.mark_persisted(run.id)
    await b.close()
    recovery = await c.recover("2026-01-03T00:00:00.000Z")
    assert recovery.claimed == set() and [r.persisted for r in recovery.runs] == [True]
    await c.close()
    await a.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestPrivacy:
    """The journal holds prompts and replies: only its owner may read it."""

    @pytest.fixture(autouse=True)
    def common_umask(self) -> Iterator[None]:
        # The usual umask, under which files are created world-readable unless asked otherwise
        previous = os.umask(0o022)
        yield
        os.umask(previous)

    @pytest.fixture
    def streamchat_settings(self, streamchat_settings, tmp_path):
        return {**streamchat_settings, "journal_path": str(tmp_path / "new" / "streamchat" / "journal.sqlite3")}

    async def test_the_journal_is_created_readable_by_its_owner_only(
        self, streamchat_client, upstream, jp_serverapp, tmp_path
    ):
        journal = Path(service_of(jp_serverapp).journal.path)
        assert journal == tmp_path / "new" / "streamchat" / "journal.sqlite3"
        # Given a run that was streamed and journaled (so SQLite has made its -wal and -shm files)
        upstream.script("quick", Script.reply(["private"]))
        started = await streamchat_client.start_run(chat("openai:quick"))
        await collect(streamchat_client.events(started["id"]))
        companions = [journal.with_name("journal.sqlite3-wal"), journal.with_name("journal.sqlite3-shm")]
        await await_until(lambda: all(f.exists() for f in companions), what="SQLite's -wal and -shm files")
        # Then the journal and its companions are 0600, and the folders it created 0700
        files = [journal, journal.with_name("journal.sqlite3-wal"), journal.with_name("journal.sqlite3-shm")]
        assert {f.name: oct(mode(f)) for f in files} == {f.name: "0o600" for f in files}
        assert oct(mode(tmp_path / "new")) == oct(mode(tmp_path / "new" / "streamchat")) == "0o700"
        # And so are the owners' lock files, and their folder
        owners = journal.with_name("journal.sqlite3.owners")
        assert oct(mode(owners)) == "0o700"
        assert [oct(mode(lock)) for lock in owners.iterdir()] == ["0o600"]

    async def test_an_existing_world_readable_journal_is_made_private(self, tmp_path):
        # Given a journal written by an older version under the usual umask, in the user's own folder
        folder = tmp_path / "shared"
        folder.mkdir(mode=0o755)
        path = folder / "journal.sqlite3"
        old = RunJournal(path)
        old.open()
        await old.close()
        for name in ("journal.sqlite3", "journal.sqlite3-wal"):
            (folder / name).touch()
            os.chmod(folder / name, 0o644)
        # When it is opened again
        journal = RunJournal(path)
        journal.open()
        # Then its files are private, and the existing folder is not changed
        assert oct(mode(path)) == oct(mode(folder / "journal.sqlite3-wal")) == "0o600"
        assert oct(mode(folder)) == "0o755"
        await journal.close()
