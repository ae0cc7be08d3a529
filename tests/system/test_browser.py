"""The live pages in a real headless Chromium against a real server process."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from ..helpers import (
    SILENCE,
    WAIT,
    Browser,
    RedisServer,
    ServerProcess,
    chromium_path,
    connect,
    free_port,
    get,
    hang_up,
    post,
    receive,
    run,
    until,
    wait_for_port,
)

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed")

Start = Callable[..., ServerProcess]

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
]

#: How long a page may take to notice a restart and reconnect (its backoff grows to seconds).
RECONNECT_WAIT = 25.0

LIVE = "document.getElementById('status').classList.contains('live')"
BODIES = "[...document.querySelectorAll('#messages li.message .body')].map(e => e.textContent)"
NOTICES = (
    "[...document.querySelectorAll('#messages li.notice')]"
    ".map(e => e.className + ': ' + e.querySelector('.body').textContent)"
)
TRANSPORT = "document.getElementById('status').dataset.transport"


def bodies_are(expected: list[str]) -> str:
    """A page expression: the messages shown are exactly ``expected``, in order."""
    compact = json.dumps(expected, separators=(",", ":"))
    return f"JSON.stringify({BODIES}) === {json.dumps(compact)}"


async def replace(process: ServerProcess, *args: str) -> ServerProcess:
    """Start a new, healthy process with ``args`` on the port of ``process`` (already ended)."""
    replacement = ServerProcess(*args, port=process.port)
    await asyncio.to_thread(lambda: replacement.start().wait_healthy())
    return replacement


async def restart(process: ServerProcess, *args: str, sig: int = signal.SIGTERM) -> ServerProcess:
    """End ``process`` with ``sig`` and start a new, healthy one with ``args`` on its port."""
    await asyncio.to_thread(process.terminate, sig)
    return await replace(process, *args)


def stop(process: ServerProcess | None) -> None:
    """Terminate a process the ``servers`` fixture does not know about, and remove its log."""
    if process is None:
        return
    if process.process is not None and process.process.poll() is None:
        process.terminate()
    process.log.unlink(missing_ok=True)


def test_page_shows_messages_as_they_arrive_as_text(servers: Start) -> None:
    """Published messages appear on the channel page as literal text; no script runs."""
    server = servers()

    async def scenario() -> None:
        async with Browser() as browser:
            await browser.goto(server.url + "/users/1")
            await browser.until("document.getElementById('status').classList.contains('live')")
            for text in ["Hi there!", *HOSTILE]:
                assert (await post(server.url + "/users/1", text)).code == 202
            await post(server.url + "/users/1", b"\xff\x00")
            await browser.until("document.querySelectorAll('#messages li.message').length === 4")
            bodies = await browser.evaluate(
                "[...document.querySelectorAll('#messages li.message .body')]"
                ".map(e => e.textContent)"
            )
            assert bodies[:3] == ["Hi there!", *HOSTILE]
            assert "binary" in bodies[3]
            assert await browser.evaluate("document.querySelectorAll('#messages img').length") == 0
            assert await browser.evaluate("window.__alerts || 0") == 0
            assert browser.errors() == []
            # Everything the page loaded came from the server itself.
            for url in browser.requested_urls():
                assert url.startswith((server.url, server.ws_url)), url

    run(scenario())


def test_send_box_publishes_to_the_channel(servers: Start) -> None:
    """Text typed into the page's box reaches every subscriber of the channel."""
    server = servers()

    async def scenario() -> None:
        listener = await connect(server.ws_url + "/room")
        try:
            async with Browser() as browser:
                await browser.goto(server.url + "/room")
                await browser.until("document.getElementById('status').classList.contains('live')")
                await browser.evaluate(
                    "document.getElementById('message').value = 'typed in the page';"
                    "document.getElementById('send').requestSubmit(); true"
                )
                assert await receive(listener) == "typed in the page"
                await browser.until(
                    "document.querySelectorAll('#messages li.message').length === 1"
                )
        finally:
            listener.close()

    run(scenario())


