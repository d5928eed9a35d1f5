"""Parity: merging turns into ``metadata.streamchat`` and reading a conversation's tree, by the server.

The same fixtures (``tests/parity/metadata/*.json``) run in node against the panel's ``mergeTurn``,
``readConversation`` and ``branch`` (``labextension/test/parity_metadata.test.ts``). Each fixture is a section
(absent: a notebook without one) and merges applied in order, each to the result of the last one that changed
something: ``expect`` is the section written (``null``: already recorded, nothing to write), ``refused`` the
one-line reason a section that may not be written is left alone, word for word. ``reads`` (optional) are what
reading the final section gives: a conversation's active leaf and its branch, root first.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_streamchat.persistence._schema import merged_streamchat
from jupyter_streamchat.persistence._section import UnreadableSection, branch, read_conversation

FIXTURES = sorted((Path(__file__).parent / "parity" / "metadata").glob("*.json"))


def test_there_are_metadata_fixtures() -> None:
    assert len(FIXTURES) >= 5


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_merging_the_turns_gives_the_section_of_the_fixture(path: Path) -> None:
    fixture: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    # Given a notebook's metadata with the fixture's section (or none)
    metadata = {"streamchat": fixture["section"]} if "section" in fixture else {}
    for step, merge in enumerate(fixture["merges"]):
        given, before = metadata, copy.deepcopy(metadata)
        # When a turn is merged
        try:
            merged = merged_streamchat(metadata, merge["conversation"], merge["turn"])
        except UnreadableSection as refused:
            # Then a section that may not be written is refused, saying why
            assert refused.reason == merge.get("refused"), f"{path.stem}: merge {step}"
        else:
            # Then the section is the fixture's (or None: the run is already recorded)
            assert "refused" not in merge, f"{path.stem}: merge {step} was not refused"
            assert merged == merge["expect"], f"{path.stem}: merge {step}"
            if merged is not None:
                metadata = {"streamchat": merged}
        # And the metadata it was given is unchanged
        assert given == before, f"{path.stem}: merge {step} changed its input"
    # And reading the result gives the fixture's active leaf and branch
    for read in fixture.get("reads", []):
        conversation = read_conversation(metadata, read["conversation"])
        turns = {turn["run"]: turn for turn in conversation.turns}
        assert conversation.active == read["active"], f"{path.stem}: {read['conversation']}"
        assert [turn["run"] for turn in branch(turns, conversation.active)] == read["branch"]
