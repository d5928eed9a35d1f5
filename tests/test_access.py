"""Who may do what (SPEC 4): Jupyter's authorizer decides, and a run belongs to the user who started it.

Real servers with real Jupyter auth classes configured, as a deployment would: an Authorizer that lets
users chat but not write contents, and an IdentityProvider that maps two tokens to two people (as on a
JupyterHub-shared or collaborative server, where every user has an identity of their own).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import httpx
import nbformat
import pytest
from jupyter_server.auth import Authorizer, IdentityProvider, User
from traitlets.config import Config

from harness.upstream import Script, Stall, Text
from harness.waiting import await_until
from jupyter_streamchat.client import StreamChatAPIError, StreamChatClient
from jupyter_streamchat.engine._kernel_contract import ENV_TOKEN, TOKEN_HEADER
from tests.helpers import chat, collect, wait_finished


class NoContentsWrites(Authorizer):
    """A user who may use streamchat (and read), but not write files."""

    def is_authorized(self, handler: Any, user: User, action: str, resource: str) -> bool:
        return not (resource == "contents" and action == "write")


class TwoUsers(IdentityProvider):
    """Two people, each with a token of their own."""

    people = {"alice-token": "alice", "bob-token": "bob"}

    def get_user(self, handler: Any) -> User | None:
        presented = handler.request.headers.get("Authorization", "").removeprefix("token ").strip()
        name = self.people.get(presented)
        if name is None:
            return None
        handler._token_authenticated = True  # an API token, as Jupyter's own provider marks it (no XSRF)
        return User(username=name)


def with_server_app(config: dict[str, Any], **server_app: Any) -> Config:
    return Config({**config, "ServerApp": {**config["ServerApp"], **server_app}})


class TestContentsPermission:
    @pytest.fixture
    def jp_server_config(self, streamchat_server_config: dict[str, Any]) -> Config:
        return with_server_app(streamchat_server_config, authorizer_class=NoContentsWrites)

    @pytest.mark.parametrize("route", ["runs", "stream"])
    async def test_naming_a_notebook_needs_contents_write(self, streamchat_client, jp_root_dir, route):
        nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / "nb.ipynb")
        before = (jp_root_dir / "nb.ipynb").read_bytes()
        # When a user who may chat but not write contents names a notebook
        response = await streamchat_client._http.post(route, json=chat("demo:fast", notebook="nb.ipynb"))
        # Then it is refused before any run starts, with a JSON message
        assert response.status_code == 403
        assert "contents" in response.json()["message"]
        assert await streamchat_client.list_runs() == []
        # And a chat that names no notebook is still theirs to have
        events = await collect(streamchat_client.stream(chat("demo:fast")))
        assert events[-1].json()["status"] == "completed"
        assert (jp_root_dir / "nb.ipynb").read_bytes() == before

    async def test_the_open_document_stream_needs_contents_write(self, streamchat_client):
        # A page merges the turns it is told of into its open documents: only for someone who may save them
        request = streamchat_client._http.build_request("GET", "documents/events", params={"path": "nb.ipynb"})
        response = await streamchat_client._http.send(request, stream=True)
        try:
            assert response.status_code == 403
            assert "contents" in json.loads(await response.aread())["message"]
        finally:
            await response.aclose()


class TestTwoUsers:
    @pytest.fixture
    def jp_server_config(self, streamchat_server_config: dict[str, Any]) -> Config:
        return with_server_app(streamchat_server_config, identity_provider_class=TwoUsers)

    @pytest.fixture
    def people(self, streamchat_url: str, jp_asyncio_loop: asyncio.AbstractEventLoop):
        alice = StreamChatClient(streamchat_url, "alice-token", timeout=10)
        bob = StreamChatClient(streamchat_url, "bob-token", timeout=10)
        yield alice, bob
        jp_asyncio_loop.run_until_complete(alice.aclose())
        jp_asyncio_loop.run_until_complete(bob.aclose())

    async def test_a_run_is_only_seen_and_stopped_by_who_started_it(self, people, upstream):
        alice, bob = people
        upstream.script("private", Script([Text("alice's "), Text("secret"), Stall(30)]))
        upstream.script("bobs", Script.reply(["bob's answer"]))
        # Given a run of alice's, streaming, and one of bob's
        mine = (await alice.start_run(chat("openai:private", "alice's question")))["id"]
        await collect(alice.events(mine), limit=1)
        theirs = (await bob.start_run(chat("openai:bobs")))["id"]
        await wait_finished(bob, theirs)
        # Then each one's list holds their own run only, whatever the filter
        assert [run["id"] for run in await alice.list_runs()] == [mine]
        assert [run["id"] for run in await bob.list_runs()] == [theirs]
        assert await bob.list_runs(status="running") == []
        # And the run records who started it
        assert (await alice.get_run(mine))["owner"] == "alice"
        # And to bob, alice's run does not exist: no record, no events, no stop
        unknown = await bob._http.get("runs/no-such-run")
        for method, path in [("GET", f"runs/{mine}"), ("GET", f"runs/{mine}/events"), ("POST", f"runs/{mine}/stop")]:
            response = await bob._http.request(method, path)
            assert response.status_code == 404, (method, path)
            assert response.json()["message"] == unknown.json()["message"].replace("no-such-run", mine)
            assert "secret" not in response.text
        # And bob's stop did nothing: alice's run is still streaming, and hers to stop
        assert (await alice.get_run(mine))["status"] == "running"
        assert (await alice.stop(mine))["status"] == "stopped"
        with pytest.raises(StreamChatAPIError) as refused:
            await alice.get_run(theirs)
        assert refused.value.status == 404

    async def test_the_kernel_credential_acts_as_the_servers_owner(self, people, monkeypatch, streamchat_url):
        # Given a server that belongs to alice (as JupyterHub tells its single-user servers)
        monkeypatch.setenv("JUPYTERHUB_USER", "alice")
        alice, bob = people
        await await_until(lambda: os.environ.get(ENV_TOKEN), what=f"the server to set {ENV_TOKEN}")
        # When a kernel on it starts a run with its scoped credential
        headers = {TOKEN_HEADER: os.environ[ENV_TOKEN]}
        async with httpx.AsyncClient(base_url=streamchat_url + "streamchat/", headers=headers, timeout=10) as kernel:
            started = await kernel.post("runs", json=chat("demo:fast"))
            assert started.status_code == 201
            run_id = started.json()["id"]
            # Then the run is alice's: she sees it, bob does not, and the kernel sees it too
            assert (await kernel.get(f"runs/{run_id}")).status_code == 200
        assert (await wait_finished(alice, run_id))["owner"] == "alice"
        assert [run["id"] for run in await bob.list_runs()] == []