def test_channel_named_like_markup_is_shown_as_text(servers: Start) -> None:
    """The page for a channel named like an HTML tag shows the name and runs nothing."""
    server = servers()

    async def scenario() -> None:
        async with Browser() as browser:
            await browser.goto(server.url + "/%3Cimg%20src=x%20onerror=alert(3)%3E")
            heading = await browser.evaluate("document.querySelector('h1').textContent")
            assert heading.strip() == "<img src=x onerror=alert(3)>"
            assert await browser.evaluate("window.__alerts || 0") == 0
            assert browser.errors() == []

    run(scenario())


def test_page_resumes_after_its_server_restarts_with_nothing_missed_or_twice(
    servers: Start, redis_server: RedisServer
) -> None:
    """A page whose process restarts resumes where it was: every message once, in order."""
    a = servers("--redis-url", redis_server.url)
    b = servers("--redis-url", redis_server.url)

    async def scenario() -> None:
        replacement: ServerProcess | None = None
        try:
            async with Browser() as browser:
                await browser.goto(a.url + "/news")
                await browser.until(LIVE)
                assert await browser.evaluate(TRANSPORT) == "websocket"
                for text in ["one", "two"]:
                    assert (await post(b.url + "/news", text)).code == 202
                await browser.until(bodies_are(["one", "two"]))

                # SIGTERM: the page is told 1001 and reconnects; meanwhile B publishes.
                await asyncio.to_thread(a.terminate)
                await browser.until("!document.getElementById('status').classList.contains('live')")
                for text in ["three", "four", "five"]:
                    assert (await post(b.url + "/news", text)).code == 202
                replacement = await replace(a, "--redis-url", redis_server.url)

                await browser.until(
                    bodies_are(["one", "two", "three", "four", "five"]) + " && " + LIVE,
                    timeout=RECONNECT_WAIT,
                )
                assert await browser.evaluate(NOTICES) == [
                    "notice recovered: Reconnected \u2014 3 missed messages recovered"
                ]
                # The notice sits before the messages it recovered.
                order = await browser.evaluate(
                    "[...document.querySelectorAll('#messages li')].map(e => e.className)"
                )
                assert order == ["message"] * 2 + ["notice recovered"] + ["message"] * 3

                assert (await post(b.url + "/news", "six")).code == 202
                await browser.until(bodies_are(["one", "two", "three", "four", "five", "six"]))
                await asyncio.sleep(0.3)  # Nothing more arrives: none twice.
                assert await browser.evaluate(BODIES) == [
                    "one",
                    "two",
                    "three",
                    "four",
                    "five",
                    "six",
                ]

                sockets = [
                    event["params"]["url"]
                    for event in browser.events
                    if event.get("method") == "Network.webSocketCreated"
                ]
                assert sockets[0].endswith("/news?positions=1"), sockets
                assert "/news?since=" in sockets[-1], sockets
                assert browser.errors() == []
        finally:
            await asyncio.to_thread(stop, replacement)

    run(scenario())


