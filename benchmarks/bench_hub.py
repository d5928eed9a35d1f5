"""9. Behind JupyterHub: what configurable-http-proxy adds, against the same single-user server directly.

A real JupyterHub (``harness/hub.py``: jupyterhub from PyPI, configurable-http-proxy from npm, a local
``jupyterhub-singleuser`` with the extension) on loopback, one user. Every measurement is taken twice, on the
same server, alternating: **direct** (the single-user server's own port, as a kernel on the hub's host reaches
it) and **proxy** (the hub's public port, ``/user/<name>/``, as a browser reaches it). Both send the user's
hub API token; the single-user server caches its check with the hub after the first request (warm-up).

* Added latency per token: direct streams (``POST streamchat/stream``) paced at 20 tokens/s, each delta
  stamped by the upstream; latency = the lean client's receive wall time - the stamp (as in family 2).
  CPU per token of the proxy (node) and of the single-user server, from ``/proc``; at one stream the idle
  baseline of both processes dominates (10 ms clock ticks), so the 20-stream numbers are the meaningful ones.
* Stop → upstream closed: the client hangs up a direct stream (FIN to the proxy, which closes its own
  connection to the server), or sends ``POST runs/{id}/stop`` for a detached run; latency = the upstream's
  ``client_closed_at`` - the client's clock just before (as in family 3).
"""

from __future__ import annotations

import asyncio
import time
from array import array
from dataclasses import dataclass
from typing import Any

from ._bench import Bench, chat_body, wait_until
from ._client import JSONConnection, SSEStream, open_stream
from ._proc import CPUMeter
from ._report import Section, check, info, percentile
from ._server import BASE_SETTINGS

NAME = "hub"
TITLE = "9. Behind JupyterHub: configurable-http-proxy vs direct (latency per token, Stop → upstream closed)"
PACE = 0.05
STOP_TARGET_S = 0.010
USER = "alice"


@dataclass
class Route:
    label: str
    port: int
    prefix: str  # "/user/alice/"
    headers: dict[str, str]

    async def stream(self, model: str, **kwargs: Any) -> SSEStream:
        path = f"{self.prefix}streamchat/stream"
        return await open_stream("127.0.0.1", self.port, "POST", path, self.headers, chat_body(model), **kwargs)


async def latency_level(
    bench: Bench, route: Route, n: int, tokens: int, tag: str, pids: dict[str, int]
) -> dict[str, Any]:
    model = f"hub-lat-{route.label}-{n}-{tag}"
    await bench.upstream.script(model, kind="bulk", n=tokens, pace=PACE, stamp=True)
    latencies: array[float] = array("d")
    meter = CPUMeter(**pids).start()
    streams = await asyncio.gather(*(route.stream(model, latencies=latencies) for _ in range(n)))
    await asyncio.wait([asyncio.ensure_future(s.finished) for s in streams], timeout=tokens * PACE * 3 + 30)
    used = meter.stop()
    for stream in streams:
        stream.close()
    lat = list(latencies)
    deltas = max(1, sum(s.deltas for s in streams))
    return {
        "cpu_us_per_delta": {name: seconds / deltas * 1e6 for name, seconds in used.items()},
        "route": route.label,
        "streams": n,
        "deltas": sum(s.deltas for s in streams),
        "expected": n * tokens,
        "errors": [f"HTTP {s.status}: {s.body_error[:120]!r}" for s in streams if s.status != 200][:3],
        "p50_ms": percentile(lat, 50) * 1e3,
        "p99_ms": percentile(lat, 99) * 1e3,
        "max_ms": max(lat) * 1e3 if lat else float("nan"),
    }


async def hangup_trial(bench: Bench, route: Route, i: int) -> float | None:
    model = f"hub-hangup-{route.label}-{i}"
    await bench.upstream.script(model, kind="stall", text="hello", seconds=120)
    stream = await route.stream(model)
    await asyncio.wait_for(stream.first_delta, 10)
    await asyncio.sleep(0.005)  # the server is parked on its next (silent) upstream read
    t0 = stream.close()
    closed = (await bench.upstream.call("wait_closed", model=model, timeout=5))["client_closed_at"]
    return None if closed is None else closed - t0


async def detached_stop_trial(bench: Bench, route: Route, conn: JSONConnection, i: int) -> float | None:
    model = f"hub-stop-{route.label}-{i}"
    await bench.upstream.script(model, kind="stall", text="hello", seconds=120)
    status, body, _ = await conn.request("POST", f"{route.prefix}streamchat/runs", chat_body(model))
    if status != 201:
        raise RuntimeError(f"POST runs through {route.label} answered {status}: {body}")
    run_id = body["id"]

    async def has_text() -> bool:
        _, record, _ = await conn.request("GET", f"{route.prefix}streamchat/runs/{run_id}")
        return bool(record and record.get("text"))

    if not await wait_until(has_text, 10, interval=0.002):
        raise RuntimeError("the detached run never received its first delta")
    await asyncio.sleep(0.005)
    status, answer, t0 = await conn.request("POST", f"{route.prefix}streamchat/runs/{run_id}/stop")
    if status != 200 or not (answer or {}).get("stopped"):
        raise RuntimeError(f"POST stop through {route.label} answered {status}: {answer}")
    closed = (await bench.upstream.call("wait_closed", model=model, timeout=5))["client_closed_at"]
    return None if closed is None else closed - t0


