"""Bounded cost (issue 17 item 2): building an item never reads a whole large object, and sizes stay in limits.

The no-full-scan proofs are real objects that cannot be scanned: a pandas column (an ExtensionArray) that counts
every row it hands out and refuses to be materialised whole, and arrays built in a process whose address space
is too small to hold a copy of them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pandas.api.extensions import ExtensionArray, ExtensionDtype

from jupyter_streamchat.context import ContextError, ContextLimits, build_item, within_request

TEN_MILLION = 10_000_000
MATERIALISE_AT_MOST = 10_000


class Ledger:
    """Rows handed out by every column sharing it; a read of more than MATERIALISE_AT_MOST rows at once fails."""

    def __init__(self) -> None:
        self.rows = 0

    def read(self, n: int) -> None:
        if n > MATERIALISE_AT_MOST:
            raise AssertionError(f"{n:,} rows read at once: a full scan")
        self.rows += n


class VirtualDtype(ExtensionDtype):
    name = "virtual"
    type = float
    na_value = np.nan

    @classmethod
    def construct_array_type(cls) -> type[VirtualColumn]:
        return VirtualColumn


class VirtualColumn(ExtensionArray):
    """Floats computed from row positions (every 7th is NaN): any length, no memory; reads are counted."""

    def __init__(self, positions: range | np.ndarray, ledger: Ledger) -> None:
        self.positions = positions
        self.ledger = ledger

    @classmethod
    def _from_sequence(cls, scalars: Any, *, dtype: Any = None, copy: bool = False) -> VirtualColumn:
        raise AssertionError("a virtual column is never rebuilt from values")

    @property
    def dtype(self) -> VirtualDtype:
        return VirtualDtype()

    @property
    def nbytes(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.positions)

    def values(self) -> np.ndarray:
        self.ledger.read(len(self.positions))
        positions = np.asarray(self.positions, dtype=np.float64)
        return np.where(positions % 7 == 0, np.nan, positions)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int | np.integer):
            self.ledger.read(1)
            position = self.positions[int(key)]
            return np.nan if position % 7 == 0 else float(position)
        if isinstance(key, slice):
            return VirtualColumn(self.positions[key], self.ledger)
        indices = np.asarray(key)
        if indices.dtype == bool:
            raise AssertionError("a boolean mask over every row: a full scan")
        return self.take(indices)

    def take(self, indices: Any, *, allow_fill: bool = False, fill_value: Any = None) -> VirtualColumn:
        if allow_fill and any(i < 0 for i in indices):
            raise AssertionError("not needed by the code under test")
        return VirtualColumn(np.array([self.positions[int(i)] for i in indices], dtype=np.int64), self.ledger)

    def isna(self) -> np.ndarray:
        return np.isnan(self.values())

    def copy(self) -> VirtualColumn:
        return VirtualColumn(self.positions, self.ledger)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.values()

    @classmethod
    def _concat_same_type(cls, to_concat: Any) -> VirtualColumn:
        raise AssertionError("not needed by the code under test")


def virtual_frame(rows: int, columns: int, ledger: Ledger) -> pd.DataFrame:
    return pd.DataFrame({f"sensor_{i}": VirtualColumn(range(rows), ledger) for i in range(columns)}, copy=False)


def test_a_frame_that_cannot_be_scanned_still_yields_its_item_from_a_bounded_sample():
    ledger = Ledger()
    frame = virtual_frame(TEN_MILLION, 20, ledger)
    # A whole column cannot be read (the double works)
    with pytest.raises(AssertionError, match="full scan"):
        frame["sensor_0"].to_numpy()
    ledger.rows = 0
    limits = ContextLimits()
    # When the item of a 10 M x 20 frame of such columns is built
    item = build_item(frame, "df", limits)
    # Then it has the shape, dtypes and sampled nulls, within 4 KB
    assert item.kind == "dataframe" and item.chars <= 4096
    assert item.text.startswith("df: pandas DataFrame, 10,000,000 rows x 20 columns")
    assert "| column | dtype | nulls in 2,000 sampled rows (every 5,000th) |" in item.text
    assert "| sensor_0 | virtual | 286 |" in item.text  # positions 0, 35,000, ... : multiples of 7 and 5,000
    assert "First 3 and last 2 of 10,000,000 rows:" in item.text and "| 9999999 | 9999999 |" in item.text
    # And it read at most the sample and the shown rows of each column
    assert ledger.rows <= 20 * (limits.sample_rows + limits.rows)


def test_a_frame_of_ten_thousand_columns_describes_the_first_ones_and_says_how_many_there_are():
    ledger = Ledger()
    frame = virtual_frame(1000, 10_000, ledger)
    # When its item is built
    item = build_item(frame, "wide")
    # Then it fits the item limit, says it was cut, and read only the described columns
    assert item.chars <= 4000
    assert "… (cut: 10,000 columns, first " in item.text and "| sensor_0 | virtual |" in item.text
    assert "| sensor_9999 |" not in item.text
    assert ledger.rows <= 40 * 1000 + 20 * 5


def test_long_column_names_shrink_the_described_columns_before_anything_is_cut():
    frame = pd.DataFrame({f"{'a_rather_long_column_name_' * 3}{i}": [1.0, 2.0] for i in range(60)})
    # When the item is built under a small limit
    item = build_item(frame, "f", ContextLimits(item_chars=1500))
    # Then it fits, and says how many columns it shows of how many
    assert item.chars <= 1500
    assert "(cut: 60 columns, first " in item.text and " of 60 columns:" in item.text


def run_with_small_address_space(code: str) -> dict[str, Any]:
    """Run ``code`` (which prints JSON) in a process that can map only 600 MB more than it has after imports."""
    script = textwrap.dedent(
        """
        import json, resource, numpy as np, pandas as pd
        from jupyter_streamchat.context import build_item
        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (size + 600 * 2**20, resource.RLIM_INFINITY))
        """
    )
    done = subprocess.run([sys.executable, "-c", script + textwrap.dedent(code)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_a_hundred_million_element_array_is_described_without_a_copy():
    # When 100 M-element arrays (a broadcast and a strided view: 800 MB each if copied) are built in a process
    # that cannot allocate 800 MB
    result = run_with_small_address_space(
        """
        big = np.broadcast_to(np.arange(10_000, dtype=np.float64), (10_000, 10_000))
        try:
            big.copy()
            copy_fails = False
        except MemoryError:
            copy_fails = True
        item = build_item(big, "big")
        view = build_item(big[:, ::-1].T, "view")
        print(json.dumps({"copy_fails": copy_fails, "text": item.text, "view": view.text}))
        """
    )
    # Then a copy would have failed, and both items were built from a bounded sample
    assert result["copy_fails"]
    text = result["text"]
    assert text.startswith("big: numpy ndarray, shape (10,000, 10,000), dtype float64, 100,000,000 elements (800.0 MB)")
    assert "statistics over 2,000 evenly spaced elements: min " in text and len(text) <= 4000
    assert "first elements (flat order): [9999, 9999, 9999," in result["view"]


def test_a_ten_million_row_numpy_backed_frame_is_described_without_a_copy():
    # When a real 10 M x 20 float frame (1.6 GB if copied) is built in a process that cannot allocate that
    result = run_with_small_address_space(
        """
        values = np.broadcast_to(np.arange(20, dtype=np.float64), (10_000_000, 20))
        frame = pd.DataFrame(values, columns=[f"c{i}" for i in range(20)], copy=False)
        item = build_item(frame, "df")
        print(json.dumps({"text": item.text}))
        """
    )
    # Then the item is within 4 KB
    assert result["text"].startswith("df: pandas DataFrame, 10,000,000 rows x 20 columns")
    assert len(result["text"]) <= 4096


def test_a_repr_that_hangs_is_interrupted_and_the_timer_already_set_is_put_back():
    class Hanging:
        def __repr__(self) -> str:
            while True:
                pass

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    earlier = signal.setitimer(signal.ITIMER_REAL, 3600)
    try:
        # When an object whose repr never returns is built while a timer of our own runs
        item = build_item(Hanging(), "h", ContextLimits(repr_seconds=0.02))
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        handler = signal.getsignal(signal.SIGALRM)
    finally:
        signal.setitimer(signal.ITIMER_REAL, *earlier)
        signal.signal(signal.SIGALRM, previous)
    # Then the item says so, our timer is armed again with what was left, and our handler is back
    assert item.text.endswith("(repr did not finish within 0.02 s; not shown)")
    assert 3500 < left <= 3600 and not fired
    assert handler is not None and handler is not previous and getattr(handler, "__name__", "") == "<lambda>"


def test_items_past_the_request_text_limit_are_cut_and_say_so():
    limits = ContextLimits(item_chars=4000, request_chars=5000)
    items = [build_item("a" * 3000, f"t{i}", limits) for i in range(3)]
    # When three 3,000-char items go into one 5,000-char request
    kept = within_request(items, limits)
    # Then the first is whole, the second cut to what is left, the third only says it was cut
    assert kept[0] == items[0]
    assert sum(item.chars for item in kept) <= 5000
    assert kept[1].text.endswith("… (cut: 5,000 chars of context per request reached)")
    assert kept[2].text == "… (cut: 5,000 chars of context per request reached)"
    assert kept[2].tokens_estimate < items[2].tokens_estimate


def test_images_past_the_request_byte_limit_refuse_the_request():
    from PIL import Image

    limits = ContextLimits(request_image_bytes=1_000)
    image = build_item(Image.new("RGB", (64, 64)), "a", limits)
    assert image.image is not None and image.image["bytes"] < 1_000
    # When two of them exceed the request's image bytes
    # Then the request is refused with one line, rather than an image half-sent
    with pytest.raises(ContextError, match=r"^the images in this context take 0\.0 MB, over the 0\.0 MB limit"):
        within_request([image, image], ContextLimits(request_image_bytes=image.image["bytes"] + 1))