def test_page_says_when_missed_messages_could_not_be_recovered(servers: Start) -> None:
    """After its process dies with its in-memory history, the page says messages may be missing."""
    server = servers()

    async def scenario() -> None:
        replacement: ServerProcess | None = None
        try:
            async with Browser() as browser:
                await browser.goto(server.url + "/log")
                await browser.until(LIVE)
                for text in ["before 1", "before 2"]:
                    assert (await post(server.url + "/log", text)).code == 202
                await browser.until(bodies_are(["before 1", "before 2"]))
                old = await browser.evaluate("document.getElementById('status').dataset.position")

                # kill -9: no close frame, and the history dies with the process.
                replacement = await restart(server, sig=signal.SIGKILL)
                await browser.until(
                    "document.querySelectorAll('#messages li.notice.lost').length === 1 && " + LIVE,
                    timeout=RECONNECT_WAIT,
                )
                notice = await browser.evaluate(
                    "document.querySelector('#messages li.notice.lost .body').textContent"
                )
                assert notice.startswith("Reconnected \u2014 could not recover missed messages: ")
                assert "epoch" in notice

                # The new epoch counts from 1 again: its messages are new, not duplicates.
                assert (await post(replacement.url + "/log", "after")).code == 202
                await browser.until(bodies_are(["before 1", "before 2", "after"]))
                new = await browser.evaluate("document.getElementById('status').dataset.position")
                assert new.split(":")[0] != old.split(":")[0]
                assert new.split(":")[1] == "1"
                assert browser.errors() == []
        finally:
            await asyncio.to_thread(stop, replacement)

    run(scenario())


def test_page_over_server_sent_events_shows_messages_as_they_arrive(servers: Start) -> None:
    """With ?transport=sse the page listens over EventSource, shows text and sends by POST."""
    server = servers()

    async def scenario() -> None:
        async with Browser() as browser:
            await browser.goto(server.url + "/feed?transport=sse")
            await browser.until(LIVE)
            assert await browser.evaluate(TRANSPORT) == "sse"
            for text in ["Hi there!", *HOSTILE, "two\nlines"]:
                assert (await post(server.url + "/feed", text)).code == 202
            await post(server.url + "/feed", b"\xff\x00")
            await browser.until("document.querySelectorAll('#messages li.message').length === 5")
            bodies = await browser.evaluate(BODIES)
            assert bodies[:4] == ["Hi there!", *HOSTILE, "two\nlines"]
            assert bodies[4] == "[binary, 2 bytes] ff 00"
            # The send box publishes by POST while on SSE.
            await browser.evaluate(
                "document.getElementById('message').value = 'typed over sse';"
                "document.getElementById('send').requestSubmit(); true"
            )
            await browser.until("document.querySelectorAll('#messages li.message').length === 6")
            assert (await browser.evaluate(BODIES))[5] == "typed over sse"
            assert not any(
                event.get("method") == "Network.webSocketCreated" for event in browser.events
            )
            assert await browser.evaluate("window.__alerts || 0") == 0
            assert browser.errors() == []

    run(scenario())


def test_page_without_websockets_falls_back_to_server_sent_events(servers: Start) -> None:
    """Without WebSocket the page uses server-sent events, and resumes them after a restart."""
    server = servers()

    async def scenario() -> None:
        replacement: ServerProcess | None = None
        try:
            async with Browser() as browser:
                await browser.call(
                    "Page.addScriptToEvaluateOnNewDocument",
                    source="Object.defineProperty(window, 'WebSocket', {value: undefined});",
                )
                await browser.goto(server.url + "/plain")
                await browser.until(LIVE)
                assert await browser.evaluate(TRANSPORT) == "sse"
                assert (await post(server.url + "/plain", "first")).code == 202
                await browser.until(bodies_are(["first"]))
                replacement = await restart(server)
                await browser.until(
                    "document.querySelectorAll('#messages li.notice.lost').length === 1 && " + LIVE,
                    timeout=RECONNECT_WAIT,
                )
                assert (await post(replacement.url + "/plain", "second")).code == 202
                await browser.until(bodies_are(["first", "second"]))
                assert browser.errors() == []
        finally:
            await asyncio.to_thread(stop, replacement)

    run(scenario())


