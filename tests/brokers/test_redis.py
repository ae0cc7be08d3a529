"""The Redis broker against a private, real Redis that the tests kill, freeze and restart."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from tornado_channels import (
    BrokerUnavailable,
    Channel,
    Node,
    PublishOutcomeUnknown,
    RedisBroker,
    Subtree,
)
from tornado_channels.core.channels import Target
from tornado_channels.core.frames import CLOSE_TRY_AGAIN_LATER, encode_frame
from tornado_channels.core.history import STREAM_GRACE
from tornado_channels.core.presence import PresenceTally
from tornado_channels.core.publication import Position, Publication, encode

from ..helpers import Inbox, RedisServer, redis_broker, run, until

pytestmark = pytest.mark.processes

#: Every pub/sub channel of channels and subtrees (one partition).
KEYS = "tornado_channels:{0}[ct]:*"


def fast_broker(url: str, **settings: float) -> RedisBroker:
    """A Redis broker with test-sized reconnection and the ``settings`` a test names."""
    return redis_broker(url, **settings)


async def started(url: str, **options: float) -> Node:
    node = Node(fast_broker(url, **options))
    await node.start()
    await until(lambda: node.connected, what="broker connected")
    return node


def test_publication_reaches_subscribers_on_another_node(redis_server: RedisServer) -> None:
    """A publish on one node is delivered to a subscriber on another node sharing the Redis."""

    async def scenario() -> None:
        a, b = await started(redis_server.url), await started(redis_server.url)
        inbox = Inbox()
        await b.subscribe(Channel("users/1"), inbox)
        await a.publish(Channel("users/1"), b"Hi there!")
        assert await inbox.next() == b"Hi there!"
        await a.publish(Subtree("users"), b"below")
        assert await inbox.next() == b"below"
        await a.publish(Subtree(""), b"root")
        assert await inbox.next() == b"root"
        await a.publish(Channel("users"), b"not below")
        await a.publish(Subtree("users/1"), b"strictly below only")
        await inbox.nothing()
        await a.stop()
        await b.stop()

    run(scenario())


def test_subscribes_only_to_what_local_subscribers_need(redis_server: RedisServer) -> None:
    """Redis holds one SUBSCRIBE per needed channel and subtree key, and none after leaving."""

    async def scenario() -> None:
        node = await started(redis_server.url)
        inbox = Inbox()
        await node.subscribe(Channel("users/1"), inbox)
        names = set(redis_server.cli("PUBSUB", "CHANNELS", KEYS).split())
        assert names == {
            "tornado_channels:{0}c:users/1",
            "tornado_channels:{0}t:users",
            "tornado_channels:{0}t:",
        }
        assert redis_server.cli("PUBSUB", "NUMPAT").strip() == "0"
        node.unsubscribe(Channel("users/1"), inbox)
        await until(
            lambda: not redis_server.cli("PUBSUB", "CHANNELS", KEYS).strip(),
            what="unsubscribed in Redis",
        )
        await node.stop()

    run(scenario())


def test_glob_characters_in_names_are_literal(redis_server: RedisServer) -> None:
    """Channels named with *, ? and [ ] are plain names in Redis: they match nothing else."""

    async def scenario() -> None:
        node = await started(redis_server.url)
        star, plain = Inbox(), Inbox()
        await node.subscribe(Channel("a*"), star)
        await node.subscribe(Channel("ab"), plain)
        await node.publish(Channel("a*"), b"star")
        await node.publish(Channel("a?"), b"question")
        await node.publish(Channel("[ab]"), b"class")
        assert await star.next() == b"star"
        await star.nothing()
        await plain.nothing()
        assert redis_server.cli("PUBSUB", "NUMPAT").strip() == "0"
        await node.stop()

    run(scenario())


def test_survives_redis_kill_and_resubscribes(redis_server: RedisServer) -> None:
    """After kill -9 of Redis: publishes fail, subscribers are told, and all resumes on restart."""

    async def scenario() -> None:
        node = await started(redis_server.url)
        inbox = Inbox()
        await node.subscribe(Channel("room"), inbox)
        redis_server.kill()
        await until(lambda: not node.connected, what="disconnect noticed")
        assert inbox.closes == [
            (CLOSE_TRY_AGAIN_LATER, "broker unavailable: messages may have been missed")
        ]
        with pytest.raises(BrokerUnavailable):
            await node.publish(Channel("room"), b"lost")
        with pytest.raises(BrokerUnavailable):
            await node.subscribe(Channel("other"), Inbox())
        redis_server.start()
        loop = asyncio.get_running_loop()
        back = loop.time()
        await until(lambda: node.connected, what="reconnected")
        assert loop.time() - back < 5.0  # Promptly, with room for a loaded machine.
        # The subscription held before the outage was renewed with the connection.
        await node.publish(Channel("room"), b"after")
        assert await inbox.next() == b"after"
        assert node.broker.reconnects == 1  # type: ignore[attr-defined]
        await node.stop()

    run(scenario())


def test_starts_while_redis_is_down_and_connects_when_it_appears() -> None:
    """A node started before its Redis reports unavailable, then connects by itself."""
    redis = RedisServer()

    async def scenario() -> None:
        node = Node(fast_broker(redis.url))
        await node.start()
        await asyncio.sleep(0.5)
        assert not node.connected
        with pytest.raises(BrokerUnavailable):
            await node.publish(Channel("a"), b"x")
        redis.start()
        await until(lambda: node.connected, what="connected once Redis appeared")
        inbox = Inbox()
        await node.subscribe(Channel("a"), inbox)
        await node.publish(Channel("a"), b"x")
        assert await inbox.next() == b"x"
        await node.stop()

    try:
        run(scenario())
    finally:
        redis.stop()


def test_foreign_messages_do_not_break_the_listener(redis_server: RedisServer) -> None:
    """A malformed message on our Redis channel is logged and skipped; delivery goes on."""

    async def scenario() -> None:
        node = await started(redis_server.url)
        inbox = Inbox()
        await node.subscribe(Channel("a"), inbox)
        redis_server.cli("PUBLISH", "tornado_channels:{0}c:a", "not an envelope")
        await node.publish(Channel("a"), b"real")
        assert await inbox.next() == b"real"
        await inbox.nothing(0.2)
        await node.stop()

    run(scenario())


def test_frozen_redis_is_detected_by_the_probe(redis_server: RedisServer) -> None:
    """A Redis that stops answering (SIGSTOP) is noticed by the liveness probe, not left deaf."""

    async def scenario() -> None:
        node = await started(redis_server.url, redis_probe_interval=0.3, redis_timeout=0.3)
        inbox = Inbox()
        await node.subscribe(Channel("a"), inbox)
        assert redis_server.process is not None
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            await until(lambda: not node.connected, timeout=5, what="freeze detected")
            assert inbox.closes, "subscribers were not told"
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        await until(lambda: node.connected, what="reconnected after thaw")
        await node.stop()

    run(scenario())


def test_publish_timeout_is_reported_as_unknown_not_retried(redis_server: RedisServer) -> None:
    """A PUBLISH that Redis does not answer in time raises PublishOutcomeUnknown (no retry)."""

    async def scenario() -> None:
        node = await started(redis_server.url, redis_timeout=0.3, redis_probe_interval=60)
        assert redis_server.process is not None
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(PublishOutcomeUnknown):
                await node.publish(Channel("a"), b"maybe")
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        await node.stop()

    run(scenario())


def test_frames_are_encoded_once_per_publication(redis_server: RedisServer) -> None:
    """Every local subscriber of a channel is handed the very same frame object."""

    async def scenario() -> None:
        node = await started(redis_server.url)
        first, second = Inbox(), Inbox()
        await node.subscribe(Channel("a"), first)
        await node.subscribe(Channel("a"), second)
        await node.publish(Channel("a"), b"once")
        await until(lambda: first.frames and second.frames, what="both deliveries")
        assert first.frames[0] == encode_frame(b"once")
        assert first.frames[0] is second.frames[0]
        await node.stop()

    run(scenario())


def test_idle_history_is_dropped_from_redis_but_never_silently(redis_server: RedisServer) -> None:
    """A channel's stream idle past the history age leaves Redis; resuming before it fails."""

    async def scenario() -> None:
        node = await started(redis_server.url, history_age=0.3)
        old = await node.publish(Channel("old"), b"long ago")
        assert redis_server.cli("EXISTS", "tornado_channels:{0}h:c:old").strip() == "1"
        # Kept for the age plus a grace second (clocks, failovers), then gone
        # (polled: on a loaded machine the expiry is seen later, never sooner).
        await asyncio.sleep(0.3 + STREAM_GRACE)
        await node.publish(Channel("fresh"), b"now")

        def gone() -> bool:
            return redis_server.cli("EXISTS", "tornado_channels:{0}h:c:old").strip() == "0"

        await until(gone, timeout=10, what="the idle stream to expire")
        before = Position(old.epoch, old.seq - 1)
        recovered = await node.recover(Channel("old"), before)
        assert not recovered.complete
        assert (await node.recover(Channel("old"), old)).complete
        await node.stop()

    run(scenario())


