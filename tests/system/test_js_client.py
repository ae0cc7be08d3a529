"""The JS client's state machine, run by Node against real servers: every transition it makes.

connecting -> live, live -> reconnecting -> connecting (a restart: 1001, then a
resume), connecting -> reconnecting (a failed token, a WebSocket that never
opens, with growing backoff, then the fallback to server-sent events),
connecting -> closed (no transport here), and close() / suspend() -> closed,
resume() -> connecting.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tornado.web import Application
from tornado.websocket import WebSocketHandler

from ..helpers import SILENCE, RedisServer, ServerProcess, free_port, post, run, until
from ..helpers.node_client import NodeClient, install_driver, node_available
from ..helpers.support import healthy_server

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(not node_available(), reason="node and npm are not installed"),
]

Start = Callable[..., ServerProcess]


@pytest.fixture(scope="module")
def driver() -> Iterator[Path]:
    """The Node driver of the client, with its EventSource installed (for this module only)."""
    directory = Path(tempfile.mkdtemp(prefix="tc-node-client-"))
    try:
        yield install_driver(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One server on its embedded broker, shared by the tests that restart nothing."""
    yield from healthy_server()


def start_healthy(process: ServerProcess) -> None:
    """Start ``process`` and wait until it reports itself healthy."""
    process.start().wait_healthy()


async def publish_all(url: str, texts: list[str]) -> None:
    """POST each of ``texts`` to ``url``, in order; each must be accepted."""
    for text in texts:
        assert (await post(url, text)).code == 202


def test_a_client_goes_live_delivers_in_order_and_close_ends_it_for_good(
    server: ServerProcess, driver: Path
) -> None:
    """Connecting -> live on ?positions=1, each message once, in order; close() ends it for good."""

    async def scenario() -> None:
        async with NodeClient(driver) as client:
            await client.connect(server.url + "/live")
            await client.until_states("connecting", "live")
            assert client.states() == ["connecting", "live"]
            first = client.of("status")[0]
            assert first["transport"] == "websocket"
            assert first["url"] == server.ws_url + "/live?positions=1"
            await until(lambda: len(client.of("recovery")) == 1, what="the outcome")
            assert client.of("recovery")[0]["recovered"] is True

            await publish_all(server.url + "/live", ["one", "two", "three"])
            await until(lambda: client.data() == ["one", "two", "three"], what="delivery")
            positions = [message["position"] for message in client.of("message")]
            assert (await client.view())["position"] == positions[-1]

            await client.command("close")
            await client.until_states("closed")
            assert client.of("status")[-1]["detail"] == "closed"
            await client.command("resume")  # Closed for good: resume() does nothing.
            await publish_all(server.url + "/live", ["after"])
            await asyncio.sleep(SILENCE)  # Nothing more: no reconnect, no message.
            assert client.states() == ["connecting", "live", "closed"]
            assert client.data() == ["one", "two", "three"]
            assert client.of("close") == []  # close() asked for it: not reported as a drop.

    run(scenario())


def test_a_restart_backs_off_then_resumes_from_the_last_position(
    servers: Start, redis_server: RedisServer, driver: Path
) -> None:
    """A restart: onClose 1001, live -> reconnecting; resume() -> connecting ?since= -> live."""
    a = servers("--redis-url", redis_server.url)
    b = servers("--redis-url", redis_server.url)

    async def scenario() -> None:
        replacement: ServerProcess | None = None
        try:
            async with NodeClient(driver) as client:
                await client.connect(a.url + "/news")
                await client.until_states("connecting", "live")
                await publish_all(b.url + "/news", ["one", "two"])
                await until(lambda: client.data() == ["one", "two"], what="delivery")
                last = client.of("message")[-1]["position"]

                await asyncio.to_thread(a.terminate)
                await client.until_states("reconnecting")
                [closed] = client.of("close")
                assert closed["code"] == 1001, closed
                assert closed["label"] == "server restarting"
                assert closed["transport"] == "websocket"
                waiting = client.of("status")[-1]
                assert waiting["detail"].startswith("server restarting (1001"), waiting
                assert 250 <= waiting["retryIn"] <= 500, waiting  # The first backoff.

                await publish_all(b.url + "/news", ["three", "four", "five"])
                replacement = ServerProcess("--redis-url", redis_server.url, port=a.port)
                await asyncio.to_thread(start_healthy, replacement)
                # Reconnecting: resume() connects now instead of waiting out the backoff.
                await client.command("resume")
                everything = ["one", "two", "three", "four", "five"]
                await until(lambda: client.data() == everything, what="the missed messages")
                await client.until_states("connecting", "live")
                resumed = [s for s in client.of("status") if s["state"] == "connecting"][-1]
                assert resumed["url"] == f"{a.ws_url}/news?since={last.replace(':', '%3A')}"
                outcome = client.of("recovery")[-1]
                assert outcome["recovered"] is True, outcome
                assert outcome["missed"] == 3, outcome
                await asyncio.sleep(SILENCE)
                assert client.data() == everything  # None twice.
        finally:
            if replacement is not None:
                await asyncio.to_thread(replacement.terminate)
                replacement.log.unlink(missing_ok=True)

    run(scenario())