def _ms(values: list[float | None], q: float) -> float:
    present = [v for v in values if v is not None]
    return percentile(present, q) * 1e3 if len(present) == len(values) else float("inf")


async def measure(bench: Bench, routes: list[Route], pids: dict[str, int]) -> dict[str, Any]:
    plan = [(1, 60), (20, 60)] if bench.quick else [(1, 200), (20, 200)]
    trials = 20 if bench.quick else 60
    data: dict[str, Any] = {"latency": [], "hangup": {}, "stop": {}}
    conns = {route.label: JSONConnection("127.0.0.1", route.port, route.headers) for route in routes}
    try:
        for route in routes:  # warm-up: the server's token cache, imports, connection pools
            await latency_level(bench, route, 1, 10, "warm", pids)
            await hangup_trial(bench, route, -1)
            await detached_stop_trial(bench, route, conns[route.label], -1)
        for n, tokens in plan:
            for route in routes:
                bench.say(f"hub: {n} stream(s) x {tokens} tokens at {1 / PACE:.0f}/s, {route.label}")
                data["latency"].append(await latency_level(bench, route, n, tokens, "m", pids))
        bench.say(f"hub: {trials} hang-ups and {trials} detached stops per route, alternating")
        for route in routes:
            data["hangup"][route.label] = []
            data["stop"][route.label] = []
        for i in range(trials):
            for route in routes:
                data["hangup"][route.label].append(await hangup_trial(bench, route, i))
                data["stop"][route.label].append(await detached_stop_trial(bench, route, conns[route.label], i))
    finally:
        for conn in conns.values():
            await conn.close()
    return data


async def run(bench: Bench) -> Section:
    from harness.hub import Hub, missing_requirements

    section = Section(NAME, TITLE)
    missing = missing_requirements()
    if missing:
        section.notes.append(f"SKIPPED: {missing}")
        return section
    settings = {key: value for key, value in BASE_SETTINGS.items() if not key.startswith("openai")}
    hub = Hub(bench.workdir / "hub", bench.upstream.openai_base_url, users=(USER,), streamchat=settings)
    started = time.monotonic()
    try:
        await asyncio.to_thread(hub.start)
        await asyncio.to_thread(hub.start_server, USER)
        token = await asyncio.to_thread(hub.user_token, USER)
        direct_url = await asyncio.to_thread(hub.direct_url, USER)
        bench.say(f"hub: up in {time.monotonic() - started:.1f} s; {USER}'s server at {direct_url}")
        headers = {"Authorization": f"token {token}"}
        direct_port = int(direct_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        prefix = f"/user/{USER}/"
        routes = [Route("direct", direct_port, prefix, headers), Route("proxy", hub.port, prefix, headers)]
        model = await asyncio.to_thread(hub.server_model, USER)
        pids = {"server": int((model or {})["state"]["pid"]), "proxy": hub.proxy_pid or 0}
        data = await measure(bench, routes, pids)
    finally:
        await asyncio.to_thread(hub.close)
    section.data = data
    for n in sorted({level["streams"] for level in data["latency"]}):
        by_route = {level["route"]: level for level in data["latency"] if level["streams"] == n}
        direct, proxy = by_route["direct"], by_route["proxy"]
        label = f"{n} stream{'s' if n > 1 else ''} at 20 tokens/s"
        for level, where in ((direct, "direct"), (proxy, "through the proxy")):
            section.add(info(f"{label}: p50 / p99 {where}", f"{level['p50_ms']:.2f} / {level['p99_ms']:.2f}", "ms"))
        section.add(
            info(
                f"{label}: added by the proxy, p50 / p99",
                f"{proxy['p50_ms'] - direct['p50_ms']:.2f} / {proxy['p99_ms'] - direct['p99_ms']:.2f}",
                "ms",
            )
        )
        # The proxy's CPU while the direct route streams is its idle baseline (the hub polls it): subtracted.
        cpu_proxy, cpu_direct = proxy["cpu_us_per_delta"], direct["cpu_us_per_delta"]
        section.add(
            info(
                f"{label}: CPU per token, proxy (node) / server direct / server behind the proxy",
                f"{cpu_proxy['proxy'] - cpu_direct['proxy']:.0f} / {cpu_direct['server']:.0f} / "
                f"{cpu_proxy['server']:.0f}",
                "µs",
            )
        )
        for level in (direct, proxy):
            section.notes.append(
                f"{label}, {level['route']}: {level['deltas']}/{level['expected']} deltas, max {level['max_ms']:.1f} ms"
                + (f"; errors: {level['errors']}" if level["errors"] else "")
            )
    for kind, what in (("hangup", "client hangs up a direct stream"), ("stop", "POST stop, detached run")):
        for route in ("direct", "proxy"):
            values = data[kind][route]
            p99 = _ms(values, 99)
            section.add(
                check(
                    f"Stop → upstream closed, {what}, {route}: p99",
                    p99,
                    "ms",
                    f"≤ {STOP_TARGET_S * 1e3:g} ms",
                    lambda v: v <= STOP_TARGET_S * 1e3,
                    f"p50 {_ms(values, 50):.2f} ms, {len(values)} trials",
                )
            )
            section.add(info(f"Stop → upstream closed, {what}, {route}: p50", _ms(values, 50), "ms"))
    return section
