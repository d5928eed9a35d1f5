"""Parity: merging turns into ``metadata.streamchat``, by the server's ``merged_streamchat``.

The same fixtures (``tests/parity/metadata/*.json``) run in node against the panel's ``mergeTurn``
(``labextension/test/parity_metadata.test.ts``). Each fixture is a section (absent: a notebook
without one) and merges applied in order, each to the result of the last one that changed something;
``expect: null`` means "already recorded: nothing to write".
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_streamchat.persistence._schema import merged_streamchat

FIXTURES = sorted((Path(__file__).parent / "parity" / "metadata").glob("*.json"))


def test_there_are_metadata_fixtures() -> None:
    assert len(FIXTURES) >= 5


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_merging_the_turns_gives_the_section_of_the_fixture(path: Path) -> None:
    fixture: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    # Given a notebook's metadata with the fixture's section (or none)
    metadata = {"streamchat": fixture["section"]} if "section" in fixture else {}
    for step, merge in enumerate(fixture["merges"]):
        before = copy.deepcopy(metadata)
        # When a turn is merged
        merged = merged_streamchat(metadata, merge["conversation"], merge["turn"])
        # Then the section is the fixture's (or None: the run is already recorded)
        assert merged == merge["expect"], f"{path.stem}: merge {step}"
        # And the metadata it was given is unchanged
        assert metadata == before, f"{path.stem}: merge {step} changed its input"
        if merged is not None:
            metadata = {"streamchat": merged}
