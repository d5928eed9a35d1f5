"""1. Relay throughput: one unpaced 100k-delta stream through the server vs. reading the upstream directly.

Three readers of the same upstream script (``Script.bulk(100_000)``, 512 deltas per write):

* **direct httpx**: an ``httpx`` client POSTs to the fake upstream and parses the SSE with the
  product's own ``iter_sse`` + ``json.loads`` per chunk, i.e. what any Python app talking to the provider
  does (the issue's baseline);
* **relay (lean client)**: ``POST streamchat/stream`` read by the raw-socket client of ``_client.py``,
  which only counts events, so the number is the server's relay rate;
* **relay (httpx client)**: the same through ``StreamChatClient.stream`` (httpx + SSE parse), what a
  kernel-side Python client sees.

Also a raw read of the upstream (lean client, no parsing) to show the upstream is not the limit.
Rates are delta events per second from the first delta to the last one.  Server CPU seconds per
100k relayed tokens come from /proc/<pid>/stat during the lean-client relay.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from ._bench import Bench, chat_body
from ._client import UPSTREAM_DELTA, open_stream
from ._proc import CPUMeter
from ._report import Section, check, info, median

NAME = "throughput"
TITLE = "1. Relay throughput: one unpaced stream of 100k deltas"
N = 100_000


async def direct_httpx(base_url: str, model: str) -> dict[str, Any]:
    from jupyter_streamchat.engine._sse import iter_sse

    body = {"model": model, "messages": [{"role": "user", "content": "x"}], "stream": True}
    count, first, last = 0, None, None
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None)) as client:
        async with client.stream("POST", f"{base_url}/v1/chat/completions", json=body) as response:
            async for message in iter_sse(response.aiter_text()):
                if message.data == "[DONE]":
                    break
                chunk = json.loads(message.data)
                for choice in chunk.get("choices") or ():
                    if (choice.get("delta") or {}).get("content"):
                        count += 1
                        last = time.monotonic()
                        if first is None:
                            first = last
    return {"deltas": count, "rate": (count - 1) / (last - first) if first and last and count > 1 else float("nan")}


async def upstream_raw(bench: Bench, model: str) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], "stream": True}
    stream = await open_stream(
        "127.0.0.1",
        bench.upstream.port,
        "POST",
        "/v1/chat/completions",
        {},
        body,
        marker=UPSTREAM_DELTA,
        done_marker=b"[DONE]",
    )
    await stream.finished
    return {"deltas": stream.deltas, "rate": stream.rate}


async def relay_lean(bench: Bench, server: Any, model: str) -> dict[str, Any]:
    meter = CPUMeter(server=server.pid, upstream=bench.upstream.pid).start()
    stream = await bench.direct_stream(server, model)
    await stream.finished
    used = meter.stop()
    return {
        "deltas": stream.deltas,
        "rate": stream.rate,
        "total_s": (stream.done_at or stream.finished.result()) - (stream.sent_at or 0),
        "server_cpu_s": used["server"],
        "upstream_cpu_s": used["upstream"],
        "client_cpu_s": used["client"],
    }


async def relay_httpx(server: Any, model: str) -> dict[str, Any]:
    from jupyter_streamchat.client import StreamChatClient

    count, first, last = 0, None, None
    async with StreamChatClient(server.base_url, server.token) as client:
        async for message in client.stream(chat_body(model)):
            if message.event == "delta":
                json.loads(message.data)
                count += 1
                last = time.monotonic()
                if first is None:
                    first = last
    return {"deltas": count, "rate": (count - 1) / (last - first) if first and last and count > 1 else float("nan")}


async def run(bench: Bench, profile: bool = False) -> Section:
    section = Section(NAME, TITLE)
    model = f"tp-{N}"
    await bench.upstream.script(model, kind="bulk", n=N)
    await bench.upstream.script("tp-warm", kind="bulk", n=5000)
    trials = 1 if bench.quick else 3
    results: dict[str, list[dict[str, Any]]] = {
        "upstream_raw": [],
        "direct_httpx": [],
        "relay_lean": [],
        "relay_httpx": [],
    }
    async with bench.server(NAME, profile=profile) as server:
        await (await bench.direct_stream(server, "tp-warm")).finished
        for trial in range(trials):
            bench.say(f"throughput trial {trial + 1}/{trials}")
            results["upstream_raw"].append(await upstream_raw(bench, model))
            results["direct_httpx"].append(await direct_httpx(bench.upstream.base_url, model))
            results["relay_lean"].append(await relay_lean(bench, server, model))
            if not profile:
                results["relay_httpx"].append(await relay_httpx(server, model))
    section.data = {"trials": results, "deltas_per_stream": N}
    for name, rows in results.items():
        bad = [r["deltas"] for r in rows if r["deltas"] != N]
        if bad:
            section.notes.append(f"{name}: a trial saw {bad} deltas instead of {N}")

    def med(name: str, key: str = "rate") -> float:
        return median([r[key] for r in results[name]]) if results[name] else float("nan")

    relay, direct = med("relay_lean"), med("direct_httpx")
    section.add(check("relay, lean client", relay, "events/s", "≥ 50,000 events/s", lambda v: v >= 50_000))
    section.add(info("direct httpx client on upstream", direct, "events/s"))
    section.add(info("ratio relay / direct httpx (headline)", relay / direct, "x"))
    if results["relay_httpx"]:
        httpx_relay = med("relay_httpx")
        section.add(info("relay, httpx client (StreamChatClient)", httpx_relay, "events/s"))
    section.add(info("upstream raw read (no parsing)", med("upstream_raw"), "events/s"))
    per_100k = med("relay_lean", "server_cpu_s") / N * 100_000
    section.add(info("server CPU per 100k relayed tokens (1 stream)", per_100k, "CPU s"))
    section.notes.append(f"median of {trials} trial(s); rates are first→last delta at the reader")
    return section
