"""1b. Aggregate relay over 1,000 concurrent paced streams.

20 tokens/s x 1,000 streams offers only 20k events/s, so to test the "≥ 50k events/s aggregate over
1,000 paced streams" target each stream is paced at 100 tokens/s, sent by the upstream in bursts of
10 stamped deltas every 100 ms (one write per burst, like a provider's network batching): 100k
events/s offered, more than one core can relay, so this measures the server's capacity.  Measured:
the sustained delivered rate, i.e. delta events per second received by the clients between the
moments 10 % and 90 % of all tokens had arrived (with how many streams were live mid-window), the
latency of those tokens, and CPU use.  Streams are opened over ~1 s; a busy server accepts them
more slowly, which the note reports.
"""

from __future__ import annotations

import time

from ._bench import Bench, finish_fleet, start_fleet
from ._proc import CPUMeter
from ._report import Section, check, info, percentile

NAME = "aggregate"
TITLE = "1b. Aggregate relay: 1,000 streams paced at 100 tokens/s (bursts of 10)"
STREAMS = 1000
BURST, INTERVAL = 10, 0.1


async def run(bench: Bench) -> Section:
    section = Section(NAME, TITLE)
    reps = 60 if bench.quick else 150
    model = f"agg-{reps}"
    await bench.upstream.script(model, kind="bursts", k=BURST, interval=INTERVAL, reps=reps)
    await bench.upstream.script("agg-warm", kind="bursts", k=BURST, interval=INTERVAL, reps=5)
    async with bench.server(NAME) as server:
        warm = await start_fleet(bench, server, "agg-warm", 50, ramp=0.2)
        await finish_fleet(warm, 30)
        bench.say(f"aggregate: {STREAMS} streams x {reps * BURST} tokens")
        meter = CPUMeter(server=server.pid, upstream=bench.upstream.pid).start()
        opened_at = time.time()
        fleet = await start_fleet(bench, server, model, STREAMS, ramp=STREAMS * 0.001)
        await finish_fleet(fleet, reps * INTERVAL * 5 + 60)
        used = meter.stop()
        pct = meter.utilisation()
    rate, start, end = fleet.sustained()
    window = end - start
    steady = fleet.in_window(start, end)
    live = fleet.live_at((start + end) / 2)
    ramp = fleet.all_started - opened_at
    offered = STREAMS * BURST / INTERVAL
    section.data = {
        "streams": STREAMS,
        "tokens_per_stream": reps * BURST,
        "deltas": fleet.deltas,
        "errors": fleet.errors[:5],
        "offered_events_per_s": offered,
        "window_s": window,
        "live_streams_mid_window": live,
        "ramp_s": ramp,
        "delivered_events_per_s": rate,
        "steady_p50_ms": percentile(steady, 50) * 1e3,
        "steady_p99_ms": percentile(steady, 99) * 1e3,
        "cpu_s": used,
        "cpu_pct": pct,
    }
    section.add(
        check(
            "aggregate delivered (sustained)",
            rate,
            "events/s",
            "≥ 50,000 events/s",
            lambda v: v >= 50_000,
            detail=f"offered {offered:,.0f}/s",
        )
    )
    section.add(info("streams live mid-window", live))
    section.add(info("token latency in that window, p50", section.data["steady_p50_ms"], "ms"))
    section.add(info("token latency in that window, p99", section.data["steady_p99_ms"], "ms"))
    section.add(info("server CPU per 100k relayed tokens", used["server"] / max(fleet.deltas, 1) * 1e5, "CPU s"))
    section.notes.append(
        f"offered {offered:,.0f} events/s; {fleet.deltas:,}/{STREAMS * reps * BURST:,} deltas delivered; window "
        f"{window:.1f} s; opening the {STREAMS} streams took {ramp:.1f} s; "
        f"CPU % of a core: server {pct['server']:.0f}, upstream {pct['upstream']:.0f}, "
        f"client {pct['client']:.0f}" + (f"; errors: {fleet.errors[:3]}" if fleet.errors else "")
    )
    return section