def test_page_switches_to_server_sent_events_when_websockets_never_open(servers: Start) -> None:
    """A page whose WebSockets keep failing before they open switches to server-sent events."""
    server = servers()
    # Every WebSocket the page opens asks for a path the server refuses (404).
    blocked = (
        "const Real = window.WebSocket;"
        "window.WebSocket = class extends Real {"
        "  constructor(url) { window.__attempts = (window.__attempts || 0) + 1;"
        "    super(url.replace('/fallback', '/_/no-websocket-here')); } };"
    )

    async def scenario() -> None:
        async with Browser() as browser:
            await browser.call("Page.addScriptToEvaluateOnNewDocument", source=blocked)
            await browser.goto(server.url + "/fallback")
            await browser.until(LIVE)
            assert await browser.evaluate(TRANSPORT) == "sse"
            assert await browser.evaluate("window.__attempts") == 3
            assert (await post(server.url + "/fallback", "over sse")).code == 202
            await browser.until(bodies_are(["over sse"]))
            assert browser.errors() == []

    run(scenario())


def test_a_page_that_saw_nothing_yet_still_recovers_what_it_missed(
    servers: Start, redis_server: RedisServer
) -> None:
    """A page that has shown no message yet resumes from where it connected, losing nothing."""
    a = servers("--redis-url", redis_server.url)
    b = servers("--redis-url", redis_server.url)

    async def scenario() -> None:
        replacement: ServerProcess | None = None
        try:
            async with Browser() as browser:
                await browser.goto(a.url + "/quiet")
                await browser.until(LIVE)
                # It has a position although no message came: the server gave it one.
                await browser.until("document.getElementById('status').dataset.position")
                await asyncio.to_thread(a.terminate)
                await browser.until("!document.getElementById('status').classList.contains('live')")
                assert (await post(b.url + "/quiet", "while away")).code == 202
                replacement = await replace(a, "--redis-url", redis_server.url)
                await browser.until(
                    bodies_are(["while away"]) + " && " + LIVE, timeout=RECONNECT_WAIT
                )
                assert browser.errors() == []
        finally:
            await asyncio.to_thread(stop, replacement)

    run(scenario())


def test_a_page_left_lets_go_of_its_subscription_and_resumes_when_back(servers: Start) -> None:
    """Navigating away closes the page's connection; back from the cache, it resumes losslessly."""
    server = servers()

    async def channels() -> dict[str, int]:
        stats = json.loads((await get(server.url + "/_/stats")).body)
        return dict(stats["channels"])

    async def scenario() -> None:
        async with Browser() as browser:
            await browser.goto(server.url + "/users/1")
            await browser.until(LIVE)
            assert await channels() == {"users/1": 1}
            await browser.evaluate("window.__same_page = true")
            await browser.goto(server.url + "/_/health")
            await until(lambda: channels_now() == {}, what="the subscription released")
            assert (await post(server.url + "/users/1", "while away")).code == 202
            await browser.evaluate("history.back()")
            await browser.until(bodies_are(["while away"]) + " && " + LIVE)
            # The same page, from the back/forward cache, not a reload.
            assert await browser.evaluate("window.__same_page") is True
            assert await channels() == {"users/1": 1}
            assert browser.errors() == []

    def channels_now() -> dict[str, int]:
        with urllib.request.urlopen(server.url + "/_/stats", timeout=WAIT) as response:
            return dict(json.loads(response.read())["channels"])

    run(scenario())


def test_a_plain_event_source_dropped_before_any_message_loses_nothing(
    servers: Start, redis_server: RedisServer
) -> None:
    """Chromium's own EventSource, cut off after only its first event, resumes all it missed."""
    a = servers("--redis-url", redis_server.url)
    b = servers("--redis-url", redis_server.url)

    async def scenario() -> None:
        replacement: ServerProcess | None = None
        try:
            async with Browser() as browser:
                await browser.goto(a.url + "/_/health")
                await browser.evaluate(
                    "window.__got = []; window.__first = null;"
                    "window.__source = new EventSource('/feed');"
                    "window.__source.addEventListener('recovery', e => {"
                    "  if (window.__first === null) window.__first = e.lastEventId; });"
                    "window.__source.onmessage = e => window.__got.push(e.data);"
                )
                await browser.until("window.__first !== null")
                assert await browser.evaluate("window.__first"), "the first event has no id"
                await asyncio.to_thread(a.terminate)
                await browser.until("window.__source.readyState !== EventSource.OPEN")
                for number in range(5):
                    assert (await post(b.url + "/feed", f"missed {number}")).code == 202
                replacement = await replace(a, "--redis-url", redis_server.url)
                expected = json.dumps([f"missed {n}" for n in range(5)], separators=(",", ":"))
                await browser.until(
                    f"JSON.stringify(window.__got) === {json.dumps(expected)}",
                    timeout=RECONNECT_WAIT,
                )
                await browser.evaluate("window.__source.close()")
        finally:
            await asyncio.to_thread(stop, replacement)

    run(scenario())


