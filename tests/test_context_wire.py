"""Context on the wire (SPEC 10): text and image parts reach each provider in its own format, and the turn
records what the model saw (text verbatim, images by their facts, never their bytes)."""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib

import nbformat
import pytest

from harness.upstream import Script, Status
from jupyter_streamchat.client import StreamChatAPIError
from tests.helpers import chat, wait_finished

TABLE = "DataFrame `df`: 3 rows x 3 columns\n\n| month | sales | region |\n|---|---|---|\n| Jan | 1 | N |"


def png(width: int, height: int) -> bytes:
    """A valid PNG of ``width`` x ``height`` grey pixels, made without any imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PICTURE = png(4, 3)
PICTURE_B64 = base64.b64encode(PICTURE).decode()
CONTEXT = [
    {"kind": "dataframe", "name": "df", "text": TABLE},
    {"kind": "image", "name": "fig", "image": {"mime": "image/png"}, "data": PICTURE_B64},
]


@pytest.fixture
def notebook(jp_root_dir) -> str:
    nbformat.write(nbformat.v4.new_notebook(), jp_root_dir / "nb.ipynb")
    return "nb.ipynb"


def recorded_turns(root, path: str) -> list[dict]:
    metadata = nbformat.read(root / path, as_version=4).metadata
    return metadata["streamchat"]["conversations"]["default"]["turns"]


async def start_and_record(client, body: dict) -> dict:
    started = await client.start_run(body)
    return await client.get_run(started["id"], wait="recorded")


async def test_openai_receives_the_table_as_text_and_the_figure_as_a_data_uri(
    streamchat_client, upstream, jp_root_dir, notebook
):
    upstream.script("vision", Script.reply(["March dips."]))
    # When a prompt is sent with a DataFrame item and a figure
    body = {"model": "openai:vision", "prompt": "why the dip?", "conversation": "default", "notebook": notebook}
    record = await start_and_record(streamchat_client, {**body, "context": CONTEXT})
    assert record["status"] == "completed" and record["recorded"] == "recorded"
    # Then the upstream got the table as a text part, the PNG as an image_url part, and the prompt last
    (request,) = upstream.requests_for("vision")
    content = request.body["messages"][-1]["content"]
    assert content == [
        {"type": "text", "text": TABLE},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PICTURE_B64}"}},
        {"type": "text", "text": "why the dip?"},
    ]
    # And the turn records what was sent: the text verbatim, the image by its facts, not its bytes
    (turn,) = recorded_turns(jp_root_dir, notebook)
    assert turn["prompt"] == {"role": "user", "content": "why the dip?"}
    table, figure = turn["context"]
    assert table == {
        "kind": "dataframe",
        "name": "df",
        "text": TABLE,
        "chars": len(TABLE),
        "tokens_estimate": -(-len(TABLE) // 4),
    }
    assert figure["image"] == {
        "mime": "image/png",
        "sha256": hashlib.sha256(PICTURE).hexdigest(),
        "bytes": len(PICTURE),
        "width": 4,
        "height": 3,
    }
    assert PICTURE_B64 not in (jp_root_dir / notebook).read_text()


async def test_anthropic_receives_image_blocks(streamchat_client, upstream, jp_root_dir, notebook):
    upstream.script("claude-vision", Script.reply(["Seen."]))
    body = {"model": "anthropic:claude-vision", "prompt": "and this?", "notebook": notebook, "context": CONTEXT}
    record = await start_and_record(streamchat_client, body)
    assert record["status"] == "completed"
    (request,) = upstream.requests_for("claude-vision")
    assert request.body["messages"][-1]["content"] == [
        {"type": "text", "text": TABLE},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PICTURE_B64}},
        {"type": "text", "text": "and this?"},
    ]


async def test_the_demo_model_says_what_it_received(streamchat_client):
    started = await streamchat_client.start_run({"model": "demo:fast", "prompt": "look", "context": CONTEXT})
    record = await wait_finished(streamchat_client, started["id"])
    assert "Besides your words I received: 1 image, 4\u00d73 PNG; DataFrame `df`: 3 rows x 3 columns." in record["text"]


async def test_the_next_prompt_sends_earlier_text_context_but_not_its_images(
    streamchat_client, upstream, jp_root_dir, notebook
):
    upstream.script("vision", Script.reply(["First."]))
    body = {"model": "openai:vision", "prompt": "one", "conversation": "default", "notebook": notebook}
    await start_and_record(streamchat_client, {**body, "context": CONTEXT})
    upstream.script("vision", Script.reply(["Second."]))
    # When the conversation goes on without new context
    await start_and_record(streamchat_client, {**body, "prompt": "two"})
    # Then the history keeps the table with the first prompt, and no image is sent again
    second = upstream.requests_for("vision")[-1]
    assert second.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": TABLE}, {"type": "text", "text": "one"}]},
        {"role": "assistant", "content": "First."},
        {"role": "user", "content": "two"},
    ]


async def test_inline_image_parts_are_sent_and_recorded_by_their_facts(
    streamchat_client, upstream, jp_root_dir, notebook
):
    upstream.script("vision", Script.reply(["Ok."]))
    parts = [{"type": "image", "mime": "image/png", "data": PICTURE_B64}, {"type": "text", "text": "what is it?"}]
    body = {"model": "openai:vision", "messages": [{"role": "user", "content": parts}], "notebook": notebook}
    await start_and_record(streamchat_client, body)
    (turn,) = recorded_turns(jp_root_dir, notebook)
    assert turn["prompt"]["content"] == "what is it?"
    (image,) = turn["context"]
    assert image["kind"] == "image" and image["image"]["sha256"] == hashlib.sha256(PICTURE).hexdigest()


async def test_a_model_that_refuses_images_fails_the_run_with_its_message(streamchat_client, upstream):
    refusal = {"error": {"message": "this model does not support image input", "type": "invalid_request_error"}}
    upstream.script("text-only", Script([Status(400, refusal)]))
    started = await streamchat_client.start_run({"model": "openai:text-only", "prompt": "see", "context": CONTEXT})
    record = await wait_finished(streamchat_client, started["id"])
    assert record["status"] == "failed"
    assert "does not support image input" in record["error"]["message"]


@pytest.mark.parametrize(
    ("context", "status", "message"),
    [
        ("df", 400, "'context' must be a list"),
        ([{"kind": "dataframe"}], 400, "context[0].text must be a non-empty string"),
        ([{"kind": "spreadsheet", "text": "x"}], 400, "context[0].kind must be one of"),
        ([{"kind": "image", "image": {"mime": "image/tiff"}, "data": PICTURE_B64}], 400, "mime must be one of"),
        ([{"kind": "image", "image": {"mime": "image/png"}, "data": "not base64!"}], 400, "not valid base64"),
        ([{"kind": "text", "name": "", "text": "x"}], 400, "context[0].name"),
    ],
)
async def test_malformed_context_is_refused_and_nothing_starts(streamchat_client, context, status, message):
    with pytest.raises(StreamChatAPIError) as refused:
        await streamchat_client.start_run({"model": "demo:fast", "prompt": "hi", "context": context})
    assert refused.value.status == status and message in refused.value.message
    assert await streamchat_client.list_runs() == []


@pytest.fixture
def streamchat_settings(streamchat_settings):
    return {**streamchat_settings, "max_image_bytes": 1_000, "max_body_bytes": 20_000}


async def test_images_beyond_the_image_limit_are_refused_with_413(streamchat_client):
    big = base64.b64encode(png(40, 40) + b"\x00" * 2_000).decode()
    item = {"kind": "image", "image": {"mime": "image/png"}, "data": big}
    with pytest.raises(StreamChatAPIError) as refused:
        await streamchat_client.start_run({"model": "demo:fast", "prompt": "hi", "context": [item]})
    assert refused.value.status == 413 and "images are larger than 1,000 bytes" in refused.value.message


async def test_a_parts_message_with_a_bad_part_is_refused(streamchat_client):
    body = chat("demo:fast")
    body["messages"][0]["content"] = [{"type": "audio", "data": "x"}]
    with pytest.raises(StreamChatAPIError) as refused:
        await streamchat_client.start_run(body)
    assert refused.value.status == 400 and "messages[0].content[0].type must be 'text' or 'image'" in str(
        refused.value.message
    )
