"""The run journal: batched writes while streaming, recovery of unfinished runs."""

from __future__ import annotations

from tests.helpers import chat, collect, service_of
from tests.upstream import Script, Stall, Text


async def test_streaming_writes_the_journal_in_batches(streamchat_client, upstream, jp_serverapp):
    journal = service_of(jp_serverapp).journal
    upstream.script("steady", Script.reply([f"t{i} " for i in range(300)], pace=0.003))
    before = journal.transactions
    started = await streamchat_client.start_run(chat("openai:steady"))
    events = await collect(streamchat_client.events(started["id"]))
    writes = journal.transactions - before
    deltas = sum(m.event == "delta" for m in events)
    # ~1 s of streaming at a 0.5 s flush interval: a handful of transactions, not one per token
    assert deltas == 300
    assert writes <= 10, f"{writes} journal transactions for {deltas} tokens"


async def test_journal_recovers_unfinished_runs_with_their_text(streamchat_client, upstream, jp_serverapp, tmp_path):
    from jupyter_streamchat.persistence import RunJournal

    service = service_of(jp_serverapp)
    upstream.script("partial", Script([Text("abc"), Text("def"), Stall(30)]))
    started = await streamchat_client.start_run(chat("openai:partial"))
    await collect(streamchat_client.events(started["id"]), limit=2)
    run = service.runs.get(started["id"])
    # Given a journal that saw the run start and stream, but not end (a crash)
    journal = RunJournal(tmp_path / "j.sqlite3")
    journal.open()
    journal.started(run, run.prompt)
    journal.flush([run])
    await journal.close()
    await streamchat_client.stop(started["id"])
    # When it is reopened
    reopened = RunJournal(tmp_path / "j.sqlite3")
    reopened.open()
    ((record, prompt, persisted),) = reopened.recover("2026-01-01T00:00:00.000Z")
    # Then the run is interrupted with its text, not yet persisted, and a second recovery agrees
    assert record["status"] == "interrupted" and record["text"] == "abcdef" and persisted is False
    assert prompt == {"role": "user", "content": "hi"}
    reopened.mark_persisted(record["id"])
    ((again, _, persisted_again),) = reopened.recover("2026-01-02T00:00:00.000Z")
    assert again["status"] == "interrupted" and persisted_again is True
    assert again["finished"] == "2026-01-01T00:00:00.000Z"
    await reopened.close()
