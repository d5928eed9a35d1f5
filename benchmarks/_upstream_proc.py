"""The fake LLM upstream (``harness/upstream.py``) in its own process, driven over stdin/stdout.

Run as ``python -m benchmarks._upstream_proc``: it starts a ``FakeUpstream``, prints
``{"port": N, "pid": P}`` and then answers one JSON command per line (``script``, ``wait_request``,
``wait_closed``, ``count``, ``reset``).  Its own process keeps the upstream's event loop off the
benchmark client's and the Jupyter server's GIL.  ``time.monotonic()`` is system-wide on Linux, so the
``client_closed_at`` stamps it reports are comparable with the benchmark's clock.

``UpstreamProcess`` is the benchmark-side handle.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# ----------------------------------------------------------------------------------------------
# Child side
# ----------------------------------------------------------------------------------------------


def build_script(spec: dict[str, Any]) -> Any:
    """A ``harness.upstream.Script`` from a JSON spec (kinds: bulk, bulk_stall, stall, bursts, reply)."""
    from harness.upstream import Bulk, Done, Finish, Script, Stall, Text, Usage

    kind = spec["kind"]
    if kind == "bulk":
        return Script.bulk(int(spec["n"]), pace=float(spec.get("pace", 0.0)), stamp=bool(spec.get("stamp", False)))
    if kind == "stall":
        # A run that has streamed its first words and then waits on a silent upstream.
        return Script([Text(spec.get("text", "hello")), Stall(float(spec.get("seconds", 600)))])
    if kind == "bursts":
        # ``k`` stamped deltas every ``interval`` seconds, ``reps`` times: a paced stream sent in bursts.
        steps: list[Any] = []
        for _ in range(int(spec["reps"])):
            steps += [Bulk(int(spec["k"]), stamp=True), Stall(float(spec["interval"]))]
        return Script([*steps, Finish(), Usage(), Done()])
    if kind == "bulk_stall":
        # ``n`` deltas at once, then silence: a run that is still running with a full replay buffer.
        return Script([Bulk(int(spec["n"])), Stall(float(spec.get("seconds", 600)))])
    if kind == "reply":
        return Script.reply(list(spec["chunks"]), pace=float(spec.get("pace", 0.0)))
    raise ValueError(f"unknown script kind {kind!r}")


def _summary(rec: Any) -> dict[str, Any]:
    return {
        "model": rec.model,
        "accepted_at": rec.accepted_at,
        "first_byte_at": rec.first_byte_at,
        "first_token_at": rec.first_token_at,
        "client_closed_at": rec.client_closed_at,
        "server_finished_at": rec.server_finished_at,
        "tokens_sent": rec.tokens_sent,
        "outcome": rec.outcome,
    }


def _handle(up: Any, cmd: dict[str, Any]) -> dict[str, Any]:
    op = cmd["op"]
    if op == "script":
        up.script(cmd["model"], build_script(cmd["spec"]))
        return {"ok": True}
    if op == "wait_request":
        return _summary(up.wait_for_request(cmd["model"], timeout=float(cmd.get("timeout", 10))))
    if op == "wait_closed":
        rec = up.wait_for_request(cmd["model"], timeout=float(cmd.get("timeout", 10)))
        rec.wait_closed(float(cmd.get("timeout", 10)))
        return _summary(rec)
    if op == "count":
        recs = up.requests_for(cmd["model"])
        return {
            "n": len(recs),
            "with_tokens": sum(r.first_token_at is not None for r in recs),
            "running": sum(r.outcome == "running" for r in recs),
        }
    if op == "reset":
        up.reset()
        return {"ok": True}
    if op == "ping":
        return {"ok": True}
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    import logging

    from benchmarks._proc import raise_fd_limit
    from harness.upstream import FakeUpstream

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    raise_fd_limit()
    up = FakeUpstream().start()
    out = sys.stdout
    out.write(json.dumps({"port": up.port, "pid": os.getpid()}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd.get("op") == "exit":
                break
            try:
                reply = _handle(up, cmd)
            except Exception as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        up.stop()


# ----------------------------------------------------------------------------------------------
# Benchmark side
# ----------------------------------------------------------------------------------------------


class UpstreamError(RuntimeError):
    pass


class UpstreamProcess:
    """Start/stop the upstream process and send it commands (one at a time)."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.pid = 0
        self._lock = asyncio.Lock()
        self._log: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    async def start(self) -> UpstreamProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self._log = open(self.log_path, "ab")  # noqa: ASYNC230 - a log file, closed in stop()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks._upstream_proc",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            cwd=str(REPO),
            env=env,
            limit=1 << 20,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        if not line:
            raise UpstreamError(f"upstream process failed to start; see {self.log_path}")
        hello = json.loads(line)
        self.port, self.pid = int(hello["port"]), int(hello["pid"])
        return self

    async def call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        async with self._lock:
            self.proc.stdin.write((json.dumps({"op": op, **kwargs}) + "\n").encode())
            await self.proc.stdin.drain()
            line = await self.proc.stdout.readline()
        if not line:
            raise UpstreamError(f"upstream process died; see {self.log_path}")
        reply = json.loads(line)
        if "error" in reply:
            raise UpstreamError(reply["error"])
        return reply

    async def script(self, model: str, **spec: Any) -> None:
        await self.call("script", model=model, spec=spec)

    async def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write(b'{"op": "exit"}\n')
                await proc.stdin.drain()
                proc.stdin.close()
                await asyncio.wait_for(proc.wait(), 10)
            except (TimeoutError, Exception):
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        self.proc = None
        if self._log is not None:
            self._log.close()


if __name__ == "__main__":
    main()