def test_a_batch_is_published_in_order_with_consecutive_positions(
    redis_server: RedisServer,
) -> None:
    """publish_many is one script call: consecutive positions, delivered in order elsewhere."""

    async def scenario() -> None:
        a, b = await started(redis_server.url), await started(redis_server.url)
        inbox = Inbox()
        await b.subscribe(Channel("room/1"), inbox)
        positions = await a.publish_many(
            [
                (Channel("room/1"), b"one"),
                (Channel("room/2"), b"elsewhere"),
                (Subtree("room"), b"everyone"),
                (Channel("room/1"), b"two"),
            ]
        )
        assert len({p.epoch for p in positions}) == 1
        assert [p.seq for p in positions] == list(range(positions[0].seq, positions[0].seq + 4))
        assert [await inbox.next() for _ in range(3)] == [b"one", b"everyone", b"two"]
        await inbox.nothing()
        recovered = await b.recover(Channel("room/1"), Position(positions[0].epoch, 0))
        assert [p.payload for p in recovered.publications] == [b"one", b"everyone", b"two"]
        await a.stop()
        await b.stop()

    run(scenario())


def test_concurrent_publishes_share_one_round_trip(redis_server: RedisServer) -> None:
    """Publishes made together go to Redis as one script call, in order, each with its position."""

    def script_calls() -> int:
        stats = redis_server.cli("INFO", "commandstats")
        for line in stats.splitlines():
            if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
                return int(line.split("calls=")[1].split(",")[0])
        return 0

    async def scenario() -> None:
        node = await started(redis_server.url)
        inbox = Inbox()
        await node.subscribe(Channel("room"), inbox)
        await node.publish(Channel("room"), b"warm-up")  # loads the script
        assert await inbox.next() == b"warm-up"
        before = script_calls()
        positions = await asyncio.gather(
            *(node.publish(Channel("room"), b"%d" % i) for i in range(20))
        )
        assert script_calls() - before == 1
        assert [p.seq for p in positions] == list(range(positions[0].seq, positions[0].seq + 20))
        assert [await inbox.next() for _ in range(20)] == [b"%d" % i for i in range(20)]
        await node.stop()

    run(scenario())


