"""What a user who cloned the repository reads and runs: the help, the reference in docs/, the README's
links and versions, and the pytest plugin used exactly as the README says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from jupyter_streamchat.server.app import StreamChat

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = ["api.md", "events.md", "statuses.md", "metadata.md", "configuration.md"]


def config_traits() -> list[str]:
    return sorted(StreamChat.class_own_traits(config=True))


def test_help_all_lists_every_trait():
    result = subprocess.run(
        [sys.executable, "-m", "jupyter_streamchat", "--help-all"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    listed = set(re.findall(r"^--StreamChat\.(\w+)=", result.stdout, re.M))
    assert set(config_traits()) <= listed, f"missing from --help-all: {set(config_traits()) - listed}"
    # with their help text, as `grep -A2 StreamChat` shows it
    assert "Runs streaming at once; more are refused with 429." in result.stdout


def test_the_configuration_page_is_generated_from_the_traits():
    result = subprocess.run(
        [sys.executable, str(DOCS / "generate_configuration.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    page = (DOCS / "configuration.md").read_text()
    for name in config_traits():
        assert f"`c.StreamChat.{name}`" in page


def test_the_reference_pages_exist_and_every_link_stays_in_the_repository():
    assert all((DOCS / page).is_file() for page in PAGES)
    readme = (REPO / "README.md").read_text()
    for page in PAGES:
        assert f"(docs/{page})" in readme, f"the README does not link docs/{page}"
    for document in [REPO / "README.md", *(DOCS / page for page in PAGES)]:
        for target in re.findall(r"\]\(([^)\s]+)\)", document.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            path = (document.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(REPO), f"{document.name} links {target}, outside the repository"
            assert path.exists(), f"{document.name} links {target}, which does not exist"


def test_the_stated_versions_agree_with_the_packaging():
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    python = re.fullmatch(r">=\s*(3\.\d+)", requires).group(1)  # type: ignore[union-attr]
    lock = json.loads((REPO / "labextension" / "package-lock.json").read_text())
    node = lock["packages"]["node_modules/@rspack/core"]["engines"]["node"]  # the bundler sets the floor
    floors = re.findall(r"(\d+\.\d+)\.\d+", node)  # "^20.19.0 || >=22.12.0" -> 20.19, 22.12
    assert floors
    readme = (REPO / "README.md").read_text()
    notes = (REPO / "labextension" / "INSTALL-NOTES.md").read_text()
    for name, text in (("README.md", readme), ("INSTALL-NOTES.md", notes)):
        assert set(re.findall(r"Python\s*(?:≥|>=)\s*(3\.\d+)", text)) == {python}, name
        stated = re.search(r"Node\.js\s*(?:≥|>=)\s*(\d+\.\d+)\s*\(([^)]*)\)", text)
        assert stated, f"{name} states no Node.js version"
        assert stated.group(1) == floors[0] and all(f"{floor}+" in stated.group(2) for floor in floors), name


def test_the_pytest_plugin_alone_serves_the_extension(pytester: pytest.Pytester):
    # A project of a user: one line in its conftest, nothing else
    pytester.makeconftest('pytest_plugins = ["jupyter_streamchat.pytest_plugin"]\n')
    pytester.makepyfile(
        test_user="""
        import pytest

        @pytest.fixture
        def streamchat_settings():
            return {"ollama_enabled": False, "demo_speed": 50.0}

        async def test_models(streamchat_client):
            models = await streamchat_client.models()
            assert "demo:fast" in {model["id"] for model in models["models"]}

        async def test_a_run(streamchat_client):
            body = {"model": "demo:fast", "messages": [{"role": "user", "content": "hi"}]}
            events = [event async for event in streamchat_client.stream(body)]
            assert events[0].event == "run" and events[-1].json()["status"] == "completed"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=180)
    result.assert_outcomes(passed=2)
