"""Parity: the token estimates shown before Send (the panel's ``src/tokens.ts``) are the ones Python makes
(``context/_tokens.py``) and the server records for each context item (``engine/_parts.py``).

The same fixtures (``tests/parity/tokens/*.json``) run in node (``labextension/test/parity_tokens.test.ts``): a
change to either side that breaks parity fails there or here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jupyter_streamchat.context import estimate_image_tokens, estimate_tokens
from jupyter_streamchat.engine._parts import ImageBudget, parse_context

FOLDER = Path(__file__).parent / "parity" / "tokens"


def fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FOLDER / f"{name}.json").read_text(encoding="utf-8")))


def test_text_estimates_are_the_fixtures() -> None:
    for case in fixture("texts")["cases"]:
        assert estimate_tokens(case["text"]) == case["tokens"], case["text"][:40]


def test_image_estimates_are_the_fixtures() -> None:
    for case in fixture("images")["cases"]:
        assert estimate_image_tokens(case["width"], case["height"]) == case["tokens"], case


def test_the_server_records_the_fixture_estimate_for_each_item_and_the_total() -> None:
    # Given the items as a request's context carries them
    items = fixture("items")
    # When the server takes them
    taken = parse_context(items["items"], 1_000_000, ImageBudget(10_000_000))
    # Then each record's estimate (and an image's size, read from its bytes) is the fixture's, and so is the total
    for item, took in zip(items["items"], taken, strict=True):
        record = took.record
        assert record["tokens_estimate"] == item["tokens_estimate"], item["name"]
        if "size" in item:
            image = record["image"]
            assert {"width": image["width"], "height": image["height"], "bytes": image["bytes"]} == item["size"]
    assert sum(took.record["tokens_estimate"] for took in taken) == items["total"]
