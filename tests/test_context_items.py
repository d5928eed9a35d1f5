"""Context items from live objects (issue 17 item 1, SPEC 10): what each kind of object becomes on the wire.

Real pandas, polars, numpy, matplotlib (Agg), PIL and IPython objects; no doubles.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import polars as pl
import pytest
from IPython.display import Image as DisplayImage
from PIL import Image

from jupyter_streamchat.context import (
    ContextError,
    ContextLimits,
    build_item,
    cell_item,
    content,
    estimate_image_tokens,
    estimate_tokens,
    image_bytes_item,
    to_parts,
)

matplotlib.use("Agg")
from matplotlib.figure import Figure  # after choosing the backend

OPTIONAL = ("pandas", "polars", "numpy", "matplotlib", "PIL")


def png_of(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def sales() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "month": pd.to_datetime(["2024-01-01", "2024-02-01", None, "2024-04-01"]),
            "revenue": [10.5, np.nan, 12.25, 9.0],
            "region": pd.Categorical(["north", "south", "north", "east"]),
            "notes": ["ok", "a|pipe\nand newline", None, "x" * 10_000],
            "blob": [b"\x00\x01", None, b"\xff" * 500, 3],
        }
    )


def test_importing_the_package_imports_none_of_the_optional_libraries():
    # When a fresh interpreter imports the package and builds items from plain objects and mentions
    code = (
        "import sys, json, jupyter_streamchat.context as c\n"
        "c.build_item([1, 2]); c.build_item('text'); c.find_mentions('@df hi'); c.list_variables({'x': 1})\n"
        f"print(json.dumps([m for m in {OPTIONAL!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # Then none of pandas, polars, numpy, matplotlib, PIL was imported
    assert json.loads(done.stdout) == []


def test_a_pandas_dataframe_becomes_its_schema_nulls_and_sample_rows_as_markdown():
    # When a DataFrame with dates, NaN/NaT, a categorical, pipes, newlines, long strings and bytes is built
    item = build_item(sales(), "df")
    text = item.text
    # Then its shape, columns, dtypes and null counts are there, and a Markdown table of its rows
    assert item.kind == "dataframe" and item.name == "df"
    assert text.startswith("df: pandas DataFrame, 4 rows x 5 columns")
    assert "| month | datetime64" in text and "| revenue | float64 | 1 |" in text
    assert "| region | category (3 categories) | 0 |" in text
    assert "| notes | str | 1 |" in text and "| blob | object (bytes, int) | 1 |" in text
    assert "All 4 rows:" in text and "| NaT |" in text and "| NaN |" in text
    # Each cell stays on one line of the table, cut and escaped
    assert "a\\|pipe and newline" in text and "x" * 10_000 not in text and "x" * 39 + "…" in text
    assert "| b'\\x00\\x01' |" in text
    for line in text.split("\n"):
        if line.startswith("| 1 |"):
            assert line.count(" | ") == 5
    # And the record is what is sent, with its size and estimate
    record = item.record()
    assert record == {
        "kind": "dataframe",
        "name": "df",
        "text": text,
        "chars": len(text),
        "tokens_estimate": estimate_tokens(text),
    }
    assert to_parts([item]) == [{"type": "text", "text": text}]


def test_a_multiindex_frame_names_its_levels_and_joins_column_tuples():
    index = pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["key", "n"])
    columns = pd.MultiIndex.from_tuples([("price", "min"), ("price", "max"), ("volume", "sum")])
    frame = pd.DataFrame(np.arange(12).reshape(4, 3), index=index, columns=columns)
    # When it is built
    text = build_item(frame, "mi").text
    # Then the index levels are named with their dtypes and the column tuples are readable
    assert "index: MultiIndex of 2 levels: key (" in text and "n (int64)" in text
    assert "| price / min | int64 | 0 |" in text and "| key / n | price / min |" in text


def test_cells_holding_arrays_and_containers_are_shown_short_and_empty_frames_still_describe_themselves():
    frame = pd.DataFrame({"a": [np.arange(3), None, {"k": list(range(100))}]})
    # When a frame whose cells hold arrays and big containers, and empty frames, are built
    text = build_item(frame, "cells").text
    empty = build_item(pd.DataFrame(), "nothing").text
    # Then the cells' types and short reprs are given, and an empty frame gives its shape
    assert "| a | object (ndarray, dict) | 1 |" in text
    assert "| 0 | array([0, 1, 2]) |" in text and "| 2 | {'k': [0, 1, 2, 3, ...]} |" in text
    assert empty == "nothing: pandas DataFrame, 0 rows x 0 columns\nindex: RangeIndex from 0 to 0 step 1"


def test_a_pandas_series_states_its_name_dtype_and_nulls():
    series = pd.Series([1.0, None, 3.0], name="rate", index=pd.date_range("2024-01-01", periods=3))
    # When it is built
    item = build_item(series, "s")
    # Then it is a series item with its index range and nulls
    assert item.kind == "series"
    assert item.text.startswith("s: pandas Series 'rate', 3 values")
    assert "index: DatetimeIndex (datetime64" in item.text and "from 2024-01-01" in item.text
    assert "dtype: float64; nulls: 1" in item.text


def test_polars_frames_and_series_give_the_same_kind_of_item_with_exact_nulls():
    frame = pl.DataFrame({"a": [1, None, 3], "s": ["x", None, "y" * 200], "b": [b"\x00", None, b"\x01"]})
    # When a polars DataFrame and Series are built
    item = build_item(frame, "pdf")
    series = build_item(pl.Series("p", [1.5, None]), "ps")
    # Then they read like the pandas ones
    assert item.kind == "dataframe" and item.text.startswith("pdf: polars DataFrame, 3 rows x 3 columns")
    assert "| a | Int64 | 1 |" in item.text and "| s | String | 1 |" in item.text and "| b | Binary | 1 |" in item.text
    assert "y" * 200 not in item.text
    assert series.kind == "series" and "dtype: Float64; nulls: 1" in series.text


def test_a_numpy_array_states_shape_dtype_and_statistics():
    array = np.array([[1.0, 2.0, np.nan], [4.0, 5.0, 6.0]])
    # When it is built
    item = build_item(array, "a")
    # Then shape, dtype, first elements and statistics over all its elements are given
    assert item.kind == "array"
    assert item.text.startswith("a: numpy ndarray, shape (2, 3), dtype float64, 6 elements")
    assert "first elements (flat order): [1, 2, NaN, 4, 5, 6]" in item.text
    assert "statistics over all elements: min 1, max 6, mean 3.6, std 1.85472, NaN 1" in item.text


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.array([True, False, True]), "True 2 of 3"),
        (np.array(["2024-01-01", "NaT"], dtype="datetime64[D]"), "min 2024-01-01, max 2024-01-01, NaT 1"),
        (np.array([1 + 2j, 3 + 4j]), "mean 2+3j"),
        (np.zeros(3, dtype=[("x", "i4"), ("y", "f8")]), "fields: x (int32), y (float64)"),
        (np.array(["a", None, {"k": 1}], dtype=object), "first elements (flat order): [a, None, {'k': 1}]"),
        (np.array(2.5), "shape (), dtype float64, 1 element"),
    ],
)
def test_arrays_of_every_dtype_are_described(array, fragment):
    # When an array of booleans, dates, complex numbers, records, objects or no dimension is built
    # Then its text says what matters for that dtype
    assert fragment in build_item(array, "x").text


def test_a_matplotlib_figure_becomes_a_png_part_after_its_caption():
    figure = Figure(figsize=(6.4, 4.8), dpi=100)
    figure.add_subplot().plot([1, 3, 2])
    # When it is built
    item = build_item(figure, "fig")
    # Then it is a PNG of the figure's size, recorded without its bytes
    assert item.kind == "image" and item.data is not None and item.image is not None
    assert item.data.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(item.data)).size == (640, 480)
    assert item.image == {
        "mime": "image/png",
        "sha256": hashlib.sha256(item.data).hexdigest(),
        "bytes": len(item.data),
        "width": 640,
        "height": 480,
    }
    record = item.record()
    assert "data" not in json.dumps(record) and record["image"] == item.image
    assert record["text"] == "fig: matplotlib Figure, 640x480 px; sent as PNG"
    assert item.tokens_estimate == estimate_tokens(item.text) + estimate_image_tokens(640, 480)
    # And on the wire the caption comes right before the image
    caption, image = to_parts([item])
    assert caption == {"type": "text", "text": item.text}
    assert image["type"] == "image" and image["mime"] == "image/png"
    assert base64.b64decode(image["data"]) == item.data


def test_a_large_figure_is_rendered_at_a_dpi_that_fits_the_limits():
    figure = Figure(figsize=(40, 30), dpi=100)  # 4000 x 3000 px
    figure.add_subplot().plot(np.sin(np.linspace(0, 50, 5000)))
    # When it is built with a small byte limit per image
    item = build_item(figure, "big", ContextLimits(image_bytes=60_000))
    # Then it fits both limits and says what it was scaled from
    assert item.image is not None and item.data is not None
    assert max(item.image["width"], item.image["height"]) <= 1568
    assert len(item.data) <= 60_000
    assert "matplotlib Figure, 4000x3000 px; sent as PNG at " in item.text


def test_axes_are_sent_as_their_figure():
    figure = Figure(figsize=(2, 1), dpi=100)
    axes = figure.add_subplot()
    # When Axes are built, Then they give their figure's image
    image = build_item(axes, "ax").image
    assert image is not None and image["width"] == 200


def test_a_figure_that_fails_to_render_is_a_one_line_error():
    figure = Figure()
    figure.add_subplot().set_title(r"$\frac{$")  # broken mathtext: raises when drawn
    # When it is built, Then the error names it and the reason, on one line
    with pytest.raises(ContextError) as raised:
        build_item(figure, "fig")
    message = str(raised.value)
    assert message.startswith("fig could not be rendered: ValueError") and "\n" not in message


def test_pil_images_are_scaled_to_the_side_limit_and_converted_when_needed():
    # When a large RGB image and a CMYK image are built
    large = build_item(Image.new("RGB", (3000, 2000), (10, 200, 10)), "photo")
    cmyk = build_item(Image.new("CMYK", (30, 20)), "cmyk")
    # Then the large one is scaled to 1568 px on its longest side, the CMYK one converted, both PNG
    assert large.image is not None
    assert (large.image["mime"], large.image["width"], large.image["height"]) == ("image/png", 1568, 1045)
    assert "PIL Image, 3000x2000 px; sent as PNG at 1568x1045 px" in large.text
    assert cmyk.image is not None and cmyk.image["mime"] == "image/png" and cmyk.image["width"] == 30


def test_a_photo_over_the_byte_limit_is_sent_as_a_smaller_jpeg():
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 255, (800, 800, 3), dtype=np.uint8))
    # When a noisy (incompressible) image is built with a limit its PNG exceeds
    item = build_item(noise, "noise", ContextLimits(image_bytes=150_000))
    # Then it fits, as a JPEG
    assert item.image is not None and item.data is not None
    assert item.image["mime"] == "image/jpeg" and len(item.data) <= 150_000
    assert Image.open(io.BytesIO(item.data)).format == "JPEG"


def test_an_ipython_image_is_sent_byte_for_byte_when_it_fits():
    data = png_of(120, 80)
    # When an IPython.display.Image holding PNG bytes is built
    item = build_item(DisplayImage(data=data), "chart")
    # Then the very same bytes go out, with their size read from the header
    assert item.data == data
    assert item.image == {
        "mime": "image/png",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "width": 120,
        "height": 80,
    }


def test_an_image_link_and_bytes_that_are_no_image_are_one_line_errors():
    # When an Image pointing at a URL (not embedded) or bytes that are no image are built
    with pytest.raises(ContextError, match=r"^chart is an image link \(https://example.com/a.png\), not image data"):
        build_item(DisplayImage(url="https://example.com/a.png", embed=False), "chart")
    with pytest.raises(ContextError, match=r"^output is not a PNG, JPEG, GIF or WebP image$"):
        image_bytes_item(b"GIF8 nope", "output")


def test_image_output_bytes_over_the_limit_are_scaled_down():
    data = png_of(4000, 100)
    # When a cell's image output wider than the side limit is built
    item = image_bytes_item(data, "output 1", source="cell output")
    # Then it was scaled to fit
    assert item.image is not None and item.image["width"] == 1568
    assert item.text.startswith("output 1: cell output, 4000x100 px; sent as PNG at 1568x")


def test_a_string_is_sent_verbatim_and_a_cell_as_given_both_cut_at_the_limit():
    limits = ContextLimits(item_chars=100)
    # When a string, a named string and a long cell are built
    plain = build_item("Explain the March dip.")
    named = build_item("a note", "note")
    long_cell = cell_item("print(1)\n" * 100, limits=limits)
    # Then the string is verbatim, the named one under its name, and the cell is cut and says so
    assert plain.kind == "text" and plain.text == "Explain the March dip."
    assert named.text == "note (str, 6 chars):\na note"
    assert long_cell.kind == "cell" and len(long_cell.text) <= 100
    assert long_cell.text.endswith("… (cut: 900 chars, the first part shown)")


class Raising:
    def __repr__(self) -> str:
        raise RuntimeError("no repr\nfor you")


class Hanging:
    def __repr__(self) -> str:
        while True:
            pass


class Huge:
    def __repr__(self) -> str:
        return "y" * 50_000_000


def test_any_other_object_gives_its_type_and_a_bounded_repr():
    # When builtin containers of any size, and objects whose repr raises, hangs or is huge, are built
    # (with all the time they need, but the hanging one: a loaded machine may take long to build 50 MB)
    patient = ContextLimits(repr_seconds=600)
    items = {
        "big_list": build_item(list(range(10_000_000)), "big_list", patient),
        "nested": build_item({"a": [[[[1]]]], "b": set(range(100))}, "nested", patient),
        "raising": build_item(Raising(), "raising", patient),
        "hanging": build_item(Hanging(), "hanging", ContextLimits(repr_seconds=0.05)),
        "huge": build_item(Huge(), "huge", patient),
    }
    # Then each is an object item with its type, and no repr breaks or floods it
    assert all(item.kind == "object" and item.chars <= 4000 for item in items.values())
    assert items["big_list"].text.startswith("big_list: list, 10,000,000 items\n[0, 1, 2,")
    assert items["big_list"].text.endswith("...]")
    assert "[[[...]]]" in items["nested"].text
    raising = "raising: tests.test_context_items.Raising\n(repr raised RuntimeError: no repr for you)"
    assert items["raising"].text == raising
    assert items["hanging"].text.endswith("(repr did not finish within 0.05 s; not shown)")
    assert items["huge"].text.endswith("… (cut: repr too long)")


def test_content_is_the_prompt_alone_without_context_and_parts_with_it():
    item = build_item("some context")
    # When a message's content is made with and without context
    # Then without context it stays a string; with it, the context's parts come before the prompt
    assert content("hi", []) == "hi"
    assert content("hi", [item]) == [{"type": "text", "text": "some context"}, {"type": "text", "text": "hi"}]


def test_token_estimates_follow_the_documented_formulas():
    # Then text costs a token per 4 chars (rounded up), images Anthropic's width*height/750 after scaling
    assert (estimate_tokens(""), estimate_tokens("abcd"), estimate_tokens("abcde")) == (0, 1, 2)
    assert estimate_image_tokens(750, 1) == 1
    assert estimate_image_tokens(1000, 1000) == 1334
    assert estimate_image_tokens(4000, 3000) == 1534  # fitted to 1.15 megapixels: 1,150,000 / 750
    assert estimate_image_tokens(0, 10) == 0
