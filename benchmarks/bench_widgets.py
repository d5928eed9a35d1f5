"""7. Notebook widgets: ``compare()`` with 4 panes x 200 tokens/s, in a kernel that a Jupyter server started.

The kernel is the real thing a notebook gets: a session on ``widgets.ipynb`` created through the server's
REST API, driven over the server's websocket by ``harness.kernels.ServerKernel``, which stamps every iopub
message on arrival and sizes its ``content`` as compact JSON.  The models are served by the fake upstream
(OpenAI wire format), one delta every 5 ms, with realistic Markdown replies (paragraphs of ~60 tokens, a
bullet list, a 20-line fenced python block, a table).  In the kernel::

    cmp = compare(PROMPT, models=[...4 openai models...])
    await cmp.done

Measured from the iopub messages of that run, per pane (the pane's widgets are every widget reachable
from ``pane.box`` at the end, through ``children``, ``layout`` and ``style``; blocks created mid-stream
are all under it):

* **updates per second**: the most ``comm_msg`` to the pane's reply tail widget in any sliding 1 s
  window (arrival times at the benchmark client), and the same for all the pane's widgets;
* **payload / reply length**: bytes of ``comm_open`` + ``comm_msg`` content of the pane's widgets over
  ``len(result["text"])``; for the whole widget, every comm message of the run over all the text;
* **kernel CPU**: utime + stime of the kernel process (``/proc/<pid>/stat``, all threads) from just
  before the compare cell is sent until the ``await cmp.done`` cell has answered, over that wall time.

Then **Stop click → upstream closed**: a 2-pane compare in which pane 0's upstream sends one delta
("Partial answer so far") and stalls while pane 1 streams normally.  Once pane 0's tail shows that
text, the benchmark clicks pane 0's Stop button the way a browser does (a ``comm_msg`` with
``{"method": "custom", "content": {"event": "click"}}`` on the shell channel); latency is the upstream's
``client_closed_at`` (``time.monotonic()``, system-wide on Linux) minus the client's ``time.monotonic()``
just before the send.  The same with a ``cmp.stop(0)`` cell instead of the click, for comparison.  Two
stamps taken in the kernel (a wrapper around the widget's stop handler, a done-callback on the pane's reader
task) split that time into: reaching the handler, closing the pane's connection, the server closing upstream.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import textwrap
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import nbformat

from harness.kernels import KernelMessage, ServerKernel

from ._bench import Bench
from ._proc import ForeignLoad, cpu_seconds
from ._report import Section, check, info, percentile

NAME = "widgets"
TITLE = "7. Notebook widgets: compare(), 4 panes x 200 tokens/s, kernel started by the server"
NOTEBOOK = "widgets.ipynb"
PANES = 4
PACE = 0.005  # seconds per token: 200 tokens/s per pane
UPDATES_TARGET = 20.0  # tail updates per second per pane
PAYLOAD_TARGET = 8.0  # comm bytes / reply characters
CPU_TARGET = 10.0  # % of one core
STOP_TARGET_MS = 50.0
STALLED_TEXT = "Partial answer so far"
COMM_TRAFFIC = ("comm_open", "comm_msg")

# Defined once in the kernel: the model ids under a widget, and the role of each of a pane's widgets.
KERNEL_HELPERS = textwrap.dedent(
    '''
    import json, os, time
    import ipywidgets
    from jupyter_streamchat import compare

    def _bench_tree(widget, seen=None):
        """Model ids of ``widget`` and of every widget it references (children, layout, style, ...)."""
        seen = set() if seen is None else seen
        if widget.model_id in seen:
            return seen
        seen.add(widget.model_id)
        for name in widget.keys:
            value = getattr(widget, name, None)
            for item in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(item, ipywidgets.Widget):
                    _bench_tree(item, seen)
        return seen

    def _bench_roles(pane):
        roles = dict.fromkeys(_bench_tree(pane.box), "other (boxes, layouts, styles)")
        roles.update(dict.fromkeys(_bench_tree(pane.reply.box), "reply: layouts/styles"))
        if getattr(pane.reply, "_pending", None) is not None:  # finished blocks not sealed yet
            roles[pane.reply._pending.model_id] = "reply: pending blocks (HTML)"
        for group in pane.reply._groups:
            roles[group.model_id] = "reply: block groups (VBox children)"
            roles.update(dict.fromkeys((block.model_id for block in group.children), "reply: sealed blocks (HTML)"))
        roles[pane.reply.box.model_id] = "reply: box (VBox children)"
        roles[pane.reply._tail.model_id] = "reply: tail (HTML)"
        roles[pane.stats.model_id] = "stats line"
        roles[pane.title.model_id] = "title"
        roles[pane.stop_button.model_id] = "stop button"
        return roles

    def _bench_ids(cmp):
        panes = [
            {"tail": p.reply._tail.model_id, "stop": p.stop_button.model_id, "roles": _bench_roles(p)}
            for p in cmp.panes
        ]
        return {"panes": panes}

    def _bench_stamp_stop(cmp):
        """Note when the Stop handler starts (click or cmp.stop) and when the pane's reader task has ended."""
        global _bench_stops
        _bench_stops = {}
        stop_pane = cmp._stop_pane

        def stamped(pane):
            _bench_stops["handler"] = time.monotonic()
            stop_pane(pane)
            reader = cmp._pane_tasks.get(id(pane))
            if reader is not None:
                reader.add_done_callback(lambda _task: _bench_stops.setdefault("reader_done", time.monotonic()))

        cmp._stop_pane = stamped
        for pane in cmp.panes:
            pane._on_stop = stamped
    '''
)

# ----------------------------------------------------------------------------------------------
# Realistic Markdown replies
# ----------------------------------------------------------------------------------------------

_WORDS = (
    "the a stream of tokens reaches each pane while its kernel renders finished blocks once and sends "
    "only what changed so that browser keeps up with four models answering side by side without falling "
    "behind latency throughput upstream server notebook widget reply code table list result model run "
    "every second small fast slow careful exact partial final measured compared against target budget"
).split()
_CODE = '''\
def summarise(runs: list[dict[str, float]], budget_ms: float = {n}0.0) -> dict[str, float]:
    """Mean and worst latency of the finished runs, and how many missed the budget."""
    finished = [run for run in runs if run.get("status") == "completed"]
    if not finished:
        return {{"mean": 0.0, "worst": 0.0, "missed": 0}}
    latencies = sorted(run["latency_ms"] for run in finished)
    mean = sum(latencies) / len(latencies)
    worst = latencies[-1]
    missed = sum(1 for value in latencies if value > budget_ms)
    for index, value in enumerate(latencies[:{n}]):
        print(f"{{index:>3}} {{value:8.2f}} ms")
    return {{"mean": round(mean, 3), "worst": worst, "missed": missed}}