def test_idempotency_keys_are_scoped_per_caller_in_redis(redis_server: RedisServer) -> None:
    """On Redis, one key under two callers publishes twice, replays per caller, names no one."""

    async def scenario() -> None:
        a, b = await started(redis_server.url), await started(redis_server.url)
        inbox = Inbox()
        await b.subscribe(Channel("orders/1"), inbox)
        message = [(Channel("orders/1"), b"paid")]
        first = await a.submit(message, idempotency_key="order-1", caller="sub:alice")
        other = await b.submit(message, idempotency_key="order-1", caller="sub:bob")
        backend = await a.submit(
            [(Channel("orders/1"), b"other")], idempotency_key="order-1", caller=None
        )
        assert [first.replayed, other.replayed, backend.replayed] == [False, False, False]
        assert len({*first.positions, *other.positions, *backend.positions}) == 3
        assert [await inbox.next() for _ in range(3)] == [b"paid", b"paid", b"other"]
        again = await b.submit(message, idempotency_key="order-1", caller="sub:alice")
        assert (again.replayed, again.positions) == (True, first.positions)
        await inbox.nothing()
        stored = redis_server.cli("--scan", "--pattern", "*i:*").split()
        assert len(stored) == 3
        assert not any("alice" in key or "bob" in key for key in stored)
        await a.stop()
        await b.stop()

    run(scenario())


class Heard:
    """The node's side of a broker (BrokerEvents): what reached it."""

    def __init__(self) -> None:
        self.publications: list[Publication] = []
        self.states: list[tuple[bool, int | None]] = []

    def received(self, publication: Publication) -> None:
        self.publications.append(publication)

    def subscription_lost(self, target: Target) -> None:
        raise AssertionError(f"lost {target}")

    def broker_state_changed(self, connected: bool, partition: int | None = None) -> None:
        self.states.append((connected, partition))


def test_a_link_message_is_a_publication_or_a_presence_event_by_its_type() -> None:
    """An envelope reaches the node once; presence.lua's JSON reaches presence; junk neither."""

    async def scenario() -> None:
        broker = redis_broker("redis://127.0.0.1:1/0")
        heard, joins = Heard(), []
        presence = broker.presence(PresenceTally())
        presence.listener = lambda name, kind, user: joins.append((name, kind, user))
        await broker.start(heard)
        published = Publication(Channel("users/1"), b"hi", Position("e7", 1))
        key = broker.layout.channel(0, Channel("users/1"))
        broker.link_received(0, key, encode(published))
        broker.link_received(0, key, encode(published))  # The same copy via a subtree's channel.
        event = json.dumps({"presence": "join", "user": "u1", "channel": "users/1"}).encode()
        broker.link_received(0, b"any channel at all", event)
        broker.link_received(0, key, b"not an envelope")
        await broker.stop()
        assert [(p.target, p.payload, p.position) for p in heard.publications] == [
            (Channel("users/1"), b"hi", Position("e7", 1))
        ]
        assert joins == [("users/1", "join", "u1")]

    run(scenario())


def test_a_lone_link_speaks_for_the_broker_and_a_clusters_for_its_partition() -> None:
    """One link's ups and downs are the broker's; a cluster link's down names its partition."""

    async def scenario() -> None:
        alone, cluster = (
            redis_broker("redis://127.0.0.1:1/0"),
            redis_broker("redis://127.0.0.1:1", redis_cluster=True, redis_partitions=4),
        )
        heard_alone, heard_cluster = Heard(), Heard()
        await alone.start(heard_alone)
        await cluster.start(heard_cluster)
        alone.link_changed(0, False)
        cluster.link_changed(3, False)
        cluster.link_changed(3, True)  # The others are still down: nothing to say yet.
        await alone.stop()
        await cluster.stop()
        assert heard_alone.states[0] == (False, None)
        assert heard_cluster.states[0] == (False, 3)
        assert (True, 3) not in heard_cluster.states

    run(scenario())
