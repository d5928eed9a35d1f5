"""A user's type checker sees the public API typed: the package ships ``py.typed`` and real annotations.

mypy (strict, as a careful user runs it) checks two snippets that use the installed package: one uses it
as documented and must be clean, with the widgets' results seen as ``PaneResult``, not ``Any``; the
other makes mistakes a user makes (a model list given to ``chat()``, a reply's text taken for a number)
and must get exactly those errors.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

CORRECT = """
from __future__ import annotations

from jupyter_streamchat import chat, compare
from jupyter_streamchat.client import StreamChatClient
from jupyter_streamchat.kernel import PaneResult


async def main() -> None:
    widget = chat("hello", model="demo:chat", conversation="c1")
    results: list[PaneResult] = await widget.done
    text: str = results[0]["text"]
    note: str = await widget.settled()
    widget.stop()
    pair = compare("hi", ["demo:chat", "demo:fast"])
    rates: list[float | None] = [result["tokens_per_second"] for result in await pair.done]
    async with StreamChatClient("http://127.0.0.1:8888/", token="t") as client:
        models = await client.models()
        record = await client.get_run("abc", wait="recorded")
    reveal_type(widget.results)
    reveal_type(pair.done)
    reveal_type(widget.settled)
    reveal_type(client.stop)
"""

WRONG = """
from __future__ import annotations

from jupyter_streamchat import chat

widget = chat("hello", model=["demo:chat", "demo:fast"])
tokens: int = widget.results[0]["text"]
widget.results[0]["txt"]
"""


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy's lines about each snippet, run once on both (checking the package's imports takes a while)."""
    folder = tmp_path_factory.mktemp("user-project")
    (folder / "correct.py").write_text(CORRECT)
    (folder / "wrong.py").write_text(WRONG)
    # The user's own configuration, strict; this repository's [tool.mypy] must not apply.
    (folder / "mypy.ini").write_text("[mypy]\nstrict = True\n")
    finished = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(folder / ".cache"), "correct.py", "wrong.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    lines: dict[str, list[str]] = {"correct.py": [], "wrong.py": []}
    for line in finished.stdout.splitlines():
        name = line.split(":", 1)[0]
        if name in lines:
            lines[name].append(line)
    assert finished.returncode == 1, f"mypy should have found the mistakes:\n{finished.stdout}{finished.stderr}"
    return lines


def revealed(lines: list[str]) -> list[str]:
    return [match.group(1) for line in lines if (match := re.search(r'Revealed type is "(.*)"', line))]


def test_when_a_user_checks_correct_use_then_mypy_finds_nothing(mypy_output: dict[str, list[str]]) -> None:
    errors = [line for line in mypy_output["correct.py"] if ": error:" in line]
    assert errors == []


def test_when_a_user_checks_correct_use_then_results_done_and_settled_are_typed(
    mypy_output: dict[str, list[str]],
) -> None:
    results, done, settled, stop = revealed(mypy_output["correct.py"])
    # mypy names builtins with or without their module depending on its version.
    assert re.match(r"(builtins\.)?list\[TypedDict\(jupyter_streamchat\.kernel\._results\.PaneResult, ", results)
    assert re.match(r"typing\.Awaitable\[(builtins\.)?list\[TypedDict\([^,]*PaneResult, ", done)
    assert re.fullmatch(r"def \(\) -> typing\.Coroutine\[Any, Any, (builtins\.)?str\]", settled)
    assert re.match(r"def \(run_id: (builtins\.)?str\) -> typing\.Coroutine\[Any, Any, ", stop)
    assert not stop.endswith("Coroutine[Any, Any, Any]")  # the client answers a record, not Any


def test_when_a_user_passes_a_model_list_to_chat_then_mypy_says_so(mypy_output: dict[str, list[str]]) -> None:
    errors = [line for line in mypy_output["wrong.py"] if ": error:" in line]
    assert len(errors) == 3, "\n".join(mypy_output["wrong.py"])
    model_list, text_as_int, unknown_key = errors
    assert 'Argument "model" to "chat" has incompatible type "list[str]"; expected "str | None"' in model_list
    assert 'expression has type "str", variable has type "int"' in text_as_int
    assert 'TypedDict "PaneResult" has no key "txt"' in unknown_key
