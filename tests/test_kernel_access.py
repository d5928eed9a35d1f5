"""The kernel link: what a kernel started by the server finds in its environment, and what it opens.

Kernels inherit the server's environment, so these tests read the published variables from the
(in-process) server's ``os.environ`` exactly as a kernel would, and use them over real HTTP.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from harness.waiting import await_until
from jupyter_streamchat.engine._kernel_contract import ENV_ROOT, ENV_TOKEN, ENV_URL, TOKEN_HEADER
from tests.helpers import chat, wait_finished


async def published_link() -> tuple[str, str]:
    """The link as a kernel started now would see it (published once the server is listening)."""
    await await_until(lambda: os.environ.get(ENV_URL) and os.environ.get(ENV_TOKEN), what="the kernel link")
    return os.environ[ENV_URL], os.environ[ENV_TOKEN]


def same_file(a: str | Path, b: str | Path) -> bool:
    return Path(a).samefile(b)


@pytest.fixture
def jp_base_url() -> str:
    # A JupyterHub-style prefix: the link must include it.
    return "/user/alice/"


async def test_a_kernel_finds_the_server_under_its_base_url(streamchat_url, jp_serverapp, jp_root_dir):
    # Given a running server under /user/alice/
    url, token = await published_link()
    # Then the link is that server, prefix included, and the credential is not the server's token
    assert url == streamchat_url
    assert token and token != jp_serverapp.identity_provider.token
    assert same_file(os.environ[ENV_ROOT], jp_root_dir)
    # When a kernel uses it, Then streamchat answers
    async with httpx.AsyncClient(base_url=url, headers={TOKEN_HEADER: token}, timeout=10) as kernel:
        models = await kernel.get("streamchat/models")
        assert models.status_code == 200
        assert "demo:chat" in {m["id"] for m in models.json()["models"]}
        started = await kernel.post("streamchat/runs", json=chat("demo:fast"))
        assert started.status_code == 201


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "api/contents"),
        ("GET", "api/kernels"),
        ("POST", "api/kernels"),
        ("GET", "api/sessions"),
        ("GET", "api/terminals"),
        ("POST", "api/terminals"),
        ("GET", "api/me"),
    ],
)
async def test_the_kernel_credential_opens_no_other_jupyter_api(streamchat_url, method, path):
    url, token = await published_link()
    async with httpx.AsyncClient(base_url=url, timeout=10) as kernel:
        # When the kernel's credential is presented to another Jupyter API, in any form
        for headers in ({TOKEN_HEADER: token}, {"Authorization": f"token {token}"}):
            response = await kernel.request(method, path, headers=headers, json={})
            # Then it is refused
            assert response.status_code in (401, 403), (path, headers, response.status_code)


async def test_a_wrong_kernel_credential_is_refused(streamchat_url):
    url, token = await published_link()
    async with httpx.AsyncClient(base_url=url, timeout=10) as stranger:
        for presented in ("", "x" * len(token), token[:-1]):
            response = await stranger.get("streamchat/models", headers={TOKEN_HEADER: presented})
            assert response.status_code == 403
            assert token not in response.text


async def test_kernel_started_runs_are_stoppable_and_listed(streamchat_client, streamchat_url):
    url, token = await published_link()
    async with httpx.AsyncClient(base_url=url, headers={TOKEN_HEADER: token}, timeout=10) as kernel:
        run_id = (await kernel.post("streamchat/runs", json=chat("demo:slow"))).json()["id"]
        stopped = await kernel.post(f"streamchat/runs/{run_id}/stop")
        assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    # And the same run is visible to the user's own token (one run, two views)
    assert (await wait_finished(streamchat_client, run_id))["status"] == "stopped"