class Window:
    def __init__(self, size: int = {n}) -> None:
        self.size = size
        self.items: list[float] = []

    def push(self, value: float) -> None:
        self.items = (self.items + [value])[-self.size :]
'''
# GPT-style pre-tokenisation: a word with its leading space, a run of punctuation, or whitespace.
_TOKEN = re.compile(r" ?\w+| ?[^\w\s]+|\s+")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 14))]
    if rng.random() < 0.4:
        words[rng.randint(2, len(words) - 2)] += ","
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random, tokens: int = 60) -> str:
    sentences: list[str] = []
    while sum(len(_TOKEN.findall(s)) for s in sentences) < tokens:
        sentences.append(_sentence(rng))
    return " ".join(sentences)


def _section(rng: random.Random, n: int) -> str:
    bullets = "\n".join(f"- {_sentence(rng)[:-1]}" for _ in range(5))
    rows = "\n".join(
        f"| {rng.choice(_WORDS)}-{i} | {rng.randint(50, 900)} | {rng.randint(1, 99)}.{rng.randint(0, 9)} | "
        f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} |"
        for i in range(6)
    )
    return (
        f"## Part {n}: {rng.choice(_WORDS)} {rng.choice(_WORDS)}\n\n"
        f"{_paragraph(rng)}\n\n{_paragraph(rng)}\n\n{bullets}\n\n"
        f"```python\n{_CODE.format(n=n)}```\n\n"
        f"| name | tokens | ms | notes |\n|---|---:|---:|---|\n{rows}\n\n"
        f"{_paragraph(rng)}\n\n"
    )


def markdown_reply(tokens: int, seed: int) -> list[str]:
    """The first ``tokens`` tokens (~4 characters each) of a reply made of such sections: the upstream's deltas."""
    rng = random.Random(seed)
    pieces: list[str] = []
    n = 0
    while len(pieces) < tokens:
        n += 1
        section = _section(rng, n)
        pieces += _TOKEN.findall(section)
        assert "".join(pieces).endswith(section)
    return pieces[:tokens]


# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most events in any half-open window (t - ``window``, t] (sorted times)."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def comm_bytes(messages: Sequence[KernelMessage]) -> int:
    return sum(m.size + m.buffer_bytes for m in messages if m.msg_type in COMM_TRAFFIC)


async def run_code(kernel: ServerKernel, code: str, timeout: float = 30) -> str:
    """Execute ``code`` in the kernel; its stdout (raises with the kernel's traceback on error)."""
    return (await kernel.execute(code, timeout=timeout)).raise_for_error().stdout


def compare_cell(models: Sequence[str], prompt: str = "Compare these approaches, with code and a table.") -> str:
    return f"cmp = compare({prompt!r}, models={[f'openai:{m}' for m in models]!r})"


def pane_traffic(
    messages: Sequence[KernelMessage], ids: dict[str, Any], result: dict[str, Any], sent: str, rec: dict[str, Any]
) -> dict[str, Any]:
    """What one pane's widgets sent (``ids`` from ``_bench_ids``), against its reply and its upstream record."""
    roles: dict[str, str] = ids["roles"]
    own = [m for m in messages if m.comm_id in roles]
    tail = [m.time for m in own if m.msg_type == "comm_msg" and m.comm_id == ids["tail"]]
    updates = [m.time for m in own if m.msg_type == "comm_msg"]
    by_role: dict[str, Counter[str]] = defaultdict(Counter)
    for m in own:
        if m.msg_type in COMM_TRAFFIC:
            role = by_role[roles[m.comm_id]]
            role[m.msg_type] += 1
            role["bytes"] += m.size + m.buffer_bytes
    streamed = rec["server_finished_at"] - rec["first_token_at"]
    return {
        "model": result["model"],
        "status": result["status"],
        "exact_text": result["text"] == sent,
        "text_chars": len(result["text"]),
        "tokens": rec["tokens_sent"],
        "upstream_tokens_per_s": rec["tokens_sent"] / streamed,
        "tail_updates": len(tail),
        "tail_max_per_1s": max_in_window(tail),
        "tail_mean_per_s": len(tail) / streamed,
        "comm_msgs": len(updates),
        "comm_msg_max_per_1s": max_in_window(updates),
        "widgets": len(roles),
        "comm_bytes": comm_bytes(own),
        "ratio": comm_bytes(own) / max(len(result["text"]), 1),
        "by_role": {role: dict(counts) for role, counts in by_role.items()},
    }


async def stream_run(bench: Bench, server: Any, kernel: ServerKernel, kernel_pid: int, tokens: int) -> dict[str, Any]:
    """One 4-pane compare, every pane streaming ``tokens`` deltas at 200/s; what reached the browser."""
    models = [f"widgets-{i}" for i in range(PANES)]
    replies = [markdown_reply(tokens, seed=i) for i in range(PANES)]
    for model, reply in zip(models, replies, strict=True):
        await bench.upstream.script(model, kind="reply", chunks=reply, pace=PACE)
    first = len(kernel.messages)
    cpu0, server0, t0 = cpu_seconds(kernel_pid), server.cpu_seconds(), time.monotonic()
    created = kernel.send_execute(compare_cell(models))
    done = kernel.send_execute("print(json.dumps(await cmp.done))")
    (await kernel.wait_execution(created, timeout=30)).raise_for_error()
    results = json.loads((await kernel.wait_execution(done, timeout=30 + 3 * tokens * PACE)).raise_for_error().stdout)
    t1 = time.monotonic()
    cpu1, server1 = cpu_seconds(kernel_pid), server.cpu_seconds()
    messages = kernel.messages[first:]
    ids = json.loads(await run_code(kernel, "print(json.dumps(_bench_ids(cmp)))"))
    upstream = [await bench.upstream.call("wait_request", model=m) for m in models]

    panes = [
        pane_traffic(messages, pane_ids, result, "".join(reply), rec)
        for pane_ids, result, reply, rec in zip(ids["panes"], results, replies, upstream, strict=True)
    ]
    comm = [m for m in messages if m.msg_type.startswith("comm_")]
    outputs = [m for m in messages if m.msg_type in ("display_data", "update_display_data")]
    rate_warnings = [
        m.content.get("text", "")[:80]
        for m in messages
        if m.msg_type == "stream" and "rate exceeded" in m.content.get("text", "")
    ]
    wall = t1 - t0
    return {
        "panes": panes,
        "wall_s": wall,
        "kernel_cpu_pct": 100 * (cpu1 - cpu0) / wall,
        "kernel_cpu_us_per_token": 1e6 * (cpu1 - cpu0) / max(sum(p["tokens"] for p in panes), 1),
        "server_cpu_pct": 100 * (server1 - server0) / wall,
        "comm_bytes": comm_bytes(comm),
        "comm_messages": Counter(m.msg_type for m in comm),
        "text_chars": sum(p["text_chars"] for p in panes),
        "unattributed_comm_bytes": comm_bytes(comm) - sum(p["comm_bytes"] for p in panes),
        "display_bytes": sum(m.size for m in outputs),
        "rate_warnings": rate_warnings,
    }


async def stop_trial(bench: Bench, kernel: ServerKernel, label: str, click: bool, steady_tokens: int) -> dict[str, Any]:
    """Pane 0 stalls after one delta, pane 1 streams; Stop pane 0 (button click or ``cmp.stop(0)`` cell)."""
    stalled, steady = f"wstop-{label}-stall", f"wstop-{label}-steady"
    await bench.upstream.script(stalled, kind="stall", text=STALLED_TEXT, seconds=120)
    await bench.upstream.script(steady, kind="reply", chunks=markdown_reply(steady_tokens, seed=99), pace=PACE)
    first = len(kernel.messages)
    cell = compare_cell([stalled, steady]) + "\n_bench_stamp_stop(cmp)\nprint(json.dumps(_bench_ids(cmp)['panes'][0]))"
    pane0 = json.loads(await run_code(kernel, cell))

    def shows_text(messages: list[KernelMessage]) -> bool:
        return any(
            m.comm_id == pane0["tail"] and STALLED_TEXT in str(m.content.get("data", {}).get("state", {}).get("value"))
            for m in messages[first:]
        )

    await kernel.wait_for(shows_text, timeout=15, what="pane 0 showing its first delta")
    await asyncio.sleep(0.02)  # the render is out; the pane now waits on its silent upstream
    stopping: str | None = None
    clicked = time.monotonic()
    if click:
        kernel.send("comm_msg", {"comm_id": pane0["stop"], "data": {"method": "custom", "content": {"event": "click"}}})
    else:
        stopping = kernel.send_execute("cmp.stop(0)")
    rec = await bench.upstream.call("wait_closed", model=stalled, timeout=5)
    closed = rec["client_closed_at"]
    if stopping is not None:
        (await kernel.wait_execution(stopping)).raise_for_error()
    results = json.loads(await run_code(kernel, "print(json.dumps(await cmp.done))"))
    stamps = json.loads(await run_code(kernel, "print(json.dumps(_bench_stops))"))
    return {
        "latency": None if closed is None else closed - clicked,
        "to_handler": stamps["handler"] - clicked if "handler" in stamps else None,
        "to_reader_done": stamps["reader_done"] - clicked if "reader_done" in stamps else None,
        "statuses": [r["status"] for r in results],
        "stopped_text_exact": results[0]["text"] == STALLED_TEXT,
    }


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def _summarise_stream(section: Section, run: dict[str, Any]) -> None:
    panes = run["panes"]
    worst_tail = max(panes, key=lambda p: p["tail_max_per_1s"])
    detail = "per pane " + ", ".join(str(p["tail_max_per_1s"]) for p in panes)
    section.add(
        check(
            "tail updates per pane, max in any 1 s",
            worst_tail["tail_max_per_1s"],
            "/s",
            f"≤ {UPDATES_TARGET:g} /s",
            lambda v: v <= UPDATES_TARGET,
            detail,
        )
    )
    section.add(info("tail updates per pane, mean over the stream", max(p["tail_mean_per_s"] for p in panes), "/s"))
    section.add(
        info("comm_msg per pane (all its widgets), max in any 1 s", max(p["comm_msg_max_per_1s"] for p in panes), "/s")
    )
    worst = max(panes, key=lambda p: p["ratio"])
    detail = "per pane " + ", ".join(f"{p['ratio']:.2f}" for p in panes)
    ok = lambda v: v <= PAYLOAD_TARGET  # noqa: E731
    section.add(
        check("payload / reply length, per pane (worst)", worst["ratio"], "x", f"≤ {PAYLOAD_TARGET:g} x", ok, detail)
    )
    whole = run["comm_bytes"] / max(run["text_chars"], 1)
    section.add(check("payload / reply length, whole widget", whole, "x", f"≤ {PAYLOAD_TARGET:g} x", ok))
    section.add(info("comm bytes per pane (mean)", _mean(panes, "comm_bytes") / 1e3, "KB"))
    section.add(info("reply length per pane (mean)", _mean(panes, "text_chars"), "chars"))
    section.add(
        check(
            "kernel CPU while streaming",
            run["kernel_cpu_pct"],
            "% of a core",
            f"≤ {CPU_TARGET:g} %",
            lambda v: v <= CPU_TARGET,
        )
    )
    section.add(info("kernel CPU per token (all panes)", run["kernel_cpu_us_per_token"], "µs"))
    at_target_rate = run["kernel_cpu_us_per_token"] * PANES / PACE / 1e4  # µs/token x tokens/s -> % of a core
    section.add(info(f"  that cost at exactly {PANES} x {1 / PACE:.0f} tokens/s", at_target_rate, "% of a core"))
    section.add(info("server CPU meanwhile", run["server_cpu_pct"], "% of a core"))
    section.add(info("upstream rate per pane (achieved)", min(p["upstream_tokens_per_s"] for p in panes), "tokens/s"))

    tokens = ", ".join(str(p["tokens"]) for p in panes)
    section.notes.append(
        f"stream: {PANES} panes, {tokens} tokens, {run['text_chars']:,} chars in all, {run['wall_s']:.1f} s wall; "
        f"statuses {sorted({p['status'] for p in panes})}, exact text {all(p['exact_text'] for p in panes)}"
    )
    counts = run["comm_messages"]
    section.notes.append(
        f"comm traffic of the run: {counts.get('comm_open', 0)} comm_open, {counts.get('comm_msg', 0)} comm_msg, "
        f"{run['comm_bytes'] / 1e3:,.0f} KB ({run['unattributed_comm_bytes'] / 1e3:,.1f} KB outside the panes); "
        f"final static HTML (display/update_display_data, not comm) {run['display_bytes'] / 1e3:,.0f} KB"
    )
    roles: dict[str, Counter[str]] = defaultdict(Counter)
    for pane in panes:
        for role, counts in pane["by_role"].items():
            roles[role].update(counts)
    total = sum(c["bytes"] for c in roles.values()) or 1
    ranked = sorted(roles.items(), key=lambda kv: -kv[1]["bytes"])
    section.notes.append(
        "pane bytes by widget (all panes): "
        + "; ".join(
            f"{role} {c['bytes'] / total:.0%} ({c['comm_msg']} msg, {c['comm_open']} open)" for role, c in ranked
        )
    )
    if run["rate_warnings"]:
        section.notes.append(f"the server dropped iopub messages: {run['rate_warnings'][:2]}")


def _summarise_stop(section: Section, label: str, short: str, trials: list[dict[str, Any]], target: bool) -> None:
    lat = [t["latency"] * 1e3 for t in trials if t["latency"] is not None]
    missing = len(trials) - len(lat)
    p99 = percentile(lat, 99) if not missing else float("inf")
    slowest = ", ".join(f"{v:.1f}" for v in sorted(lat)[-3:])
    detail = f"{len(lat)} trials, slowest {slowest} ms" + (f", {missing} never closed within 5 s" if missing else "")
    if target:
        section.add(
            check(f"{label}: p99", p99, "ms", f"≤ {STOP_TARGET_MS:g} ms", lambda v: v <= STOP_TARGET_MS, detail)
        )
    else:
        section.add(info(f"{label}: p99", p99, "ms", detail))
    section.add(info(f"{label}: p50", percentile(lat, 50), "ms"))
    stamped = [t for t in trials if None not in (t["latency"], t["to_handler"], t["to_reader_done"])]
    steps = {
        "sent → Stop handler starts in the kernel": [t["to_handler"] for t in stamped],
        "handler → pane's reader ended (connection closed)": [t["to_reader_done"] - t["to_handler"] for t in stamped],
        "reader ended → upstream saw the close": [t["latency"] - t["to_reader_done"] for t in stamped],
    }
    for step, values in steps.items():
        section.add(info(f"  {short}: {step}, p50", percentile([v * 1e3 for v in values], 50), "ms"))
    wrong = [t for t in trials if t["statuses"] != ["stopped", "completed"] or not t["stopped_text_exact"]]
    section.notes.append(
        f"{label}: {detail}"
        + (f"; {len(wrong)} trials ended otherwise: {wrong[0]}" if wrong else "; all stopped/completed")
    )


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


async def run(bench: Bench) -> Section:
    section = Section(NAME, TITLE)
    tokens = 600 if bench.quick else 2000
    trials = 5 if bench.quick else 30
    steady_tokens = 150
    async with bench.server(NAME) as server:
        nbformat.write(nbformat.v4.new_notebook(), server.root / NOTEBOOK)
        async with ServerKernel.start(server.base_url, server.token, NOTEBOOK) as kernel:
            await run_code(kernel, KERNEL_HELPERS)
            kernel_pid = int(await run_code(kernel, "print(os.getpid())"))
            bench.say(f"widgets: kernel pid {kernel_pid}; warm-up compare")
            await stream_run(bench, server, kernel, kernel_pid, tokens=60)
            idle0, t0 = cpu_seconds(kernel_pid), time.monotonic()
            await asyncio.sleep(1.0)
            idle = 100 * (cpu_seconds(kernel_pid) - idle0) / (time.monotonic() - t0)

            bench.say(f"widgets: {PANES} panes x {tokens} tokens at {1 / PACE:.0f} tokens/s")
            foreign = ForeignLoad(bench.upstream.pid, server.pid, kernel_pid)
            stream = await stream_run(bench, server, kernel, kernel_pid, tokens)
            stream["foreign_cpu_pct_of_core"] = foreign.percent_of_core()

            bench.say(f"widgets: {trials} Stop clicks + {trials} cmp.stop(0) cells")
            for variant in ("click", "cell"):  # warm-up
                await stop_trial(bench, kernel, f"warm-{variant}", variant == "click", steady_tokens)
            clicks, cells = [], []
            foreign = ForeignLoad(bench.upstream.pid, server.pid, kernel_pid)
            for i in range(trials):
                clicks.append(await stop_trial(bench, kernel, f"click-{i}", True, steady_tokens))
                cells.append(await stop_trial(bench, kernel, f"cell-{i}", False, steady_tokens))
            stop_foreign = foreign.percent_of_core()

    _summarise_stream(section, stream)
    section.add(info("kernel CPU idle (1 s before the stream)", idle, "% of a core"))
    _summarise_stop(section, "Stop click → upstream closed", "click", clicks, target=True)
    _summarise_stop(section, "cmp.stop(0) cell → upstream closed", "cell", cells, target=False)
    section.notes.append(
        f"other processes used {stream['foreign_cpu_pct_of_core']:.0f}% of a core during the stream, "
        f"{stop_foreign:.0f}% during the Stop trials"
    )
    section.data = {
        "stream": {**stream, "comm_messages": dict(stream["comm_messages"])},
        "kernel_idle_cpu_pct": idle,
        "stop_click": clicks,
        "stop_cell": cells,
        "stop_foreign_cpu_pct_of_core": stop_foreign,
    }
    return section
