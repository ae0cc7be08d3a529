"""The node: publish goes through the broker, delivery comes back from it (embedded broker)."""

from __future__ import annotations

import asyncio

import pytest

from tornado_channels import Channel, MemoryBroker, Node
from tornado_channels.brokers.base import BrokerUnavailable
from tornado_channels.core.frames import (
    CLOSE_GOING_AWAY,
    CLOSE_SLOW_CONSUMER,
    CLOSE_TRY_AGAIN_LATER,
    Encoding,
)

from .helpers import Inbox, run


class CountingBroker(MemoryBroker):
    """A memory broker that counts subscriptions, and can hold or refuse confirmations."""

    def __init__(self) -> None:
        super().__init__()
        self.interest: dict[str, int] = {}
        self.refuse = False
        self.hold = asyncio.Event()
        self.hold.set()

    def subscribe(self, channel: Channel) -> None:
        self.interest[channel.name] = self.interest.get(channel.name, 0) + 1

    async def confirm(self, channel: Channel) -> None:
        await self.hold.wait()
        if self.refuse:
            raise BrokerUnavailable("refused")

    def unsubscribe(self, channel: Channel) -> None:
        self.interest[channel.name] -= 1


def test_a_publish_comes_back_from_the_broker_on_the_next_pass() -> None:
    """Delivery is not synchronous with publish: it comes at the start of the next loop pass."""

    async def scenario() -> None:
        node = Node()
        await node.start()
        inbox = Inbox()
        await node.subscribe(Channel("a"), inbox)  # type: ignore[arg-type]
        position = await node.publish(Channel("a"), b"hello")
        assert inbox.frames == []  # Not yet: delivered on the next pass.
        assert await inbox.next() == b"hello"
        assert position.seq == 1
        assert node.published == 1
        assert node.publish_latency.count == 1
        await node.stop()

    run(scenario())


def test_a_refused_publish_is_counted_by_reason() -> None:
    """A stopped broker refuses: BrokerUnavailable, counted as 'unavailable', no latency."""

    async def scenario() -> None:
        node = Node()
        await node.start()
        await node.broker.stop()
        with pytest.raises(BrokerUnavailable):
            await node.publish(Channel("a"), b"x")
        assert node.publish_failures == {"unavailable": 1, "outcome_unknown": 0}
        assert node.publish_latency.count == 0

    run(scenario())


def test_a_refused_subscription_is_released_exactly_once() -> None:
    """When the broker cannot confirm, the node leaves nothing subscribed, released once."""

    async def scenario() -> None:
        broker = CountingBroker()
        node = Node(broker)
        await node.start()
        broker.refuse = True
        with pytest.raises(BrokerUnavailable):
            await node.subscribe(Channel("a"), Inbox())  # type: ignore[arg-type]
        assert broker.interest == {"a": 0}
        assert len(node.hub) == 0

    run(scenario())


def test_a_subscriber_that_leaves_while_confirming_is_released_exactly_once() -> None:
    """Unsubscribed during the wait, then refused: one subscribe, one unsubscribe, no more."""

    async def scenario() -> None:
        broker = CountingBroker()
        node = Node(broker)
        await node.start()
        broker.hold.clear()
        inbox = Inbox()
        waiting = asyncio.ensure_future(node.subscribe(Channel("a"), inbox))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        node.unsubscribe(Channel("a"), inbox)  # type: ignore[arg-type]
        broker.refuse = True
        broker.hold.set()
        with pytest.raises(BrokerUnavailable):
            await waiting
        assert broker.interest == {"a": 0}

    run(scenario())


def test_drain_closes_every_subscriber_and_waits_for_them() -> None:
    """drain() closes with 1001; it returns True once the last one has left."""

    async def scenario() -> None:
        node = Node()
        await node.start()
        inboxes = [Inbox() for _ in range(3)]
        for inbox in inboxes:
            await node.subscribe(Channel("a"), inbox)  # type: ignore[arg-type]

        async def leave() -> None:
            await asyncio.sleep(0.05)
            for inbox in inboxes:
                node.unsubscribe(Channel("a"), inbox)  # type: ignore[arg-type]

        leaving = asyncio.ensure_future(leave())
        assert await node.drain(timeout=5)
        await leaving
        assert all(
            inbox.closes == [(CLOSE_GOING_AWAY, "server shutting down")] for inbox in inboxes
        )

    run(scenario())


def test_losing_the_broker_delivers_what_came_then_closes_with_1013() -> None:
    """Messages received before the loss reach subscribers before their 1013."""

    async def scenario() -> None:
        node = Node()
        await node.start()
        inbox = Inbox()
        await node.subscribe(Channel("a"), inbox)  # type: ignore[arg-type]
        await node.publish(Channel("a"), b"last words")
        node.broker_state_changed(False)
        assert inbox.frames
        assert inbox.frames[-1].endswith(b"last words")
        assert inbox.closes == [
            (CLOSE_TRY_AGAIN_LATER, "broker unavailable: messages may have been missed")
        ]

    run(scenario())


def test_recovering_delivers_what_the_node_holds_first() -> None:
    """recover() flushes pending deliveries, so a recovering subscriber's seam sees them."""

    async def scenario() -> None:
        node = Node()
        await node.start()
        inbox = Inbox()
        await node.subscribe(Channel("a"), inbox)  # type: ignore[arg-type]
        head = await node.head(Channel("a"))
        await node.publish(Channel("a"), b"pending")
        assert inbox.frames == []
        recovery = await node.recover(Channel("a"), head)
        assert [p.payload for p in recovery.publications] == [b"pending"]
        assert inbox.frames
        assert inbox.frames[-1].endswith(b"pending")

    run(scenario())


class StuckInbox(Inbox):
    """A watcher that stopped reading: everything it is sent stays unread; closing ends it."""

    encoding = Encoding.ENVELOPE

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        self.unread = 0

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        super().close(code, reason)
        self.node.unsubscribe(Channel("room"), self)  # type: ignore[arg-type]

    def send_frame(self, frame: bytes, seq: int = 0) -> None:
        self.unread += len(frame)

    def buffered_bytes(self) -> int:
        return self.unread

    def offer(self, frame: bytes, seq: int, limit: int) -> bool:
        if self.buffered_bytes() > limit:
            return False
        self.send_frame(frame, seq)
        return True


def test_a_flood_of_joins_and_leaves_closes_a_watcher_that_stopped_reading() -> None:
    """5,000 joins and leaves to a watcher that reads nothing: closed with 4008, not buffered."""

    async def scenario() -> None:
        node = Node(max_buffered_bytes=64 * 1024)
        await node.start()
        stuck = StuckInbox(node)
        await node.subscribe(Channel("room"), stuck, presence_events=True)  # type: ignore[arg-type]
        reader = Inbox()
        await node.subscribe(Channel("room"), reader)  # type: ignore[arg-type]
        for number in range(5000):
            user = Inbox()
            await node.subscribe(Channel("room"), user, user=f"u{number}")  # type: ignore[arg-type]
            node.unsubscribe(Channel("room"), user)  # type: ignore[arg-type]
        assert [code for code, _ in stuck.closes] == [CLOSE_SLOW_CONSUMER]
        assert stuck.unread < 64 * 1024 + 1024, "closed as soon as it passed the bound"
        assert reader.closes == [], "the others are unaffected"
        await node.stop()

    run(scenario())
