"""A subscription: what the hub holds, writing to a transport that may not exist yet."""

from __future__ import annotations

import asyncio
import json

from tornado_channels import Channel, Node
from tornado_channels.core.frames import CLOSE_SLOW_CONSUMER, Encoding
from tornado_channels.subscription import Subscription

from .helpers import run, until


class Transport:
    """Records what a subscription writes, and how it ends."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closes: list[tuple[int | None, str | None]] = []
        self.failures: list[tuple[int, str]] = []

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)

    def buffered(self) -> int:
        return 0

    def close(self, code: int | None, reason: str | None) -> None:
        self.closes.append((code, reason))

    def fail(self, code: int, reason: str) -> None:
        self.failures.append((code, reason))


def test_frames_before_the_transport_exists_go_out_first_once_attached() -> None:
    """Subscribed before the handshake is answered: what arrived meanwhile is sent first."""

    async def scenario() -> None:
        node = Node()
        await node.start()
        subscription = Subscription(node, Channel("a"), Encoding.RAW)
        await subscription.start()
        await node.publish(Channel("a"), b"early")
        await node.publish(Channel("a"), b"bird")
        node.flush()
        transport = Transport()
        subscription.attach(transport)
        assert b"".join(transport.frames) == b"\x81\x05early\x81\x04bird"
        await node.stop()

    run(scenario())


def test_a_close_asked_before_the_transport_exists_is_made_once_it_does() -> None:
    """A close (say, the broker lost) before attach is applied right after the pending frames."""

    async def scenario() -> None:
        node = Node()
        await node.start()
        subscription = Subscription(node, Channel("a"), Encoding.RAW)
        await subscription.start()
        subscription.close(1013, "lost")
        transport = Transport()
        subscription.attach(transport)
        assert transport.closes == [(1013, "lost")]
        assert len(node.hub) == 0

    run(scenario())


def test_a_resuming_subscription_gets_the_history_then_the_outcome_then_live() -> None:
    """With ``since``, missed messages come first, then the outcome, then live ones, none twice."""

    async def scenario() -> None:
        node = Node()
        await node.start()
        since = await node.head(Channel("a"))
        await node.publish(Channel("a"), b"missed")
        subscription = Subscription(node, Channel("a"), Encoding.ENVELOPE, since)
        await subscription.start()
        transport = Transport()
        subscription.attach(transport)
        # Held while recovering, but also in the history read: sent once, from there.
        await node.publish(Channel("a"), b"during")
        await subscription.resume()
        await node.publish(Channel("a"), b"after")
        node.flush()
        sent = [json.loads(frame[2:]) for frame in transport.frames]
        assert [entry.get("data", entry.get("recovered")) for entry in sent] == [
            "missed",
            "during",
            True,
            "after",
        ]
        assert not subscription.recovering

    run(scenario())


def test_a_subscription_that_falls_behind_while_recovering_is_closed_as_slow() -> None:
    """Held frames count like unread ones: past the bound, 4008, and it leaves the channel."""

    async def scenario() -> None:
        node = Node(max_buffered_bytes=100)
        await node.start()
        subscription = Subscription(
            node, Channel("a"), Encoding.ENVELOPE, await node.head(Channel("a"))
        )
        await subscription.start()
        transport = Transport()
        subscription.attach(transport)
        await node.publish(Channel("a"), b"x" * 200)
        node.flush()
        assert transport.closes == [(CLOSE_SLOW_CONSUMER, "slow consumer")]
        assert len(node.hub) == 0

    run(scenario())


def test_a_protocol_failure_comes_after_what_the_node_already_received() -> None:
    """fail() delivers what is pending (a client's own echo) before failing the connection."""

    async def scenario() -> None:
        node = Node()
        await node.start()
        subscription = Subscription(node, Channel("a"), Encoding.RAW)
        await subscription.start()
        transport = Transport()
        subscription.attach(transport)
        await node.publish(Channel("a"), b"echo")
        subscription.fail(1002, "bad frame")
        assert transport.frames == [b"\x81\x04echo"]
        assert transport.failures == [(1002, "bad frame")]

    run(scenario())


def test_a_re_authorization_timer_never_moves_a_token_deadline_and_dies_with_it() -> None:
    """at() runs beside close_at() (the token still closes it); after a close nothing is set."""

    async def scenario() -> None:
        node = Node()
        await node.start()
        subscription = Subscription(node, Channel("a"), Encoding.RAW)
        await subscription.start()
        transport = Transport()
        subscription.attach(transport)
        asked = asyncio.Event()
        subscription.close_at(0.05, 4001, "token expired")
        subscription.at(0.01, asked.set)
        await asyncio.wait_for(asked.wait(), 5)
        subscription.at(60, asked.clear)  # A later re-ask, replacing only its own timer.
        await until(lambda: transport.closes, what="the token's close")
        assert transport.closes == [(4001, "token expired")]
        subscription.at(0, asked.clear)  # After the close: never scheduled.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert asked.is_set()
        await node.stop()

    run(scenario())
