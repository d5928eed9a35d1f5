"""Figures and images as PNG/JPEG bytes, scaled so they fit the limits (pixels per side, bytes per image).

matplotlib figures are rendered with ``savefig`` at a dpi that fits ``limits.image_side``; PIL images are resized
and encoded; ``IPython.display.Image`` and raw bytes are sent as they are when they fit, and go through PIL
(when it is installed) when they do not. Whatever cannot be made to fit is a :class:`ContextError`.
"""

from __future__ import annotations

import importlib.util
import io
import math
from dataclasses import dataclass
from typing import Any

from ..providers._parts import ImageMime, sniff
from ._text import one_line, pixels
from ._types import ContextError, ContextLimits

ATTEMPTS = 5
SHRINK_MARGIN = 0.9
JPEG_QUALITY = 85


@dataclass(frozen=True)
class Encoded:
    mime: ImageMime
    data: bytes
    width: int
    height: int
    source: str
    """What it was made from, for the caption ("matplotlib Figure, 4000x3000 px")."""


def describe(obj: Any, library: str, label: str, limits: ContextLimits) -> Encoded | None:
    if library == "matplotlib":
        return figure(obj, label, limits)
    if library == "PIL":
        from PIL import Image

        if isinstance(obj, Image.Image):
            return pil_image(obj, label, limits, "PIL Image")
        return None
    if library == "IPython":
        from IPython.display import Image as DisplayImage

        if isinstance(obj, DisplayImage):
            return display_image(obj, label, limits)
    return None


def figure(obj: Any, label: str, limits: ContextLimits) -> Encoded | None:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure

    if isinstance(obj, Axes | SubFigure):
        obj = obj.get_figure(root=True) if hasattr(obj, "get_figure") else obj.figure
    if not isinstance(obj, Figure):
        return None
    width_in, height_in = obj.get_size_inches()
    native = (round(width_in * obj.dpi), round(height_in * obj.dpi))
    dpi = min(float(obj.dpi), limits.image_side / max(width_in, height_in, 1e-6))
    source = f"matplotlib Figure, {pixels(*native)}"
    for _ in range(ATTEMPTS):
        buffer = io.BytesIO()
        try:
            obj.savefig(buffer, format="png", dpi=dpi)
        except Exception as error:
            raise ContextError(f"{label} could not be rendered: {failure(error)}") from error
        data = buffer.getvalue()
        if len(data) <= limits.image_bytes:
            return encoded(data, source, label)
        dpi *= math.sqrt(limits.image_bytes / len(data)) * SHRINK_MARGIN
    raise too_large(label, limits)


def pil_image(image: Any, label: str, limits: ContextLimits, source: str) -> Encoded:
    from PIL import Image

    try:
        width, height = image.size
        source = f"{source}, {pixels(width, height)}"
        scale = min(1.0, limits.image_side / max(width, height, 1))
        original_format = image.format
        work = image if image.mode in ("1", "L", "LA", "P", "RGB", "RGBA") else image.convert(rgb_mode(image))
        for _ in range(ATTEMPTS):
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            sized = work if size == work.size else work.resize(size, Image.Resampling.LANCZOS)
            data = smallest(sized, original_format, limits.image_bytes)
            if len(data) <= limits.image_bytes:
                return encoded(data, source, label)
            scale *= math.sqrt(limits.image_bytes / len(data)) * SHRINK_MARGIN
    except ContextError:
        raise
    except Exception as error:
        raise ContextError(f"{label} could not be encoded: {failure(error)}") from error
    raise too_large(label, limits)


def smallest(image: Any, original_format: str | None, limit: int) -> bytes:
    """PNG (JPEG first for a photo that was a JPEG); JPEG again when PNG is over the limit and there is no alpha."""
    opaque = image.mode in ("1", "L", "RGB") or (image.mode == "P" and "transparency" not in image.info)
    order = ["JPEG", "PNG"] if original_format == "JPEG" and opaque else ["PNG", "JPEG"] if opaque else ["PNG"]
    data = b""
    for fmt in order:
        buffer = io.BytesIO()
        if fmt == "JPEG":
            image.convert("RGB" if image.mode != "L" else "L").save(buffer, format="JPEG", quality=JPEG_QUALITY)
        else:
            image.save(buffer, format="PNG")
        if not data or len(buffer.getvalue()) < len(data):
            data = buffer.getvalue()
        if len(data) <= limit:
            break
    return data


def display_image(image: Any, label: str, limits: ContextLimits) -> Encoded:
    data = image.data
    if not isinstance(data, bytes):
        url = getattr(image, "url", None)
        where = f" ({one_line(str(url), 80)})" if url else ""
        raise ContextError(f"{label} is an image link{where}, not image data: use Image(..., embed=True)")
    return from_bytes(data, label, limits, "IPython Image")


def from_bytes(data: bytes, label: str, limits: ContextLimits, source: str = "image") -> Encoded:
    """Encoded image bytes as they are when they fit the limits, else scaled with PIL (if installed)."""
    sniffed = sniff(data)
    if sniffed is None:
        raise ContextError(f"{label} is not a PNG, JPEG, GIF or WebP image")
    mime, width, height = sniffed
    if len(data) <= limits.image_bytes and max(width, height) <= limits.image_side:
        return Encoded(mime, data, width, height, f"{source}, {pixels(width, height)}")
    if importlib.util.find_spec("PIL") is None:
        if len(data) <= limits.image_bytes:  # too many pixels only: the provider scales it down
            return Encoded(mime, data, width, height, f"{source}, {pixels(width, height)}")
        raise ContextError(
            f"{label} is {megabytes(len(data))}, over the {megabytes(limits.image_bytes)} limit per image "
            "(install pillow to have it scaled down)"
        )
    from PIL import Image

    try:
        opened = Image.open(io.BytesIO(data))
        opened.load()
    except Exception as error:
        raise ContextError(f"{label} could not be decoded: {failure(error)}") from error
    return pil_image(opened, label, limits, source)


def encoded(data: bytes, source: str, label: str) -> Encoded:
    sniffed = sniff(data)
    if sniffed is None:  # our own encoders made it: a broken header is a bug, said plainly
        raise ContextError(f"{label} was encoded into bytes that are not a known image format")
    mime, width, height = sniffed
    return Encoded(mime, data, width, height, source)


def rgb_mode(image: Any) -> str:
    return "RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB"


def too_large(label: str, limits: ContextLimits) -> ContextError:
    return ContextError(f"{label} does not fit {megabytes(limits.image_bytes)} per image even scaled down")


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def failure(error: BaseException) -> str:
    return one_line(f"{type(error).__name__}: {error}", 200)