#: The client module, as a page script would import it.
CLIENT_MODULE = "/_/static/tornado-channels.js"
GOT = "JSON.stringify(window.__got)"
CLIENT_LIVE = "window.__c.state === 'live'"


def start_client(channel: str, options: str = "") -> str:
    """A page expression: connect the client module to ``channel``, recording what it reports.

    ``window.__got`` collects message data, ``window.__outcomes`` recovery
    outcomes, ``window.__states`` status states; ``options`` are more options.
    """
    return (
        "(async () => {"
        f"  const m = await import({json.dumps(CLIENT_MODULE)});"
        "  window.__got = []; window.__outcomes = []; window.__states = [];"
        f"  window.__c = m.connect({json.dumps(channel)}, {{"
        "    onMessage: x => window.__got.push(x.data),"
        "    onRecovery: x => window.__outcomes.push(x),"
        "    onStatus: s => window.__states.push(s.state),"
        f"    {options}"
        "  });"
        "  return true;"
        "})()"
    )


def got_is(expected: list[str]) -> str:
    """A page expression: the client delivered exactly ``expected``, in order."""
    compact = json.dumps(expected, separators=(",", ":"))
    return f"{GOT} === {json.dumps(compact)}"


def websockets_created(browser: Browser) -> list[str]:
    """The URL of every WebSocket the page opened, in order."""
    return [
        event["params"]["url"]
        for event in browser.events
        if event.get("method") == "Network.webSocketCreated"
    ]


async def publish_all(url: str, texts: list[str]) -> None:
    """POST each of ``texts`` to ``url``, in order; each must be accepted."""
    for text in texts:
        assert (await post(url, text)).code == 202


def test_client_module_delivers_each_message_once_in_order_over_websocket(
    servers: Start,
) -> None:
    """The client module in a page script delivers each message once, in order, over WebSocket."""
    server = servers()
    texts = ["one", "two", *HOSTILE, "two\nlines"]

    async def scenario() -> None:
        async with Browser() as browser:
            await browser.goto(server.url + "/_/health")
            await browser.evaluate(start_client("/room"))
            await browser.until(CLIENT_LIVE + " && window.__outcomes.length === 1")
            assert await browser.evaluate("window.__c.transport") == "websocket"
            await publish_all(server.url + "/room", texts)
            await browser.until(got_is(texts))
            await asyncio.sleep(SILENCE)  # Nothing more arrives: none twice.
            assert json.loads(await browser.evaluate(GOT)) == texts
            assert await browser.evaluate("window.__c.position") is not None
            sockets = websockets_created(browser)
            assert len(sockets) == 1, sockets
            assert sockets[0].endswith("/room?positions=1"), sockets
            assert browser.errors() == []

    run(scenario())


def test_client_module_delivers_each_message_once_in_order_over_server_sent_events(
    servers: Start,
) -> None:
    """With transport 'sse' the client module delivers each message once, in order, over SSE."""
    server = servers()
    texts = ["one", "two", *HOSTILE, "two\nlines"]

    async def scenario() -> None:
        async with Browser() as browser:
            await browser.goto(server.url + "/_/health")
            await browser.evaluate(start_client("/room", "transport: 'sse',"))
            await browser.until(CLIENT_LIVE + " && window.__outcomes.length === 1")
            assert await browser.evaluate("window.__c.transport") == "sse"
            await publish_all(server.url + "/room", texts)
            await browser.until(got_is(texts))
            await asyncio.sleep(SILENCE)
            assert json.loads(await browser.evaluate(GOT)) == texts
            # Over SSE there is no WebSocket to send on: the caller POSTs instead.
            assert await browser.evaluate("window.__c.send('x')") is False
            assert websockets_created(browser) == []
            assert browser.errors() == []

    run(scenario())


