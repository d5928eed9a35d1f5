"""``--profile``: where the server spends its time relaying tokens.

A. **unpaced** (the 100k throughput stream, 300k deltas here for more signal): the server runs under
   ``benchmarks._profiled_server``, whose cProfile statistics are reset right before the stream and
   written right after it (real-time signals), and the top functions by own time are listed with their
   call counts per relayed token.  cProfile inflates cheap, frequent calls; read shares, not µs;
B. **paced** (200 direct streams at 20 tokens/s, one event per upstream read and per client write):
   ``py-spy record`` samples the running server (no instrumentation overhead) and the top frames by
   own and by inclusive time are listed.  Skipped when py-spy is not installed or may not attach.
"""

from __future__ import annotations

import asyncio
import collections
import io
import pstats
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from ._bench import Bench, finish_fleet, start_fleet

UNPACED_N = 300_000
PACED_STREAMS, PACED_TOKENS = 200, 200


def _short(path: str) -> str:
    for marker in ("site-packages/", "jupyter_streamchat/", "lib/python3"):
        if marker in path:
            return path[path.index(marker) + (0 if marker == "jupyter_streamchat/" else len(marker)) :]
    return path


def cprofile_top(prof: Path, tokens: int, limit: int = 25) -> tuple[str, list[dict[str, Any]]]:
    stats = pstats.Stats(str(prof), stream=io.StringIO())
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(file)}:{line}({func})",
                "calls_per_token": ncalls / tokens,
                "tottime_s": tottime,
                "cumtime_s": cumtime,
                "share": tottime / total if total else 0.0,
            }
        )
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    top = rows[:limit]
    lines = [f"cProfile, unpaced {tokens:,}-delta stream; total own time {total:.2f} s", ""]
    lines.append(f"{'own %':>6} {'own s':>7} {'cum s':>7} {'calls/token':>11}  function")
    for r in top:
        lines.append(
            f"{100 * r['share']:6.1f} {r['tottime_s']:7.3f} {r['cumtime_s']:7.3f} {r['calls_per_token']:11.2f}  "
            f"{r['function']}"
        )
    return "\n".join(lines), top


def fold_pyspy(raw: Path, limit: int = 25) -> tuple[str, dict[str, Any]]:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        if not any("run_forever" in f for f in frames):
            continue  # other threads (e.g. idle helpers)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    lines = [f"py-spy, {PACED_STREAMS} streams at 20 tokens/s; {total} samples of the event-loop thread", ""]
    lines.append("own time:")
    lines += [f"{100 * n / total:6.1f}%  {f}" for f, n in own.most_common(limit)]
    lines.append("")
    lines.append("inclusive time (frames below the event loop):")
    skip = ("run_forever", "_run_once", "launch_instance", "start_ioloop", "ServerApp.start", "<module>", "_run_")
    shown = [(f, n) for f, n in incl.most_common(200) if not any(s in f for s in skip)][:limit]
    lines += [f"{100 * n / total:6.1f}%  {f}" for f, n in shown]
    data = {
        "samples": total,
        "own": [(f, n / total) for f, n in own.most_common(limit)],
        "inclusive": [(f, n / total) for f, n in shown],
    }
    return "\n".join(lines), data


async def unpaced(bench: Bench) -> tuple[str, list[dict[str, Any]]]:
    model = f"prof-{UNPACED_N}"
    await bench.upstream.script(model, kind="bulk", n=UNPACED_N)
    await bench.upstream.script("prof-warm", kind="bulk", n=5000)
    async with bench.server("profile-unpaced", profile=True) as server:
        prof = server.profile_out
        assert prof is not None
        await (await bench.direct_stream(server, "prof-warm")).finished
        server.profile_start()
        await asyncio.sleep(0.2)
        stream = await bench.direct_stream(server, model)
        await stream.finished
        written = await server.profile_stop()
    if not written:
        return f"cProfile output missing ({prof}); see {server.log_path}", []
    return cprofile_top(prof, stream.deltas)


async def paced(bench: Bench) -> tuple[str, dict[str, Any]]:
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        return "py-spy not installed: paced profile skipped (pip install py-spy)", {}
    await bench.upstream.script("prof-paced", kind="bulk", n=PACED_TOKENS, pace=0.05, stamp=True)
    raw = bench.workdir / "pyspy-paced.txt"
    async with bench.server("profile-paced") as server:
        fleet = await start_fleet(bench, server, "prof-paced", PACED_STREAMS, ramp=0.4)
        await asyncio.sleep(1.0)
        proc = await asyncio.create_subprocess_exec(
            spy,
            "record",
            "--pid",
            str(server.pid),
            "--duration",
            "5",
            "--rate",
            "500",
            "--format",
            "raw",
            "--output",
            str(raw),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        await finish_fleet(fleet, PACED_TOKENS * 0.05 * 3 + 30)
    if proc.returncode != 0 or not raw.exists():
        return f"py-spy failed ({proc.returncode}): {err.decode(errors='replace')[-300:]}", {}
    return fold_pyspy(raw)


async def run(bench: Bench) -> dict[str, Any]:
    text_a, top_a = await unpaced(bench)
    text_b, data_b = await paced(bench)
    text = f"A. {text_a}\n\nB. {text_b}"
    return {"text": text, "unpaced_cprofile": top_a, "paced_pyspy": data_b}
