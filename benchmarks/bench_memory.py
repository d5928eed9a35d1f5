"""5. Memory and CPU: RSS growth per 100 idle detached runs and per 100 streaming runs; CPU per token.

* **idle detached runs**: each run's upstream sends "hello" and then stays silent (``Stall``), so the
  server holds the run, its event log, its task and its upstream connection.  RSS (VmRSS of the
  server process) is sampled after the runs are all live and settled, against a baseline taken after
  a warm-up; the growth is reported per 100 runs and per run (target ≤ 50 KB per idle run beyond
  its text, which is 5 bytes here).  RSS includes allocator slack, so it is an upper bound.
* **streaming runs**: direct streams at 20 tokens/s, each read by the lean client; RSS is sampled
  every 0.25 s and the peak growth is reported per 100 streams, with the text they had accumulated.
* **CPU**: server utime+stime from /proc/<pid>/stat while those streams run, per 100k relayed
  tokens (the paced, one-event-per-write regime; the unpaced figure is in the throughput table).
* **finished runs**: detached runs of ``FINISHED_TOKENS`` one-character deltas each, run to completion
  a few at a time (so the transient memory of streaming stays small) and kept, as the server keeps
  finished runs for an hour; the settled RSS growth is reported per finished run. Nobody reads their
  events, so what remains is what the server retains for a later replay or ``GET runs``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from ._bench import Bench, api, chat_body, finish_fleet, gather_limited, start_fleet, wait_until
from ._proc import CPUMeter
from ._report import Section, check, info

NAME = "memory"
TITLE = "5. Memory and CPU"
PACE = 0.05
FINISHED_TOKENS = 2000


async def settled_rss(server: Any, seconds: float = 1.0) -> float:
    samples = []
    for _ in range(5):
        await asyncio.sleep(seconds / 5)
        samples.append(server.rss_kib())
    return statistics.median(samples)


async def idle_runs(bench: Bench, server: Any, pool: Any, n: int, model: str) -> list[str]:
    async def start() -> str:
        status, body, _ = await pool.request("POST", "/streamchat/runs", chat_body(model))
        if status != 201:
            raise RuntimeError(f"POST runs answered {status}: {body}")
        return body["id"]

    ids = await gather_limited([start() for _ in range(n)], 16)

    async def all_live() -> bool:
        _, body, _ = await pool.request("GET", "/streamchat/runs?status=running")
        runs = [r for r in body["runs"] if r["model"] == f"openai:{model}"]
        return len(runs) >= n and all(r["text"] for r in runs)

    if not await wait_until(all_live, 60, interval=0.2):
        raise RuntimeError(f"{n} idle runs did not all receive their first delta")
    return ids


async def finished_runs(pool: Any, n: int, model: str) -> list[str]:
    """``n`` detached runs, at most 8 streaming at once, each waited for until it has finished."""

    async def one() -> str:
        status, body, _ = await pool.request("POST", "/streamchat/runs", chat_body(model))
        if status != 201:
            raise RuntimeError(f"POST runs answered {status}: {body}")
        deadline = time.monotonic() + 60
        while True:
            _, record, _ = await pool.request("GET", f"/streamchat/runs/{body['id']}")
            if record["status"] != "running":
                if record["status"] != "completed" or len(record["text"]) != FINISHED_TOKENS:
                    raise RuntimeError(f"run ended {record['status']} with {len(record['text'])} chars")
                return body["id"]
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {body['id']} did not finish within 60 s")
            await asyncio.sleep(0.05)

    return await gather_limited([one() for _ in range(n)], 8)


async def stop_all(pool: Any, ids: list[str]) -> float:
    t0 = time.monotonic()
    await gather_limited([pool.request("POST", f"/streamchat/runs/{i}/stop") for i in ids], 16)
    return time.monotonic() - t0


async def run(bench: Bench) -> Section:
    section = Section(NAME, TITLE)
    n_idle = 300 if bench.quick else 1000
    n_stream, tokens = (200, 80) if bench.quick else (1000, 200)
    n_finished = 100 if bench.quick else 300
    await bench.upstream.script("mem-idle", kind="stall", text="hello", seconds=900)
    await bench.upstream.script("mem-warm", kind="stall", text="hello", seconds=900)
    await bench.upstream.script("mem-stream", kind="bulk", n=tokens, pace=PACE, stamp=True)
    await bench.upstream.script("mem-stream-warm", kind="bulk", n=20, pace=0.01, stamp=True)
    await bench.upstream.script("mem-finished", kind="bulk", n=FINISHED_TOKENS)
    data: dict[str, Any] = {}
    async with bench.server(NAME, max_retained_runs=5000) as server:
        pool = api(server, size=16)
        try:
            # Warm-up: code paths, pools and allocator arenas get used once before the baseline.
            warm = await idle_runs(bench, server, pool, 50, "mem-warm")
            await stop_all(pool, warm)
            fleet = await start_fleet(bench, server, "mem-stream-warm", 50, ramp=0.2)
            await finish_fleet(fleet, 30)
            await finished_runs(pool, 16, "mem-finished")

            bench.say(f"memory: {n_finished} finished detached runs of {FINISHED_TOKENS} deltas")
            base0 = await settled_rss(server)
            await finished_runs(pool, n_finished, "mem-finished")
            data["finished"] = {
                "runs": n_finished,
                "deltas_per_run": FINISHED_TOKENS,
                "rss_base_kib": base0,
                "rss_after_kib": await settled_rss(server),
            }

            bench.say(f"memory: {n_idle} idle detached runs")
            base = await settled_rss(server)
            ids = await idle_runs(bench, server, pool, n_idle, "mem-idle")
            live = await settled_rss(server)
            stop_seconds = await stop_all(pool, ids)
            after_stop = await settled_rss(server)
            data["idle"] = {
                "runs": n_idle,
                "rss_base_kib": base,
                "rss_live_kib": live,
                "rss_after_stop_kib": after_stop,
                "stop_all_s": stop_seconds,
            }

            bench.say(f"memory: {n_stream} streaming runs x {tokens} tokens at {1 / PACE:.0f}/s")
            base2 = await settled_rss(server)
            meter = CPUMeter(server=server.pid, upstream=bench.upstream.pid).start()
            task = asyncio.ensure_future(start_fleet(bench, server, "mem-stream", n_stream, ramp=n_stream * 0.002))
            peak, samples = base2, []
            while not task.done() or not all(s.finished.done() for s in task.result().streams):
                await asyncio.sleep(0.25)
                rss = server.rss_kib()
                samples.append(rss)
                peak = max(peak, rss)
            fleet = task.result()
            await finish_fleet(fleet, 30)
            used = meter.stop()
            data["streaming"] = {
                "streams": n_stream,
                "tokens_per_stream": tokens,
                "deltas": fleet.deltas,
                "rss_base_kib": base2,
                "rss_peak_kib": peak,
                "rss_samples_kib": samples,
                "text_bytes_per_stream": tokens * len("<t>1700000000.123456</t>"),
                "cpu_s": used,
                "cpu_pct": meter.utilisation(),
            }
        finally:
            await pool.close()
    section.data = data
    idle = data["idle"]
    per_run_kib = (idle["rss_live_kib"] - idle["rss_base_kib"]) / idle["runs"]
    section.add(info("RSS growth per 100 idle detached runs", per_run_kib * 100 / 1024, "MiB"))
    section.add(
        check(
            "RSS growth per idle run",
            per_run_kib * 1.024,
            "KB",
            "≤ 50 KB",
            lambda v: v <= 50,
            detail=f"{idle['runs']} runs",
        )
    )
    finished = data["finished"]
    per_finished_kib = (finished["rss_after_kib"] - finished["rss_base_kib"]) / finished["runs"]
    section.add(
        info(
            f"RSS growth per finished run ({FINISHED_TOKENS} deltas, kept for replay)",
            per_finished_kib * 1.024,
            "KB",
        )
    )
    streaming = data["streaming"]
    per_stream_kib = (streaming["rss_peak_kib"] - streaming["rss_base_kib"]) / streaming["streams"]
    section.add(info("RSS growth per 100 streaming runs (peak)", per_stream_kib * 100 / 1024, "MiB"))
    cpu_per_100k = streaming["cpu_s"]["server"] / max(streaming["deltas"], 1) * 100_000
    section.add(info(f"server CPU per 100k tokens, {n_stream} paced streams", cpu_per_100k, "CPU s"))
    section.notes.append(
        f"idle: {idle['runs']} runs, RSS {idle['rss_base_kib'] / 1024:.1f} → {idle['rss_live_kib'] / 1024:.1f} MiB, "
        f"{idle['rss_after_stop_kib'] / 1024:.1f} MiB after stopping them all "
        f"(stop of all took {idle['stop_all_s']:.2f} s; stopped runs are retained, with their records)"
    )
    pct = streaming["cpu_pct"]
    section.notes.append(
        f"streaming: {streaming['deltas']}/{n_stream * tokens} deltas, ~{streaming['text_bytes_per_stream'] / 1024:.1f}"
        f" KiB of text per stream at the end; CPU % of a core: server {pct['server']:.0f}, upstream "
        f"{pct['upstream']:.0f}, client {pct['client']:.0f}"
    )
    return section
