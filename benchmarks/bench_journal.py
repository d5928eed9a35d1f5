"""Journal before release: what journaling every event before sending it costs per token.

Run it on this checkout and on one from before the change (``--product DIR``) to get before/after:

* **added latency per token**: direct streams paced at 20 tokens/s (one delta per upstream write, stamped
  by the upstream with ``time.time()``, as in ``latency``), 1 stream and 20 concurrent streams; p50/p99 of
  (client read - upstream stamp) over all tokens. Every token then waits for its own group commit.
* **relay throughput**: one unpaced stream of 100k deltas (512 per upstream write) read by the lean client,
  delta events/s first to last, and server CPU seconds per 100k tokens: tokens that arrive while a commit
  is in flight share the next one.
"""

from __future__ import annotations

from typing import Any

from ._bench import Bench, finish_fleet, start_fleet
from ._proc import CPUMeter
from ._report import Section, info, median, percentile

NAME = "journal"
TITLE = "Journal before release: added latency per token and relay throughput"
PACE = 0.05
THROUGHPUT_DELTAS = 100_000


async def paced(bench: Bench, server: Any, streams: int, tokens: int) -> dict[str, Any]:
    model = f"jl-{streams}-{tokens}"
    await bench.upstream.script(model, kind="bulk", n=tokens, pace=PACE, stamp=True)
    fleet = await start_fleet(bench, server, model, streams, ramp=streams * 0.01)
    await finish_fleet(fleet, timeout=tokens * PACE * 3 + 60)
    latencies = list(fleet.latencies)
    return {
        "streams": streams,
        "deltas": fleet.deltas,
        "expected": streams * tokens,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
    }


async def unpaced(bench: Bench, server: Any) -> dict[str, Any]:
    model = f"jl-bulk-{THROUGHPUT_DELTAS}"
    await bench.upstream.script(model, kind="bulk", n=THROUGHPUT_DELTAS)
    meter = CPUMeter(server=server.pid, upstream=bench.upstream.pid).start()
    stream = await bench.direct_stream(server, model)
    await stream.finished
    used = meter.stop()
    return {"deltas": stream.deltas, "rate": stream.rate, "server_cpu_s": used["server"]}


async def run(bench: Bench) -> Section:
    section = Section(NAME, TITLE)
    tokens = 60 if bench.quick else 200
    trials = 1 if bench.quick else 3
    async with bench.server(NAME) as server:
        await bench.upstream.script("jl-warm", kind="bulk", n=2000)
        await (await bench.direct_stream(server, "jl-warm")).finished
        levels = []
        for streams in (1, 20):
            bench.say(f"{streams} paced stream(s), {tokens} tokens each")
            levels.append(await paced(bench, server, streams, tokens))
        bulk = []
        for trial in range(trials):
            bench.say(f"unpaced 100k deltas, trial {trial + 1}/{trials}")
            bulk.append(await unpaced(bench, server))
    section.data = {"paced": levels, "unpaced": bulk}
    for level in levels:
        n = level["streams"]
        if level["deltas"] != level["expected"]:
            section.notes.append(f"{n} streams: {level['deltas']} of {level['expected']} deltas arrived")
        section.add(info(f"{n} stream(s) at 20 tokens/s: added latency p50", level["p50_ms"], "ms"))
        section.add(info(f"{n} stream(s) at 20 tokens/s: added latency p99", level["p99_ms"], "ms"))
    for row in bulk:
        if row["deltas"] != THROUGHPUT_DELTAS:
            section.notes.append(f"unpaced: a trial saw {row['deltas']} deltas instead of {THROUGHPUT_DELTAS}")
    section.add(info("relay throughput, unpaced (lean client)", median([r["rate"] for r in bulk]), "events/s"))
    cpu = median([r["server_cpu_s"] for r in bulk]) / THROUGHPUT_DELTAS * 100_000
    section.add(info("server CPU per 100k relayed tokens", cpu, "CPU s"))
    section.notes.append(f"latency over all tokens; throughput: median of {trials} trial(s)")
    return section
