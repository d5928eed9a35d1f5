"""6. Persistence: notebook writes per run, time to persist a turn into big notebooks, journal writes.

First a probe: a run naming a notebook must show up in that notebook's ``metadata.streamchat``
within 5 s of ending; if it does not, the server has no persistence yet and the section says
"not available yet".  Otherwise:

* **notebook writes per run**: inotify on the notebooks' directory counts writes of each notebook
  file (``IN_CLOSE_WRITE`` in place, ``IN_MOVED_TO`` for temp file + rename) — every write, however
  close together.  Runs each name their own notebook (half complete, half are stopped mid-stream),
  plus concurrent runs sharing one notebook (one write per run expected);
* **time to persist a turn** into a 1 MB and a 10 MB notebook: from the client receiving ``done``
  to the first write of the notebook file after the run started (inotify), checked to contain the
  run id.  Meanwhile ``BACKGROUND`` other streams run at 20 tokens/s; their worst token latency during the
  persists shows how long the server's event loop stalls (reading/validating/writing a big
  notebook);
* **journal writes**: the SQLite journal (an SQLite file under a ``streamchat`` path or named
  ``*journal*`` in the server's data/runtime dirs); its commits are counted as bursts of
  ``IN_MODIFY`` events on the db/-wal/-journal files (≥ 5 ms apart) while one run streams at
  20 tokens/s; "n/a" if there is no journal file.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from . import _fswatch
from ._bench import Bench, api, chat_body, finish_fleet, start_fleet, wait_until
from ._client import open_stream
from ._report import Section, check, info, median

NAME = "persistence"
TITLE = "6. Persistence: notebook writes, persist time, journal writes"
NOT_YET = "not available yet"
BACKGROUND = 20  # streams kept running while big notebooks are persisted, to see the event loop stall


def make_notebook(path: Path, size_bytes: int) -> int:
    """A notebook of about ``size_bytes`` (code cells with 1 KB sources); returns the real size."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    line = "x = 1  # " + "p" * 80 + "\n"
    cell_source = line * 11  # ~1 KB
    approx_cell = len(json.dumps(cell_source)) + 200
    nb.cells = [nbformat.v4.new_code_cell(cell_source) for _ in range(max(0, size_bytes // approx_cell))]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    return path.stat().st_size


def turns_in(path: Path) -> dict[str, Any]:
    """run id -> turn, from the notebook's metadata.streamchat."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("streamchat") or {}
    except (OSError, ValueError):
        return {}
    out = {}
    for conversation in (meta.get("conversations") or {}).values():
        for turn in conversation.get("turns") or []:
            out[turn.get("run")] = turn
    return out


async def start_run(pool: Any, model: str, notebook: str, conversation: str) -> str:
    status, body, _ = await pool.request(
        "POST", "/streamchat/runs", chat_body(model, notebook=notebook, conversation=conversation)
    )
    if status != 201:
        raise RuntimeError(f"POST runs answered {status}: {body}")
    return body["id"]


async def wait_finished(pool: Any, run_id: str, timeout: float = 30) -> dict[str, Any]:
    record: dict[str, Any] = {}

    async def finished() -> bool:
        nonlocal record
        _, record, _ = await pool.request("GET", f"/streamchat/runs/{run_id}")
        return record.get("status") != "running"

    await wait_until(finished, timeout, interval=0.02)
    return record


async def probe(pool: Any, root: Path) -> bool:
    nb = root / "bench" / "probe.ipynb"
    make_notebook(nb, 0)
    run_id = await start_run(pool, "persist-probe", "bench/probe.ipynb", "probe")
    await wait_finished(pool, run_id)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if run_id in turns_in(nb):
            return True
        await asyncio.sleep(0.05)
    return False


async def writes_per_run(bench: Bench, pool: Any, root: Path, watch: Any, n: int) -> dict[str, Any]:
    """``n`` runs on their own notebooks (every other one stopped mid-stream), then ``n`` concurrent
    runs sharing one notebook; counts notebook writes."""
    for i in range(n):
        make_notebook(root / "bench" / f"own-{i}.ipynb", 0)
    make_notebook(root / "bench" / "shared.ipynb", 0)
    await asyncio.sleep(0.1)
    watch.clear()
    ids = []
    for i in range(n):
        model = "persist-stall" if i % 2 else "persist-reply"
        ids.append(await start_run(pool, model, f"bench/own-{i}.ipynb", f"own-{i}"))
    await asyncio.sleep(0.3)
    for i in range(1, n, 2):
        await pool.request("POST", f"/streamchat/runs/{ids[i]}/stop")
    shared_ids = await asyncio.gather(
        *(start_run(pool, "persist-reply", "bench/shared.ipynb", f"shared-{i}") for i in range(n))
    )
    for run_id in [*ids, *shared_ids]:
        await wait_finished(pool, run_id)

    async def all_recorded() -> bool:
        own = all(ids[i] in turns_in(root / "bench" / f"own-{i}.ipynb") for i in range(n))
        shared = set(shared_ids) <= set(turns_in(root / "bench" / "shared.ipynb"))
        return own and shared

    recorded = await wait_until(all_recorded, 10, interval=0.1)
    await asyncio.sleep(1.0)  # late duplicate writes would show up here
    events = watch.snapshot()
    own_writes = [len(_fswatch.file_writes(events, f"own-{i}.ipynb")) for i in range(n)]
    shared_writes = len(_fswatch.file_writes(events, "shared.ipynb"))
    return {"recorded": recorded, "own_writes": own_writes, "shared_writes": shared_writes, "runs": n}


def contains(path: Path, run_id: str) -> bool:
    """Cheap check (no JSON parse, so the client's event loop stays responsive)."""
    try:
        return run_id.encode() in path.read_bytes()
    except OSError:
        return False


async def persist_time(bench: Bench, server: Any, pool: Any, root: Path, watch: Any, mb: int, trials: int) -> Any:
    """From the client seeing ``done`` to the first write of the notebook after the run started."""
    name = f"big-{mb}mb.ipynb"
    path = root / "bench" / name
    size = make_notebook(path, mb * 1_000_000)
    await asyncio.sleep(0.2)  # our own write's inotify event must not count
    times = []
    wall_start = time.time()
    for i in range(trials):
        started = time.monotonic()
        run_id = await start_run(pool, "persist-reply", f"bench/{name}", f"big-{i}")
        stream = await open_stream(
            "127.0.0.1", server.port, "GET", f"/streamchat/runs/{run_id}/events", server.auth_headers
        )
        await asyncio.wait_for(stream.finished, 30)
        done_at = stream.done_at
        writes: list[float] = []

        async def landed(started: float = started, run_id: str = run_id) -> bool:
            nonlocal writes
            writes = [t for t in _fswatch.file_writes(watch.snapshot(), name) if t > started]
            return bool(writes) and contains(path, run_id)

        if await wait_until(landed, 30, interval=0.01) and done_at is not None:
            times.append(writes[0] - done_at)
    return {"size_bytes": size, "seconds": times, "window": (wall_start, time.time())}


def find_journal(server: Any) -> list[Path]:
    found = []
    for base in (server.data_dir, server.runtime_dir):
        for path in Path(base).rglob("*"):
            if path.is_file() and not path.name.endswith(("-wal", "-shm", "-journal")):
                try:
                    with open(path, "rb") as f:
                        magic = f.read(16)
                except OSError:
                    continue
                # Other extensions keep SQLite files there too (nbsignatures.db, file_id_manager.db).
                if magic == b"SQLite format 3\0" and (
                    "streamchat" in str(path.relative_to(base)) or "journal" in path.name
                ):
                    found.append(path)
    return found


async def journal_writes(bench: Bench, server: Any, journal: Path, tokens: int) -> dict[str, Any]:
    names = {journal.name, journal.name + "-wal", journal.name + "-journal"}
    await bench.upstream.script("persist-journal", kind="bulk", n=tokens, pace=0.05, stamp=True)
    with _fswatch.DirWatch(journal.parent) as watch:
        await asyncio.sleep(1.2)  # let any pending flush of earlier runs pass
        idle = _fswatch.write_bursts(watch.snapshot(), names)
        watch.clear()
        t0 = time.monotonic()
        stream = await bench.direct_stream(server, "persist-journal")
        await asyncio.wait_for(stream.finished, tokens * 0.05 * 3 + 30)
        seconds = time.monotonic() - t0
        await asyncio.sleep(0.5)
        bursts = _fswatch.write_bursts(watch.snapshot(), names)
    return {"tokens": stream.deltas, "seconds": seconds, "transactions": bursts, "idle_bursts_before": idle}


async def run(bench: Bench) -> Section:
    section = Section(NAME, TITLE)
    quick = bench.quick
    await bench.upstream.script("persist-probe", kind="reply", chunks=["Hello", " world"])
    await bench.upstream.script("persist-reply", kind="reply", chunks=[f"w{i} " for i in range(20)])
    await bench.upstream.script("persist-stall", kind="stall", text="partial", seconds=120)
    async with bench.server(NAME) as server:
        root = server.root
        pool = api(server, size=4)
        try:
            if not await probe(pool, root):
                for metric in ("notebook writes per run", "persist a turn into a 1 MB notebook", "10 MB notebook"):
                    section.add(info(metric, NOT_YET))
                section.add(info("journal writes per 1k tokens", NOT_YET))
                section.notes.append("a run naming a notebook left no metadata.streamchat in it within 5 s")
                return section
            if not _fswatch.available():
                section.notes.append("inotify unavailable: cannot count writes")
                return section
            with _fswatch.DirWatch(root / "bench") as watch:
                bench.say("persistence: writes per run")
                w = await writes_per_run(bench, pool, root, watch, 6 if quick else 20)
                bench.say(
                    f"persistence: persist time into 1 MB / 10 MB notebooks, {BACKGROUND} streams at 20 tokens/s aside"
                )
                await bench.upstream.script("persist-bg", kind="bulk", n=100_000, pace=0.05, stamp=True)
                fleet = await start_fleet(bench, server, "persist-bg", BACKGROUND, ramp=0.2)
                await asyncio.sleep(1.0)
                quiet = (time.time() - 0.8, time.time())
                big = {
                    mb: await persist_time(bench, server, pool, root, watch, mb, 3 if quick else 8) for mb in (1, 10)
                }
                for stream in fleet.streams:
                    stream.close()
                await finish_fleet(fleet, 5)
            journals = find_journal(server)
            journal = None
            if journals:
                bench.say(f"persistence: journal writes ({journals[0].name})")
                journal = await journal_writes(bench, server, journals[0], 100 if quick else 400)
        finally:
            await pool.close()
    section.data = {"writes": w, "persist": big, "journal": journal, "journal_files": [str(p) for p in journals]}
    own = w["own_writes"]
    worst = max(own) if own else float("nan")
    section.add(
        check(
            "notebook writes per run (own notebooks), max",
            worst,
            "",
            "exactly 1",
            lambda v: v == 1 and min(own) == 1,
            detail=f"per run: {own}",
        )
    )
    section.add(
        check(
            f"{w['runs']} concurrent runs → one shared notebook: writes",
            w["shared_writes"],
            "",
            f"{w['runs']}",
            lambda v: v == w["runs"],
        )
    )
    section.notes.append(f"writes per run on own notebooks (half stopped mid-stream): {own}")
    if not w["recorded"]:
        section.notes.append("some runs were not found in their notebook within 10 s")
    baseline = fleet.in_window(*quiet)
    section.data["background_quiet_max_ms"] = max(baseline) * 1e3 if baseline else None
    for mb, r in big.items():
        secs = r["seconds"]
        section.add(info(f"persist a turn into a {mb} MB notebook, p50", median(secs) * 1e3, "ms"))
        section.add(info(f"persist a turn into a {mb} MB notebook, max", max(secs) * 1e3 if secs else None, "ms"))
        others = fleet.in_window(*r["window"])
        stall = max(others) * 1e3 if others else float("nan")
        r["background_max_latency_ms"] = stall
        section.add(info(f"  other streams' max token latency meanwhile ({mb} MB)", stall, "ms"))
        section.notes.append(f"{mb} MB notebook: {r['size_bytes']:,} bytes, {len(secs)} trials landed")
    if baseline:
        section.notes.append(
            f"{BACKGROUND} background streams' max token latency before the big notebooks: {max(baseline) * 1e3:.1f} ms"
        )
    if journal is None:
        section.add(info("journal writes per 1k tokens", "n/a"))
        section.notes.append("no SQLite journal file in the server's data/runtime dirs")
    else:
        per_1k = journal["transactions"] / max(journal["tokens"], 1) * 1000
        per_s = journal["transactions"] / journal["seconds"]
        section.add(info("journal writes per 1k tokens (20 tokens/s)", per_1k))
        # Events are journaled before they are sent: a paced run commits once per upstream read (its cost per
        # token is measured by the ``journal`` family), so this is no longer held to a batching target.
        section.add(info("journal writes per second, 1 run", per_s, "/s"))
        section.notes.append(
            f"journal {Path(journals[0]).name}: {journal['transactions']} commits (write bursts) for "
            f"{journal['tokens']} tokens over {journal['seconds']:.1f} s"
        )
    return section
