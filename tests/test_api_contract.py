"""HTTP contract: authentication, validation errors, limits, models, secrets."""

from __future__ import annotations

import json
import logging
import random
import re

import httpx
import pytest

from harness.upstream import Script, Stall, Status, Text
from jupyter_streamchat.server.handlers import route_table
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.helpers import chat, collect, wait_finished

# Every method of every route (test_the_auth_test_covers_every_route keeps this list complete).
ROUTES = [
    ("GET", "models"),
    ("GET", "runs"),
    ("POST", "runs"),
    ("GET", "runs/abc"),
    ("GET", "runs/abc/events"),
    ("POST", "runs/abc/stop"),
    ("POST", "stream"),
    ("GET", "documents/events?path=n.ipynb"),
    ("GET", "conversations?notebook=n.ipynb"),
    ("GET", "export?notebook=n.ipynb"),
]


@pytest.fixture
def streamchat_settings(streamchat_settings):
    return {**streamchat_settings, "max_body_bytes": 20_000, "max_concurrent_runs": 2, "max_messages": 5}


@pytest.fixture
def raw(streamchat_url):
    """An HTTP client without credentials."""
    return httpx.AsyncClient(base_url=streamchat_url + "streamchat/", timeout=10)


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_refuses_unauthenticated_requests(raw, method, path):
    response = await raw.request(method, path, json=chat("demo:chat"))
    assert response.status_code == 403
    assert "message" in response.json()


def test_the_auth_test_covers_every_route():
    # A route added to the server without being added to ROUTES would go untested for authentication.
    for pattern, handler, _ in route_table(service=None):  # type: ignore[arg-type]  # only the patterns are used
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            if method.lower() not in vars(handler):
                continue
            covered = [p for m, p in ROUTES if m == method and re.fullmatch(pattern, "/streamchat/" + p.split("?")[0])]
            assert covered, f"{method} {pattern} ({handler.__name__}) is missing from ROUTES"


async def test_browser_session_post_needs_the_xsrf_header(streamchat_url, jp_serverapp):
    # Given a browser-like session: logged in with the token, holding session and _xsrf cookies
    async with httpx.AsyncClient(base_url=streamchat_url, timeout=10) as browser:
        await browser.get("login")
        xsrf = browser.cookies["_xsrf"]
        token = jp_serverapp.identity_provider.token
        login = await browser.post("login", data={"password": token, "_xsrf": xsrf})
        assert login.status_code in (200, 302)
        assert (await browser.get("streamchat/models")).status_code == 200
        # When it POSTs without the X-XSRFToken header, Then it is refused
        refused = await browser.post("streamchat/runs", json=chat("demo:fast"))
        assert refused.status_code == 403
        assert (await browser.post("streamchat/stream", json=chat("demo:fast"))).status_code == 403
        # And with the header it is accepted
        accepted = await browser.post("streamchat/runs", json=chat("demo:fast"), headers={"X-XSRFToken": xsrf})
        assert accepted.status_code == 201


async def test_models_lists_configured_providers_without_secrets(streamchat_client, upstream):
    upstream.script("listed-model", Script.reply(["x"]))
    response = await streamchat_client._http.get("models")
    body = response.json()
    ids = {m["id"] for m in body["models"]}
    assert {"demo:chat", "demo:fast", "demo:slow", "demo:long", "demo:thinker"} <= ids
    assert "openai:listed-model" in ids and "anthropic:claude-sonnet-4-5" in ids
    assert all(set(m) == {"id", "provider", "name"} for m in body["models"])
    assert body["default"] in ids
    assert OPENAI_KEY not in response.text and ANTHROPIC_KEY not in response.text


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (json.dumps({"model": "demo:chat"}).encode(), 400, "exactly one of"),
        (json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode(), 400, "role"),
        (json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(), 400, "content"),
        (json.dumps({"messages": []}).encode(), 400, "non-empty"),
        (json.dumps(chat("demo:chat", options={"temperature": "hot"})).encode(), 400, "temperature"),
        (json.dumps(chat("demo:chat", options={"top_k": 3})).encode(), 400, "unknown options"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}] * 6}).encode(), 400, "too many"),
        (json.dumps(chat("demo:chat", text="x" * 30_000)).encode(), 413, "larger than"),
        (json.dumps(chat("nowhere:model")).encode(), 404, "not configured"),
        (json.dumps(chat("demo:no-such-variant")).encode(), 404, "unknown model"),
        (json.dumps(chat("no-colon")).encode(), 404, "provider:model"),
        (json.dumps(chat("demo:chat", notebook="../escape.ipynb")).encode(), 403, "root"),
        (json.dumps(chat("demo:chat", notebook="/etc/passwd")).encode(), 403, "server-relative"),
    ],
)
@pytest.mark.parametrize("route", ["runs", "stream"])
async def test_bad_bodies_get_clear_json_errors(streamchat_client, route, body, status, fragment):
    response = await streamchat_client._http.post(route, content=body)
    assert response.status_code == status
    assert fragment in response.json()["message"]
    assert await streamchat_client.list_runs() == []  # nothing was started


