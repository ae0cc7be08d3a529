"""Overlapping subscribers on one process never leave it deaf in Redis: the last intent wins."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable

import pytest
from prometheus_client import generate_latest

from tornado_channels import Channel, MemoryBroker, Node, RedisBroker
from tornado_channels.brokers.base import BrokerUnavailable
from tornado_channels.web.metrics import NodeMetrics

from ..helpers import (
    WAIT,
    Inbox,
    RedisServer,
    ServerProcess,
    post,
    raw_websocket,
    redis_broker,
    run,
    until,
)

Start = Callable[..., ServerProcess]

pytestmark = pytest.mark.processes

#: Iterations of the churn; each opens one subscriber as the previous one goes.
CHURN = 500

#: Every pub/sub channel of channels and subtrees (one partition).
KEYS = "tornado_channels:{0}[ct]:*"


async def read_text(reader: asyncio.StreamReader, timeout: float = WAIT) -> str:
    """The next text frame a server sends (server frames are never masked)."""
    first, second = await asyncio.wait_for(reader.readexactly(2), timeout)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    payload = await asyncio.wait_for(reader.readexactly(length), timeout)
    assert first & 0x0F == 0x1, f"expected a text frame, got opcode {first & 0x0F}: {payload!r}"
    return payload.decode()


def end(writer: asyncio.StreamWriter, graceful: bool) -> None:
    """Close a raw WebSocket: a close frame and FIN, or a reset (RST) at once."""
    if graceful:
        # A masked close frame with code 1000 (mask of zeros: payload as is).
        writer.write(b"\x88\x82\x00\x00\x00\x00\x03\xe8")
        writer.close()
        return
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_overlapping_subscribers_always_receive_the_next_message(
    servers: Start, redis_server: RedisServer, loop: str
) -> None:
    """A subscriber that opens as another on its channel closes always gets the next POST."""
    a = servers("--redis-url", redis_server.url, "--event-loop", loop)
    b = servers("--redis-url", redis_server.url, "--event-loop", loop)

    async def scenario() -> None:
        old = await raw_websocket(a.port, "/churn/room")
        deadline = time.monotonic() + 120
        for number in range(CHURN):
            assert time.monotonic() < deadline, f"churn too slow: {number} of {CHURN}"
            # Half on a channel published to directly, half through its subtree;
            # closes alternate between graceful ones and resets.
            end(old[1], graceful=number % 2 == 0)
            new = await raw_websocket(a.port, "/churn/room")
            target = "/churn/room" if number % 4 < 2 else "/churn/"
            response = await post(b.url + target, f"m{number}")
            assert response.code == 202, response.body
            received = await read_text(new[0], timeout=5)
            assert received == f"m{number}", f"iteration {number}: {received!r}"
            old = new
        end(old[1], graceful=True)

    run(scenario(), timeout=180)


def test_concurrent_handshakes_and_closes_leave_every_key_held(redis_server: RedisServer) -> None:
    """Subscribes and unsubscribes interleaved in one pass leave Redis holding what is wanted."""

    async def scenario() -> None:
        broker = RedisBroker(redis_server.url)
        node = Node(broker)
        await node.start()
        assert await node.wait_connected(WAIT)
        subscribers = [object() for _ in range(40)]
        channel = Channel("users/7")
        for round_ in range(50):
            # All on one pass of the loop: a close and a new subscriber at once.
            tasks = [
                asyncio.ensure_future(node.subscribe(channel, subscriber))  # type: ignore[arg-type]
                for subscriber in subscribers[round_ % 2 :: 2]
            ]
            for subscriber in subscribers[(round_ + 1) % 2 :: 2]:
                node.unsubscribe(channel, subscriber)  # type: ignore[arg-type]
            await asyncio.gather(*tasks)
        held = redis_server.cli("PUBSUB", "NUMSUB", "tornado_channels:{0}c:users/7").split()
        assert held[-1] == "1", held
        for subscriber in subscribers:
            node.unsubscribe(channel, subscriber)  # type: ignore[arg-type]
        await until(
            lambda: redis_server.cli("PUBSUB", "CHANNELS", KEYS).strip() == "",
            what="every channel and subtree key released",
        )
        await node.stop()

    run(scenario())


def test_self_check_repairs_a_subscription_redis_dropped(redis_server: RedisServer) -> None:
    """A key Redis no longer holds is found by the self-check, resubscribed, logged and counted."""

    async def scenario() -> None:
        broker = redis_broker(redis_server.url, redis_check_interval=0.2)
        node = Node(broker)
        await node.start()
        assert await node.wait_connected(WAIT)
        inbox = Inbox()
        await node.subscribe(Channel("fragile"), inbox)  # type: ignore[arg-type]
        # A fault from outside the ledger: the connection drops one key behind its back.
        assert broker.links.of(0)._pubsub is not None
        await broker.links.of(0)._pubsub.unsubscribe(b"tornado_channels:{0}c:fragile")
        await until(
            lambda: (
                redis_server.cli("PUBSUB", "NUMSUB", "tornado_channels:{0}c:fragile").split()[-1]
                == "0"
            ),
            what="the key dropped",
        )
        await until(lambda: broker.repairs >= 1, what="the self-check repairing it")
        scrape = generate_latest(NodeMetrics(node).registry).decode()
        assert "tornado_channels_subscription_repairs_total 1.0" in scrape
        await until(
            lambda: (
                redis_server.cli("PUBSUB", "NUMSUB", "tornado_channels:{0}c:fragile").split()[-1]
                == "1"
            ),
            what="the key held again",
        )
        await node.publish(Channel("fragile"), b"heard again")
        assert await inbox.next() == b"heard again"
        await node.stop()

    run(scenario())


def test_self_check_drops_a_subscription_nobody_wants(redis_server: RedisServer) -> None:
    """A key the connection holds unasked is found by the self-check and unsubscribed."""

    async def scenario() -> None:
        broker = redis_broker(redis_server.url, redis_check_interval=0.2)
        node = Node(broker)
        await node.start()
        assert await node.wait_connected(WAIT)
        # A fault from outside the ledger: an extra key on the connection.
        assert broker.links.of(0)._pubsub is not None
        await broker.links.of(0)._pubsub.subscribe(b"tornado_channels:{0}c:unwanted")
        await until(lambda: broker.repairs >= 1, what="the self-check dropping it")
        await until(
            lambda: (
                redis_server.cli("PUBSUB", "NUMSUB", "tornado_channels:{0}c:unwanted").split()[-1]
                == "0"
            ),
            what="the key released",
        )
        await node.stop()

    run(scenario())


def test_memory_broker_confirms_at_once_and_refuses_when_stopped() -> None:
    """The embedded broker needs no ordering: confirm is immediate while started."""

    async def scenario() -> None:
        broker = MemoryBroker()
        node = Node(broker)
        await node.start()
        broker.subscribe(Channel("a"))
        await broker.confirm(Channel("a"))
        await node.stop()
        with pytest.raises(BrokerUnavailable, match="stopped"):
            await broker.confirm(Channel("a"))

    run(scenario())
