"""Token estimates shown before Send and recorded with each item.

They are estimates, not a tokenizer's count (none is shipped for every provider):

* **text**: one token per 4 characters, rounded up. That is OpenAI's and Anthropic's rule of thumb for English
  prose and code; tables of numbers run closer to 3 characters per token, so a table's estimate is low by up to
  a quarter.
* **images**: Anthropic's published formula, ``width * height / 750`` tokens after the image is scaled to fit
  1568 pixels on its longest side and 1.15 megapixels (about 1,600 tokens at most). OpenAI's high-detail tile
  formula (85 + 170 per 512-pixel tile after fitting 2048 and 768) lands in the same range for chart-sized images.
"""

from __future__ import annotations

import math

CHARS_PER_TOKEN = 4
IMAGE_PIXELS_PER_TOKEN = 750
IMAGE_LONG_SIDE = 1568
IMAGE_MAX_PIXELS = 1_150_000


def estimate_tokens(text: str) -> int:
    """About how many tokens ``text`` costs: ``ceil(len(text) / 4)``."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_image_tokens(width: int, height: int) -> int:
    """About how many tokens an image of ``width`` x ``height`` pixels costs (Anthropic's formula)."""
    if width <= 0 or height <= 0:
        return 0
    scale = min(1.0, IMAGE_LONG_SIDE / max(width, height), math.sqrt(IMAGE_MAX_PIXELS / (width * height)))
    return max(1, math.ceil(width * scale * height * scale / IMAGE_PIXELS_PER_TOKEN))
