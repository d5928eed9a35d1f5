"""What every benchmark family gets: options, the shared upstream process and server factory."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._client import JSONPool, SSEStream, open_stream
from ._server import JupyterServer
from ._upstream_proc import UpstreamProcess


def chat_body(model: str, text: str = "benchmark", **extra: Any) -> dict[str, Any]:
    return {"model": f"openai:{model}", "messages": [{"role": "user", "content": text}], **extra}


@dataclass
class Bench:
    quick: bool
    workdir: Path
    product_dir: Path
    upstream: UpstreamProcess
    profile_dir: Path | None = None
    trace_dir: Path | None = None  # panel: write a chromium trace and CPU profile here, print where time goes
    servers_started: int = 0
    log: list[str] = field(default_factory=list)

    def say(self, message: str) -> None:
        print(f"  .. {message}", flush=True)

    @contextlib.asynccontextmanager
    async def server(self, name: str, profile: bool = False, **settings: Any) -> AsyncIterator[JupyterServer]:
        """A fresh Jupyter server for one benchmark family (clean RSS baseline, no leftovers)."""
        self.servers_started += 1
        profile_out = None
        if profile and self.profile_dir is not None:
            profile_out = self.profile_dir / f"{name}.prof"
        server = JupyterServer(
            self.workdir,
            self.product_dir,
            self.upstream.openai_base_url,
            settings=settings,
            profile_out=profile_out,
            name=f"{self.servers_started:02d}-{name}",
        )
        await server.start()
        try:
            yield server
        finally:
            await server.stop()

    async def direct_stream(self, server: JupyterServer, model: str, **kwargs: Any) -> SSEStream:
        """``POST streamchat/stream`` for ``openai:<model>`` read by the lean client."""
        return await open_stream(
            "127.0.0.1", server.port, "POST", "/streamchat/stream", server.auth_headers, chat_body(model), **kwargs
        )

    async def run_events(self, server: JupyterServer, run_id: str, after: int = 0, **kwargs: Any) -> SSEStream:
        path = f"/streamchat/runs/{run_id}/events" + (f"?after={after}" if after else "")
        return await open_stream("127.0.0.1", server.port, "GET", path, server.auth_headers, **kwargs)


async def gather_limited(coros: list[Any], limit: int) -> list[Any]:
    """``asyncio.gather`` with at most ``limit`` coroutines in flight."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


@dataclass
class Fleet:
    """Many concurrent streams sharing one latency record."""

    streams: list[SSEStream] = field(default_factory=list)
    latencies: Any = None  # array('d'): receive time - upstream stamp, seconds
    stamps: Any = None  # array('d'): upstream send times (time.time()), parallel to latencies
    all_started: float = 0.0  # time.time() once the last stream was opened
    all_live_until: float = float("nan")  # time.time() of the first stream's last delta

    def steady_window(self, settle: float = 0.5) -> tuple[float, float]:
        """Receive-time window from ``settle`` s after the last stream opened until the first stream
        received its last delta: every stream is live throughout."""
        return self.all_started + settle, self.all_live_until

    def in_window(self, start: float, end: float) -> list[float]:
        """Latencies of tokens *received* (stamp + latency, wall clock) within [start, end]."""
        return [lat for lat, sent in zip(self.latencies, self.stamps, strict=True) if start <= sent + lat <= end]

    def count_in_window(self, start: float, end: float) -> int:
        return len(self.in_window(start, end))

    def sustained(self, low: float = 0.1, high: float = 0.9) -> tuple[float, float, float]:
        """(events/s, start, end) over the middle of the delivery: from the moment ``low`` of all
        stamped tokens had been received until ``high`` had (receive wall times)."""
        received = sorted(lat + sent for lat, sent in zip(self.latencies, self.stamps, strict=True))
        if len(received) < 10:
            return float("nan"), float("nan"), float("nan")
        i, j = int(len(received) * low), int(len(received) * high) - 1
        start, end = received[i], received[j]
        return (j - i) / max(end - start, 1e-9), start, end

    def live_at(self, wall: float) -> int:
        """Streams that had received their first delta and not yet their last one at ``wall``."""
        to_mono = time.monotonic() - time.time()
        t = wall + to_mono
        return sum(
            1
            for s in self.streams
            if s.first_delta_at is not None and s.last_delta_at is not None and s.first_delta_at <= t <= s.last_delta_at
        )

    @property
    def deltas(self) -> int:
        return sum(s.deltas for s in self.streams)

    @property
    def errors(self) -> list[str]:
        return [f"HTTP {s.status}: {s.body_error[:120]!r}" for s in self.streams if s.status != 200]


async def start_fleet(bench: Bench, server: JupyterServer, model: str, n: int, ramp: float) -> Fleet:
    """Open ``n`` direct streams for ``model``, spread evenly over ``ramp`` seconds (Tornado's
    accept backlog is 128, so opening 1,000 at once would only measure SYN retransmits)."""
    from array import array

    fleet = Fleet(latencies=array("d"), stamps=array("d"))
    batches = max(1, min(n, int(ramp / 0.02)))
    per_batch = -(-n // batches)
    gap = ramp / batches if batches > 1 else 0.0
    t0 = time.monotonic()
    opened = 0
    for b in range(batches):
        k = min(per_batch, n - opened)
        if k <= 0:
            break
        fleet.streams += await asyncio.gather(
            *(bench.direct_stream(server, model, latencies=fleet.latencies, stamps=fleet.stamps) for _ in range(k))
        )
        opened += k
        delay = t0 + (b + 1) * gap - time.monotonic()
        if delay > 0 and opened < n:
            await asyncio.sleep(delay)
    fleet.all_started = time.time()
    return fleet


async def finish_fleet(fleet: Fleet, timeout: float) -> None:
    """Wait for every stream to end (hang up on stragglers after ``timeout``)."""
    await asyncio.wait([asyncio.ensure_future(s.finished) for s in fleet.streams], timeout=timeout)
    for stream in fleet.streams:
        if not stream.finished.done():
            stream.close()
    to_wall = time.time() - time.monotonic()
    lasts = [s.last_delta_at + to_wall for s in fleet.streams if s.last_delta_at is not None]
    fleet.all_live_until = min(lasts) if lasts else float("nan")


def api(server: JupyterServer, size: int = 8) -> JSONPool:
    """Keep-alive JSON connections to ``server`` (authenticated)."""
    return JSONPool("127.0.0.1", server.port, server.auth_headers, size)


async def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    """Poll an async predicate until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