def test_client_module_recovers_what_it_missed_while_its_server_restarted(
    servers: Start, redis_server: RedisServer
) -> None:
    """After its process restarts, the client module delivers what it missed once, and says so."""
    a = servers("--redis-url", redis_server.url)
    b = servers("--redis-url", redis_server.url)

    async def scenario() -> None:
        replacement: ServerProcess | None = None
        try:
            async with Browser() as browser:
                await browser.goto(a.url + "/_/health")
                await browser.evaluate(start_client("/news"))
                await browser.until(CLIENT_LIVE + " && window.__outcomes.length === 1")
                await publish_all(b.url + "/news", ["one", "two"])
                await browser.until(got_is(["one", "two"]))

                await asyncio.to_thread(a.terminate)
                await browser.until("window.__c.state !== 'live'")
                await publish_all(b.url + "/news", ["three", "four", "five"])
                replacement = await replace(a, "--redis-url", redis_server.url)

                everything = ["one", "two", "three", "four", "five"]
                await browser.until(
                    got_is(everything) + " && " + CLIENT_LIVE, timeout=RECONNECT_WAIT
                )
                outcome = await browser.evaluate("window.__outcomes.at(-1)")
                assert outcome["recovered"] is True, outcome
                assert outcome["missed"] == 3, outcome
                assert "reconnecting" in await browser.evaluate("window.__states")

                await publish_all(b.url + "/news", ["six"])
                await browser.until(got_is([*everything, "six"]))
                await asyncio.sleep(SILENCE)
                assert json.loads(await browser.evaluate(GOT)) == [*everything, "six"]
                assert "/news?since=" in websockets_created(browser)[-1]
                assert browser.errors() == []
        finally:
            await asyncio.to_thread(stop, replacement)

    run(scenario())


def test_client_module_asks_its_token_provider_before_every_connect(servers: Start) -> None:
    """A token provider is called before each (re)connect, and its token goes in the URL."""
    server = servers()
    provider = (
        "token: () => { window.__tokens = (window.__tokens || 0) + 1;"
        "  return Promise.resolve('secret-' + window.__tokens); },"
    )

    async def scenario() -> None:
        replacement: ServerProcess | None = None
        try:
            async with Browser() as browser:
                await browser.goto(server.url + "/_/health")
                await browser.evaluate(start_client("/room", provider))
                await browser.until(CLIENT_LIVE)
                assert await browser.evaluate("window.__tokens") == 1

                replacement = await restart(server)
                await browser.until(
                    "window.__states.includes('reconnecting') && " + CLIENT_LIVE,
                    timeout=RECONNECT_WAIT,
                )
                tokens = await browser.evaluate("window.__tokens")
                assert tokens >= 2
                sockets = websockets_created(browser)
                assert "token=secret-1" in sockets[0], sockets
                assert sockets[-1].endswith(f"&token=secret-{tokens}"), sockets
                # The server does not check tokens yet: it still delivers.
                assert (await post(replacement.url + "/room", "after")).code == 202
                await browser.until(got_is(["after"]))
                assert browser.errors() == []
        finally:
            await asyncio.to_thread(stop, replacement)

    run(scenario())


