"""``GET streamchat/export`` (SPEC 11): the branch ending at ``leaf`` as a file to download, rendered by the one
Python renderer ``history()`` uses (``jupyter_streamchat.export``), with the refusals of ``GET conversations``."""

from __future__ import annotations

import json
import sys
from typing import Any

import httpx
import nbformat
import pytest

from harness.upstream import Script, Stall, Text
from jupyter_streamchat import export
from jupyter_streamchat.kernel import _static

NOTEBOOK = "tree.ipynb"
# A reply that asks a browser to fetch things: an image in Markdown and in raw HTML.
REMOTE = "See ![pixel](http://127.0.0.1:9/pixel.png) and <img src='http://127.0.0.1:9/raw.png'>"


def turn(run: str, parent: str | None, prompt: str, reply: str, **extra: Any) -> dict[str, Any]:
    return {
        "run": run,
        "parent": parent,
        "model": "openai:m",
        "mode": "detached",
        "prompt": {"role": "user", "content": prompt},
        "reply": {"role": "assistant", "content": reply, "reasoning": "", "status": "completed", "partial": False,
                  "finish_reason": "stop", "usage": {"output_tokens": 40}, "error": None},
        "created": "2026-01-01T00:00:00+00:00",
        "first_token": "2026-01-01T00:00:00.500000+00:00",
        "finished": "2026-01-01T00:00:04.500000+00:00",
        **extra,
    }  # fmt: skip


TURNS = [
    turn("r1", None, "first question", "one **bold**", cost=0.0123),
    turn("r2a", "r1", "second, first try", "two-a"),
    turn("r2b", "r1", "second, edited", REMOTE, cost=0.5),
]


@pytest.fixture
def notebook(jp_root_dir) -> str:
    """A conversation with two branches: r1 → r2a and r1 → r2b (active)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["streamchat"] = {"version": 2, "conversations": {"default": {"turns": TURNS, "active": "r2b"}}}
    nbformat.write(nb, jp_root_dir / NOTEBOOK)
    return NOTEBOOK


async def get_export(client: Any, **params: str) -> httpx.Response:
    return await client._http.get("export", params=params)


async def test_markdown_is_the_branch_ending_at_leaf_as_history_writes_it(streamchat_client, notebook):
    # When the panel exports the branch it shows, which is not the notebook's active one
    response = await get_export(streamchat_client, notebook=notebook, leaf="r2a", format="markdown")
    # Then it gets that branch, root first, in history().to_markdown()'s words, as a file to download
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="tree-default.md"'
    assert response.text == export.branch_markdown(TURNS[:2])
    assert response.text == (
        "**You**\n\nfirst question\n\n**openai:m** (completed · first token 0.50 s · 10.0 tok/s · 40 tokens · $0.0123)"
        "\n\none **bold**\n\n---\n\n**You**\n\nsecond, first try\n\n"
        "**openai:m** (completed · first token 0.50 s · 10.0 tok/s · 40 tokens)\n\ntwo-a\n"
    )


async def test_without_a_leaf_the_active_branch_is_exported_with_a_run_not_in_the_file_yet(
    streamchat_client, upstream, notebook
):
    # Given a reply still streaming after the active turn
    upstream.script("slow", Script([Text("half "), Stall(30)]))
    started = await streamchat_client.start_run({"model": "openai:slow", "prompt": "third", "notebook": notebook})
    await upstream.wait_for_request_async("slow")
    # When the branch is exported as JSON with no leaf
    response = await get_export(streamchat_client, notebook=notebook, format="json")
    # Then it is the active branch the server knows: the file's turns, then the running one
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="tree-default.json"'
    exported = json.loads(response.text)
    assert exported["notebook"] == notebook and exported["conversation"] == "default"
    assert [t["run"] for t in exported["turns"]] == ["r1", "r2b", started["id"]]
    assert exported["turns"][0] == TURNS[0]
    await streamchat_client.stop(started["id"])
    await streamchat_client.get_run(started["id"], wait="recorded")


async def test_html_is_a_standalone_page_of_the_static_output_that_fetches_nothing(streamchat_client, notebook):
    response = await get_export(streamchat_client, notebook=notebook, leaf="r2b", format="html")
    page = response.text
    # Then it is a page of its own with the static output's CSS and its rendering of the branch
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="tree-default.html"'
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert _static.STYLE in page and export.branch_html([TURNS[0], TURNS[2]]) in page
    assert "<title>tree.ipynb: first question</title>" in page
    assert '<span class="jsc-model">openai:m</span>' in page and "2 turns · $0.512" in page
    # And the reply's images are not fetched: no image element, the raw HTML shown as text, a policy against it
    assert "<img" not in page and "&lt;img src=" in page and "pixel" in page
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_conversation_with_no_turn_exports_empty(streamchat_client, notebook):
    response = await get_export(streamchat_client, notebook=notebook, conversation="new one", format="markdown")
    assert response.status_code == 200 and response.text == ""
    assert response.headers["content-disposition"] == 'attachment; filename="tree-new-one.md"'


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"notebook": "../outside.ipynb"}, 403, "outside"),
        ({"notebook": ".hidden.ipynb"}, 404, ""),
        ({"notebook": "missing.ipynb"}, 404, "no notebook"),
        ({"notebook": "notes.txt"}, 400, "not a notebook"),
        ({"notebook": NOTEBOOK, "conversation": "__proto__"}, 400, "'conversation' must not start with '__'"),
        ({"notebook": NOTEBOOK, "leaf": "__proto__"}, 400, "'leaf' must be a run id"),
        ({"notebook": NOTEBOOK, "leaf": "../r1"}, 400, "'leaf' must be a run id"),
        ({"notebook": NOTEBOOK, "leaf": "nope"}, 404, "'leaf' 'nope' names no turn of conversation 'default'"),
        ({"notebook": NOTEBOOK, "leaf": "r1", "conversation": "other"}, 404, "names no turn"),
        ({"notebook": NOTEBOOK, "format": "pdf"}, 400, "'format' must be one of markdown, html, json"),
    ],
)
async def test_the_route_refuses_what_the_conversations_route_refuses_and_bad_leaves_and_formats(
    streamchat_client, jp_root_dir, notebook, params, status, says
):
    (jp_root_dir / "notes.txt").write_text("not a notebook")
    nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / ".hidden.ipynb")
    response = await get_export(streamchat_client, **params)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert says in response.json()["message"]


async def test_the_route_needs_authentication(streamchat_url, notebook):
    async with httpx.AsyncClient(base_url=streamchat_url) as anonymous:
        response = await anonymous.get("streamchat/export", params={"notebook": notebook})
    assert response.status_code == 403


def test_the_server_and_the_renderer_load_without_ipywidgets():
    # The server renders exports: loading it must not need the kernel's widgets (a server-only install).
    import subprocess

    code = (
        "import sys, jupyter_streamchat.server.app, jupyter_streamchat.server._export, jupyter_streamchat.export\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'IPython')))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
