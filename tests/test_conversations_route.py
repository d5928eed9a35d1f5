"""``GET streamchat/conversations`` (SPEC 11): a notebook's conversation trees, as a kernel reads them for
``history()`` and ``replay()``; the notebook's turns plus the server's runs not recorded there yet, and the
same refusals as every route that names a notebook."""

from __future__ import annotations

from typing import Any

import httpx
import nbformat
import pytest
from jupyter_server.auth import Authorizer, IdentityProvider, User
from traitlets.config import Config

from harness.upstream import Script, Stall, Text
from jupyter_streamchat.kernel.client import StreamChatAPIError, StreamChatClient
from tests.helpers import collect

NOTEBOOK = "tree.ipynb"


def v1_turn(run: str, prompt: str, reply: str, created: str) -> dict[str, Any]:
    return {
        "run": run,
        "model": "openai:m",
        "mode": "detached",
        "prompt": {"role": "user", "content": prompt},
        "reply": {"role": "assistant", "content": reply, "reasoning": "", "status": "completed", "partial": False,
                  "finish_reason": "stop", "usage": {}, "error": None},
        "created": created,
        "finished": created,
    }  # fmt: skip


@pytest.fixture
def notebook(jp_root_dir) -> str:
    """A version-1 notebook: two turns in "default", one in "other"."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["streamchat"] = {
        "version": 1,
        "conversations": {
            "default": {
                "turns": [
                    v1_turn("r1", "first", "one", "2026-01-01T00:00:00Z"),
                    v1_turn("r2", "second", "two", "2026-01-01T00:01:00Z"),
                ]
            },
            "other": {"turns": [v1_turn("r9", "elsewhere", "nine", "2026-01-01T00:02:00Z")]},
        },
    }
    nbformat.write(nb, jp_root_dir / NOTEBOOK)
    return NOTEBOOK


async def test_a_conversation_is_the_notebooks_tree_plus_the_runs_not_recorded_yet(
    streamchat_client, upstream, notebook
):
    # Given a version-1 notebook and a reply that is still streaming in its default conversation
    upstream.script("slow", Script([Text("half "), Stall(30)]))
    started = await streamchat_client.start_run({"model": "openai:slow", "prompt": "third", "notebook": notebook})
    await upstream.wait_for_request_async("slow")
    # When the kernel asks for the conversation
    answer = await streamchat_client.conversations(notebook, "default")
    # Then it gets the file's turns (read as one branch), then the streaming run, which is the active leaf
    (name,) = answer["conversations"]
    tree = answer["conversations"][name]
    assert answer["notebook"] == notebook and name == "default"
    assert [t["run"] for t in tree["turns"]] == ["r1", "r2", started["id"]]
    assert [t["parent"] for t in tree["turns"]] == [None, "r1", "r2"]
    assert tree["active"] == started["id"] and tree["turns"][2]["reply"]["status"] == "running"
    # And without a conversation every one of them comes, each with its own active leaf
    everything = (await streamchat_client.conversations(notebook))["conversations"]
    assert set(everything) == {"default", "other"} and everything["other"]["active"] == "r9"
    # And once the run is stopped, its recorded turn is listed once, as the notebook now holds it
    await streamchat_client.stop(started["id"])
    await streamchat_client.get_run(started["id"], wait="recorded")
    after = (await streamchat_client.conversations(notebook, "default"))["conversations"]["default"]
    assert [t["run"] for t in after["turns"]] == ["r1", "r2", started["id"]]
    assert after["turns"][2]["reply"] == {**after["turns"][2]["reply"], "status": "stopped", "content": "half "}


async def test_a_conversation_with_no_turn_is_empty_and_runs_without_a_notebook_are_listed_too(
    streamchat_client, upstream, notebook
):
    assert (await streamchat_client.conversations(notebook, "new one"))["conversations"] == {
        "new one": {"active": None, "turns": []}
    }
    upstream.script("m", Script.reply(["ok"]))
    started = await streamchat_client.start_run({"model": "openai:m", "prompt": "hi", "conversation": "loose"})
    await collect(streamchat_client.events(started["id"]))
    loose = await streamchat_client.conversations(None, "loose")
    assert loose["notebook"] is None and loose["conversations"]["loose"]["active"] == started["id"]


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"notebook": "../outside.ipynb"}, 403, "outside"),
        ({"notebook": ".hidden.ipynb"}, 404, ""),
        ({"notebook": "missing.ipynb"}, 404, "no notebook"),
        ({"notebook": "notes.txt"}, 400, "not a notebook"),
        ({"notebook": NOTEBOOK, "conversation": "__proto__"}, 400, "'conversation' must not start with '__'"),
    ],
)
async def test_the_route_refuses_what_routes_naming_a_notebook_refuse(
    streamchat_client, jp_root_dir, notebook, params, status, says
):
    (jp_root_dir / "notes.txt").write_text("not a notebook")
    nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / ".hidden.ipynb")
    response = await streamchat_client._http.get("conversations", params=params)
    assert response.status_code == status
    assert says in response.json()["message"]


async def test_a_section_of_a_newer_version_is_refused_with_its_reason_and_left_alone(streamchat_client, jp_root_dir):
    nb = nbformat.v4.new_notebook()
    nb.metadata["streamchat"] = {"version": 3, "conversations": {}}
    nbformat.write(nb, jp_root_dir / "future.ipynb")
    before = (jp_root_dir / "future.ipynb").read_bytes()
    with pytest.raises(StreamChatAPIError) as refused:
        await streamchat_client.conversations("future.ipynb")
    assert refused.value.status == 409 and "newer than this jupyter_streamchat understands" in refused.value.message
    assert (jp_root_dir / "future.ipynb").read_bytes() == before


async def test_the_route_needs_authentication(streamchat_url, notebook):
    async with httpx.AsyncClient(base_url=streamchat_url) as anonymous:
        response = await anonymous.get("streamchat/conversations", params={"notebook": notebook})
    assert response.status_code == 403


class NoContentsReads(Authorizer):
    """A user who may use streamchat but not read files."""

    def is_authorized(self, handler: Any, user: User, action: str, resource: str) -> bool:
        return resource != "contents"


class TestContentsRead:
    @pytest.fixture
    def jp_server_config(self, streamchat_server_config: dict[str, Any]) -> Config:
        server_app = {**streamchat_server_config["ServerApp"], "authorizer_class": NoContentsReads}
        return Config({**streamchat_server_config, "ServerApp": server_app})

    async def test_reading_a_notebooks_turns_needs_contents_read(self, streamchat_client, notebook):
        with pytest.raises(StreamChatAPIError) as refused:
            await streamchat_client.conversations(notebook)
        assert refused.value.status == 403 and "read contents" in refused.value.message
        # And the runs that name no notebook are still theirs to read
        listed = await streamchat_client.conversations(None, "default")
        assert listed["conversations"]["default"]["turns"] == []


class TwoUsers(IdentityProvider):
    """Two people, each with a token of their own (as on a shared or collaborative server)."""

    people = {"alice-token": "alice", "bob-token": "bob"}

    def get_user(self, handler: Any) -> User | None:
        name = self.people.get(handler.request.headers.get("Authorization", "").removeprefix("token ").strip())
        if name is None:
            return None
        handler._token_authenticated = True  # an API token, as Jupyter's own provider marks it (no XSRF)
        return User(username=name)


class TestTwoUsers:
    @pytest.fixture
    def jp_server_config(self, streamchat_server_config: dict[str, Any]) -> Config:
        server_app = {**streamchat_server_config["ServerApp"], "identity_provider_class": TwoUsers}
        return Config({**streamchat_server_config, "ServerApp": server_app})

    async def test_a_users_runs_not_recorded_yet_are_not_listed_to_another(self, streamchat_url, upstream):
        upstream.script("m", Script.reply(["alice's answer"]))
        async with (
            StreamChatClient(streamchat_url, "alice-token") as alice,
            StreamChatClient(streamchat_url, "bob-token") as bob,
        ):
            started = await alice.start_run({"model": "openai:m", "prompt": "mine", "conversation": "c"})
            await collect(alice.events(started["id"]))
            seen_by_alice = (await alice.conversations(None, "c"))["conversations"]["c"]
            seen_by_bob = (await bob.conversations(None, "c"))["conversations"]["c"]
        assert [turn["run"] for turn in seen_by_alice["turns"]] == [started["id"]]
        assert seen_by_bob == {"active": None, "turns": []}
