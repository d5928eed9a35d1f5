"""Where a chromium page's main thread spends its time: self time per trace event name.

Reads a trace written by Playwright's ``browser.start_tracing`` / ``stop_tracing`` (Chrome trace event
JSON) and sums, for the renderer's main thread (``CrRendererMain``), each complete event's self time
(its duration minus its children's), so nested events are not counted twice.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any


def main_thread_self_times(trace: Path | bytes) -> tuple[dict[str, float], float]:
    """Self time in ms per event name on the busiest renderer main thread, and the sum of top-level tasks."""
    data = json.loads(trace if isinstance(trace, bytes) else trace.read_bytes())
    events: list[dict[str, Any]] = data["traceEvents"] if isinstance(data, dict) else data
    main_threads = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }
    by_thread: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and (e["pid"], e["tid"]) in main_threads and "dur" in e:
            by_thread[(e["pid"], e["tid"])].append(e)
    if not by_thread:
        return {}, 0.0
    thread = max(by_thread.values(), key=lambda evs: sum(e["dur"] for e in evs))
    thread.sort(key=lambda e: (e["ts"], -e["dur"]))
    self_us: dict[str, float] = defaultdict(float)
    stack: list[tuple[float, str]] = []  # (end, name)
    top_level = 0.0
    for e in thread:
        start, end = e["ts"], e["ts"] + e["dur"]
        while stack and stack[-1][0] <= start:
            stack.pop()
        if stack:
            self_us[stack[-1][1]] -= e["dur"]
        else:
            top_level += e["dur"]
        self_us[e["name"]] += e["dur"]
        stack.append((end, e["name"]))
    return {name: us / 1000 for name, us in self_us.items()}, top_level / 1000


def summary(trace: Path | bytes, wall_s: float, top: int = 15) -> str:
    times, total = main_thread_self_times(trace)
    title = f"main thread: {total:.0f} ms in top-level tasks over {wall_s:.1f} s ({total / wall_s / 10:.1f} % busy)"
    return _table(title, times, wall_s, top)


def _table(title: str, times: dict[str, float], wall_s: float, top: int) -> str:
    lines = [title]
    for name, ms in sorted(times.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"  {ms:9.1f} ms  {ms / wall_s / 10:5.2f} %  {name}")
    return "\n".join(lines)


def profile_self_times(profile: dict[str, Any]) -> dict[str, float]:
    """Self time in ms per JavaScript function (``name file``) of a CDP ``Profiler.stop`` profile."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    self_ms: dict[str, float] = defaultdict(float)
    for node_id, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        frame = nodes[node_id]["callFrame"]
        where = frame.get("url", "").rsplit("/", 1)[-1]
        self_ms[f"{frame.get('functionName') or '(anonymous)'} {where}".strip()] += delta / 1000
    return self_ms


def profile_summary(profile: dict[str, Any], wall_s: float, top: int = 20) -> str:
    return _table("JavaScript self time (sampled):", profile_self_times(profile), wall_s, top)
