"""2. Added latency per token at 1, 100 and 1,000 concurrent direct streams paced at 20 tokens/s.

The upstream stamps each delta with ``time.time()`` when it serialises it (``<t>…</t>`` in the
text); the lean client subtracts that from the wall time at which the read carrying it returned.
So the number includes both loopback hops, the server's parse/encode/relay, and any event-loop lag
in the client itself (kept small by the raw-socket client).  Streams are opened evenly over a ramp
(2 ms per stream); "all" covers every token, "steady" only tokens received from 0.5 s after the
last stream opened until the first stream received its last token (all streams live).  The targets are checked against
"all", the stricter number.
"""

from __future__ import annotations

from typing import Any

from ._bench import Bench, finish_fleet, start_fleet
from ._proc import CPUMeter
from ._report import Section, check, info, percentile

NAME = "latency"
TITLE = "2. Added latency per token, paced 20 tokens/s (direct streams)"
PACE = 0.05
TARGETS = {1: 0.002, 1000: 0.050}


async def level(bench: Bench, server: Any, n: int, tokens: int) -> dict[str, Any]:
    model = f"lat-{n}-{tokens}"
    await bench.upstream.script(model, kind="bulk", n=tokens, pace=PACE, stamp=True)
    meter = CPUMeter(server=server.pid, upstream=bench.upstream.pid).start()
    fleet = await start_fleet(bench, server, model, n, ramp=n * 0.002)
    await finish_fleet(fleet, timeout=tokens * PACE * 3 + 60)
    used = meter.stop()
    util = meter.utilisation()
    start, end = fleet.steady_window()
    steady = fleet.in_window(start, end)
    lat = list(fleet.latencies)
    window = max(end - start, 0.0)
    return {
        "streams": n,
        "tokens_per_stream": tokens,
        "deltas": fleet.deltas,
        "expected": n * tokens,
        "errors": fleet.errors[:5],
        "p50_ms": percentile(lat, 50) * 1e3,
        "p99_ms": percentile(lat, 99) * 1e3,
        "max_ms": max(lat) * 1e3 if lat else float("nan"),
        "steady_p50_ms": percentile(steady, 50) * 1e3,
        "steady_p99_ms": percentile(steady, 99) * 1e3,
        "steady_window_s": window,
        "steady_events_per_s": fleet.count_in_window(start, end) / window if window > 0 else float("nan"),
        "cpu_s": used,
        "cpu_pct": util,
    }


async def run(bench: Bench) -> Section:
    section = Section(NAME, TITLE)
    plan = [(1, 60), (100, 60), (1000, 80)] if bench.quick else [(1, 200), (100, 200), (1000, 200)]
    levels = []
    async with bench.server(NAME) as server:
        await bench.upstream.script("lat-warm", kind="bulk", n=20, pace=0.01, stamp=True)
        await (await bench.direct_stream(server, "lat-warm")).finished
        for n, tokens in plan:
            bench.say(f"latency: {n} streams x {tokens} tokens at {1 / PACE:.0f}/s")
            levels.append(await level(bench, server, n, tokens))
    section.data = {"levels": levels, "pace_s": PACE}
    for r in levels:
        n = r["streams"]
        target = TARGETS.get(n)
        label = f"{n} stream{'s' if n > 1 else ''}"
        if target is not None:
            section.add(
                check(
                    f"{label}: p99 (all tokens)",
                    r["p99_ms"],
                    "ms",
                    f"≤ {target * 1e3:g} ms",
                    lambda v, t=target: v <= t * 1e3,
                )
            )
        else:
            section.add(info(f"{label}: p99 (all tokens)", r["p99_ms"], "ms"))
        section.add(info(f"{label}: p50 (all tokens)", r["p50_ms"], "ms"))
        section.add(info(f"{label}: p50 / p99 steady", f"{r['steady_p50_ms']:.2f} / {r['steady_p99_ms']:.2f}", "ms"))
        cpu = r["cpu_pct"]
        section.notes.append(
            f"{label}: {r['deltas']}/{r['expected']} deltas, max {r['max_ms']:.1f} ms, "
            f"steady {r['steady_events_per_s']:,.0f} events/s; CPU % of a core: server {cpu['server']:.0f}, "
            f"upstream {cpu['upstream']:.0f}, client {cpu['client']:.0f}"
            + (f"; errors: {r['errors']}" if r["errors"] else "")
        )
    return section
