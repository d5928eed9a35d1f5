"""4. Resume: time to re-attach to a run and replay 10k events.

A detached run streams 10,000 unpaced deltas and then waits on a silent upstream: still running, as when a
page reloads mid-run (a finished run collapses to its text + ``done``, which replays as one event).  A client
then re-attaches with ``GET runs/{id}/events`` from the start (``after=0``) and from the middle
(``Last-Event-ID`` 5,000); measured: request sent → the replay's last delta (lean client), and request sent →
all 10,000 characters received (``StreamChatClient.events``: httpx + SSE parsing, what a kernel uses).  With
the default ``replay_buffer_events`` (10,000) the oldest couple of events are folded into a ``snapshot``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from ._bench import Bench, api, chat_body, wait_until
from ._report import Section, info, median, percentile

NAME = "resume"
TITLE = "4. Resume: re-attach and replay 10k events"
N = 10_000


async def lean_replay(bench: Bench, server: Any, run_id: str, after: int) -> dict[str, Any]:
    """Request → the replay's last delta (the run is still running, so no ``done`` ends the response)."""
    stream = await bench.run_events(server, run_id, after=after)
    seen = -1
    while stream.deltas == 0 or stream.deltas != seen:  # settled: nothing new for 0.3 s
        seen = stream.deltas
        await asyncio.sleep(0.3)
    assert stream.sent_at is not None and stream.last_delta_at is not None
    if stream.transport is not None:
        stream.transport.close()
    return {"seconds": stream.last_delta_at - stream.sent_at, "deltas": stream.deltas}


async def httpx_replay(server: Any, run_id: str, after: int) -> dict[str, Any]:
    """Request → the replayed text reached all ``N`` characters (snapshot + deltas), with httpx + SSE parsing."""
    from jupyter_streamchat.client import StreamChatClient

    deltas = chars = 0
    async with StreamChatClient(server.base_url, server.token) as client:
        await client.get_run(run_id)  # connect first: time the replay, not the TCP handshake
        t0 = time.monotonic()
        async for message in client.events(run_id, after=after):
            if message.event in ("delta", "snapshot"):
                deltas += message.event == "delta"
                chars += len(json.loads(message.data)["text"])
            if chars >= N:
                break
        seconds = time.monotonic() - t0
    return {"seconds": seconds, "deltas": deltas}


async def run(bench: Bench) -> Section:
    section = Section(NAME, TITLE)
    trials = 5 if bench.quick else 20
    await bench.upstream.script("resume-10k", kind="bulk_stall", n=N)
    results: dict[str, list[dict[str, Any]]] = {"lean_0": [], "lean_mid": [], "httpx_0": []}
    async with bench.server(NAME) as server:
        pool = api(server, size=1)
        try:
            status, body, _ = await pool.request("POST", "/streamchat/runs", chat_body("resume-10k"))
            if status != 201:
                raise RuntimeError(f"POST runs answered {status}: {body}")
            run_id = body["id"]

            async def all_streamed() -> bool:
                _, record, _ = await pool.request("GET", f"/streamchat/runs/{run_id}")
                return len(record["text"]) >= N

            await wait_until(all_streamed, 60)
            bench.say(f"resume: {trials} trials per variant")
            for _ in range(trials):
                results["lean_0"].append(await lean_replay(bench, server, run_id, 0))
                results["lean_mid"].append(await lean_replay(bench, server, run_id, N // 2))
                results["httpx_0"].append(await httpx_replay(server, run_id, 0))
            await pool.request("POST", f"/streamchat/runs/{run_id}/stop", {})
        finally:
            await pool.close()
    section.data = results

    def ms(key: str, q: float) -> float:
        return percentile([r["seconds"] for r in results[key]], q) * 1e3

    section.add(info("replay 10k events (after=0), lean client, p50", ms("lean_0", 50), "ms"))
    section.add(info("replay 10k events (after=0), lean client, max", ms("lean_0", 100), "ms"))
    section.add(info("replay 5k events (Last-Event-ID 5000), p50", ms("lean_mid", 50), "ms"))
    section.add(info("replay 10k events, StreamChatClient (httpx), p50", ms("httpx_0", 50), "ms"))
    rate = median([r["deltas"] / r["seconds"] for r in results["lean_0"]])
    section.add(info("replay rate, lean client", rate, "events/s"))
    got = sorted({r["deltas"] for r in results["lean_0"]})
    section.notes.append(f"deltas replayed from after=0: {got} (the rest of the {N} is in the snapshot)")
    return section