def test_client_module_suspend_lets_go_and_resume_delivers_what_was_missed(
    servers: Start,
) -> None:
    """suspend() lets go of the subscription at once; resume() delivers what came meanwhile."""
    server = servers()

    async def channels_are(expected: dict[str, int]) -> bool:
        stats = json.loads((await get(server.url + "/_/stats")).body)
        return dict(stats["channels"]) == expected

    async def scenario() -> None:
        async with Browser() as browser:
            await browser.goto(server.url + "/_/health")
            await browser.evaluate(start_client("/room"))
            await browser.until(CLIENT_LIVE + " && window.__outcomes.length === 1")
            await publish_all(server.url + "/room", ["before"])
            await browser.until(got_is(["before"]))
            assert await channels_are({"room": 1})

            await browser.evaluate("window.__c.suspend()")
            await until(lambda: channels_are({}), what="the subscription released")
            await publish_all(server.url + "/room", ["while away 1", "while away 2"])
            await asyncio.sleep(SILENCE)  # Suspended: it neither receives nor reconnects.
            assert await browser.evaluate("window.__c.state") == "closed"
            assert json.loads(await browser.evaluate(GOT)) == ["before"]
            assert len(websockets_created(browser)) == 1

            await browser.evaluate("window.__c.resume()")
            await browser.until(
                got_is(["before", "while away 1", "while away 2"]) + " && " + CLIENT_LIVE
            )
            assert await channels_are({"room": 1})
            assert "/room?since=" in websockets_created(browser)[-1]
            await browser.evaluate("window.__c.close()")
            await until(lambda: channels_are({}), what="the subscription released on close")
            assert browser.errors() == []

    run(scenario())


TOKEN_APP = '''
import asyncio, time

import jwt
import tornado.web

from tornado_channels import Node, channel_routes

SECRET = "a-secret-for-the-renewal-test-32-bytes+"


class Token(tornado.web.RequestHandler):
    """The application's backend: a fresh 3-second token for the logged-in user."""

    def get(self):
        self.application.settings["minted"] += 1
        claims = {"sub": "u42", "exp": time.time() + 3, "subscribe": ["users/42"]}
        self.write(jwt.encode(claims, SECRET, algorithm="HS256"))


async def main(port):
    node = Node()
    await node.start()
    routes = channel_routes(node, token_secret=SECRET, token_leeway=0, publish_key="backend")
    app = tornado.web.Application([(r"/token", Token), *routes], minted=0)
    app.listen(port)
    await asyncio.Event().wait()
'''


def test_a_page_renews_its_expiring_token_and_shows_each_message_once(tmp_path: Path) -> None:
    """Tokens that last 3 s: the page renews each (4001), resumes, and loses or repeats nothing."""
    (tmp_path / "tokenapp.py").write_text(TOKEN_APP)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", f"import asyncio, tokenapp; asyncio.run(tokenapp.main({port}))"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    async def scenario() -> None:
        base = f"http://127.0.0.1:{port}"
        async with Browser() as browser:
            await browser.goto(base + "/users/42?token_url=/token")
            await browser.until(LIVE)
            sent = []
            for number in range(16):  # 8 s of messages: two or three renewals
                text = f"m{number}"
                response = await post(
                    base + "/users/42", text, headers={"Authorization": "Bearer backend"}
                )
                assert response.code == 202
                sent.append(text)
                await asyncio.sleep(0.5)
            await browser.until(bodies_are(sent) + " && " + LIVE, timeout=RECONNECT_WAIT)
            renewals = [url for url in browser.requested_urls() if url.endswith("/token")]
            assert len(renewals) >= 3, renewals
            assert browser.errors() == []

    try:
        wait_for_port(port)
        run(scenario(), timeout=90)
    finally:
        process.terminate()
        process.wait(10)


def test_a_page_without_the_token_its_channel_needs_says_so(servers: Start) -> None:
    """Tokens required and none given: the page says it needs one and does not hammer."""
    server = servers(env={"TORNADO_CHANNELS_TOKEN_SECRET": "a-secret-for-the-page-test-32-bytes-!"})

    async def scenario() -> None:
        async with Browser() as browser:
            await browser.goto(server.url + "/users/42")
            await browser.until("document.getElementById('status').textContent === 'needs a token'")
            await asyncio.sleep(SILENCE)
            sockets = [url for url in browser.requested_urls() if url.startswith("ws")]
            assert sockets == []
            assert browser.errors() == []

    run(scenario())


