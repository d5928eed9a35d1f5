"""Notebook context: the time and size of the context item built from a large live object (issue 17 item 2).

Runs in this process (what the kernel does when ``chat(..., context=[df])`` or ``@df`` is sent): no server.

* **10 M x 20 pandas DataFrame**, real data of mixed dtypes (float64, int32, bool, category, datetime64; ~0.9 GB),
  and the same columns as a **polars** DataFrame: median time of ``build_item`` over the trials, and the item's
  text size (target ≤ 50 ms and ≤ 4 KB, whatever the size of the data).
* **1,000 x 10,000** (wide) pandas DataFrame: the same, with the column cut.
* **100 M-element numpy array** (float32, 400 MB, real memory) and a 100 M-element broadcast view: time and size.
* **4000 x 3000 px matplotlib figure** (a line of 100k points and a 1000 x 1000 heatmap): time to render it at
  the dpi that fits 1568 px and 1.5 MB, bytes and pixels sent; and a **4000 x 3000 PIL image** of noise (the worst
  case for PNG: it goes out as JPEG).
"""

from __future__ import annotations

import time
from typing import Any

from ._bench import Bench
from ._report import Section, check, info, median

NAME = "context"
TITLE = "Notebook context: time and size of an item built from a large object"
ROWS = 10_000_000
TABULAR_MS = 50.0
TABULAR_BYTES = 4096


def timed(obj: Any, name: str, trials: int) -> tuple[float, Any]:
    """Median milliseconds of ``build_item(obj, name)`` over ``trials`` runs (after one warm-up), and the item."""
    from jupyter_streamchat.context import build_item

    item = build_item(obj, name)
    times = []
    for _ in range(trials):
        started = time.perf_counter()
        item = build_item(obj, name)
        times.append((time.perf_counter() - started) * 1e3)
    return median(times), item


def big_frames(rows: int) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd
    import polars as pl

    rng = np.random.default_rng(17)
    columns: dict[str, Any] = {}
    for i in range(6):
        values = rng.standard_normal(rows)
        values[rng.integers(0, rows, rows // 100)] = np.nan
        columns[f"measure_{i}"] = values
    for i in range(6):
        columns[f"count_{i}"] = rng.integers(0, 1000, rows, dtype=np.int32)
    for i in range(2):
        columns[f"flag_{i}"] = rng.random(rows) < 0.5
    for i in range(2):
        codes = rng.integers(0, 4, rows, dtype=np.int8)
        columns[f"region_{i}"] = pd.Categorical.from_codes(codes, ["n", "s", "e", "w"])
    start = np.datetime64("2020-01-01T00:00:00", "ms")
    for i in range(4):
        columns[f"time_{i}"] = start + (np.arange(rows, dtype=np.int64) * 1000).astype("timedelta64[ms]")
    frame = pd.DataFrame(columns, copy=False)
    polars_frame = pl.DataFrame({k: (v.codes if k.startswith("region") else v) for k, v in columns.items()})
    return frame, polars_frame


def tabular(section: Section, bench: Bench, trials: int) -> None:
    import numpy as np
    import pandas as pd

    bench.say(f"building a {ROWS:,} x 20 frame of mixed dtypes")
    frame, polars_frame = big_frames(ROWS)
    ms, item = timed(frame, "df", trials)
    tabular_rows(section, "pandas 10 M x 20", ms, item)
    section.data["pandas_text"] = item.text
    ms, item = timed(polars_frame, "pdf", trials)
    tabular_rows(section, "polars 10 M x 20", ms, item)
    wide = pd.DataFrame(np.zeros((1000, 10_000)), columns=[f"feature_{i}" for i in range(10_000)])
    ms, item = timed(wide, "wide", trials)
    tabular_rows(section, "pandas 1,000 x 10,000 (wide)", ms, item)


def tabular_rows(section: Section, what: str, ms: float, item: Any) -> None:
    section.add(check(f"{what}: build_item", ms, "ms", f"≤ {TABULAR_MS:.0f} ms", lambda v: v <= TABULAR_MS))
    size = len(item.text.encode())
    section.add(check(f"{what}: text size", size, "bytes", "≤ 4 KB", lambda v: v <= TABULAR_BYTES))


def arrays(section: Section, bench: Bench, trials: int) -> None:
    import numpy as np

    bench.say("100 M-element arrays")
    ms, item = timed(np.random.default_rng(3).random(100_000_000, dtype=np.float32), "arr", trials)
    section.add(info("numpy 100 M float32 (400 MB): build_item", ms, "ms"))
    section.add(info("numpy 100 M float32: text size", len(item.text.encode()), "bytes"))
    view = np.broadcast_to(np.arange(10_000, dtype=np.float64), (10_000, 10_000))
    ms, item = timed(view, "view", trials)
    section.add(info("numpy 100 M broadcast view: build_item", ms, "ms"))


def images(section: Section, bench: Bench, trials: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure
    from PIL import Image

    bench.say("a 4000 x 3000 px figure and image")
    figure = Figure(figsize=(40, 30), dpi=100)
    axes = figure.subplots(1, 2)
    axes[0].plot(np.cumsum(np.random.default_rng(5).standard_normal(100_000)))
    axes[1].imshow(np.random.default_rng(6).random((1000, 1000)))
    ms, item = timed(figure, "fig", trials)
    section.add(info("matplotlib 4000x3000 px figure: build_item (render + encode)", ms, "ms"))
    section.add(info("  sent", sent(item)))
    section.add(info("  tokens estimate", item.tokens_estimate, "tokens"))
    noise = Image.fromarray(np.random.default_rng(7).integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
    ms, item = timed(noise, "photo", trials)
    section.add(info("PIL 4000x3000 noise image: build_item (resize + encode)", ms, "ms"))
    section.add(info("  sent", sent(item)))


def sent(item: Any) -> str:
    image = item.image
    return f"{image['width']}x{image['height']} {image['mime'].partition('/')[2].upper()}, {image['bytes']:,} bytes"


async def run(bench: Bench) -> Section:
    section = Section(NAME, TITLE)
    trials = 3 if bench.quick else 7
    tabular(section, bench, trials)
    arrays(section, bench, trials)
    images(section, bench, trials)
    section.notes.append(f"median of {trials} builds after one warm-up, in the benchmark process (as in a kernel)")
    return section