def test_suspend_closes_until_resume_which_delivers_what_came_meanwhile(
    server: ServerProcess, driver: Path
) -> None:
    """suspend() -> closed with no reconnect; resume() -> connecting from the last position."""

    async def scenario() -> None:
        async with NodeClient(driver) as client:
            await client.connect(server.url + "/suspended")
            await client.until_states("connecting", "live")
            await publish_all(server.url + "/suspended", ["before"])
            await until(lambda: client.data() == ["before"], what="delivery")

            await client.command("suspend")
            await client.until_states("closed")
            assert client.of("status")[-1]["detail"] == "suspended"
            await publish_all(server.url + "/suspended", ["away 1", "away 2"])
            await asyncio.sleep(SILENCE)  # Suspended: neither receives nor reconnects.
            assert client.states()[-1] == "closed"
            assert client.data() == ["before"]

            await client.command("resume")
            await until(lambda: client.data() == ["before", "away 1", "away 2"], what="resume")
            await client.until_states("connecting", "live")
            assert "/suspended?since=" in client.of("status")[-1]["url"]
            count = len(client.states())
            await client.command("resume")  # Live already: resume() does nothing.
            await until(lambda: len(client.of("done")) == 3, what="the command")
            assert len(client.states()) == count
            assert client.of("close") == []

    run(scenario())


def test_a_failing_token_provider_backs_off_and_the_next_attempt_goes_live(
    server: ServerProcess, driver: Path
) -> None:
    """Connecting -> reconnecting when the token provider fails; the retry's token goes live."""

    async def scenario() -> None:
        async with NodeClient(driver) as client:
            await client.connect(server.url + "/token", flakyToken=True)
            await client.until_states("connecting", "reconnecting", "connecting", "live")
            waiting = client.of("status")[1]
            assert waiting["detail"] == "could not get a token: nope"
            assert 250 <= waiting["retryIn"] <= 500, waiting
            assert client.of("close") == []  # No connection was opened, so none ended.
            await publish_all(server.url + "/token", ["hello"])
            await until(lambda: client.data() == ["hello"], what="delivery")

    run(scenario())


def test_websockets_that_never_open_back_off_growing_then_fall_back_to_sse(
    server: ServerProcess, driver: Path
) -> None:
    """Three refused WebSockets, each backoff longer, then SSE from a reset backoff, live."""
    nowhere = free_port()  # Nothing listens there: every WebSocket is refused.

    async def scenario() -> None:
        async with NodeClient(driver) as client:
            await client.connect(server.url + "/fallback", webSocketPort=nowhere)
            await client.until_states(
                *["connecting", "reconnecting"] * 3, "connecting", "live", timeout=15
            )
            waits = [s for s in client.of("status") if s["state"] == "reconnecting"]
            assert 250 <= waits[0]["retryIn"] <= 500, waits
            assert 500 <= waits[1]["retryIn"] <= 1000, waits
            assert waits[2]["detail"] == "WebSocket unavailable, switching to server-sent events"
            assert waits[2]["transport"] == "sse"
            assert 250 <= waits[2]["retryIn"] <= 500, waits  # Reset for the new transport.
            closes = client.of("close")
            assert [(c["code"], c["transport"]) for c in closes] == [(1006, "websocket")] * 3
            live = client.of("status")[-1]
            assert live["transport"] == "sse"
            assert live["url"] == server.url + "/fallback"
            await publish_all(server.url + "/fallback", ["one", "two"])
            await until(lambda: client.data() == ["one", "two"], what="delivery over SSE")
            assert (await client.view())["transport"] == "sse"

    run(scenario())


def test_with_no_transport_of_the_choice_here_it_is_closed_at_once(driver: Path) -> None:
    """Connecting -> closed when the runtime has neither WebSocket nor EventSource."""

    async def scenario() -> None:
        async with NodeClient(driver, websocket=False, eventsource=False) as client:
            await client.connect("ws://127.0.0.1:9/room")
            await client.until_states("closed")
            status = client.of("status")[-1]
            assert status["detail"] == "neither WebSocket nor EventSource is available"
            assert status["transport"] == "none"
            await client.command("resume")  # Nothing to connect with: it stays closed.
            await until(lambda: len(client.of("done")) == 1, what="the command")
            assert client.states() == ["closed"]

    run(scenario())


class Replaying(WebSocketHandler):
    """A server that replays positions the client has seen (as a seam bug would)."""

    def open(self, *args: str, **kwargs: str) -> None:
        frames: list[object] = [
            {"recovered": True, "missed": 0, "position": "e:0"},
            {"position": "e:1", "data": "one"},
            {"position": "e:2", "data": "two"},
            {"position": "e:1", "data": "one again"},
            {"position": "e:3", "data": "three"},
            {"position": "e:2", "data": "two again"},
            {"position": "f:1", "data": "new epoch"},
        ]
        for frame in frames:
            self.write_message(json.dumps(frame))
        self.write_message("raw, no position")


def test_a_position_already_seen_is_never_delivered_twice(driver: Path) -> None:
    """Replayed positions are dropped; a new epoch and a raw frame without one are delivered."""
    port = free_port()
    app = Application([(r"/.*", Replaying)])

    async def scenario() -> None:
        server = app.listen(port, address="127.0.0.1")
        try:
            async with NodeClient(driver) as client:
                await client.connect(f"ws://127.0.0.1:{port}/room")
                expected = ["one", "two", "three", "new epoch", "raw, no position"]
                await until(lambda: client.data() == expected, what="delivery")
                await asyncio.sleep(SILENCE)
                assert client.data() == expected
                positions = [m["position"] for m in client.of("message")]
                assert positions == ["e:1", "e:2", "e:3", "f:1", None]
                await client.command("close")
                await client.until_states("closed")
        finally:
            server.stop()
            await server.close_all_connections()

    run(scenario())
