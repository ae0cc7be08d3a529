"""Lifecycle events on the embedded broker: the same contract inside one process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from tornado.httpserver import HTTPServer
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tornado_channels import MemoryBroker, Node, make_app
from tornado_channels.brokers.events import MemoryEventLog
from tornado_channels.web.events import EventSender

from ..helpers import EventStream, run, until
from ..helpers.events_backend import EventsBackend
from ..helpers.support import bind_unused_port
from .test_tokens import SECRET, mint


@asynccontextmanager
async def served(
    backend: EventsBackend, max_backlog: int = 1000
) -> AsyncIterator[tuple[str, Node]]:
    """A node on the embedded broker, recording events for ``backend``; its ws:// base URL."""
    node = Node(MemoryBroker())
    sender = EventSender(node.record_events(max_backlog), backend.url, timeout=2)
    await node.start()
    sender.start()
    server = HTTPServer(make_app(node, token_secret=SECRET, public=("/",)))
    sock, port = bind_unused_port()
    server.add_sockets([sock])
    try:
        yield f"ws://127.0.0.1:{port}", node
    finally:
        server.stop()
        await sender.stop(2)
        await node.stop()
        await server.close_all_connections()


async def opened(url: str, user: str | None = None) -> WebSocketClientConnection:
    if user is not None:
        url += f"?token={mint(['/'], sub=user, ttl=600)}"
    return await asyncio.wait_for(websocket_connect(url), 5)


async def closed(ws: WebSocketClientConnection) -> None:
    ws.close()
    while await asyncio.wait_for(ws.read_message(), 5) is not None:
        pass


def test_a_user_s_two_tabs_give_one_join_one_leave_and_every_event_in_order() -> None:
    """Two connections of u1 and an anonymous one: each event exactly once, in order, unique ids."""

    async def scenario() -> None:
        backend = EventsBackend().start()
        async with served(backend) as (base, _node):
            first = await opened(base + "/room/1", "u1")
            second = await opened(base + "/room/1", "u1")
            anonymous = await opened(base + "/room/1")
            await backend.has(7)
            # Each close's events in before the next: the order below is the server's.
            for ws, total in ((first, 9), (second, 12), (anonymous, 14)):
                await closed(ws)
                await backend.has(total)
        await backend.stop()
        assert len(backend.received) == 14, "nothing delivered twice while the backend is up"
        assert backend.sequence("room/1") == [
            ("connect", "u1"),
            ("subscribe", "u1"),
            ("join", "u1"),
            ("connect", "u1"),
            ("subscribe", "u1"),
            ("connect", None),
            ("subscribe", None),
            ("unsubscribe", "u1"),
            ("disconnect", "u1"),
            ("unsubscribe", "u1"),
            ("leave", "u1"),
            ("disconnect", "u1"),
            ("unsubscribe", None),
            ("disconnect", None),
        ]
        event = backend.received[0]
        assert set(event) == {"id", "type", "channel", "user", "time", "process"}

    run(scenario(), timeout=30)


def test_an_event_stream_is_a_connection_like_a_websocket() -> None:
    """An SSE subscriber of u5: connect, subscribe, join, then unsubscribe, leave, disconnect."""

    async def scenario() -> None:
        backend = EventsBackend().start()
        async with served(backend) as (base, _node):
            port = int(base.rsplit(":", 1)[1])
            token = mint(["/"], sub="u5", ttl=600)
            stream = await EventStream.open(port, "/news", {"Authorization": f"Bearer {token}"})
            await backend.has(3)
            stream.close()
            await backend.has(6)
        await backend.stop()
        assert backend.sequence("news") == [
            ("connect", "u5"),
            ("subscribe", "u5"),
            ("join", "u5"),
            ("unsubscribe", "u5"),
            ("leave", "u5"),
            ("disconnect", "u5"),
        ]

    run(scenario(), timeout=30)


def test_a_backend_that_fails_then_comes_back_gets_everything() -> None:
    """A backend answering 500 gets the batch again, with the same ids, until it answers 200."""

    async def scenario() -> None:
        backend = EventsBackend().start()
        backend.status = 500
        async with served(backend) as (base, node):
            ws = await opened(base + "/feed", "u3")
            await until(lambda: backend.attempts >= 3, 10, "three attempts")
            assert node.events is not None
            assert node.events.delivered == 0
            backend.status = 200
            await backend.has(3)
            await closed(ws)
            await backend.has(6)
        await backend.stop()
        assert [e["id"] for e in backend.offered[:3]] == [e["id"] for e in backend.offered[3:6]]
        assert backend.kinds()[("leave", "u3")] == 1

    run(scenario(), timeout=30)


def test_past_the_cap_the_oldest_are_dropped_and_counted() -> None:
    """With the backend down and a cap of 3, ten events leave the newest three; seven counted."""

    async def scenario() -> None:
        backend = EventsBackend()  # Not listening: refused.
        async with served(backend, max_backlog=3) as (base, node):
            clients = [await opened(base + f"/feed/{n}") for n in range(5)]
            events = node.events
            assert isinstance(events, MemoryEventLog)
            assert len(events) == 3
            assert events.dropped == 7
            backend.start()
            await backend.has(3)
            assert [(e["type"], e["channel"]) for e in backend.received] == [
                ("subscribe", "feed/3"),
                ("connect", "feed/4"),
                ("subscribe", "feed/4"),
            ]
            for ws in clients:
                await closed(ws)
        await backend.stop()

    run(scenario(), timeout=30)


def test_a_backlog_below_one_is_refused() -> None:
    """--events-max-backlog 0 is an error naming the flag, not a log that keeps nothing."""
    with pytest.raises(ValueError, match="events-max-backlog"):
        MemoryEventLog(0)
