"""An upstream that echoes the API key never gets it out of the server (SPEC 2).

A real server process (its real log, journal file and notebook file) talks to the loopback upstream,
which echoes keys in every way a provider or proxy can send text back: an HTTP error body (JSON or
plain text, the key at many offsets, around the cut), a malformed stream chunk, an error event inside
the stream, on both wire formats, for detached runs and direct streams. After each case, no piece
of a key is in any response, SSE event, run record, notebook file, journal file or log line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest

from harness.server_process import ServerProcess, serving
from harness.upstream import FakeUpstream, Malformed, Script, Status, StreamError, Text
from jupyter_streamchat.client import StreamChatClient
from jupyter_streamchat.providers._redact import ERROR_TEXT_LIMIT, REDACTED
from tests.helpers import chat, collect
from tests.test_logging import wait_for_line

OPENAI_KEY = "sk-QZ7XK2M9VW4PJ8RT5NB3"
ANTHROPIC_KEY = "sk-ant-HY6GC3LD8FE2TU9SA4WM"
# Keys as a provider (or a proxy in front of it) may echo them: in the header it was sent in, or bare.
ECHOED = {"openai": f"Bearer {OPENAI_KEY}", "anthropic": f"x-api-key: {ANTHROPIC_KEY}"}
NOTEBOOK = "keys.ipynb"
# Any 6 characters of a key after its common prefix count as a leak: the issue saw 13 of 17 leak.
FRAGMENT = 6
PAD = "." * (3 * ERROR_TEXT_LIMIT)
# Where in a body the key is put: the start, the middle, around the old 500-character cut, around
# the error text limit, and the very end.
OFFSETS = sorted(
    {0, 100, *range(490, 511), *range(ERROR_TEXT_LIMIT - 30, ERROR_TEXT_LIMIT + 3, 3), len(PAD) - 1, len(PAD)}
)


def fragments() -> set[str]:
    found = set()
    for key in (OPENAI_KEY, ANTHROPIC_KEY):
        secret = key.removeprefix("sk-ant-").removeprefix("sk-")
        found |= {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}
    return found


FRAGMENTS = fragments()


def leaked(text: str) -> list[str]:
    return sorted(fragment for fragment in FRAGMENTS if fragment in text)


def body_with_key(provider: str, offset: int, size: int = len(PAD)) -> str:
    """``size`` characters of padding with the echoed key starting at ``offset`` (a cut may fall anywhere)."""
    return PAD[:offset] + ECHOED[provider] + PAD[offset:size]


@pytest.fixture(scope="module")
def key_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, key_upstream: FakeUpstream) -> Iterator[ServerProcess]:
    args = [
        f"--StreamChat.anthropic_api_key={ANTHROPIC_KEY}",
        f"--StreamChat.anthropic_base_url={key_upstream.anthropic_base_url}",
        # One retry: the retry path runs, without waiting long on it.
        "--StreamChat.upstream_retry_attempts=2",
        "--StreamChat.upstream_retry_max_wait=1",
    ]
    process = ServerProcess(
        tmp_path_factory.mktemp("keys"), key_upstream.openai_base_url, extra_args=args, openai_api_key=OPENAI_KEY
    )
    with serving(process, NOTEBOOK):
        yield process


async def fail_both_ways(server: ServerProcess, model: str) -> list[dict[str, Any]]:
    """Run ``model`` detached and as a direct stream into the notebook; each must fail. Everything a client
    got is checked for the key here; the errors are returned."""
    async with StreamChatClient(server.base_url, server.token, timeout=20) as client:
        return await _fail_both_ways(client, server, model)


async def _fail_both_ways(client: StreamChatClient, server: ServerProcess, model: str) -> list[dict[str, Any]]:
    conversation = model.partition(":")[2]
    body = chat(model, "hello", notebook=NOTEBOOK, conversation=conversation)
    started = await client.start_run(body)
    detached = await collect(client.events(started["id"]))
    direct = await collect(client.stream(body))
    direct_id = direct[0].json()["id"]
    errors = []
    for run_id, events in ((started["id"], detached), (direct_id, direct)):
        done = events[-1].json()
        assert events[-1].event == "done" and done["status"] == "failed", done
        record = await client.get_run(run_id)
        assert record["error"] == done["error"]
        assert not leaked(json.dumps(record)), record
        assert not leaked("".join(f"{m.event}{m.data}" for m in events))
        # The notebook and the journal are written once the run is recorded (the journal first).
        wait_for_line(server, rf"streamchat run {re.escape(run_id)} recorded in {NOTEBOOK} \(file\)$")
        errors.append(done["error"])
    listed = await client.list_runs(conversation=conversation)
    assert len(listed) == 2 and not leaked(json.dumps(listed))
    assert_nothing_stored_leaks(server)
    return errors


def assert_nothing_stored_leaks(server: ServerProcess) -> None:
    stored = {"log": server.log_path.read_bytes(), "notebook": (server.root / NOTEBOOK).read_bytes()}
    for path in server.journal.parent.glob(server.journal.name + "*"):  # the database, its WAL and -shm
        if path.is_file():
            stored[path.name] = path.read_bytes()
    for name, data in stored.items():
        assert not leaked(data.decode("utf-8", "replace")), f"a key leaked into the {name}"


def model_id(provider: str, name: str) -> str:
    return f"{provider}:{name}"


# ----- HTTP error bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("offset", OFFSETS)
async def test_a_plain_text_error_body_echoing_the_key_leaks_no_piece_of_it(server, key_upstream, provider, offset):
    # Given a provider that answers 401 with a plain-text body holding the key at ``offset``
    name = f"plain-{provider}-{offset}"
    key_upstream.script(name, Script([Status(401, body=body_with_key(provider, offset))]))
    # When a detached run and a direct stream ask it
    errors = await fail_both_ways(server, model_id(provider, name))
    # Then both fail with the provider's status, say what it answered, and no piece of the key is anywhere
    for error in errors:
        assert error["code"] == "upstream_http_error" and error["upstream_status"] == 401
        assert len(error["message"]) <= ERROR_TEXT_LIMIT
        if offset < ERROR_TEXT_LIMIT - 100:
            assert REDACTED in error["message"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("offset", OFFSETS)
async def test_a_json_error_body_echoing_the_key_leaks_no_piece_of_it(server, key_upstream, provider, offset):
    # Given a provider that answers 401 with its JSON error shape, the key inside the message
    name = f"json-{provider}-{offset}"
    message = body_with_key(provider, offset)
    body = (
        {"error": {"message": message, "type": "invalid_request_error"}}
        if provider == "openai"
        else {"type": "error", "error": {"type": "authentication_error", "message": message}}
    )
    key_upstream.script(name, Script([Status(401, body=body)]))
    # When a detached run and a direct stream ask it
    errors = await fail_both_ways(server, model_id(provider, name))
    # Then no piece of the key is anywhere
    for error in errors:
        assert error["upstream_status"] == 401 and len(error["message"]) <= ERROR_TEXT_LIMIT


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("status", [401, 429, 500])
@pytest.mark.parametrize("shape", ["json", "plain"])
async def test_retried_and_final_statuses_echoing_the_key_leak_nothing(server, key_upstream, provider, status, shape):
    # Given a provider that answers ``status`` (429 and 500 are retried once) with the key in the body
    name = f"status-{provider}-{status}-{shape}"
    message = body_with_key(provider, 200, 400)
    body: Any = {"error": {"message": message}} if shape == "json" else message
    key_upstream.script(name, Script([Status(status, body=body, headers={"Retry-After": "0"})]))
    # When runs ask it, Then they fail with that status and nothing leaks (the retry's log line neither)
    for error in await fail_both_ways(server, model_id(provider, name)):
        assert error["upstream_status"] == status and REDACTED in error["message"]
    retried = len(key_upstream.requests_for(name))
    assert retried == (4 if status in (429, 500) else 2)


# ----- inside a stream --------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("offset", [0, 1, 40, *range(60, 100, 3), 150, 500])
async def test_a_malformed_chunk_echoing_the_key_leaks_no_piece_of_it(server, key_upstream, provider, offset):
    # Given a stream that sends some text, then a chunk that is not JSON and holds the key (issue 15 item 9)
    name = f"malformed-{provider}-{offset}"
    raw = f"data: {{not json {PAD[:offset]}{ECHOED[provider]} and more{PAD[:50]}\n\n".encode()
    key_upstream.script(name, Script([Text("part"), Malformed(raw)]))
    # When runs read it, Then they fail as malformed, keep their text, and nothing leaks
    for error in await fail_both_ways(server, model_id(provider, name)):
        assert error["code"] == "upstream_malformed"
        assert "not json" in error["message"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("offset", [0, 100, 500, ERROR_TEXT_LIMIT - 10, ERROR_TEXT_LIMIT + 10])
async def test_an_error_event_echoing_the_key_leaks_no_piece_of_it(server, key_upstream, provider, offset):
    # Given a provider that reports an error inside its 200 stream (OpenAI: an error chunk; Anthropic:
    # ``event: error``) whose message holds the key
    name = f"event-{provider}-{offset}"
    key_upstream.script(name, Script([Text("part"), StreamError(body_with_key(provider, offset), "api_error")]))
    # When runs read it, Then they fail with the provider's error, redacted, and nothing leaks
    for error in await fail_both_ways(server, model_id(provider, name)):
        assert error["code"] == "upstream_error" and len(error["message"]) <= ERROR_TEXT_LIMIT


async def test_a_provider_echoing_another_providers_key_or_an_unknown_bearer_token_leaks_neither(server, key_upstream):
    # Given the openai upstream echoing the anthropic key, and a credential header this server never sent
    name = "cross"
    unknown = "Bearer sk-proxy-UNKNOWNTOKEN42"
    body = f"forwarded x-api-key: {ANTHROPIC_KEY}; Authorization: {unknown}; bare {ANTHROPIC_KEY}"
    key_upstream.script(name, Script([Status(403, body=body)]))
    # When a run asks it, Then neither the configured key nor the echoed token is in any error
    for error in await fail_both_ways(server, model_id("openai", name)):
        assert "UNKNOWNTOKEN42" not in error["message"] and error["message"].count(REDACTED) == 3


def test_credentials_in_a_base_url_stay_out_of_the_retry_log(tmp_path: Path, key_upstream: FakeUpstream):
    # Given a provider configured with credentials in its URL (a proxy's user and password)
    secret_url = key_upstream.openai_base_url.replace("://", f"://user:{OPENAI_KEY}@")
    process = ServerProcess(
        tmp_path / "server",
        secret_url,
        extra_args=["--StreamChat.upstream_retry_attempts=2", "--StreamChat.upstream_retry_max_wait=1"],
    )
    nbformat.write(nbformat.v4.new_notebook(), process.root / NOTEBOOK)
    process.start()
    try:
        # When a request is retried (the retry path logs which upstream it retries)
        key_upstream.script("url-retry", Script([Status(503, body="busy", headers={"Retry-After": "0"})]))
        started = httpx.post(
            f"{process.base_url}streamchat/runs",
            json=chat("openai:url-retry", notebook=NOTEBOOK),
            headers={"Authorization": f"token {process.token}"},
            timeout=10,
        ).json()
        wait_for_line(process, r"retrying in")
        wait_for_line(process, rf"streamchat run {re.escape(started['id'])} recorded in {NOTEBOOK} \(file\)$")
        # Then the log names the upstream without its credentials, and nothing stored has them
        assert_nothing_stored_leaks(process)
    finally:
        process.close()