CHANNELS = "[...document.querySelectorAll('#messages li.message .channel')].map(e => e.textContent)"


@pytest.mark.parametrize("transport", ["websocket", "sse"])
def test_a_subtree_page_shows_everything_below_labelled_by_channel(
    servers: Start, transport: str
) -> None:
    """/users/ in a browser: each message below it once, with its channel; nothing beside it."""
    server = servers()

    async def scenario() -> None:
        async with Browser() as browser:
            await browser.goto(server.url + f"/users/?transport={transport}")
            await browser.until(LIVE)
            assert await browser.evaluate(TRANSPORT) == transport
            assert await browser.evaluate("document.getElementById('send') === null")
            for path, text in [
                ("/users/1", "one"),
                ("/userspace/1", "beside"),
                ("/users/2/inbox", "<b>two</b>"),
                ("/users/", "all"),
            ]:
                assert (await post(server.url + path, text)).code == 202
            await browser.until(bodies_are(["one", "<b>two</b>", "all"]))
            assert await browser.evaluate(CHANNELS) == ["users/1", "users/2/inbox", "users/"]
            assert browser.errors() == []

    run(scenario())


def test_the_page_shows_the_live_subscriber_count(servers: Start) -> None:
    """The channel page counts its subscribers, itself included, and follows them."""
    server = servers()
    count = "document.getElementById('presence').dataset.subscribers"

    async def scenario() -> None:
        async with Browser() as browser:
            await browser.goto(server.url + "/room/1")
            await browser.until(LIVE)
            await browser.until(f"{count} === '1'", timeout=15)
            others = [await connect(server.ws_url + "/room/1") for _ in range(2)]
            await browser.until(f"{count} === '3'", timeout=15)
            assert "3 subscribers" in await browser.evaluate(
                "document.getElementById('presence').textContent"
            )
            for ws in others:
                await hang_up(ws)
            await browser.until(f"{count} === '1'", timeout=15)
            assert browser.errors() == []

    run(scenario())


@pytest.mark.parametrize("transport", ["websocket", "sse"])
def test_client_module_reports_joins_and_leaves_apart_from_messages(
    servers: Start, transport: str
) -> None:
    """With onPresence the client asks for joins and leaves and never mistakes them for messages."""
    from ..web.test_tokens import SECRET, mint

    server = servers("--token-secret", SECRET, "--public", "/")
    # Where tokens are on, a POST needs a token's publish grant (or the publish key).
    publisher = {"Authorization": f"Bearer {mint(['/'], ['room'], sub='backend')}"}

    async def scenario() -> None:
        async with Browser() as browser:
            await browser.goto(server.url + "/_/health")
            await browser.evaluate(
                start_client(
                    "/room",
                    f"transport: {json.dumps(transport)},"
                    "onPresence: e => (window.__presence = window.__presence || []).push(e),",
                )
            )
            await browser.until(CLIENT_LIVE + " && window.__outcomes.length === 1")
            user = await connect(server.ws_url + f"/room?token={mint(['/'], sub='u7')}")
            assert (await post(server.url + "/room", "hello", headers=publisher)).code == 202
            user.close()
            await browser.until("(window.__presence || []).length === 2")
            assert await browser.evaluate("JSON.stringify(window.__presence)") == json.dumps(
                [
                    {"presence": "join", "user": "u7", "channel": "room"},
                    {"presence": "leave", "user": "u7", "channel": "room"},
                ],
                separators=(",", ":"),
            )
            assert json.loads(await browser.evaluate(GOT)) == ["hello"]
            assert browser.errors() == []

    run(scenario())
