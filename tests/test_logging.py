"""What a real server process logs, with Jupyter's default logging configuration (nothing configured).

An operator reads the server's stderr: every finished run is one line there (a warning with the error
code when it failed), the lines of every module (such as "recorded in") come out too, and neither an
API key nor the text of a prompt or a reply ever does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import pytest

from harness.server_process import ServerProcess, serving
from harness.upstream import FakeUpstream, Script, Status
from harness.waiting import wait_until
from jupyter_streamchat.client import StreamChatClient
from tests.helpers import chat, collect, text_of, wait_finished

API_KEY = "sk-test-LOGGED-NEVER-0123456789abcdef"
PROMPT = "PROMPT-TEXT-zebra-crossing-4711"
REPLY = ["REPLY-TEXT-", "giraffe-", "neck"]
NOTEBOOK = "logged.ipynb"


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream) -> Iterator[ServerProcess]:
    # ServerProcess configures openai with a placeholder key; anthropic is configured here with a real-looking one.
    keyed = [
        f"--StreamChat.anthropic_api_key={API_KEY}",
        f"--StreamChat.anthropic_base_url={upstream.anthropic_base_url}",
    ]
    process = ServerProcess(tmp_path / "server", upstream.openai_base_url, extra_args=keyed)
    with serving(process, NOTEBOOK):
        yield process


def wait_for_line(server: ServerProcess, pattern: str) -> re.Match[str]:
    return wait_until(
        lambda: re.search(pattern, server.log_path.read_text(errors="replace"), re.M),
        what=lambda: f"a line matching {pattern!r}; log:\n{server.log_tail()}",
    )


async def test_finished_runs_are_logged_without_secrets_or_text(server: ServerProcess, upstream: FakeUpstream):
    upstream.script("logged-ok", Script.reply(REPLY))
    upstream.script("logged-denied", Script([Status(401, body={"error": {"message": f"bad key {API_KEY}"}})]))
    async with StreamChatClient(server.base_url, server.token, timeout=10) as client:
        # Given a run that completes into a notebook, and one whose provider refuses it
        done = await client.start_run(chat("anthropic:logged-ok", PROMPT, notebook=NOTEBOOK))
        assert text_of(await collect(client.events(done["id"]))) == "".join(REPLY)
        failed = await client.start_run(chat("anthropic:logged-denied", PROMPT))
        assert (await wait_finished(client, failed["id"]))["status"] == "failed"

    # Then the server's log has one INFO line for the completed run: id, model, mode, status, duration, tokens
    ok = wait_for_line(server, rf"^\[I [^]]*\] streamchat run {re.escape(done['id'])} completed: (.*)$")
    assert re.fullmatch(r"model anthropic:logged-ok, detached, \d+\.\d\ds, tokens \d+ in / 3 out", ok.group(1))
    # And a WARNING for the failed one, with its error code
    warning = rf"^\[W [^]]*\] streamchat run {re.escape(failed['id'])} failed \(upstream_http_error\): (.*)$"
    assert "model anthropic:logged-denied, detached" in wait_for_line(server, warning).group(1)
    # And module loggers reach the same log (the line harness/lab.py's recorded_how reads)
    wait_for_line(server, rf"streamchat run {re.escape(done['id'])} recorded in {NOTEBOOK} \(file\)$")
    # And nothing logged carries the key, the prompt or the reply
    log = server.log_path.read_text(errors="replace")
    assert log.count(f"streamchat run {done['id']} completed") == 1
    for secret in (API_KEY, PROMPT, "giraffe"):
        assert secret not in log


def test_a_package_logger_configured_by_the_user_is_left_alone(tmp_path: Path, upstream: FakeUpstream):
    # Given a server whose logging_config routes jupyter_streamchat itself (as harness/lab.py does)
    process = ServerProcess(tmp_path / "server", upstream.openai_base_url)
    routed = {"loggers": {"jupyter_streamchat": {"level": "INFO", "handlers": ["console"]}}}
    (process.workdir / "config" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"logging_config": routed}})
    )
    nbformat.write(nbformat.v4.new_notebook(), process.root / NOTEBOOK)
    process.start()
    try:
        upstream.script("routed", Script.reply(["fine"]))

        def recorded_line(run_id: str) -> str:
            line = rf"streamchat run {re.escape(run_id)} recorded in {NOTEBOOK} \(file\)$"
            wait_for_line(process, line)
            return line

        def start_run() -> str:
            body = chat("openai:routed", notebook=NOTEBOOK)
            headers = {"Authorization": f"token {process.token}"}
            return str(
                httpx.post(f"{process.base_url}streamchat/runs", json=body, headers=headers, timeout=10).json()["id"]
            )

        line = recorded_line(start_run())
        # A later run's line ends the check: a duplicate comes from the same logging call, so before that line
        recorded_line(start_run())
        # Then its lines come out once, through the user's handler only
        assert len(re.findall(line, process.log_path.read_text(errors="replace"), re.M)) == 1
    finally:
        process.close()
