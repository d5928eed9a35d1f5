"""Parity: a cost in USD -> the text a reply, a compare summary and an export show for it.

The same fixtures (``tests/parity/cost/*.json``) run in node against the panel's ``costText``
(``labextension/test/parity_cost.test.ts``): a change to either side that breaks parity fails there or here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupyter_streamchat.kernel._stats import cost_text

FIXTURES = sorted((Path(__file__).parent / "parity" / "cost").glob("*.json"))


def test_there_are_cost_fixtures_with_unknown_zero_tiny_cents_dollars_and_rounding_edges() -> None:
    assert {path.stem for path in FIXTURES} >= {"unknown_and_zero", "tiny", "cents", "dollars", "rounding_edges"}


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_a_cost_reads_as_the_fixture_says(path: Path) -> None:
    fixture = json.loads(path.read_text(encoding="utf-8"))
    assert fixture["cases"]
    for case in fixture["cases"]:
        # When the widgets write the cost, Then they write the fixture's text
        assert cost_text(case["usd"]) == case["text"], f"{path.stem}: {case['usd']!r}"
