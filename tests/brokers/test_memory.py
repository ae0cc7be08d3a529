"""The embedded broker's memory: bounded by what is live, not by every channel ever used."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from tornado_channels import Channel, MemoryBroker, Node, Subtree
from tornado_channels.core.history import STREAM_GRACE, SWEEP_INTERVAL
from tornado_channels.core.publication import Position

from ..helpers import Inbox, redis_broker, run, until

#: Distinct channels in a burst: enough that a per-channel leak is plain in the counts.
BURST = 2000
#: Long enough that the whole burst is still held when it ends, even on a
#: loaded machine (2,000 subscribes and 4,000 publishes took over 0.3 s once:
#: ten times that still fits).
AGE = 3.0


def retained(node: Node) -> tuple[int, int, int, int, int]:
    """Per-channel entries held: streams, idempotency keys, subscriptions, trie nodes, presence.

    Presence counts its names and the changes not yet taken.
    """
    broker = node.broker
    assert isinstance(broker, MemoryBroker)
    presence = len(node.tally) + len(node.tally._dirty)
    return (
        len(broker.history),
        broker.idempotency_keys(),
        len(node.hub),
        node.hub._trie.nodes(),
        presence,
    )


def test_a_burst_of_distinct_channels_returns_to_baseline_without_further_publishes() -> None:
    """After a burst to 2,000 channels expires, no stream, key, subscription or trie node stays."""

    async def scenario() -> None:
        node = Node(MemoryBroker(history_age=AGE, idempotency_ttl=AGE))
        await node.start()
        baseline = retained(node)
        assert baseline == (0, 0, 0, 0, 0)
        inboxes = []
        for number in range(BURST):
            user = Channel(f"users/{number}/feed")
            inbox = Inbox()
            target = Subtree(f"users/{number}") if number % 2 else user
            await node.subscribe(target, inbox)
            inboxes.append((target, inbox))
            await node.publish(user, b"hi", idempotency_key=f"k{number}")
            await node.publish(Subtree(f"orders/{number}"), b"below")
        assert retained(node)[:3] == (2 * BURST, BURST, BURST)
        for target, inbox in inboxes:
            assert await inbox.next() == b"hi"
            node.unsubscribe(target, inbox)
        assert retained(node)[2:] == (0, 0, 0)
        # Nothing is published from here on: only the sweep can free them.
        await until(
            lambda: retained(node) == baseline,
            timeout=AGE + STREAM_GRACE + 3 * SWEEP_INTERVAL + 2,
            what="memory back to its baseline",
        )
        assert node.broker.history.marks() <= 1  # type: ignore[attr-defined]
        await node.stop()

    run(scenario())


def test_a_resume_from_before_a_swept_stream_fails_loudly() -> None:
    """A channel whose stream was swept away cannot be resumed from before it: recovered false."""

    async def scenario() -> None:
        node = Node(MemoryBroker(history_age=AGE))
        await node.start()
        gone = await node.publish(Channel("orders/1"), b"paid")
        broker = node.broker
        assert isinstance(broker, MemoryBroker)
        await until(lambda: len(broker.history) == 0, timeout=AGE + STREAM_GRACE + 3, what="swept")
        before = Position(gone.epoch, gone.seq - 1)
        recovery = await node.recover(Channel("orders/1"), before)
        assert (recovery.complete, recovery.publications) == (False, [])
        assert recovery.reason
        # From the last position itself nothing was missed: that still succeeds.
        assert (await node.recover(Channel("orders/1"), gone)).complete
        await node.stop()

    run(scenario())


def test_stopping_ends_the_sweep() -> None:
    """A stopped broker leaves no sweep task behind (the suite runs with warnings as errors)."""

    async def scenario() -> None:
        broker = MemoryBroker()
        node = Node(broker)
        await node.start()
        assert broker._sweeper is not None
        await node.stop()
        assert broker._sweeper is None
        await asyncio.sleep(0)

    run(scenario())


@pytest.mark.parametrize("options", [{"history_size": 0}, {"history_age": 0}])
@pytest.mark.parametrize("broker", ["memory", "redis"])
def test_a_history_that_could_keep_nothing_is_refused_by_every_broker(
    broker: str, options: dict[str, float]
) -> None:
    """--history-size 0 or --history-age 0 is a ValueError naming the flag, in both brokers."""
    flag = "--" + next(iter(options)).replace("_", "-")
    make = MemoryBroker if broker == "memory" else partial(redis_broker, "redis://127.0.0.1:1")
    with pytest.raises(ValueError, match=flag):
        make(**options)
