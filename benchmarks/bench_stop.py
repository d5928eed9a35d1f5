"""3. Stop latency: client Stop → upstream connection closed, measured at the upstream, upstream silent.

Each trial scripts a fresh model that sends one delta and then stalls (``Stall``), so the server is
parked on its next upstream read.  Then:

* **direct**: the lean client, having received the first delta of ``POST streamchat/stream``, closes
  its socket (FIN, like a closed tab);
* **detached**: after ``POST runs`` and the first delta having reached the run (``GET runs/{id}``
  shows it), the client sends ``POST runs/{id}/stop`` on a warm keep-alive connection.

The same trials are repeated while ``LOAD_STREAMS`` other direct streams are streaming at 20
tokens/s, since a stop matters most on a busy server.

Latency = the upstream's ``client_closed_at`` (``time.monotonic()`` in the upstream process when it
saw EOF on the server's connection) - the client's ``time.monotonic()`` just before the close/send.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ._bench import Bench, api, chat_body, finish_fleet, start_fleet, wait_until
from ._report import Section, check, info, percentile

NAME = "stop"
TITLE = "3. Stop latency → upstream connection closed (upstream silent)"
TARGET_S = 0.010
LOAD_STREAMS = 100


async def direct_trial(bench: Bench, server: Any, i: int) -> dict[str, Any]:
    model = f"stop-direct-{i}"
    await bench.upstream.script(model, kind="stall", text="hello", seconds=120)
    stream = await bench.direct_stream(server, model)
    await asyncio.wait_for(stream.first_delta, 10)
    await asyncio.sleep(0.005)  # let the server settle on its next (silent) upstream read
    t0 = stream.close()
    rec = await bench.upstream.call("wait_closed", model=model, timeout=5)
    closed = rec["client_closed_at"]
    return {"latency": None if closed is None else closed - t0}


async def detached_trial(bench: Bench, pool: Any, i: int) -> dict[str, Any]:
    model = f"stop-detached-{i}"
    await bench.upstream.script(model, kind="stall", text="hello", seconds=120)
    status, body, _ = await pool.request("POST", "/streamchat/runs", chat_body(model))
    if status != 201:
        raise RuntimeError(f"POST runs answered {status}: {body}")
    run_id = body["id"]

    async def has_text() -> bool:
        _, record, _ = await pool.request("GET", f"/streamchat/runs/{run_id}")
        return bool(record and record.get("text"))

    if not await wait_until(has_text, 10, interval=0.002):
        raise RuntimeError("the detached run never received its first delta")
    await asyncio.sleep(0.005)
    status, answer, t0 = await pool.request("POST", f"/streamchat/runs/{run_id}/stop")
    answered = time.monotonic()
    rec = await bench.upstream.call("wait_closed", model=model, timeout=5)
    closed = rec["client_closed_at"]
    return {
        "latency": None if closed is None else closed - t0,
        "answer": answered - t0,
        "status": (answer or {}).get("status"),
    }


def _summarise(section: Section, label: str, trials: list[dict[str, Any]]) -> None:
    lat = [t["latency"] for t in trials if t["latency"] is not None]
    missing = len(trials) - len(lat)
    p99 = percentile(lat, 99) * 1e3 if not missing else float("inf")
    slowest = ", ".join(f"{v * 1e3:.1f}" for v in sorted(lat)[-3:])
    detail = f"{len(lat)} trials, slowest {slowest} ms" + (f", {missing} never closed within 5 s" if missing else "")
    section.add(check(f"{label}: p99", p99, "ms", f"≤ {TARGET_S * 1e3:g} ms", lambda v: v <= TARGET_S * 1e3, detail))
    section.add(info(f"{label}: p50", percentile(lat, 50) * 1e3, "ms"))
    section.add(info(f"{label}: max", max(lat) * 1e3 if lat else float("nan"), "ms"))
    section.notes.append(f"{label}: {detail}")


async def run(bench: Bench) -> Section:
    section = Section(NAME, TITLE)
    trials = 50 if bench.quick else 200
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in ("direct", "detached", "direct_load", "detached_load")}
    async with bench.server(NAME) as server:
        pool = api(server, size=1)
        try:
            for i in range(3):  # warm-up: imports, connection pools
                await direct_trial(bench, server, -1 - i)
                await detached_trial(bench, pool, -1 - i)
            bench.say(f"stop: {trials} direct + {trials} detached trials, idle server")
            for i in range(trials):
                results["direct"].append(await direct_trial(bench, server, i))
                results["detached"].append(await detached_trial(bench, pool, i))
            bench.say(f"stop: the same with {LOAD_STREAMS} streams at 20 tokens/s in the background")
            await bench.upstream.script("stop-load", kind="bulk", n=100_000, pace=0.05, stamp=True)
            fleet = await start_fleet(bench, server, "stop-load", LOAD_STREAMS, ramp=0.5)
            await asyncio.sleep(1.0)
            for i in range(trials):
                results["direct_load"].append(await direct_trial(bench, server, 10_000 + i))
                results["detached_load"].append(await detached_trial(bench, pool, 10_000 + i))
            for stream in fleet.streams:
                stream.close()
            await finish_fleet(fleet, 10)
        finally:
            await pool.close()
    section.data = results
    _summarise(section, "direct (client closes)", results["direct"])
    _summarise(section, "detached (POST stop)", results["detached"])
    _summarise(section, f"direct, {LOAD_STREAMS} streams busy", results["direct_load"])
    _summarise(section, f"detached, {LOAD_STREAMS} streams busy", results["detached_load"])
    answers = [t["answer"] for t in results["detached"]]
    section.add(info("detached: POST stop answered, p50", percentile(answers, 50) * 1e3, "ms"))
    statuses = sorted({str(t["status"]) for t in results["detached"] + results["detached_load"]})
    section.notes.append(f"detached stop answers: status {statuses}")
    return section
