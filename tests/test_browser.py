"""The live pages in a real headless Chromium against a real server process."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .browser import Browser, chromium_path
from .support import ServerProcess, connect, post, receive, run

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed")

Start = Callable[..., ServerProcess]

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(2)">',
]


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
