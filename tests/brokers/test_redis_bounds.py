"""What the Redis broker keeps per channel, in the process and in Redis, is released when idle."""

from __future__ import annotations

import dataclasses
import signal

import pytest

from tornado_channels import BrokerUnavailable, Channel, Node, RedisBroker, Subtree

from ..helpers import FAST, Inbox, RedisServer, redis_broker, run, until

pytestmark = pytest.mark.processes


def test_watches_nobody_renews_leave_redis_without_another_watch(
    redis_server: RedisServer,
) -> None:
    """The watch set and its start hash expire once every watch in them has: no stale fields."""

    async def scenario() -> None:
        broker = RedisBroker(redis_server.url)
        client = broker.topology.client(0)
        history = broker.history
        names = [f"users/{number}" for number in range(100)]
        await history.watch(client, 0, names, 0.3)
        layout = broker.layout
        keys = [layout.watch(0), layout.watch_start(0)]
        assert int(redis_server.cli("ZCARD", layout.watch(0).decode())) == 100
        assert int(redis_server.cli("HLEN", layout.watch_start(0).decode())) == 100
        # Nobody renews and nobody watches again: both keys must go by themselves.
        await until(
            lambda: redis_server.cli("EXISTS", *(key.decode() for key in keys)).strip() == "0",
            timeout=5,
            what="watch keys expired",
        )
        await broker.topology.close()

    run(scenario())


def test_a_subscription_that_timed_out_leaves_no_waiter_behind(redis_server: RedisServer) -> None:
    """A subscribe whose confirmation timed out, then left, holds no per-channel waiter."""

    async def scenario() -> None:
        broker = redis_broker(
            redis_server.url,
            dataclasses.replace(FAST, subscribe_timeout=0.3),
            redis_probe_interval=30,
            redis_check_interval=30,
        )
        node = Node(broker)
        await node.start()
        await until(lambda: node.connected, what="broker connected")
        link = broker.links.of(0)
        baseline = link._ledger.held()  # its own probe channel
        assert redis_server.process is not None
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            for number in range(20):
                with pytest.raises(BrokerUnavailable):
                    await node.subscribe(Channel(f"users/{number}"), Inbox())
            assert (len(node.hub), link._waiters) == (0, {})
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        await until(lambda: link._ledger.settled, what="replies in")
        assert (link._waiters, link._ledger.keys(), link._ledger.held()) == ({}, [], baseline)
        await node.stop()

    run(scenario())


def test_subscribers_that_come_and_go_leave_no_subscription_state(
    redis_server: RedisServer,
) -> None:
    """300 channels and 100 subtrees subscribed and left: no key wanted, held or watched."""

    async def scenario() -> None:
        broker = RedisBroker(redis_server.url)
        node = Node(broker)
        await node.start()
        await until(lambda: node.connected, what="broker connected")
        link = broker.links.of(0)
        baseline = link._ledger.held()  # its own probe channel
        targets: list[Channel | Subtree] = [Channel(f"users/{n}/feed") for n in range(300)]
        targets += [Subtree(f"users/{n}") for n in range(100)]
        inboxes = [Inbox() for _ in targets]
        for target, inbox in zip(targets, inboxes, strict=True):
            await node.subscribe(target, inbox)
        assert len(node.hub) == 400
        for target, inbox in zip(targets, inboxes, strict=True):
            node.unsubscribe(target, inbox)
        await until(lambda: link._ledger.settled and not link._ledger.dirty, what="replies in")
        assert (len(node.hub), node.hub._trie.nodes()) == (0, 0)
        assert (link._ledger.keys(), link._ledger.held(), link._waiters) == ([], baseline, {})
        assert all(not watched for watched in broker._watched.values())
        channels = redis_server.cli("PUBSUB", "CHANNELS", "tornado_channels:*").split()
        assert len(channels) == baseline, channels
        await node.stop()

    run(scenario())