async def test_symlink_leaving_the_root_is_forbidden(streamchat_client, jp_root_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (jp_root_dir / "link").symlink_to(outside)
    response = await streamchat_client._http.post("runs", json=chat("demo:chat", notebook="link/n.ipynb"))
    assert response.status_code == 403


@pytest.mark.parametrize("route", ["runs", "stream"])
async def test_a_request_naming_no_notebook_file_is_refused(streamchat_client, jp_root_dir, route):
    # Given files that are not notebooks, some named like one
    files = {
        "pkg.json": b'{"name": "pkg", "version": "1.0.0"}\n',
        "data.ipynb": b'{"name": "not a notebook"}\n',
        "cellless.ipynb": b'{\n "metadata": {},\n "nbformat": 4,\n "nbformat_minor": 5\n}\n',
    }
    for name, content in files.items():
        (jp_root_dir / name).write_bytes(content)
    (jp_root_dir / "folder.ipynb").mkdir()
    cases = [("missing.ipynb", 404), ("sub/missing.ipynb", 404), ("folder.ipynb", 400)]
    cases += [(name, 400) for name in files]
    for path, status in cases:
        # When a run names one, Then it is refused before it starts, naming the path
        response = await streamchat_client._http.post(route, json=chat("demo:chat", notebook=path))
        assert response.status_code == status, path
        assert path in response.json()["message"]
    assert await streamchat_client.list_runs() == []
    # And nothing was written or created
    assert {name: (jp_root_dir / name).read_bytes() for name in files} == files
    assert not (jp_root_dir / "missing.ipynb").exists() and not (jp_root_dir / "sub").exists()


async def test_unknown_run_is_404_everywhere(streamchat_client):
    for method, path in [("GET", "runs/nope"), ("POST", "runs/nope/stop"), ("GET", "runs/nope/events")]:
        response = await streamchat_client._http.request(method, path)
        assert response.status_code == 404 and "nope" in response.json()["message"]


async def test_bad_resume_point_and_status_filter_are_400(streamchat_client):
    started = await streamchat_client.start_run(chat("demo:fast"))
    response = await streamchat_client._http.get(f"runs/{started['id']}/events", headers={"Last-Event-ID": "x"})
    assert response.status_code == 400
    assert (await streamchat_client._http.get("runs", params={"status": "weird"})).status_code == 400
    await wait_finished(streamchat_client, started["id"])


async def test_concurrency_cap_answers_429_then_recovers(streamchat_client, upstream):
    upstream.script("hold", Script([Text("x"), Stall(30)]))
    first = await streamchat_client.start_run(chat("openai:hold"))
    second = await streamchat_client.start_run(chat("openai:hold"))
    response = await streamchat_client._http.post("runs", json=chat("openai:hold"))
    assert response.status_code == 429 and "limit 2" in response.json()["message"]
    direct = await streamchat_client._http.post("stream", json=chat("openai:hold"))
    assert direct.status_code == 429
    await streamchat_client.stop(first["id"])
    await streamchat_client.stop(second["id"])
    upstream.script("quick", Script.reply(["ok"]))
    third = await streamchat_client.start_run(chat("openai:quick"))
    assert (await wait_finished(streamchat_client, third["id"]))["status"] == "completed"


async def test_garbage_burst_leaves_server_healthy(streamchat_client):
    rng = random.Random(1234)
    statuses = set()
    for _ in range(150):
        route = rng.choice(["runs", "stream", "runs/x/stop"])
        size = rng.randint(0, 400)
        payload = bytes(rng.randrange(256) for _ in range(size))
        response = await streamchat_client._http.post(route, content=payload)
        statuses.add(response.status_code)
        assert response.headers["content-type"].startswith("application/json")
    assert statuses <= {400, 404}
    models = await streamchat_client.models()
    assert models["models"]
    events = await collect(streamchat_client.stream(chat("demo:fast")))
    assert events[-1].json()["status"] == "completed"


async def test_api_keys_never_reach_responses_or_logs(streamchat_client, upstream, caplog):
    caplog.set_level(logging.DEBUG)
    # The extension sets its package logger to the server's level (INFO): open it up to DEBUG here too.
    caplog.set_level(logging.DEBUG, logger="jupyter_streamchat")
    echo = {"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}"}}
    upstream.script("leaky", Script([Status(401, body=echo)]))
    upstream.script("claude-leaky", Script([Status(401, body={"error": {"message": f"bad key {ANTHROPIC_KEY}"}})]))
    bodies = []
    for model in ("openai:leaky", "anthropic:claude-leaky"):
        started = await streamchat_client.start_run(chat(model))
        events = await collect(streamchat_client.events(started["id"]))
        bodies.append("".join(m.data for m in events))
        record = await streamchat_client.get_run(started["id"])
        assert record["status"] == "failed" and "***" in record["error"]["message"]
        bodies.append(json.dumps(record))
    bodies.append(json.dumps(await streamchat_client.list_runs()))
    bodies.append(json.dumps(await streamchat_client.models()))
    # The keys did reach the upstream (so the check is meaningful) ...
    assert (await upstream.wait_for_request_async("leaky")).headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert (await upstream.wait_for_request_async("claude-leaky")).headers["x-api-key"] == ANTHROPIC_KEY
    # ... and never came back out
    everything = "\n".join(bodies) + "\n".join(r.getMessage() for r in caplog.records)
    assert OPENAI_KEY not in everything and ANTHROPIC_KEY not in everything
