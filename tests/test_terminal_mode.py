"""Plain IPython or a script: no event loop runs between inputs, so chat() streams to stdout and returns
when the reply has ended, on the same in-process engine."""

from __future__ import annotations

from jupyter_streamchat import chat, compare


def test_chat_without_a_running_loop_prints_the_reply_and_returns_the_final_widget(capsys, monkeypatch):
    for name in ("JUPYTER_STREAMCHAT_URL", "JUPYTER_STREAMCHAT_TOKEN", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    first = chat("hello terminal", model="demo:fast", conversation="terminal")
    (result,) = first.results
    assert result["status"] == "completed" and "hello terminal" in result["text"]
    printed = capsys.readouterr().out
    assert result["text"] in printed and "persistence is off" in printed
    # The engine persists between calls: the next turn gets the first as history
    second = chat("and again", model="demo:fast", conversation="terminal")
    run = second.backend.service.runs.get(second.results[0]["run"])  # type: ignore[attr-defined]
    assert [m["content"] for m in run.request.messages] == ["hello terminal", result["text"], "and again"]
    # Compare panes fail one by one, never together
    panes = compare("x", ["demo:fast", "demo:nope"]).results
    assert [p["status"] for p in panes] == ["completed", "failed"]
