"""Parameters, system prompt, the reproducibility record and cost (SPEC 11), through a real server and the
loopback upstream in both wire formats."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import nbformat
import pytest

from harness.upstream import Done, Finish, Script, Text, Usage
from harness.waiting import await_until
from jupyter_streamchat.kernel.client import StreamChatAPIError
from tests.helpers import collect

NOTEBOOK = "params.ipynb"
OPTIONS = {"temperature": 0.3, "max_tokens": 50, "seed": 7, "top_p": 0.9}
SYSTEM = "Answer in one sentence."
PRICES = {
    "openai:priced": {"input": 2.0, "output": 8.0},
    "anthropic:claude-priced": {"input": 3, "output": 15},
    "demo:chat": {"input": 0, "output": 0},
    "opneai:priced": {"input": 1, "output": 1},  # a typo'd provider
    "anthropic:claude-typo": {"input": 1, "output": 1},  # not among the models anthropic lists
}


@pytest.fixture
def streamchat_settings(streamchat_settings: dict[str, Any]) -> dict[str, Any]:
    return {**streamchat_settings, "prices": PRICES, "anthropic_models": ["claude-priced", "claude-x"]}


@pytest.fixture
def notebook(jp_root_dir) -> str:
    nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / NOTEBOOK)
    return NOTEBOOK


def the_turn(root, run_id: str) -> dict:
    conversations = nbformat.read(root / NOTEBOOK, as_version=4).metadata["streamchat"]["conversations"]
    (turn,) = [t for c in conversations.values() for t in c["turns"] if t["run"] == run_id]
    return turn


async def run_to_end(client, body: dict) -> dict:
    started = await client.start_run({"notebook": NOTEBOOK, **body})
    await collect(client.events(started["id"]))
    record = await client.get_run(started["id"], wait="recorded")
    assert record["recorded"] == "recorded"
    return record


async def test_parameters_and_system_prompt_reach_an_openai_upstream_and_are_recorded(
    streamchat_client, upstream, jp_root_dir, notebook
):
    # Given an OpenAI-compatible upstream that answers as a dated model with a fingerprint
    upstream.script("gpt", Script.reply(["ok"], answered_model="gpt-2024-08-06", system_fingerprint="fp_44709d6fcb"))
    # When a prompt is sent with a system prompt and every option
    record = await run_to_end(
        streamchat_client, {"model": "openai:gpt", "prompt": "hi", "system": SYSTEM, "options": OPTIONS}
    )
    # Then the upstream received each option under its own name, and the system prompt first
    body = (await upstream.wait_for_request_async("gpt")).body
    assert {key: body[key] for key in OPTIONS} == OPTIONS
    assert body["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"}]
    # And the turn records them, who answered, the digest of the messages sent and its first token
    turn = the_turn(jp_root_dir, record["id"])
    assert turn["params"] == {**OPTIONS, "system": SYSTEM}
    assert turn["response_model"] == "gpt-2024-08-06" and turn["system_fingerprint"] == "fp_44709d6fcb"
    canonical = json.dumps(body["messages"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert turn["messages_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert turn["first_token"] == record["first_token"] is not None and turn["parent"] is None
    assert "cost" not in turn  # no price for openai:gpt
    # And the run record carries the same
    assert record["params"] == turn["params"] and record["response_model"] == "gpt-2024-08-06"
    assert record["system_fingerprint"] == "fp_44709d6fcb" and record["messages_sha256"] == turn["messages_sha256"]
    assert record["cost"] is None


async def test_parameters_and_system_prompt_reach_an_anthropic_upstream_and_are_recorded(
    streamchat_client, upstream, jp_root_dir, notebook
):
    upstream.script("claude-x", Script.reply(["ok"], answered_model="claude-x-20250101"))
    record = await run_to_end(
        streamchat_client, {"model": "anthropic:claude-x", "prompt": "hi", "system": SYSTEM, "options": OPTIONS}
    )
    # Then the Messages API got the system prompt apart, and the options it has (no seed: it has none)
    body = (await upstream.wait_for_request_async("claude-x")).body
    assert body["system"] == SYSTEM and body["messages"] == [{"role": "user", "content": "hi"}]
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (0.3, 50, 0.9) and "seed" not in body
    # And the turn records every parameter as asked, and the model that answered
    turn = the_turn(jp_root_dir, record["id"])
    assert turn["params"] == {**OPTIONS, "system": SYSTEM}
    assert turn["response_model"] == "claude-x-20250101" and "system_fingerprint" not in turn


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"options": {"temperature": 5}}, "'options.temperature'"),
        ({"options": {"seed": "x"}}, "'options.seed'"),
        ({"options": {"seed": True}}, "'options.seed'"),
        ({"options": {"max_tokens": 0}}, "'options.max_tokens'"),
        ({"options": {"top_p": 0}}, "'options.top_p'"),
        ({"options": {"top_k": 3}}, "unknown options: top_k"),
        ({"system": 5}, "'system'"),
        ({"parent": 5}, "'parent'"),
    ],
    ids=[
        "temperature_5",
        "seed_text",
        "seed_bool",
        "max_tokens_0",
        "top_p_0",
        "top_k",
        "system_number",
        "parent_number",
    ],
)
async def test_a_bad_parameter_is_refused_with_one_line_naming_it_and_nothing_starts(
    streamchat_client, upstream, notebook, extra, named
):
    upstream.script("never", Script.reply(["no"]))
    for start in (streamchat_client.start_run, lambda body: collect(streamchat_client.stream(body))):
        with pytest.raises(StreamChatAPIError) as refused:
            await start({"model": "openai:never", "prompt": "hi", "notebook": NOTEBOOK, **extra})
        assert refused.value.status == 400 and named in str(refused.value) and "\n" not in str(refused.value)
    assert upstream.requests_for("never") == [] and await streamchat_client.list_runs() == []


async def test_the_same_branch_and_parameters_give_the_same_messages_sha256(
    streamchat_client, upstream, jp_root_dir, notebook
):
    for model in ("s1", "s2", "s3"):
        upstream.script(model, Script.reply([f"answer of {model}"]))
    asked = {"prompt": "same question", "conversation": "h", "parent": None, "options": OPTIONS}
    # When the same prompt is sent twice from the same point, with the same system prompt and options
    first = await run_to_end(streamchat_client, {"model": "openai:s1", "system": SYSTEM, **asked})
    again = await run_to_end(streamchat_client, {"model": "openai:s2", "system": SYSTEM, **asked})
    # And once with another system prompt
    other = await run_to_end(streamchat_client, {"model": "openai:s3", "system": "Be verbose.", **asked})
    # Then the first two record the same digest, whichever model answered; the third another
    digests = [the_turn(jp_root_dir, r["id"])["messages_sha256"] for r in (first, again, other)]
    assert digests[0] == digests[1] != digests[2]
    sent = [(await upstream.wait_for_request_async(m)).body["messages"] for m in ("s1", "s2")]
    assert sent[0] == sent[1]


async def test_a_price_gives_the_cost_on_the_turn_and_the_run_record(
    streamchat_client, upstream, jp_root_dir, notebook
):
    # Given prices for openai:priced (2 / 8 USD per million) and anthropic:claude-priced (3 / 15)
    upstream.script("priced", Script([Text("a"), Finish(), Usage(1000, 500), Done()]))
    upstream.script("claude-priced", Script([Text("b"), Text("c"), Finish(), Usage(2000), Done()]))
    # When each answers
    openai = await run_to_end(streamchat_client, {"model": "openai:priced", "prompt": "hi"})
    anthropic = await run_to_end(streamchat_client, {"model": "anthropic:claude-priced", "prompt": "hi"})
    # Then the cost follows from the usage the provider reported
    assert openai["usage"] == {"input_tokens": 1000, "output_tokens": 500}
    assert openai["cost"] == the_turn(jp_root_dir, openai["id"])["cost"] == pytest.approx(0.006, abs=1e-12)
    assert anthropic["usage"] == {"input_tokens": 2000, "output_tokens": 2}
    expected = round((2000 * 3 + 2 * 15) / 1e6, 9)
    assert anthropic["cost"] == the_turn(jp_root_dir, anthropic["id"])["cost"] == expected


async def test_a_price_key_that_can_match_no_reply_is_warned_about_once(streamchat_client, upstream, caplog, notebook):
    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if "its replies will show no cost" in r.getMessage()]

    # Given a price table with a typo'd provider and a model anthropic does not list (read at start)
    found = await await_until(lambda: warnings() if len(warnings()) >= 2 else None, what="the price warnings")
    # Then each is warned about, once, and the good keys are not
    assert len(found) == 2
    assert any("'opneai:priced'" in line and "not configured" in line for line in found)
    assert any("'anthropic:claude-typo'" in line and "not among the models" in line for line in found)
    # And running a priced model warns no more
    upstream.script("priced", Script.reply(["ok"]))
    await run_to_end(streamchat_client, {"model": "openai:priced", "prompt": "hi"})
    assert warnings() == found


async def test_the_demo_model_says_the_system_prompt_it_received_and_keeps_to_max_tokens(
    streamchat_client, jp_root_dir, notebook
):
    said = await run_to_end(streamchat_client, {"model": "demo:chat", "prompt": "hi", "system": "Talk like a pirate."})
    assert "Your system prompt: “Talk like a pirate.”" in said["text"]
    assert said["response_model"] == "chat" and said["cost"] == 0.0
    short = await run_to_end(streamchat_client, {"model": "demo:fast", "prompt": "hi", "options": {"max_tokens": 5}})
    assert short["usage"]["output_tokens"] == 5 and short["finish_reason"] == "length"


async def test_the_demo_model_draws_each_reply_anew_unless_a_seed_or_temperature_0_fixes_it(
    streamchat_client, jp_root_dir, notebook
):
    async def text(options: dict[str, Any]) -> str:
        said = await run_to_end(streamchat_client, {"model": "demo:fast", "prompt": "hi", "options": options})
        return str(said["text"])

    # When the same prompt is sent with the same seed, or at temperature 0, the reply is the same each time
    assert await text({"seed": 7}) == await text({"seed": 7})
    assert await text({"temperature": 0}) == await text({"temperature": 0})
    # And different seeds draw different replies (so Regenerate in the demo shows a new alternative)...
    drawn = {await text({"seed": seed}) for seed in range(8)}
    assert len(drawn) > 1
    # ...made of the same paragraphs, only in another order
    assert len({frozenset(reply.split("\n\n")) for reply in drawn}) == 1


def test_a_price_that_is_not_a_non_negative_number_is_refused_at_start() -> None:
    from traitlets import TraitError

    from jupyter_streamchat.server.app import StreamChat

    for bad in ({"openai:x": {"input": -1, "output": 1}}, {"openai:x": {"input": "1", "output": 1}}, {"x": {}}):
        with pytest.raises(TraitError, match=r"StreamChat\.prices"):
            StreamChat(prices=bad)
    assert StreamChat(prices={"openai:x": {"input": 0.15, "output": 0.6}}).prices["openai:x"]["input"] == 0.15
