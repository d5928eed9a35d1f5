"""Entry point: ``python -m benchmarks.run [--quick] [--only NAME...] [--json PATH] [--profile]``.

Starts the fake upstream in its own process, a fresh Jupyter server subprocess per benchmark
family, prints one table per family (measured next to the issue's target, ✓/✗) and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from . import (
    bench_aggregate,
    bench_context,
    bench_hub,
    bench_journal,
    bench_latency,
    bench_memory,
    bench_panel,
    bench_persistence,
    bench_resume,
    bench_stop,
    bench_throughput,
    bench_widgets,
)
from ._bench import Bench
from ._proc import ForeignLoad, raise_fd_limit
from ._report import Section, markdown, render
from ._upstream_proc import REPO, UpstreamProcess

FAMILIES: dict[str, ModuleType] = {
    module.NAME: module
    for module in (
        bench_throughput,
        bench_aggregate,
        bench_latency,
        bench_stop,
        bench_resume,
        bench_memory,
        bench_persistence,
        bench_journal,
        bench_widgets,
        bench_panel,
        bench_hub,
        bench_context,
    )
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer trials and streams (CI: under ~3 minutes)")
    parser.add_argument("--only", nargs="+", choices=sorted(FAMILIES), metavar="NAME", help="run only these")
    parser.add_argument("--json", type=Path, help="write results here (e.g. benchmarks/results/latest.json)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile the server (cProfile on an unpaced stream, py-spy on paced streams) and print the top",
    )
    parser.add_argument(
        "--product", type=Path, default=REPO, help="directory holding the jupyter_streamchat package to benchmark"
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="panel: also record a chromium trace and a JavaScript CPU profile, and print where the page's time goes",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server logs, notebooks)")
    return parser.parse_args(argv)


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_state(path: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(path), *args], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    dirty = git("status", "--porcelain", "--", "jupyter_streamchat")
    return {"commit": git("rev-parse", "--short", "HEAD"), "product_dirty": bool(dirty)}


def versions() -> dict[str, str]:
    import httpx
    import jupyter_server
    import tornado

    return {"jupyter_server": jupyter_server.__version__, "tornado": tornado.version, "httpx": httpx.__version__}


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    product = args.product.resolve()
    sys.path.insert(0, str(product))
    workdir = Path(tempfile.mkdtemp(prefix="streamchat-bench-"))
    upstream = UpstreamProcess(workdir / "upstream.log")
    sections: list[Section] = []
    profile: dict[str, Any] | None = None
    names = args.only or list(FAMILIES)
    started = time.monotonic()
    git = git_state(product)  # before the run: others may commit meanwhile
    try:
        await upstream.start()
        bench = Bench(
            quick=args.quick,
            workdir=workdir,
            product_dir=product,
            upstream=upstream,
            profile_dir=workdir,
            trace_dir=workdir if args.trace else None,
        )
        print(f"work dir {workdir}; upstream pid {upstream.pid} port {upstream.port}", flush=True)
        for name in names:
            module = FAMILIES[name]
            print(f"\n-- {module.TITLE}", flush=True)
            t0 = time.monotonic()
            foreign = ForeignLoad(upstream.pid)
            try:
                section = await module.run(bench)
            except Exception:
                section = Section(name, module.TITLE, notes=["FAILED:\n" + traceback.format_exc()])
            section.seconds = time.monotonic() - t0
            load = foreign.percent_of_core()
            section.data["foreign_cpu_pct_of_core"] = round(load, 1)
            section.notes.append(f"other processes on this machine used {load:.0f}% of a core meanwhile")
            sections.append(section)
            print(render(section), flush=True)
            await upstream.call("reset")
        if args.profile:
            from . import _profile

            print("\n-- profile: where the server spends its time (see benchmarks/_profile.py)", flush=True)
            profile = await _profile.run(bench)
            print(profile["text"], flush=True)
            if args.json:
                path = args.json.with_name("profile.txt")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(profile["text"] + "\n")
                print(f"wrote {path}")
    finally:
        await upstream.stop()
        if args.keep:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.run " + shlex.join(sys.argv[1:]),
        "quick": args.quick,
        "machine": machine(),
        "versions": versions(),
        "git": git,
        "seconds": round(time.monotonic() - started, 1),
        "sections": [section.as_dict() for section in sections],
        "markdown": markdown(sections),
        "profile": profile,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(run_all(args))
    print(f"\nall benchmarks: {result['seconds']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    failed = [s for s in result["sections"] if any(n.startswith("FAILED") for n in s["notes"])]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
