"""8. Side panel: one long Markdown reply streamed into the JupyterLab panel, in Debian chromium.

A real ``jupyter lab`` (``harness/lab.py``'s ``LabProcess``) relays a model of the fake upstream (OpenAI wire
format) that streams a realistic Markdown reply (paragraphs, bullet lists, fenced python blocks, tables:
``bench_widgets.markdown_reply``) at 200 tokens/s (20,000 tokens; ``--quick``: 2,000), then the same at an
accelerated 2,000 tokens/s. Playwright types the prompt in the panel and clicks Send; the panel follows the
detached run. Measured in the page, over the window from Send to the reply's ``data-status=completed``:

* **long tasks > 50 ms**: ``PerformanceObserver`` entries of type ``longtask`` (installed before Lab loads);
* **main thread busy**: chromium's ``TaskDuration`` (CDP ``Performance.getMetrics``, all main-thread tasks)
  over wall time;
* **token → pixels**: the reply carries a marker word every 100 tokens. An init script tees each run event
  stream the page reads (``fetch``), and stamps when a marker's bytes arrive in the page (the token leaving
  the server on loopback: the server's own relay latency is the ``latency`` family); a ``MutationObserver``
  on the panel plus ``requestAnimationFrame`` stamps the first frame whose DOM shows the marker. p50/p99 over
  markers;
* **final DOM text = run's text**: the streamed reply's text (whitespace-normalized) equals the text of
  the same reply rendered at once from the notebook after a reload, and the notebook's turn equals
  ``GET runs/{id}``'s text.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from ._bench import Bench
from ._report import Section, check, info, percentile
from .bench_widgets import markdown_reply

NAME = "panel"
TITLE = "8. Side panel: a 20k-token Markdown reply in chromium (200 and 2,000 tokens/s)"
NOTEBOOK = "panel.ipynb"
MARK_EVERY = 100
LONG_TASK_TARGET = 0
BUSY_TARGET = 15.0  # % of the main thread

# Before Lab's scripts: long tasks, and the arrival of marker words in run event streams.
PAGE_PROBES = r"""
window.__bench = {longTasks: [], frames: [], arrived: {}, painted: {}};
new PerformanceObserver(list => {
  for (const e of list.getEntries()) window.__bench.longTasks.push({start: e.startTime, duration: e.duration});
}).observe({type: 'longtask', buffered: true});
// What made a long task: long animation frames (chromium 123+) name the scripts and the rendering time.
try {
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) window.__bench.frames.push({
      start: e.startTime, duration: e.duration,
      rendering: e.renderStart ? e.startTime + e.duration - e.renderStart : 0,
      scripts: e.scripts.map(s => `${s.invoker} ${s.sourceFunctionName || ''} ${Math.round(s.duration)} ms`.trim()),
    });
  }).observe({type: 'long-animation-frame', buffered: true});
} catch (e) {}
const realFetch = window.fetch.bind(window);
window.fetch = async (...args) => {
  const response = await realFetch(...args);
  const url = String(args[0] instanceof Request ? args[0].url : args[0]);
  if (!/streamchat\/runs\/[^/]+\/events/.test(url) || !response.body) return response;
  const [mine, theirs] = response.body.tee();
  (async () => {
    const reader = mine.getReader();
    const decoder = new TextDecoder();
    let carry = '';
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      const now = performance.now();
      const text = carry + decoder.decode(value, {stream: true});
      for (const m of text.matchAll(/mk(\d+)x/g)) window.__bench.arrived[m[1]] ??= now;
      carry = text.slice(-12);
    }
  })();
  return new Response(theirs, {status: response.status, statusText: response.statusText, headers: response.headers});
};
"""

# In the page once the panel is open: stamp the first frame that shows each marker that has arrived.
PAINT_PROBE = r"""
() => {
  const bench = window.__bench;
  const panel = document.getElementById('jp-StreamChat-panel');
  let scheduled = false;
  const check = () => {
    scheduled = false;
    const pending = Object.keys(bench.arrived).filter(k => !(k in bench.painted));
    if (pending.length === 0) return;
    const replies = panel.querySelectorAll('.jp-StreamChat-reply');
    const text = replies.length ? replies[replies.length - 1].textContent : '';
    const now = performance.now();
    for (const k of pending) if (text.includes(`mk${k}x`)) bench.painted[k] = now;
  };
  new MutationObserver(() => {
    if (!scheduled) { scheduled = true; requestAnimationFrame(check); }
  }).observe(panel, {subtree: true, childList: true, characterData: true});
}
"""


TRACE_CATEGORIES = [
    "toplevel",
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "v8.execute",
    "blink.user_timing",
]


def write_trace(stem: Path, trace: bytes, profile: dict[str, Any], wall_s: float) -> None:
    """``--trace``: keep the chromium trace (open it in chrome://tracing or Perfetto) and say where time went."""
    from . import _trace

    stem.with_suffix(".trace.json").write_bytes(trace)
    stem.with_suffix(".cpuprofile").write_text(json.dumps(profile["profile"]))
    print(_trace.summary(trace, wall_s), flush=True)
    print(_trace.profile_summary(profile["profile"], wall_s), flush=True)
    print(f"  trace: {stem.with_suffix('.trace.json')}", flush=True)


def marked_reply(tokens: int, seed: int) -> list[str]:
    """``markdown_reply`` with a marker word after every ``MARK_EVERY`` tokens (outside code and tables)."""
    pieces = markdown_reply(tokens, seed)
    out: list[str] = []
    in_code = False
    mark = 0
    for i, piece in enumerate(pieces):
        out.append(piece)
        in_code ^= piece.count("```") % 2 == 1
        in_table = "|" in piece
        if i % MARK_EVERY == MARK_EVERY - 1 and not in_code and not in_table and not piece.endswith("\n"):
            mark += 1
            out.append(f" mk{mark}x")
    return out


def _explain(task: dict[str, Any], frames: list[dict[str, Any]], started_ms: float) -> str:
    """A long task, with what the long animation frame holding it ran (no script: garbage collection, parsing...)."""
    where = f"{task['duration']:.0f} ms at +{(task['start'] - started_ms) / 1000:.1f} s"
    for frame in frames:
        if frame["start"] <= task["start"] + 1 and task["start"] < frame["start"] + frame["duration"]:
            scripts = "; ".join(frame["scripts"]) or "no script"
            return f"{where}: {scripts}; rendering {frame['rendering']:.0f} ms"
    return f"{where}: no long animation frame recorded"


def _normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def measure(bench: Bench, model: str, chunks: list[str], pace: float, workdir: Path) -> dict[str, Any]:
    """One reply streamed into the panel: the numbers above (runs in a thread: Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    from harness.lab import LabProcess, launch_browser, open_lab
    from harness.waiting import wait_until

    lab = LabProcess(
        workdir,
        extra_args=[
            f"--StreamChat.openai_base_url={bench.upstream.openai_base_url}",
            "--StreamChat.openai_api_key=bench-key",
            f"--StreamChat.openai_models={model}",
            "--StreamChat.replay_buffer_events=100000",
        ],
    )
    lab.start()
    try:
        lab.write_notebook(NOTEBOOK)
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            try:
                page = open_lab(browser, lab, NOTEBOOK, before_goto=lambda p: p.add_init_script(PAGE_PROBES))
                page.evaluate("() => window.jupyterapp.commands.execute('streamchat:open')")
                panel = page.locator("#jp-StreamChat-panel")
                panel.get_by_label("Model", exact=True).select_option(f"openai:{model}")
                page.evaluate(PAINT_PROBE)
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")

                def task_seconds() -> float:
                    metrics = cdp.send("Performance.getMetrics")["metrics"]
                    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))

                panel.get_by_label("Message").fill("Write a long answer with code and tables.")
                if bench.trace_dir is not None:
                    browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
                    cdp.send("Profiler.enable")
                    cdp.send("Profiler.setSamplingInterval", {"interval": 1000})
                    cdp.send("Profiler.start")
                started_ms = page.evaluate("() => performance.now()")
                busy0, t0 = task_seconds(), time.monotonic()
                panel.get_by_role("button", name="Send").click()
                # Polled with a plain querySelector: Playwright's own selector engine walks Lab's whole DOM
                # (~10 ms a query at the end of a long reply), which would count as the page's work.
                wait_until(
                    lambda: page.evaluate(
                        "() => !!document.querySelector("
                        "'#jp-StreamChat-panel article.jp-StreamChat-reply[data-status]:not([data-status=running])')"
                    ),
                    timeout=len(chunks) * pace * 3 + 60,
                    interval=1.0,
                )
                reply = panel.locator("article.jp-StreamChat-reply").last
                wall = time.monotonic() - t0
                busy = task_seconds() - busy0
                if bench.trace_dir is not None:
                    write_trace(bench.trace_dir / model, browser.stop_tracing(), cdp.send("Profiler.stop"), wall)
                ended_ms = page.evaluate("() => performance.now()")
                status = reply.get_attribute("data-status")
                run_id = reply.get_attribute("data-run-id")
                probes = page.evaluate("() => window.__bench")
                streamed = _normalized(reply.locator(".jp-StreamChat-replyBody").text_content() or "")

                record = lab.run_record(str(run_id))
                wait_until(lambda: lab.recorded_how(str(run_id)), timeout=20)
                page.reload()
                page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started")
                page.evaluate("() => window.jupyterapp.commands.execute('streamchat:open')")
                again = page.locator(f"#jp-StreamChat-panel article[data-run-id='{run_id}'] .jp-StreamChat-replyBody")
                again.wait_for(timeout=30_000)
                page.wait_for_timeout(1000)  # highlighted code blocks render asynchronously
                rerendered = _normalized(again.text_content() or "")
            finally:
                browser.close()
        turns = [
            turn
            for conversation in lab.read_notebook(NOTEBOOK)["metadata"]["streamchat"]["conversations"].values()
            for turn in conversation["turns"]
            if turn["run"] == run_id
        ]
    finally:
        lab.stop()

    long_tasks = [t for t in probes["longTasks"] if started_ms <= t["start"] <= ended_ms]
    explained = [_explain(task, probes["frames"], started_ms) for task in long_tasks if task["duration"] > 50]
    latencies = [probes["painted"][k] - probes["arrived"][k] for k in probes["arrived"] if k in probes["painted"]]
    return {
        "tokens": len(chunks),
        "status": status,
        "wall_s": wall,
        "busy_pct": 100 * busy / wall,
        "long_tasks": len([t for t in long_tasks if t["duration"] > 50]),
        "longest_task_ms": max((t["duration"] for t in long_tasks), default=0.0),
        "long_task_causes": explained,
        "markers": len(probes["arrived"]),
        "markers_painted": len(latencies),
        "latency_ms": sorted(latencies),
        "dom_equals_rerender": streamed == rerendered,
        "record_equals_turn": len(turns) == 1 and turns[0]["reply"]["content"] == record["text"],
        "record_chars": len(record["text"]),
    }


async def run(bench: Bench) -> Section:
    section = Section(NAME, TITLE)
    tokens = 2000 if bench.quick else 20000
    results: dict[str, dict[str, Any]] = {}
    for label, pace in (("200 tokens/s", 0.005), ("2,000 tokens/s", 0.0005)):
        model = f"panel-{round(1 / pace)}"
        chunks = marked_reply(tokens, seed=7)
        await bench.upstream.script(model, kind="reply", chunks=chunks, pace=pace)
        bench.say(f"panel: {tokens} tokens at {label} into chromium")
        workdir = Path(tempfile.mkdtemp(prefix=f"{model}-", dir=bench.workdir))
        results[label] = result = await asyncio.to_thread(measure, bench, model, chunks, pace, workdir)
        target = label == "200 tokens/s"
        latencies = result["latency_ms"]
        section.add(info(f"{label}: reply", f"{result['tokens']} tokens, {result['record_chars']} chars"))
        section.add(
            check(f"{label}: long tasks > 50 ms", result["long_tasks"], "", "0", lambda v: v <= LONG_TASK_TARGET)
            if target
            else info(f"{label}: long tasks > 50 ms", result["long_tasks"], "")
        )
        section.add(info(f"{label}: longest task in the window", result["longest_task_ms"], "ms"))
        section.notes.extend(f"{label}: long task {cause}" for cause in result["long_task_causes"])
        section.add(
            check(
                f"{label}: main thread busy",
                result["busy_pct"],
                "%",
                f"≤ {BUSY_TARGET:.0f} %",
                lambda v: v <= BUSY_TARGET,
            )
            if target
            else info(f"{label}: main thread busy", result["busy_pct"], "%")
        )
        if latencies:
            section.add(
                info(
                    f"{label}: token arrives → painted, p50 / p99 ({result['markers_painted']} markers)",
                    f"{percentile(latencies, 50):.1f} / {percentile(latencies, 99):.1f}",
                    "ms",
                )
            )
        section.add(
            check(
                f"{label}: final DOM text = same reply rendered at once; turn = run text",
                int(result["dom_equals_rerender"] and result["record_equals_turn"] and result["status"] == "completed"),
                "",
                "yes",
                lambda v: v == 1,
            )
        )
    section.data = results
    return section
